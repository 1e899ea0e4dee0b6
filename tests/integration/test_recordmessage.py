"""RECORDMESSAGE end to end: SIPp callers stream a tone (and an in-band DTMF key) to
flows that record a message, and the saved message downloaded over REST holds it. One
switch, five calls at once, one per called number: finish on key, maximum length,
silence timeout, play back (what SIPp heard, from a capture) then discard, and a caller
who hangs up before any save or discard; and each download format of a message."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, rtp_packets, rtp_pcm
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippResult, SippRunner
from tests.support.switch import RunningSwitch, rest

TONE_HZ = 500.0  # in no DTMF pair


def tone(seconds: float) -> audio.Pcm:
    return audio.sine(TONE_HZ, seconds, level=-12.0)


def rec(action: str | None = None, **params: Any) -> dict[str, Any]:
    if action:
        params["action"] = action
    return {"type": "RECORDMESSAGE", "name": "vm", "params": params}


HANGUP = {"type": "HANGUP"}
FLOWS: dict[str, list[dict[str, Any]]] = {
    "3001": [rec(finish_on_key="#", timeout=10), rec("save"), HANGUP],
    "3002": [rec(max_recording_time=2, timeout=5), rec("save"), HANGUP],
    "3003": [rec(timeout=2), rec("save"), HANGUP],
    "3004": [rec(timeout=1), rec("play"), rec("discard"),
             {"type": "PAUSE", "params": {"seconds": 1}}, HANGUP],
    "3005": [rec(timeout=60, max_recording_time=60)],  # then the caller hangs up
}
CALLERS: dict[str, audio.Pcm] = {
    "3001": audio.concat(tone(1.5), audio.dtmf("#"), audio.silence(8.0)),
    "3002": tone(8.0),
    "3003": audio.concat(tone(1.0), audio.silence(8.0)),
    "3004": audio.concat(tone(1.0), audio.silence(9.0)),
    "3005": tone(8.0),
}


def script(request: CallbackRequest) -> Any:
    if request.type == "init_call":
        return FLOWS[str(request.fields["api_no"])]
    if request.type == "live_call":
        return [HANGUP]
    return Reply(json={})


async def end_call(app: CallbackApp, number: str) -> dict[str, Any]:
    found = await app.wait_for(type="end_call", timeout=40,
                               predicate=lambda r: r.fields.get("api_no") == number)
    return found.fields


async def message_of(sw: RunningSwitch, end: dict[str, Any]) -> npt.NDArray[np.int16]:
    """The call's one saved message, as downloaded (mono WAV); its detail checked."""
    [entry] = end["recordings"]
    assert entry["name"] == "vm"
    async with rest(sw) as http:
        async with http.get(f"/v1/History/Recordings/{entry['id']}") as resp:
            detail = await resp.json()
        async with http.get(f"/v1/History/Recordings/{entry['id']}/wav") as resp:
            assert resp.status == 200, await resp.text()
            raw = await resp.read()
    with wave.open(io.BytesIO(raw), "rb") as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
    assert detail["status"] == "completed" and detail["channels"] == 1
    assert detail["group"] == end["api_no"]  # the spec's default group
    assert detail["duration"] == len(pcm) // 8
    return pcm


def spans(pcm: npt.NDArray[np.int16]) -> list[tuple[float, float]]:
    return audio.tone_segments(pcm, TONE_HZ, min_db=-30.0, min_duration=0.2)


async def test_record_message_end_to_end(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    files = {n: audio.to_ulaw_file(pcm, tmp_path / "media" / f"{n}.ulaw")
             for n, pcm in CALLERS.items()}
    listen_port = free_rtp_port()

    async def place(number: str) -> SippResult:
        if number == "3005":  # hangs up itself, 3 s after its ACK
            return await sipp_runner.run("uac_listen.xml", sw.sip_udp, service=number,
                                         audio_file=files[number], timeout=30,
                                         params={"PAUSE_MS": 3000})
        return await sipp_runner.run(
            "uac_wait_bye.xml", sw.sip_udp, service=number, audio_file=files[number],
            timeout=30, media_port=listen_port if number == "3004" else None)

    async with Capture(tmp_path, "recordmessage") as cap:
        await cap.start([listen_port], duration=60)
        results = await asyncio.gather(*(place(n) for n in FLOWS))
        pcap = await cap.stop()
    for result in results:
        result.assert_ok()
    ends = {n: await end_call(callback_app, n) for n in FLOWS}
    for n, end in ends.items():
        assert end["error_code"] is None, (n, end)

    # Finish on key: the message ends at the '#' after 1.5 s of tone, which it holds.
    pcm = await message_of(sw, ends["3001"])
    [(start, stop)] = spans(pcm)
    assert 1.2 <= stop - start <= 1.6 and 0 <= len(pcm) / 8000 - stop <= 0.3, (start, stop)

    # Maximum length: 2 s of a tone that never stops, to the tick; every download format
    # of it decodes to those 2 s, in one channel.
    pcm = await message_of(sw, ends["3002"])
    assert len(pcm) == pytest.approx(2 * 8000, abs=160)
    rid = ends["3002"]["recordings"][0]["id"]
    for fmt in ("ulw", "vox", "mp3", "wav", "wavM", "ogg", "aac", "au"):
        async with rest(sw) as http, http.get(f"/v1/History/Recordings/{rid}/{fmt}") as resp:
            assert resp.status == 200, (fmt, await resp.text())
            got = audio.decode_file(await resp.read(), fmt)
        assert got.channels == 1, fmt
        assert (got.declared_s or got.seconds) == pytest.approx(len(pcm) / 8000, abs=0.05), fmt

    # Silence timeout: 1 s of tone, then it ends 2 s (+300 ms of hangover) after it.
    pcm = await message_of(sw, ends["3003"])
    [(start, stop)] = spans(pcm)
    assert len(pcm) / 8000 - stop == pytest.approx(2.3, abs=0.25), (stop, len(pcm) / 8000)

    # Play back: the caller hears its own tone again after the message ends, then the
    # message is discarded: nothing in the call's recordings, nothing in the index.
    assert ends["3004"]["recordings"] == []
    heard = rtp_pcm(rtp_packets(pcap, listen_port))
    [(start, stop)] = spans(heard)
    assert 0.8 <= stop - start <= 1.2, (start, stop)
    assert start >= 2.0  # after the 1 s tone and the 1.3 s it took to end the message
    async with rest(sw) as http, \
            http.get(f"/v1/History/Recordings/{ends['3004']['call_id']}") as resp:
        assert (await resp.json())["recordings"] == []

    # The caller hangs up mid-message, before any save or discard: it is saved.
    pcm = await message_of(sw, ends["3005"])
    assert 2.0 <= len(pcm) / 8000 <= 3.5 and spans(pcm)
