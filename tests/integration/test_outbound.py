"""Outbound calls end to end: POST /Dials/Connect and DIAL, the real switch dialling SIPp
UAS scenarios on 127.0.0.1; what the far end hears, what the callback app receives, and
the REST view (LiveCalls, call log)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, rtp_packets, rtp_pcm
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

HANGUP = {"type": "HANGUP"}
CALLER_ID = "+17145550100"
PROMPT = "Hello, this is the voxswitch outbound test. Good bye."


async def connect(sw: RunningSwitch, no: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"call": {"no": no, "caller_id_no": CALLER_ID}, **extra}
    async with rest(sw) as http, http.post("/v1/Dials/Connect", json=body) as resp:
        return resp.status, await resp.json()


async def call_log(sw: RunningSwitch, call_id: str) -> dict[str, Any]:
    async with rest(sw) as http, http.get(f"/v1/History/Logs/Calls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def live_status(sw: RunningSwitch, call_id: str) -> str:
    async with rest(sw) as http, http.get(f"/v1/LiveCalls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["status"])


async def wait_log(sw: RunningSwitch, app: CallbackApp, call_id: str,
                   kind: str = "end_call", timeout: float = 40) -> dict[str, Any]:
    await app.wait_for(type=kind, predicate=lambda r: r.fields.get("call_id") == call_id,
                       timeout=timeout)
    return await call_log(sw, call_id)


def flow(actions: list[dict[str, Any]]) -> Any:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions(actions)
        return Reply(json={})
    return script


async def test_connect_rings_a_sip_uas_and_runs_the_callers_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script(flow([{"type": "SAY", "params": {"text": PROMPT}},
                                  {"type": "PAUSE", "params": {"seconds": 0.5}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_answer.xml", rtp_echo=False, calls=1) as uas, \
            Capture(tmp_path, "far") as cap:
        await cap.start([uas.media_port], duration=60)
        status, body = await connect(sw, uas.uri("bob"), session_data={"name": "Bob"})
        assert status == 201, body
        call_id = body["call"]["id"]
        assert body == {"call": {"id": call_id, "no": uas.uri("bob"),
                                 "caller_id_no": CALLER_ID}, "inbound_api": "CallFlows"}
        assert await live_status(sw, call_id) in ("live-queued", "live-ringing",
                                                  "live-in-progress")
        init = await callback_app.wait_for(type="init_call", timeout=15)
        log = await wait_log(sw, callback_app, call_id)
        result = await uas.finish()
        pcap = await cap.stop()
    result.assert_ok()
    assert f"invite-from: <sip:{CALLER_ID}@" in result.logs or CALLER_ID in result.messages
    f = init.fields
    assert (f["call_id"], f["direction"], f["caller_no"], f["api_no"], f["status"]) == (
        call_id, "outbound", uas.uri("bob"), CALLER_ID, "live-in-progress")
    assert f["session_data"] == {"name": "Bob"}
    assert (log["direction"], log["status"], log["hangup_end"]) == (
        "outbound", "completed", "api")
    heard = rtp_pcm(rtp_packets(pcap, dst_port=uas.media_port))
    want = audio.speech_like(audio.read_wav(audio.tts_wav(
        PROMPT, tmp_path / "want.wav", voice="en-us+f3"))[0])[0]
    active, in_band = audio.speech_like(heard)
    assert abs(active - want) <= 0.2 * want, (active, want)
    assert in_band > 0.8


@pytest.mark.parametrize(("status", "reason", "final"), [
    (486, "Busy Here", "busy"), (600, "Busy Everywhere", "busy"),
    (480, "Temporarily Unavailable", "no-answer"), (404, "Not Found", "failed"),
    (503, "Service Unavailable", "failed")])
async def test_a_refused_dial_ends_with_the_status_table_status_and_failed_call(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    status: int, reason: str, final: str,
) -> None:
    callback_app.set_script(flow([HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_reject.xml", calls=1,
                               params={"STATUS": status, "REASON": f'"{reason}"'}) as uas:
        code, body = await connect(sw, uas.uri("bob"))
        assert code == 201, body
        call_id = body["call"]["id"]
        failed = await callback_app.wait_for(type="failed_call", timeout=20)
        (await uas.finish()).assert_ok()
    assert failed.fields["call_id"] == call_id and failed.fields["status"] == final
    assert not callback_app.of_type("init_call") and not callback_app.of_type("end_call")
    log = await call_log(sw, call_id)
    assert log["status"] == final and log["sip"]["response_code"] == status
    assert await live_status(sw, call_id) == final


async def test_no_answer_is_cancelled_after_the_timeout(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_ring_cancel.xml", calls=1) as uas:
        code, body = await connect(sw, uas.uri("bob"), timeout=20)
        assert code == 201
        await asyncio.sleep(1.0)
        assert await live_status(sw, body["call"]["id"]) == "live-ringing"
        failed = await callback_app.wait_for(type="failed_call", timeout=40)
        result = await uas.finish()
    result.assert_ok()  # it got our CANCEL and answered 487
    assert "CANCEL sip:" in result.messages
    assert failed.fields["status"] == "no-answer"
    log = await call_log(sw, body["call"]["id"])
    assert log["status"] == "no-answer" and 19_000 <= log["duration"] <= 30_000


async def test_early_media_then_answer(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 0.3}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_early_media.xml", calls=1,
                               params={"EARLY_MS": 1500}) as uas:
        code, body = await connect(sw, uas.uri("bob"))
        assert code == 201
        await asyncio.sleep(0.8)
        assert await live_status(sw, body["call"]["id"]) == "live-ringing"
        log = await wait_log(sw, callback_app, body["call"]["id"])
        (await uas.finish()).assert_ok()
    assert log["status"] == "completed"


async def test_a_number_goes_through_the_outbound_proxy_with_digest(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 0.3}}, HANGUP]))
    async with sipp_runner.uas("uas_auth.xml", calls=1) as uas:
        cfg = tmp_path / "outbound.toml"
        cfg.write_text(f'[outbound]\nproxy = "sip:{uas.host}:{uas.port}"\n'
                       'username = "alice"\npassword = "secret"\n')
        sw = await switch(default_callback=callback_app.url, extra_args=["--config", str(cfg)])
        code, body = await connect(sw, "+19495551212")
        assert code == 201, body
        log = await wait_log(sw, callback_app, body["call"]["id"])
        result = await uas.finish()
    result.assert_ok()
    assert log["status"] == "completed"
    assert "INVITE sip:+19495551212@" in result.messages
    assert 'Proxy-Authorization: Digest username="alice"' in result.messages


async def test_a_far_end_with_garbage_sdp_is_hung_up_and_failed(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_bad_sdp.xml", calls=1) as uas:
        code, _ = await connect(sw, uas.uri("bob"))
        assert code == 201
        failed = await callback_app.wait_for(type="failed_call", timeout=20)
        result = await uas.finish()
    result.assert_ok()  # ACKed, then our BYE
    assert failed.fields["status"] == "failed" and failed.fields["error_code"] == 488
    assert "SDP" in failed.fields["error"]
    assert not sw.logged("Traceback")


@pytest.mark.parametrize(("no", "needle"), [
    ("+19495551212", "outbound route"), ("sip:bob@", "SIP destination"),
    ("sips:bob@127.0.0.1", "sips"), ("hello world", "neither"),
])
async def test_undiallable_numbers_are_400001_naming_call_no(
    switch: SwitchFactory, no: str, needle: str,
) -> None:
    sw = await switch()
    code, body = await connect(sw, no)
    assert code == 400 and body["code"] == 400001, body
    assert "call.no" in body["message"] + body.get("help", "") and needle in str(body)


@pytest.mark.parametrize(("extra", "field"), [
    ({"timeout": 5}, "timeout"), ({"max_call_time": 10}, "max_call_time"),
    ({"inbound_api": "Trunks"}, "inbound_api"), ({"session_data": "x"}, "session_data")])
async def test_bad_connect_fields_are_400001(
    switch: SwitchFactory, extra: dict[str, Any], field: str,
) -> None:
    sw = await switch()
    code, body = await connect(sw, "sip:bob@127.0.0.1:5999", **extra)
    assert code == 400 and body["code"] == 400001 and field in str(body), body


async def test_an_unreachable_destination_fails_without_hurting_other_calls(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    from tests.support.ports import free_udp_port

    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 0.5}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    dead = free_udp_port()  # nothing listens there
    code, _ = await connect(sw, f"sip:nobody@127.0.0.1:{dead};transport=tcp")
    assert code == 201
    failed = await callback_app.wait_for(type="failed_call", timeout=20)
    assert failed.fields["status"] == "failed"
    # an inbound call at the same time runs as usual
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
    result.assert_ok()


async def test_dial_starts_a_child_call_with_its_own_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_answer.xml", calls=1) as uas:
        def script(req: CallbackRequest) -> Reply:
            if req.type == "init_call" and req.fields["direction"] == "inbound":
                return Reply.actions([
                    {"type": "SESSIONDATA", "session_data": {"ticket": 42}},
                    {"type": "DIAL", "params": {"no": uas.uri("bob")},
                     "session_data": "$sessionData"},
                    {"type": "PAUSE", "params": {"seconds": 1.5}}, HANGUP])
            if req.type == "init_call":
                return Reply.actions([{"type": "PAUSE", "params": {"seconds": 0.3}}, HANGUP])
            return Reply(json={})

        callback_app.set_script(script)
        sw = await switch(default_callback=callback_app.url)
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="+17145550199")
        child = await callback_app.wait_for(
            type="init_call", predicate=lambda r: r.fields["direction"] == "outbound")
        (await uas.finish()).assert_ok()
    result.assert_ok()
    parent = callback_app.of_type("init_call")[0].fields
    f = child.fields
    assert f["api_no"] == "+17145550199" and f["session_data"] == {"ticket": 42}
    end = await callback_app.wait_for(type="end_call",
                                      predicate=lambda r: r.fields["call_id"] == f["call_id"])
    assert end.fields["parent_call_id"] == parent["call_id"]
    log = await call_log(sw, f["call_id"])
    assert log["parent_call_id"] == parent["call_id"] and log["direction"] == "outbound"


async def test_dial_that_cannot_connect_sends_failed_call_to_the_parent(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_reject.xml", calls=1, params={"STATUS": 486}) as uas:
        def script(req: CallbackRequest) -> Reply:
            if req.type == "init_call":
                return Reply.actions([
                    {"type": "DIAL", "params": {"no": uas.uri("bob")}},
                    {"type": "PAUSE", "params": {"seconds": 2}}, HANGUP])
            return Reply(json={})

        callback_app.set_script(script)
        sw = await switch(default_callback=callback_app.url + "parent")
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
        failed = await callback_app.wait_for(type="failed_call", timeout=20)
        (await uas.finish()).assert_ok()
    result.assert_ok()
    parent = callback_app.of_type("init_call")[0].fields
    assert failed.path == "/parent" and failed.fields["status"] == "busy"
    assert failed.fields["parent_call_id"] == parent["call_id"]


async def test_dial_to_an_undiallable_number_runs_on_error(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    hook = {"type": "WEBHOOK", "params": {"event_name": "dial-error", "url": "hooks",
                                          "await_response": True}}
    callback_app.set_script(flow([
        {"type": "DIAL", "params": {"no": "+19495551212"},
         "events": {"on_error": [hook]}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    await callback_app.wait_for(type=None, predicate=lambda r: r.path == "/hooks")
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["error_code"] is None


async def test_max_call_time_hangs_up_on_time(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 120}}]))
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_answer.xml", calls=1) as uas:
        code, body = await connect(sw, uas.uri("bob"), max_call_time=60)
        assert code == 201
        log = await wait_log(sw, callback_app, body["call"]["id"], timeout=90)
        (await uas.finish()).assert_ok()  # our BYE came
    assert log["status"] == "completed" and log["hangup_end"] == "api"
    assert 60 <= log["connect_time_sec"] <= 63, log


async def test_override_callback_config_picks_the_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([HANGUP]))
    sw = await switch(default_callback=callback_app.url + "default")
    async with rest(sw) as http:
        async with http.put("/v1/CallFlows/Configurations/PhoneNumbers/%2B19495558989",
                            json={"callback": {"url": callback_app.url + "override"}}) as r:
            assert r.status == 200, await r.text()
    async with sipp_runner.uas("uas_answer.xml", calls=1) as uas:
        code, _ = await connect(sw, uas.uri("bob"), override_callback_config="+19495558989")
        assert code == 201
        init = await callback_app.wait_for(type="init_call")
        (await uas.finish()).assert_ok()
    assert init.path == "/override" and init.fields["api_no"] == CALLER_ID
