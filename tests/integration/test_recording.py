"""Call recording end to end: a SIPp caller sends a tone while its flow RECORDs and plays
a prompt; the recording downloaded over REST is a stereo WAV whose left channel holds the
caller's tone and whose right holds what the switch played. Also: REST Start/Pause/Stop
on a live call, and a switch killed with SIGKILL mid-recording that lists the recording
after its restart with all but the last second."""

from __future__ import annotations

import asyncio
import io
import signal
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.support import audio
from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest, running_switch

CALLER_HZ = 697.0
PROMPT_HZ = 1209.0


def caller_tone(tmp_path: Path, seconds: float) -> Path:
    return audio.to_ulaw_file(audio.sine(CALLER_HZ, seconds, level=-12.0),
                              tmp_path / "media" / "caller.ulaw")


def prompt_file(tmp_path: Path, seconds: float) -> Path:
    return audio.write_wav(tmp_path / "media" / "prompt.wav",
                           audio.sine(PROMPT_HZ, seconds, level=-12.0))


async def download(sw: RunningSwitch, rid: str) -> tuple[npt.NDArray[np.int16],
                                                          npt.NDArray[np.int16]]:
    async with rest(sw) as http, http.get(f"/v1/History/Recordings/{rid}/wav") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "audio/wav"
        raw = await resp.read()
    with wave.open(io.BytesIO(raw), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    return pcm[:, 0].astype(np.int16), pcm[:, 1].astype(np.int16)


async def get_json(sw: RunningSwitch, path: str) -> Any:
    async with rest(sw) as http, http.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def spans(pcm: npt.NDArray[np.int16], hz: float) -> list[tuple[float, float]]:
    return audio.tone_segments(pcm, hz, min_db=-30.0, min_duration=0.2)


def seconds(found: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in found)


async def test_record_a_call_caller_left_switch_right(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    prompt = prompt_file(tmp_path, 1.5)
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "RECORD", "name": "whole_call", "params": {"group": "support"}},
        {"type": "PAUSE", "params": {"seconds": 1}},
        {"type": "PLAY", "params": {"url": prompt.as_uri()}},
        {"type": "PAUSE", "params": {"seconds": 1}},
        {"type": "HANGUP"}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url,
                      extra_args=["--media-dir", str(prompt.parent)])
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                   audio_file=caller_tone(tmp_path, 8.0), timeout=30)
    result.assert_ok()
    end = (await callback_app.wait_for(type="end_call", timeout=15)).fields
    assert end["error_code"] is None, end
    [entry] = end["recordings"]
    assert entry["name"] == "whole_call"
    rid = entry["id"]
    left, right = await download(sw, rid)
    length = len(left) / 8000
    assert 3.0 <= length <= 4.5, length  # 1 s + 1.5 s + 1 s, and the call's set-up and end
    # The caller's tone all along on the left, and never on the right (no echo path).
    assert seconds(spans(left, CALLER_HZ)) >= length - 0.5, spans(left, CALLER_HZ)
    assert spans(right, CALLER_HZ) == []
    # The prompt once on the right, whole, a second in; never on the left.
    [(start, stop)] = spans(right, PROMPT_HZ)
    assert 0.8 <= start <= 1.4 and 1.4 <= stop - start <= 1.6, (start, stop)
    assert spans(left, PROMPT_HZ) == []
    listed = await get_json(sw, "/v1/History/Recordings?group=support")
    assert [r["id"] for r in listed["recordings"]] == [rid] and not listed["is_truncated"]
    detail = listed["recordings"][0]
    assert detail["call_id"] == end["call_id"] and detail["status"] == "completed"
    assert abs(detail["duration"] - length * 1000) <= 1
    by_call = await get_json(sw, f"/v1/History/Recordings/{end['call_id']}")
    assert by_call["recordings"] == listed["recordings"]
    log = await get_json(sw, f"/v1/History/Logs/Calls/{end['call_id']}")
    assert log["recordings"] == end["recordings"]


async def post(sw: RunningSwitch, path: str, body: Any = None) -> tuple[int, Any]:
    async with rest(sw) as http, http.post(path, json=body) as resp:
        text = await resp.text()
        return resp.status, (await resp.json() if text else None)


async def test_rest_start_pause_stop_and_errors(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "PAUSE", "params": {"seconds": 30}}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = asyncio.ensure_future(sipp_runner.run(
        "uac_wait_bye.xml", sw.sip_udp, service="1000", audio_file=caller_tone(tmp_path, 10.0),
        params={"BYE_TIMEOUT_MS": 30000}, timeout=40))
    call_id = (await callback_app.wait_for(type="init_call", timeout=15)).fields["call_id"]
    base = f"/v1/LiveCalls/{call_id}/Actions/Recording"
    await asyncio.sleep(0.5)
    assert (await post(sw, base + "/Start", {"group": "rest"}))[0] == 204
    await asyncio.sleep(1.0)
    assert (await post(sw, base + "/Pause"))[0] == 204
    await asyncio.sleep(1.0)
    assert (await post(sw, base + "/Resume"))[0] == 204
    await asyncio.sleep(1.0)
    assert (await post(sw, base + "/Stop"))[0] == 204
    listed = await get_json(sw, f"/v1/History/Recordings/{call_id}")
    [rec] = listed["recordings"]
    assert rec["group"] == "rest" and rec["status"] == "completed"
    assert 1700 <= rec["duration"] <= 2300, rec  # 3 s of call, 1 s of it paused
    left, _ = await download(sw, rec["id"])
    assert seconds(spans(left, CALLER_HZ)) >= len(left) / 8000 - 0.3
    status, body = await post(sw, "/v1/LiveCalls/1@1/Actions/Recording/Start")
    assert (status, body["code"]) == (404, 404404)
    status, body = await post(sw, base + "/Start", {"group": 5})
    assert (status, body["code"]) == (400, 400001)
    async with rest(sw) as http, http.get("/v1/History/Recordings/nosuchid/wav") as resp:
        assert resp.status == 404 and (await resp.json())["code"] == 404002
    async with rest(sw) as http, http.post(f"/v1/LiveCalls/{call_id}/Actions/HangUp") as resp:
        assert resp.status in (200, 204), await resp.text()
    (await call).assert_ok()
    status, body = await post(sw, base + "/Start")
    assert (status, body["code"]) == (404, 404404)  # the call has ended


async def test_kill_9_mid_recording_then_restart_lists_it(
    callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "RECORD", "name": "r"}, {"type": "PAUSE", "params": {"seconds": 30}}])})
    async with running_switch(tmp_path, callback_app.url, check_exit=False) as sw:
        call = asyncio.ensure_future(sipp_runner.run(
            "uac_wait_bye.xml", sw.sip_udp, service="1000",
            audio_file=caller_tone(tmp_path, 10.0), params={"BYE_TIMEOUT_MS": 8000},
            timeout=10))
        call_id = (await callback_app.wait_for(type="init_call", timeout=15)).fields["call_id"]
        await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        recorded_from = loop.time()  # RECORD runs as soon as init_call is answered
        await asyncio.sleep(3.0)
        sw.process.send_signal(signal.SIGKILL)
        killed_after = loop.time() - recorded_from + 0.5
        await sw.process.wait(10)
        await call  # SIPp hears no BYE: it times out; the call is not what we check
    async with running_switch(tmp_path, callback_app.url) as sw:
        listed = await get_json(sw, f"/v1/History/Recordings/{call_id}")
        [rec] = listed["recordings"]
        assert rec["status"] == "completed", rec
        # All but the last second: at least the time recorded before the kill, less 1 s.
        assert killed_after - 1.0 <= rec["duration"] / 1000 <= killed_after + 0.5, (
            rec, killed_after)
        left, _ = await download(sw, rec["id"])
        assert abs(len(left) / 8 - rec["duration"]) <= 1
        assert seconds(spans(left, CALLER_HZ)) >= len(left) / 8000 - 0.5


async def test_rest_start_plays_pre_message_before_and_message_after(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    before = audio.write_wav(tmp_path / "media" / "before.wav",
                             audio.sine(PROMPT_HZ, 1.0, level=-12.0))
    after = audio.write_wav(tmp_path / "media" / "after.wav", audio.sine(1477.0, 1.0, level=-12.0))
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "PAUSE", "params": {"seconds": 30}}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url,
                      extra_args=["--media-dir", str(before.parent)])
    call = asyncio.ensure_future(sipp_runner.run(
        "uac_wait_bye.xml", sw.sip_udp, service="1000", audio_file=caller_tone(tmp_path, 10.0),
        params={"BYE_TIMEOUT_MS": 30000}, timeout=40))
    call_id = (await callback_app.wait_for(type="init_call", timeout=15)).fields["call_id"]
    base = f"/v1/LiveCalls/{call_id}/Actions/Recording"
    body = {"pre_message": before.as_uri(), "message": [after.as_uri()]}
    assert (await post(sw, base + "/Start", body))[0] == 204
    await asyncio.sleep(3.5)  # 1 s before, then 1 s after, recorded, then some quiet
    assert (await post(sw, base + "/Stop"))[0] == 204
    [rec] = (await get_json(sw, f"/v1/History/Recordings/{call_id}"))["recordings"]
    assert rec["name"] == "rest_recording"
    _, right = await download(sw, rec["id"])
    assert spans(right, PROMPT_HZ) == []  # played before the recording started
    [(start, stop)] = spans(right, 1477.0)
    assert start <= 0.2 and 0.9 <= stop - start <= 1.1, (start, stop)
    async with rest(sw) as http, http.post(f"/v1/LiveCalls/{call_id}/Actions/HangUp") as resp:
        assert resp.status in (200, 204), await resp.text()
    (await call).assert_ok()


async def test_record_a_bridged_call_caller_left_far_side_right(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    far_hz = PROMPT_HZ
    far = audio.to_ulaw_file(audio.sine(far_hz, 20.0, level=-12.0), tmp_path / "far.ulaw")
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 3000}, audio_file=far) as uas:
        callback_app.set_script({"init_call": Reply.actions([
            {"type": "RECORD", "name": "bridged"},
            {"type": "TRANSFER", "params": {"no": uas.uri("agent"),
                                            "caller_id_no": "+17145550100"}},
            {"type": "HANGUP"}]), "end_call": Reply(json={})})
        sw = await switch(default_callback=callback_app.url)
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                       audio_file=caller_tone(tmp_path, 20.0), timeout=40)
        (await uas.finish()).assert_ok()
    result.assert_ok()
    end = (await callback_app.wait_for(type="end_call", timeout=15,
                                       predicate=lambda r: r.fields["direction"] == "inbound"))
    [entry] = end.fields["recordings"]
    left, right = await download(sw, entry["id"])
    # the far side's 3 s on the right, never on the left; the caller all along on the left
    assert 2.5 <= seconds(spans(right, far_hz)) <= 3.5, spans(right, far_hz)
    assert spans(left, far_hz) == []
    assert seconds(spans(left, CALLER_HZ)) >= len(left) / 8000 - 0.5
    assert spans(right, CALLER_HZ) == []
