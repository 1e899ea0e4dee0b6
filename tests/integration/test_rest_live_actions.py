"""LiveCalls Actions over REST against a live SIPp call: Inject, Tell, Collect,
SessionData, Stop, and 404404 for a call that is not live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support import audio, g711
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.calls import HeardCall, sipp_call_heard
from tests.support.capture import dtmf_digits
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner, key_steps
from tests.support.switch import RunningSwitch, rest

KATE = "en-us+f3"
LONG_PAUSE = Reply.actions([{"type": "PAUSE", "params": {"seconds": 30}}])

def spoken_s(tmp_path: Path, text: str) -> float:
    wav = audio.tts_wav(text, tmp_path / "want.wav", voice=KATE)
    return audio.speech_like(audio.read_wav(wav)[0])[0]


async def post(sw: RunningSwitch, path: str, body: Any) -> tuple[int, Any]:
    async with rest(sw) as http, http.post(path, json=body) as resp:
        return resp.status, (await resp.json() if resp.status != 204 else None)


async def live_call_id(sw: RunningSwitch, timeout: float = 10) -> str:
    async def poll() -> str:
        while True:
            async with rest(sw) as http, http.get("/v1/LiveCalls") as resp:
                body = await resp.json()
            calls = [c for c in body["calls"] if c["status"] == "live-in-progress"]
            if calls:
                return str(calls[0]["id"])
            await asyncio.sleep(0.1)
    return await asyncio.wait_for(poll(), timeout)


def place_call(sipp: SippRunner, sw: RunningSwitch, scenario: str = "uac_wait_bye.xml",
               **params: Any) -> asyncio.Task[HeardCall]:
    params.setdefault("BYE_TIMEOUT_MS", 40000)
    return asyncio.create_task(sipp_call_heard(sipp, sw.sip_udp, scenario, service="1000",
                                               params=params, timeout=55))


async def test_inject_actions_are_run_and_bad_ones_refused(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({"init_call": LONG_PAUSE, "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = place_call(sipp_runner, sw)
    call_id = await live_call_id(sw)
    base = f"/v1/LiveCalls/{call_id}/Actions"
    for bad in ([{"type": "DANCE"}], [{"type": "SAY"}], [], {"actions": []}, [1], {"x": 1}):
        status, body = await post(sw, base, bad)
        assert (status, body["code"]) == (400, 400001), (bad, body)
    status, _ = await post(sw, base, [{"type": "SAY", "params": {"text": "Injected"}},
                                      {"type": "HANGUP"}])
    assert status == 204
    heard = await call
    heard.result.assert_ok()  # the switch's BYE ended the call
    assert heard.problems == []
    active = audio.speech_like(heard.pcm)[0]
    want = spoken_s(tmp_path, "Injected")
    assert abs(active - want) <= 0.25 * want, (active, want)
    end = await callback_app.wait_for(type="end_call", timeout=20)
    assert end.fields["error_code"] is None and end.fields["status"] == "completed"
    assert [r.type for r in callback_app.requests] == ["init_call", "end_call"]


async def test_tell_speaks_then_sends_rfc4733_dtmf_and_the_pause_goes_on(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"seconds": 8}}]),
        "live_call": Reply.actions([{"type": "HANGUP"}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = place_call(sipp_runner, sw)
    call_id = await live_call_id(sw)
    status, _ = await post(sw, f"/v1/LiveCalls/{call_id}/Actions/Tell",
                           {"message": ["Hello there", "dtmf://12"]})
    assert status == 204
    heard = await call
    heard.result.assert_ok()
    # the flow's PAUSE was not disturbed: it ran out, then live_call asked for more
    await callback_app.wait_for(type="end_call", timeout=20)
    assert [r.type for r in callback_app.requests] == ["init_call", "live_call", "end_call"]
    assert dtmf_digits(heard.dtmf) == "12"
    active = audio.speech_like(heard.pcm)[0]
    want = spoken_s(tmp_path, "Hello there")
    assert abs(active - want) <= 0.25 * want, (active, want)
    first_event = min(e.frame for e in heard.dtmf)
    last_speech = max(p.frame for p in heard.packets
                      if p.payload_type in (0, 8) and audio.rms_dbfs(
                          g711.decode(p.payload, p.payload_type)) > -45)
    assert last_speech < first_event  # speech first, then the digits


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_collect_sends_the_digits_to_the_callback(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, method: str,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.path == "/collected":
            return Reply.actions([{"type": "HANGUP"}])
        if req.type == "init_call":
            return LONG_PAUSE
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url + "voice")
    call = place_call(sipp_runner, sw, "uac_info_keys.xml",
                      KEY_STEPS=key_steps([(4000, "4"), (300, "2")]))
    call_id = await live_call_id(sw)
    status, _ = await post(sw, f"/v1/LiveCalls/{call_id}/Actions/Collect", {
        "message": "Enter two digits", "num_digits": 2,
        "callback": {"url": callback_app.url + "collected", "method": method}})
    assert status == 204
    (await call).result.assert_ok()
    end = await callback_app.wait_for(type="end_call", timeout=20)
    assert end.fields["error_code"] is None, end.fields["error"]
    collected = await callback_app.wait_for(predicate=lambda r: r.path == "/collected",
                                            timeout=20)
    assert collected.method == method
    assert collected.fields["call_id"] == call_id
    assert [(k["name"], k["digits"]) for k in collected.fields["key_presses"]] == [
        ("rest_collect", "42")]


async def test_session_data_reaches_the_next_callback_and_is_limited_to_16k(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"seconds": 5}}]),
        "live_call": Reply.actions([{"type": "HANGUP"}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = place_call(sipp_runner, sw)
    call_id = await live_call_id(sw)
    path = f"/v1/LiveCalls/{call_id}/Actions/SessionData"
    status, body = await post(sw, path, {"big": "x" * (16 * 1024)})
    assert (status, body["code"]) == (400, 400001), body
    status, body = await post(sw, path, ["not", "an", "object"])
    assert (status, body["code"]) == (400, 400001), body
    status, _ = await post(sw, path, {"a": 1})
    assert status == 204
    (await call).result.assert_ok()
    live = await callback_app.wait_for(type="live_call", timeout=20)
    assert live.fields["session_data"] == {"a": 1}
    end = await callback_app.wait_for(type="end_call", timeout=20)
    assert end.fields["session_data"] == {"a": 1}


async def test_stop_cuts_a_long_play_short_and_the_flow_goes_on(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    wav = audio.write_wav(tmp_path / "media" / "long.wav",
                          audio.sine(1000.0, 20.0, level=-12.0))
    hook = {"type": "WEBHOOK", "params": {"url": "hooks", "await_response": True}}
    callback_app.set_script(lambda req: Reply(json={}) if req.type != "init_call" else
                            Reply.actions([
                                {**hook, "params": {**hook["params"], "event_name": "before"}},
                                {"type": "PLAY", "params": {"url": wav.as_uri()}},
                                {**hook, "params": {**hook["params"], "event_name": "after"}},
                                {"type": "HANGUP"}]))
    sw = await switch(default_callback=callback_app.url + "voice",
                      extra_args=["--media-dir", str(wav.parent)])
    call = place_call(sipp_runner, sw)
    await callback_app.wait_for(predicate=lambda r: r.fields.get("event_name") == "before",
                                timeout=15)
    call_id = await live_call_id(sw)
    await asyncio.sleep(1.0)  # well inside the 20 s PLAY
    status, _ = await post(sw, f"/v1/LiveCalls/{call_id}/Actions/Stop", {"actions": "AUDIO"})
    assert status == 204
    # the next action runs long before the PLAY would have ended
    after = await callback_app.wait_for(
        predicate=lambda r: r.fields.get("event_name") == "after", timeout=10)
    assert after.fields["is_webhook"] is True
    heard = await call
    heard.result.assert_ok()
    tones = audio.tone_segments(heard.pcm, 1000.0, min_db=-30.0, min_duration=0.3)
    assert len(tones) == 1 and tones[0][1] - tones[0][0] < 10.0, tones
    await callback_app.wait_for(type="end_call", timeout=20)
    assert [r.fields.get("event_name") for r in callback_app.requests
            if r.path == "/hooks"] == ["before", "after"]


@pytest.mark.parametrize(("route", "body"), [
    ("", [{"type": "HANGUP"}]),
    ("/Tell", {"message": ["Hello"]}),
    ("/Collect", {"callback": {"url": "http://127.0.0.1:9/x"}}),
    ("/Stop", {"actions": "AUDIO"}),
    ("/SessionData", {"a": 1}),
    ("/HangUp", {}),
])
async def test_actions_on_an_unknown_call_are_404404(
    switch: SwitchFactory, route: str, body: Any,
) -> None:
    sw = await switch()
    status, answer = await post(sw, f"/v1/LiveCalls/123456@7890/Actions{route}", body)
    assert status == 404 and answer["code"] == 404404, answer
