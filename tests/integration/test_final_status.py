"""Every way a call ends gives one of the spec's final statuses, the same in all three
places a user reads it: the `end_call` callback, `GET /v1/LiveCalls/{call_id}` after the
end, and the call log (`GET /v1/History/Logs/Calls/{call_id}`).

The statuses (the spec's Call Status table; the SIP codes are ours):
- answered, then either side hangs up, whatever the reason: completed;
- the caller's CANCEL, or REST ending the call while it rings: canceled (a flow's
  first action answers the call, so a HANGUP action always comes after the answer);
- REJECT busy (486): busy; REJECT disconnected (404), a callback failure before answer
  (500), a switch shut down while ringing (503): failed.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.sipraw import invite_then_cancel
from tests.support.switch import RunningSwitch, rest, running_switch

HANGUP = {"type": "HANGUP"}
PAUSE = {"type": "PAUSE", "params": {"seconds": 0.3}}
END_CALL = Reply(json={})


async def final_statuses(sw: RunningSwitch, app: CallbackApp) -> tuple[str, str, str]:
    """(end_call, LiveCalls detail, call log) status of the call that just ended."""
    end = await app.wait_for(type="end_call", timeout=20)
    call_id = end.fields["call_id"]
    async with rest(sw) as http:
        async with http.get(f"/v1/LiveCalls/{call_id}") as resp:
            assert resp.status == 200, await resp.text()
            live = await resp.json()
        async with http.get(f"/v1/History/Logs/Calls/{call_id}") as resp:
            assert resp.status == 200, await resp.text()
            log = await resp.json()
    return end.fields["status"], live["status"], log["status"]


async def run_call(sw: RunningSwitch, sipp: SippRunner, scenario: str,
                   **params: Any) -> None:
    result = await sipp.run(scenario, sw.sip_udp, service="1000", params=params)
    result.assert_ok()


async def test_caller_bye_after_answer_is_completed(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "PAUSE",
                                                          "params": {"seconds": 30}}]),
                             "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    await run_call(sw, sipp_runner, "uac_listen.xml", PAUSE_MS=1000)
    assert await final_statuses(sw, callback_app) == ("completed",) * 3


async def test_switch_bye_after_answer_is_completed(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([PAUSE, HANGUP]),
                             "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    await run_call(sw, sipp_runner, "uac_wait_bye.xml")
    assert await final_statuses(sw, callback_app) == ("completed",) * 3


async def test_cancel_while_ringing_is_canceled(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([HANGUP], delay=2.0),
                             "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    await run_call(sw, sipp_runner, "uac_cancel.xml", CANCEL_DELAY_MS=200)
    assert await final_statuses(sw, callback_app) == ("canceled",) * 3


@pytest.mark.parametrize("flow", [[PAUSE, HANGUP], [{"type": "SAY",
                                                      "params": {"text": "hello"}}]],
                         ids=["pause", "say"])
async def test_cancel_before_any_response_is_canceled(
    switch: SwitchFactory, callback_app: CallbackApp, flow: list[dict[str, Any]],
) -> None:
    # INVITE and CANCEL back to back: the CANCEL lands while the switch is still looking
    # up the number's configuration or opening the call's media, or just after the 180
    # (which of them depends on the loop's scheduling): canceled in every case.
    callback_app.set_script({"init_call": Reply.actions(flow), "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    for i in range(3):
        # a number not called before: its configuration is looked up in the database
        got = await invite_then_cancel(sw.sip_udp, user=f"+1714555{i:04d}")
        assert ("CANCEL", 200) in got and got[-1] == ("INVITE", 487), got
        assert await final_statuses(sw, callback_app) == ("canceled",) * 3
        callback_app.requests.clear()


async def test_rest_end_while_ringing_is_canceled(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([HANGUP], delay=5.0),
                             "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    caller = asyncio.create_task(sipp_runner.run("uac_expect_status.xml", sw.sip_udp,
                                                 service="1000", params={"STATUS": 480}))
    init = await callback_app.wait_for(type="init_call", timeout=10)
    async with rest(sw) as http, http.delete(f"/v1/LiveCalls/{init.fields['call_id']}") as r:
        assert r.status == 204, await r.text()
    (await caller).assert_ok()
    assert await final_statuses(sw, callback_app) == ("canceled",) * 3


@pytest.mark.parametrize(("reason", "sip", "status"), [
    ("busy", 486, "busy"), ("disconnected", 404, "failed")])
async def test_reject_gives_busy_or_failed(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    reason: str, sip: int, status: str,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "REJECT",
                                                          "params": {"reason": reason}}]),
                             "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    await run_call(sw, sipp_runner, "uac_expect_status.xml", STATUS=sip)
    assert await final_statuses(sw, callback_app) == (status,) * 3


async def test_callback_failure_before_answer_is_failed(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply(status=500), "end_call": END_CALL})
    sw = await switch(default_callback=callback_app.url)
    await run_call(sw, sipp_runner, "uac_expect_status.xml", STATUS=500)
    assert await final_statuses(sw, callback_app) == ("failed",) * 3


@pytest.mark.parametrize("script", [
    {"init_call": Reply.actions([PAUSE]), "live_call": Reply(status=502)},
    {"init_call": Reply.actions([HANGUP], delay=2.0)},
    {"init_call": Reply.actions([{"type": "DANCE"}])},
], ids=["400901-after-answer", "4001-timeout", "400902-bad-action"])
async def test_callback_errors_that_speak_a_message_are_completed(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    script: dict[str, Reply],
) -> None:
    # These answer the call to say the spec's error message, then hang up.
    callback_app.set_script({**script, "end_call": END_CALL})
    sw = await switch()
    async with rest(sw) as http:
        async with http.put("/v1/CallFlows/Configurations/Default",
                            json={"callback": {"url": callback_app.url, "timeout": 1}}) as r:
            assert r.status == 200, await r.text()
    await run_call(sw, sipp_runner, "uac_wait_bye.xml")
    assert await final_statuses(sw, callback_app) == ("completed",) * 3
    end = callback_app.of_type("end_call")[0]
    assert end.fields["error_code"] is not None


@pytest.mark.parametrize(("answered", "status"), [(True, "completed"), (False, "failed")])
async def test_sigterm_ends_calls_with_a_final_status(
    tmp_path: Path, callback_app: CallbackApp, sipp_runner: SippRunner,
    answered: bool, status: str,
) -> None:
    init = Reply.actions([{"type": "PAUSE", "params": {"seconds": 60}}]) if answered else \
        Reply.actions([HANGUP], delay=30.0)
    callback_app.set_script({"init_call": init, "end_call": END_CALL})
    async with running_switch(tmp_path, callback_app.url, check_exit=False) as sw:
        scenario, params = (("uac_wait_bye.xml", {"BYE_TIMEOUT_MS": 30000}) if answered
                            else ("uac_expect_status.xml", {"STATUS": 503}))
        caller = asyncio.create_task(sipp_runner.run(scenario, sw.sip_udp, service="1000",
                                                     params=params, timeout=40))
        try:
            await callback_app.wait_for(type="init_call", timeout=15)
            await asyncio.sleep(1.0)  # answered and ACKed, or ringing in the callback
            sw.process.send_signal(signal.SIGTERM)
            assert await sw.process.wait(10) == 0, sw.logs()
        finally:
            result = await caller
    result.assert_ok()
    end = await callback_app.wait_for(type="end_call", timeout=5)
    assert end.fields["status"] == status
    # The REST view and the log survive the restart: both read the stored call log.
    async with running_switch(tmp_path, callback_app.url) as again:
        assert await final_statuses(again, callback_app) == (status,) * 3
