"""DigitCombiner: one press reported once across RFC 4733, in-band and SIP INFO."""

from __future__ import annotations

import numpy as np
import pytest

from media.digits import DigitCombiner, dtmf_audio, inband_latency
from media.events import DigitReceived, DigitSource
from media.tones import DTMF_FREQS

RFC = DigitSource.RFC4733
INBAND = DigitSource.INBAND
INFO = DigitSource.INFO


def run(combiner: DigitCombiner, reports: list[tuple[str, DigitSource, float]]) -> list[str]:
    out = []
    for digit, source, at in reports:
        got = combiner.report(digit, source, at)
        if got is not None:
            assert got == DigitReceived(digit, source, at)
            out.append(f"{digit}@{source.value}")
    return out


def test_rfc4733_then_inband_is_one_press() -> None:
    c = DigitCombiner()
    assert run(c, [("5", RFC, 1.0), ("5", INBAND, 1.1)]) == ["5@rfc4733"]
    assert c.suppressed == 1


def test_inband_first_wins_too() -> None:
    c = DigitCombiner()
    assert run(c, [("5", INBAND, 1.0), ("5", RFC, 1.15)]) == ["5@inband"]


def test_all_three_sources_one_press() -> None:
    c = DigitCombiner()
    reports = [("#", INFO, 0.99), ("#", RFC, 1.0), ("#", INBAND, 1.12)]
    assert run(c, reports) == ["#@info"]


@pytest.mark.parametrize(
    ("gap", "presses"),
    [(0.0, 1), (0.19, 1), (0.2, 1), (-0.2, 1), (0.21, 2), (-0.25, 2), (0.5, 2)],
)
def test_window_edges(gap: float, presses: int) -> None:
    c = DigitCombiner(window=0.2)
    assert len(run(c, [("7", RFC, 10.0), ("7", INFO, 10.0 + gap)])) == presses


def test_different_digits_never_merge() -> None:
    c = DigitCombiner()
    assert run(c, [("1", RFC, 1.0), ("2", INBAND, 1.05)]) == ["1@rfc4733", "2@inband"]


def test_same_source_is_never_merged() -> None:
    c = DigitCombiner()
    assert run(c, [("3", RFC, 1.0), ("3", RFC, 1.1)]) == ["3@rfc4733", "3@rfc4733"]


def test_fast_repeats_in_two_forms_stay_two_presses() -> None:
    # "55" dialled at 100 ms per digit, sent as events and left in the audio: each
    # emitted press absorbs one in-band report, so two presses, not one or four.
    c = DigitCombiner()
    reports = [("5", RFC, 1.0), ("5", INBAND, 1.09), ("5", RFC, 1.2), ("5", INBAND, 1.29)]
    assert run(c, reports) == ["5@rfc4733", "5@rfc4733"]


def test_inband_latency_shifts_the_window() -> None:
    # Behind a 200 ms jitter buffer the detector reports ~240 ms after onset; without the
    # latency correction that would be outside the window.
    latency = inband_latency(200)
    assert latency == pytest.approx(0.24)
    assert len(run(DigitCombiner(), [("9", RFC, 1.0), ("9", INBAND, 1.25)])) == 2
    c = DigitCombiner(latency={INBAND: latency})
    assert run(c, [("9", RFC, 1.0), ("9", INBAND, 1.25)]) == ["9@rfc4733"]
    # and a press heard in-band only is reported at its own time.
    assert c.report("1", INBAND, 3.0) == DigitReceived("1", INBAND, 3.0)


def test_old_presses_are_forgotten_and_reset() -> None:
    c = DigitCombiner()
    for i in range(100):
        c.report("1", RFC, float(i))
    assert len(c._recent) <= 2
    c.reset()
    assert c.report("1", INBAND, 99.05) is not None


def goertzel_pair(pcm: np.ndarray) -> tuple[float, float]:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    low = freqs[np.argmax(np.where(freqs < 1000, spectrum, 0))]
    high = freqs[np.argmax(np.where(freqs > 1100, spectrum, 0))]
    return float(low), float(high)


def test_dtmf_audio_timing_and_tones() -> None:
    pcm = dtmf_audio("1-2", tone_ms=100, gap_ms=200, dash_ms=300)
    assert pcm.dtype == np.int16
    # tone 100 + gap 200 + dash 300 + tone 100 ms
    assert len(pcm) == 8 * (100 + 200 + 300 + 100)
    first, second = pcm[:800], pcm[-800:]
    assert np.all(pcm[800:-800] == 0)
    for tone, digit in ((first, "1"), (second, "2")):
        low, high = goertzel_pair(tone)
        assert abs(low - DTMF_FREQS[digit][0]) < 15 and abs(high - DTMF_FREQS[digit][1]) < 15
    # -10 dBm0 per frequency: two sines of peak ~7050 each.
    assert 13000 < np.abs(first).max() < 15000


def test_dtmf_audio_leading_and_trailing_dashes() -> None:
    assert len(dtmf_audio("-5-", tone_ms=50, dash_ms=100)) == 8 * (100 + 50 + 100)
    assert len(dtmf_audio("")) == 0
    with pytest.raises(ValueError, match="'x'"):
        dtmf_audio("5x")
