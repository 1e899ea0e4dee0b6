"""The spec's Call Flow Loop errors, each end to end: what the caller hears and what the
callback and the call log receive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control.callflow.errors import SORRY, CallbackTimeout
from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.calls import HeardCall, sipp_call_heard
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

PAUSE = {"type": "PAUSE", "params": {"seconds": 0.5}}


async def put_default(sw: RunningSwitch, callback: dict[str, Any], **extra: Any) -> None:
    async with rest(sw) as http:
        async with http.put("/v1/CallFlows/Configurations/Default",
                            json={"callback": callback, **extra}) as resp:
            assert resp.status == 200, await resp.text()


def spoken_seconds(tmp_path: Path, text: str) -> float:
    wav = audio.tts_wav(text, tmp_path / "expected.wav", voice="en-us+f3")
    return audio.speech_like(audio.read_wav(wav)[0])[0]


def assert_heard_message(heard: HeardCall, tmp_path: Path, text: str) -> None:
    """The caller heard speech as long as `text` spoken, and nothing else."""
    heard.result.assert_ok()
    active, in_band = audio.speech_like(heard.pcm)
    want = spoken_seconds(tmp_path, text)
    assert abs(active - want) <= 0.2 * want, (active, want)
    assert in_band > 0.8
    assert heard.problems == []


async def end_call_of(app: CallbackApp) -> dict[str, Any]:
    end = await app.wait_for(type="end_call", timeout=20)
    return end.fields


async def test_callback_timeout_is_4001_and_the_caller_hears_all_circuits_busy(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}], delay=2.5),
                             "end_call": Reply(json={})})
    sw = await switch()
    await put_default(sw, {"url": callback_app.url, "timeout": 1})
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    assert_heard_message(heard, tmp_path, CallbackTimeout.phone_message.format(code=4001))
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 4001
    assert "timed out" in fields["error"]


async def test_non_2xx_before_answer_is_400900_and_the_call_is_refused(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply(status=500, body="boom"),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_expect_status.xml", sw.sip_udp, service="1000",
                                   params={"STATUS": 500})
    result.assert_ok()
    assert "SIP/2.0 200" not in result.messages
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 400900
    assert "answered HTTP 500" in fields["error"]
    async with rest(sw) as http, http.get(f"/v1/History/Logs/Calls/{fields['call_id']}") as r:
        log = await r.json()
    assert log["error_code"] == 400900 and log["connect_time_sec"] == 0


async def test_failover_answers_when_the_callback_fails(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.path == "/main":
            return Reply(status=503)
        if req.type == "init_call":
            return Reply.actions([PAUSE, {"type": "HANGUP"}])
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch()
    await put_default(sw, {"url": callback_app.url + "main"},
                      callback_failover={"url": callback_app.url + "backup"})
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
    result.assert_ok()
    fields = await end_call_of(callback_app)
    assert fields["error_code"] is None
    assert [(r.path, r.type) for r in callback_app.requests[:2]] == [
        ("/main", "init_call"), ("/backup", "init_call")]


async def test_non_2xx_after_answer_is_400901_with_a_message(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([PAUSE]),
                             "live_call": Reply(status=502), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    assert_heard_message(heard, tmp_path, SORRY.format(code=400901))
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 400901


@pytest.mark.parametrize("reply", [
    Reply(json={"actions": []}),
    Reply(body="<<not json>>", content_type="application/json"),
    Reply.actions([{"type": "DANCE"}]),
    Reply.actions([{"type": "SAY"}]),
], ids=["empty", "not-json", "unknown-action", "missing-param"])
async def test_responses_without_usable_actions_are_400902(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
    reply: Reply,
) -> None:
    callback_app.set_script({"init_call": reply, "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    assert_heard_message(heard, tmp_path, SORRY.format(code=400902))
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 400902 and fields["error"]
    assert "Traceback" not in sw.logs()


async def test_oversize_response_is_413900(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({"init_call": Reply.huge(90 * 1024, [{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    assert_heard_message(heard, tmp_path, SORRY.format(code=413900))
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 413900


async def test_just_under_the_hard_limit_is_accepted(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.huge(80 * 1024, [PAUSE, {"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
    result.assert_ok()
    assert (await end_call_of(callback_app))["error_code"] is None
    assert "callback.soft_limit" in sw.logs()


async def test_play_url_that_cannot_be_fetched_is_400931(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.path == "/missing.wav":
            return Reply(status=404)
        if req.type == "init_call":
            return Reply.actions([{"type": "PLAY",
                                   "params": {"url": callback_app.url + "missing.wav"}}])
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    assert_heard_message(heard, tmp_path, SORRY.format(code=400931))
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 400931
    assert "404" in fields["error"]


async def test_204_before_answer_declines_the_call(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply(status=204), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_expect_status.xml", sw.sip_udp, service="1000",
                                   params={"STATUS": 603})
    result.assert_ok()
    fields = await end_call_of(callback_app)
    assert fields["error_code"] is None


async def test_204_after_answer_hangs_up_without_error(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([PAUSE]), "live_call": Reply(status=204),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    assert audio.speech_like(heard.pcm)[0] < 0.1  # silence, no error message
    fields = await end_call_of(callback_app)
    assert fields["error_code"] is None and fields["status"] == "completed"


