"""GET /v1/LiveCalls/{id}/Audio: the audio tap of a real SIPp call, decoded.

The call is test_timeline.py's: SIPp sends a 1 kHz tone for a second from LEAD_MS after
the ACK (then two RFC 4733 digits), the switch speaks a prompt from the answer. The tap's
left (caller) channel must hold the tone where SIPp sent it and no prompt; the right
(switch) channel the prompt and no tone. `?side=` gives each alone, mono.
"""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.integration.test_timeline import (
    ERROR_FIELDS,
    LEAD_MS,
    TONE_HZ,
    TONE_S,
    get_json,
    pytestmark,
    tapped_call,
)
from tests.support import audio
from tests.support.callback_app import CallbackApp
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

__all__ = ["pytestmark"]  # root-only, as the timeline tests: SIPp plays pcaps


async def get_wav(sw: RunningSwitch, call_id: str, query: str = ""
                  ) -> tuple[int, dict[str, str], bytes]:
    async with rest(sw) as http, http.get(f"/v1/LiveCalls/{call_id}/Audio{query}") as resp:
        return resp.status, dict(resp.headers), await resp.read()


def decode(data: bytes) -> tuple[int, np.ndarray]:
    """(channels, samples as an array of shape (frames, channels)) of a 8 kHz 16-bit WAV."""
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == 8000 and w.getsampwidth() == 2
        channels = w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return channels, pcm.reshape(-1, channels)


async def test_the_tap_holds_what_each_side_heard(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path, keep_s=60)
    status, headers, data = await get_wav(call.sw, call.call_id)
    assert status == 200, data[:300]
    assert headers["Content-Type"] == "audio/wav"
    assert headers["X-Voxswitch-Channels"] == "left=caller right=switch"
    channels, pcm = decode(data)
    assert channels == 2
    caller, heard = pcm[:, 0], pcm[:, 1]
    # the call lasted about 3.3 s (the second digit ends it); the tap covers it
    assert 2.5 < len(pcm) / audio.RATE < 10

    # caller side: the tone SIPp sent, TONE_S long, starting near LEAD_MS after answer
    segments = audio.tone_segments(caller, TONE_HZ, min_db=-30.0)
    assert segments, "no 1 kHz tone on the caller channel"
    start, end = segments[0][0], segments[-1][1]
    assert end - start == pytest.approx(TONE_S, abs=0.15), segments
    # the tap starts with the channel, a callback before the answer: some slack after
    assert LEAD_MS / 1000 - 0.1 < start < LEAD_MS / 1000 + 1.0, segments
    assert audio.dominant_frequency(caller[int(start * 8000):int(end * 8000)]) == \
        pytest.approx(TONE_HZ, abs=20)
    # the switch side: the prompt (speech) from the start, and none of the tone
    prompt = heard[: int(1.8 * audio.RATE)]
    assert audio.rms_dbfs(prompt) > -40, audio.rms_dbfs(prompt)
    active_s, in_band = audio.speech_like(prompt)
    assert active_s > 0.8 and in_band > 0.5, (active_s, in_band)  # espeak: low pitch
    assert audio.level_spread(prompt) > 3  # speech varies; a steady tone would not
    assert not audio.tone_segments(heard, TONE_HZ, min_db=-30.0)
    # ... and the caller side is quiet where only the switch spoke (after the tone)
    after_tone = caller[int((end + 0.1) * 8000):int((end + 0.4) * 8000)]
    assert audio.rms_dbfs(after_tone) < -45

    # one side alone, mono: the same samples as its stereo channel
    for side, column in (("caller", 0), ("switch", 1)):
        status, headers, mono = await get_wav(call.sw, call.call_id, f"?side={side}")
        assert status == 200 and headers["X-Voxswitch-Channels"] == side
        n, samples = decode(mono)
        assert n == 1
        np.testing.assert_array_equal(samples[:, 0], pcm[:, column])


async def test_bad_side_unknown_call_and_expiry_delete_the_file(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    keep_s = 5  # the checks before expiry take a fraction of it
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path, keep_s=keep_s)
    taps_dir = call.sw.data_dir / "taps"
    # served once complete (the writer thread closes the file just after the call)
    status, _, data = await get_wav(call.sw, call.call_id)
    assert status == 200 and len(data) > 44
    assert [p.name for p in taps_dir.iterdir()] == [f"{call.call_id}.wav"]  # no .part

    status, bad = await get_json(call.sw, f"/v1/LiveCalls/{call.call_id}/Audio?side=left")
    assert status == 400 and bad["code"] == 400001 and set(bad) >= ERROR_FIELDS, bad
    assert "side" in bad["message"]
    status, unknown = await get_json(call.sw, "/v1/LiveCalls/424242@1/Audio")
    assert status == 404 and unknown["code"] == 404404, unknown

    # after keep_s the sweeper drops the timeline, and the tap's file with it, unasked
    loop = asyncio.get_running_loop()
    deadline = loop.time() + keep_s + 10
    while any(taps_dir.iterdir()) and loop.time() < deadline:
        await asyncio.sleep(0.25)
    assert not any(taps_dir.iterdir()), list(taps_dir.iterdir())
    status, gone = await get_json(call.sw, f"/v1/LiveCalls/{call.call_id}/Audio")
    assert status == 404 and gone["code"] == 404404, gone


async def test_taps_off_answer_404_and_write_nothing(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path, audio=False)
    status, body = await get_json(call.sw, f"/v1/LiveCalls/{call.call_id}/Audio")
    assert status == 404 and body["code"] == 404404, body
    assert "[taps] audio = false" in body["help"]
    assert not (call.sw.data_dir / "taps").exists() or \
        not any((call.sw.data_dir / "taps").iterdir())
    # the timeline is still there: taps only switch off the audio
    status, timeline = await get_json(call.sw, f"/v1/LiveCalls/{call.call_id}/Timeline")
    assert status == 200 and timeline["events"]


async def test_a_tap_stops_at_audio_max_s(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    """The call lasts about 3.3 s; with audio_max_s = 1 its tap holds its first second
    (the prompt's start), and the call itself is not cut."""
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path, audio_max_s=1)
    status, _, data = await get_wav(call.sw, call.call_id)
    assert status == 200
    _, pcm = decode(data)
    assert len(pcm) / audio.RATE == pytest.approx(1.0, abs=0.1)
    assert audio.rms_dbfs(pcm[:, 1]) > -40  # the prompt had begun
    assert call.sw.logged('"tap.capped"')
