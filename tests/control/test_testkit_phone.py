"""The test phone's assertions (control.testkit.phone) on synthetic audio, fed as RTP
packets into its RTP endpoint, and two RTP endpoints talking over loopback sockets."""

from __future__ import annotations

import asyncio
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from control.testkit.phone import CallStatus, Phone, PhoneCall
from control.testkit.rtp import RtpEndpoint
from media import g711
from media.rtp import pack_header
from media.telephone_event import TelephoneEventSender
from media.tones import dtmf_digits, tone
from tests.support import audio

SOURCE = ("127.0.0.1", 40000)
EVENT_PT = 101


def answered_call(tmp_path: Path) -> PhoneCall:
    """A call as the phone has it once answered, its audio fed by `feed` (no network):
    the RTP endpoint places audio by timestamp, so it can be fed faster than real time."""
    phone = Phone(tmp_path / "phone")
    call = PhoneCall(phone, "call1", "out", RtpEndpoint(reanchor_s=3600))
    call._rtp.event_pt = EVENT_PT
    call.status = CallStatus.ANSWERED
    call._answered.set()
    return call


def feed(call: PhoneCall, pcm: np.ndarray, *, ts: int = 1000, seq: int = 1,
         ssrc: int = 0x1234) -> tuple[int, int]:
    """Send `pcm` to the call as PCMU packets of 20 ms; the next (ts, seq)."""
    for start in range(0, len(pcm), 160):
        payload = g711.encode(g711.PCMU, pcm[start:start + 160])
        call._rtp.datagram_received(pack_header(0, False, seq, ts, ssrc) + payload, SOURCE)
        ts, seq = ts + 160, seq + 1
    return ts, seq


def hang_up(call: PhoneCall) -> None:
    call.status = CallStatus.ENDED
    call.end_reason = "remote bye"
    call._ended.set()


async def test_tone_then_silence_in_order(tmp_path: Path) -> None:
    call = answered_call(tmp_path)
    feed(call, np.concatenate([audio.silence(0.3), tone(440, 1.0), audio.silence(1.0)]))
    seg = await call.hears_tone(440, min_s=0.8, timeout=2)
    assert abs(seg.start - 0.3) <= 0.04 and call.cursor == pytest.approx(seg.end)
    silence = await call.hears_silence(0.8, timeout=2)
    assert silence.start >= 1.25, silence  # after the tone, not the leading silence


async def test_a_tone_never_played_fails_when_the_call_ends(tmp_path: Path) -> None:
    call = answered_call(tmp_path)
    feed(call, np.concatenate([audio.silence(0.5), tone(440, 0.8), audio.silence(0.2)]))
    hang_up(call)
    with pytest.raises(AssertionError) as failure:
        await call.hears_tone(1400, min_s=0.3, timeout=5)
    message = str(failure.value)
    assert message.startswith("expected a 1400 Hz tone (±42 Hz) of at least 0.3 s: "
                              "not heard before the call ended"), message
    assert "tone 440 Hz 0.50-1.30 s" in message, message
    assert "hung up by the far end" in message and "1.50 s of audio heard" in message, message
    found = re.search(r"recording of everything heard: (\S+)", message)
    assert found, message
    path = Path(found[1])
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 1, 12000)


async def test_nothing_heard_times_out_with_the_bound(tmp_path: Path) -> None:
    call = answered_call(tmp_path)
    feed(call, audio.silence(0.4))
    with pytest.raises(AssertionError, match=r"expected speech of at least 0.5 s: "
                                             r"not heard within 0.3 s"):
        await call.hears_speech(0.5, timeout=0.3)


async def test_speech_is_measured_against_its_bounds(tmp_path: Path) -> None:
    call = answered_call(tmp_path)
    speech, _ = audio.read_wav(audio.tts_wav("Thank you for calling the support line.",
                                             tmp_path / "hello.wav"))
    spoken = len(audio.trim_silence(speech)) / 8000
    feed(call, np.concatenate([audio.silence(0.5), speech, audio.silence(1.5)]))
    seg = await call.hears_speech(min_s=spoken - 0.4, max_s=spoken + 0.4, timeout=2)
    assert abs(seg.length - spoken) <= 0.4, (seg, spoken)
    call.cursor = 0.0
    with pytest.raises(AssertionError, match=r"longer than max_s=0.5 s"):
        await call.hears_speech(min_s=0.2, max_s=0.5, timeout=2)


async def test_digits_heard_in_band_and_as_telephone_events(tmp_path: Path) -> None:
    call = answered_call(tmp_path)
    ts, seq = feed(call, np.concatenate([audio.silence(0.3), dtmf_digits("42"),
                                         audio.silence(0.3)]))
    sender = TelephoneEventSender("7#", tone_ms=100, gap_ms=100)
    event_ts = ts
    while not sender.done:
        packet = sender.tick()
        if packet is not None:
            if packet.start:
                event_ts = ts
            header = pack_header(EVENT_PT, packet.marker, seq, event_ts, 0x1234)
            call._rtp.datagram_received(header + packet.payload, SOURCE)
            seq += 1
        ts += 160
    at = await call.hears_digits("42", timeout=2)
    assert 0.4 <= at <= 0.6, at  # the 2, 0.2 s after the 4
    assert call.heard_digits == "42"
    assert call.rfc4733_digits == "7#"
    await call.hears_digits("7#", timeout=2)  # after the 42, in the order heard
    with pytest.raises(AssertionError, match=r"expected the DTMF digits '42'.*\n.*"
                                             r"\n  DTMF heard: 427#"):
        await call.hears_digits("42", timeout=0.2)  # not again after the cursor


async def test_late_packets_land_where_their_timestamps_say(tmp_path: Path) -> None:
    call = answered_call(tmp_path)
    pcm = np.concatenate([tone(500, 0.5), audio.silence(0.5)])
    packets = [(i, pcm[i * 160:(i + 1) * 160]) for i in range(len(pcm) // 160)]
    packets[3], packets[5] = packets[5], packets[3]  # reordered on the way
    for i, frame in packets:
        payload = g711.encode(g711.PCMU, frame)
        call._rtp.datagram_received(pack_header(0, False, i, 8000 + i * 160, 7) + payload,
                                    SOURCE)
    expected = g711.decode(g711.PCMU, g711.encode(g711.PCMU, pcm))
    assert np.array_equal(call.heard, expected)


async def test_two_endpoints_hear_each_other_over_loopback() -> None:
    a, b = RtpEndpoint(), RtpEndpoint()
    await a.open()
    await b.open()
    try:
        a.start(("127.0.0.1", b.port), g711.PCMU, EVENT_PT)
        b.start(("127.0.0.1", a.port), g711.PCMA, EVENT_PT)
        await asyncio.wait_for(a.play(tone(800, 0.4)), 3)
        await asyncio.wait_for(a.send_digits("3", tone_ms=80, gap_ms=60), 3)
        await asyncio.sleep(0.1)
        heard = b.heard
        assert "".join(key for _, key in b.rfc4733_keys) == "3"
        assert abs(audio.dominant_frequency(heard) - 800) < 10
        assert a.packets_in > 10 and len(a.heard) > 0  # b sends silence meanwhile (PCMA)
    finally:
        await a.close()
        await b.close()
