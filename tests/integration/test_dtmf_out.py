"""PLAY dtmf towards the caller: RFC 4733 events when the leg offered telephone-event,
in-band tones (ITU-T Q.23 pairs at -10 dBm0 each) when it offered PCMU only."""

from __future__ import annotations

import math
from itertools import groupby, pairwise

import numpy as np

from tests.support import audio, g711
from tests.support.callback_app import CallbackApp, Reply
from tests.support.calls import HeardCall, sipp_call_heard
from tests.support.capture import DTMF_SYMBOLS, dtmf_digits
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner

DIGITS = "12#"
DELAY_MS = 300
TONE_MS = 100  # the switch's digit length
PTIME_SAMPLES = 160
TELEPHONE_EVENT = 101


async def play_dtmf(switch: SwitchFactory, app: CallbackApp, sipp: SippRunner,
                    scenario: str) -> HeardCall:
    app.set_script({"init_call": Reply.actions([
        {"type": "PAUSE", "params": {"seconds": 0.3}},
        {"type": "PLAY", "params": {"dtmf": DIGITS, "dtmf_delay": DELAY_MS}},
        {"type": "PAUSE", "params": {"seconds": 0.3}},
        {"type": "HANGUP"}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=app.url)
    heard = await sipp_call_heard(sipp, sw.sip_udp, scenario, service="1000")
    heard.result.assert_ok()
    assert heard.problems == []
    end = await app.wait_for(type="end_call", timeout=20)
    assert end.fields["error_code"] is None, end.fields["error"]
    return heard


async def test_dtmf_to_a_telephone_event_leg_is_rfc4733(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    heard = await play_dtmf(switch, callback_app, sipp_runner, "uac_wait_bye.xml")
    assert dtmf_digits(heard.dtmf) == DIGITS
    events = [list(g) for _, g in groupby(heard.dtmf, key=lambda e: (e.ssrc, e.timestamp))]
    assert len(events) == len(DIGITS)
    packets = [p for p in heard.packets if p.payload_type == TELEPHONE_EVENT]
    assert len(packets) == len(heard.dtmf)
    by_ts = [list(g) for _, g in groupby(packets, key=lambda p: p.timestamp)]
    for digit, event, pkts in zip(DIGITS, events, by_ts, strict=True):
        assert {DTMF_SYMBOLS[e.event] for e in event} == {digit}
        # one timestamp per event; the marker on its first packet only
        assert len({e.timestamp for e in event}) == 1
        assert [p.marker for p in pkts] == [True] + [False] * (len(pkts) - 1)
        # durations grow, then the end packet three times with the final duration
        ends = [e for e in event if e.end]
        assert len(ends) == 3 and event[-3:] == ends, event
        assert len({e.duration for e in ends}) == 1
        durations = [e.duration for e in event]
        assert durations == sorted(durations)
        assert abs(ends[0].duration - TONE_MS * 8) <= PTIME_SAMPLES, ends[0]
        assert all(e.volume <= 63 for e in event)
    # one event starts dtmf_delay after the previous one ended (in RTP time)
    starts = [event[0].timestamp for event in events]
    for a, b in pairwise(starts):
        assert abs((b - a) - (TONE_MS + DELAY_MS) * 8) <= PTIME_SAMPLES, starts
    # audio and events share the stream: same SSRC as the G.711 packets
    assert {p.ssrc for p in packets} <= {p.ssrc for p in heard.packets
                                         if p.payload_type in (0, 8)}


def dbm0_level_dbfs(level_dbm0: float) -> float:
    """RMS dBFS of a sine at `level_dbm0` (G.711: a full-scale µ-law sine is +3.17 dBm0)."""
    full_scale = float(np.max(np.abs(g711.decode(bytes([0x80]), 0).astype(np.float64))))
    return 20 * math.log10(full_scale / audio.FULL_SCALE) - 3.01 + level_dbm0 - 3.17


async def test_dtmf_to_a_pcmu_only_leg_is_in_band(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    heard = await play_dtmf(switch, callback_app, sipp_runner, "uac_wait_bye_pcmu_only.xml")
    assert heard.dtmf == []
    assert {p.payload_type for p in heard.packets} == {0}
    want_db = dbm0_level_dbfs(-10.0)
    spans = {freq: audio.tone_segments(heard.pcm, freq, min_fraction=0.3, min_duration=0.04)
             for freq in {f for d in DIGITS for f in audio.DTMF_FREQS[d]}}
    # each frequency shows up once per digit using it (697 Hz: rows of 1 and 2)
    assert {f: len(s) for f, s in spans.items()} == {
        697: 2, 941: 1, 1209: 1, 1336: 1, 1477: 1}, spans
    pairs = [(spans[697][0], spans[1209][0]), (spans[697][1], spans[1336][0]),
             (spans[941][0], spans[1477][0])]
    onsets = []
    for digit, (low_span, high_span) in zip(DIGITS, pairs, strict=True):
        # the row and column tones sound together, for about the tone length
        assert abs(low_span[0] - high_span[0]) <= 0.021, (digit, low_span, high_span)
        assert abs(low_span[1] - high_span[1]) <= 0.021, (digit, low_span, high_span)
        assert 0.06 <= high_span[1] - high_span[0] <= 0.14, (digit, high_span)
        onsets.append(high_span[0])
        lo_f, hi_f = audio.DTMF_FREQS[digit]
        a, b = round(high_span[0] / audio.FRAME_S), round(high_span[1] / audio.FRAME_S)
        for freq in (lo_f, hi_f):
            level = float(np.max(audio.tone_power(heard.pcm, freq)[0][a:b]))
            assert abs(level - want_db) <= 2.0, (digit, freq, level, want_db)
    assert onsets == sorted(onsets)
    for a, b in pairwise(onsets):
        assert abs((b - a) - (TONE_MS + DELAY_MS) / 1000) <= 0.041, onsets
