"""Generated tones: frequency by FFT, level by RMS, shape and duration by sample counts."""

from __future__ import annotations

import numpy as np
import pytest

from media.tones import (
    DTMF_FREQS,
    RATE,
    beep,
    busy,
    cadence,
    dbm0_to_peak,
    dtmf_digits,
    dtmf_tone,
    ringback,
    silence,
    tone,
)

RAMP = 40  # 5 ms at 8 kHz


def spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and magnitudes of a Hann-windowed FFT."""
    mag = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return np.fft.rfftfreq(x.size, 1 / RATE), mag


def peaks(x: np.ndarray, count: int) -> list[float]:
    """The `count` strongest spectral peaks (local maxima), lowest frequency first."""
    freqs, mag = spectrum(x)
    local = np.flatnonzero((mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])) + 1
    strongest = local[np.argsort(mag[local])[::-1][:count]]
    return sorted(float(freqs[i]) for i in strongest)


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_dbm0_reference_points() -> None:
    # G.711: a full-scale µ-law sine (peak 32124) is +3.17 dBm0.
    assert dbm0_to_peak(3.17) == pytest.approx(32124)
    assert dbm0_to_peak(0.0) == pytest.approx(22301, abs=1)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 1004.0, 2500.0, 3400.0])
def test_tone_frequency(freq: float) -> None:
    x = tone(freq, 1.0)
    assert x.dtype == np.int16
    assert peaks(x, 1)[0] == pytest.approx(freq, abs=1.0)


@pytest.mark.parametrize("level", [0.0, -10.0, -20.0, -36.0])
def test_tone_level_rms(level: float) -> None:
    steady = tone(1000.0, 1.0, level_dbm0=level)[RAMP:-RAMP]
    expected = 20 * np.log10(dbm0_to_peak(level) / np.sqrt(2))
    assert rms_db(steady) == pytest.approx(expected, abs=0.05)


def test_tone_duration_and_ramps() -> None:
    x = tone(1000.0, 0.25, level_dbm0=0.0)
    assert x.size == 2000
    envelope = np.abs(x.astype(np.int32))
    # 5 ms ramps: nearly silent at both ends, full level by the end of the ramp.
    assert envelope[:4].max() < 0.02 * dbm0_to_peak(0.0)
    assert envelope[-4:].max() < 0.02 * dbm0_to_peak(0.0)
    assert envelope[:10].max() < envelope[RAMP : RAMP + 10].max()
    assert envelope[RAMP:-RAMP].max() == pytest.approx(dbm0_to_peak(0.0), rel=0.001)


def test_short_tone_ramps_share_the_length() -> None:
    x = tone(1000.0, 0.004)
    assert x.size == 32
    assert np.abs(x).max() > 0
    assert tone(1000.0, 0.0).size == 0


def test_sum_of_sines_each_at_level() -> None:
    x = tone([697.0, 1209.0], 1.0, level_dbm0=-10.0)[RAMP:-RAMP]
    freqs, mag = spectrum(x)
    low = mag[np.argmin(np.abs(freqs - 697))]
    high = mag[np.argmin(np.abs(freqs - 1209))]
    assert 20 * np.log10(low / high) == pytest.approx(0.0, abs=0.2)
    # Two uncorrelated sines: powers add, so the total is 3 dB above one of them.
    single = 20 * np.log10(dbm0_to_peak(-10.0) / np.sqrt(2))
    assert rms_db(x) == pytest.approx(single + 10 * np.log10(2), abs=0.05)


def test_overload_saturates_instead_of_wrapping() -> None:
    x = tone([200.0, 200.0], 0.1, level_dbm0=3.17)
    assert x.max() == 32767
    assert x.min() == -32768
    # Wrap-around would show up as sign flips between neighbouring samples at the peaks.
    assert np.all(np.abs(np.diff(x.astype(np.int32))) < 20000)


@pytest.mark.parametrize("bad", [0.0, -5.0, 4000.0, 5000.0])
def test_tone_rejects_frequencies_outside_band(bad: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        tone(bad, 0.1)


def test_negative_duration_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        silence(-1.0)


def test_silence() -> None:
    x = silence(0.5)
    assert x.dtype == np.int16
    assert x.size == 4000
    assert not x.any()


def test_beep_defaults() -> None:
    x = beep()
    assert x.size == 2000
    assert peaks(x, 1)[0] == pytest.approx(1000.0, abs=4.0)
    assert peaks(beep(0.5, 440.0), 1)[0] == pytest.approx(440.0, abs=2.0)


@pytest.mark.parametrize("digit", list(DTMF_FREQS))
def test_dtmf_tone_pairs(digit: str) -> None:
    x = dtmf_tone(digit, 0.5)
    assert x.size == 4000
    row, col = DTMF_FREQS[digit]
    found = peaks(x, 2)
    assert found[0] == pytest.approx(row, abs=2.0)
    assert found[1] == pytest.approx(col, abs=2.0)


def test_dtmf_lowercase_letters_and_default_duration() -> None:
    assert np.array_equal(dtmf_tone("a"), dtmf_tone("A"))
    assert dtmf_tone("5").size == 800


@pytest.mark.parametrize("bad", ["E", "", "12", "x", " "])
def test_dtmf_rejects_non_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        dtmf_tone(bad)


def test_dtmf_digits_layout() -> None:
    x = dtmf_digits("159", tone_s=0.05, gap_s=0.04)
    assert x.size == 3 * 400 + 2 * 320
    assert not x[400:720].any()  # the first gap is silent
    assert peaks(x[720:1120], 2) == pytest.approx([770, 1336], abs=25)
    assert dtmf_digits("").size == 0


def test_busy_cadence() -> None:
    x = busy(2.0)
    assert x.size == 16000
    on, off = x[:4000], x[4000:8000]
    assert not off.any()
    assert peaks(on, 2) == pytest.approx([480, 620], abs=3)
    assert rms_db(on[RAMP:-RAMP]) == pytest.approx(
        20 * np.log10(dbm0_to_peak(-24.0) / np.sqrt(2)) + 10 * np.log10(2), abs=0.05
    )
    assert np.array_equal(x[:8000], x[8000:])


def test_ringback_cadence_truncates_to_duration() -> None:
    x = ringback(3.0)
    assert x.size == 24000
    assert np.abs(x[:16000]).max() > 0
    assert not x[16000:].any()
    assert peaks(x[:16000], 2) == pytest.approx([440, 480], abs=2)


def test_cadence_zero_period() -> None:
    assert cadence(1000.0, 0.0, 0.0, 0.1).size == 800
