"""Generated tones: beeps, DTMF, call-progress tones and silence (int16 mono).

Levels are in dBm0 with the G.711 µ-law convention (ITU-T G.711 §5): a sine at the
codec's full scale is +3.17 dBm0. µ-law's largest decoded magnitude is 32124 on the
16-bit scale, so a 0 dBm0 sine has a peak of 32124 · 10^(-3.17/20) ≈ 22301 and an RMS of
about 15769. Every tone starts and ends with a 5 ms raised-cosine ramp so that it does
not click (and does not splatter energy into the DTMF detector's bands).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RATE = 8000
MULAW_FULL_SCALE = 32124
FULL_SCALE_DBM0 = 3.17
RAMP_S = 0.005

# ITU-T Q.23: row (low group) and column (high group) frequencies in Hz.
DTMF_FREQS: dict[str, tuple[float, float]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip

# North American call-progress tones (ANSI T1.401): frequencies, on and off seconds.
RINGBACK = ((440.0, 480.0), 2.0, 4.0)
BUSY = ((480.0, 620.0), 0.5, 0.5)


def dbm0_to_peak(level_dbm0: float) -> float:
    """Peak amplitude (16-bit scale) of a sine at `level_dbm0`."""
    return MULAW_FULL_SCALE * 10.0 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20.0)


def _samples(duration_s: float, rate: int) -> int:
    if duration_s < 0:
        raise ValueError(f"duration must not be negative, got {duration_s}")
    return round(duration_s * rate)


def silence(duration_s: float, *, rate: int = RATE) -> np.ndarray:
    """`duration_s` seconds of digital silence."""
    return np.zeros(_samples(duration_s, rate), dtype=np.int16)


def tone(
    freqs: float | Sequence[float],
    duration_s: float,
    *,
    level_dbm0: float = -10.0,
    rate: int = RATE,
) -> np.ndarray:
    """A sum of sines, each at `level_dbm0`, with 5 ms raised-cosine ramps; saturated."""
    n = _samples(duration_s, rate)
    freq_list = [float(freqs)] if isinstance(freqs, int | float) else [float(f) for f in freqs]
    for f in freq_list:
        if not 0 < f < rate / 2:
            raise ValueError(f"tone frequency {f} Hz is outside (0, {rate / 2:g}) Hz")
    t = np.arange(n, dtype=np.float64) / rate
    wave = np.zeros(n, dtype=np.float64)
    for f in freq_list:
        wave += np.sin(2.0 * np.pi * f * t)
    wave *= dbm0_to_peak(level_dbm0) * _envelope(n, rate)
    return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)


def _envelope(n: int, rate: int) -> np.ndarray:
    # Shorter than two ramps: each ramp takes half of the tone.
    ramp = min(round(RAMP_S * rate), n // 2)
    env = np.ones(n, dtype=np.float64)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        env[:ramp] = rise
        env[n - ramp :] = rise[::-1]
    return env


def beep(
    duration_s: float = 0.25, freq: float = 1000.0, *, level_dbm0: float = -10.0
) -> np.ndarray:
    """The prompt beep (RECORD's ``play_beep``): one sine."""
    return tone(freq, duration_s, level_dbm0=level_dbm0)


def dtmf_tone(digit: str, duration_s: float = 0.1, *, level_dbm0: float = -10.0) -> np.ndarray:
    """One DTMF digit (0-9, *, #, A-D): its row and column sines, each at `level_dbm0`."""
    pair = DTMF_FREQS.get(digit.upper()) if len(digit) == 1 else None
    if pair is None:
        raise ValueError(f"not a DTMF digit: {digit!r} (accepted: 0-9, *, #, A-D)")
    return tone(pair, duration_s, level_dbm0=level_dbm0)


def dtmf_digits(
    digits: str, *, tone_s: float = 0.1, gap_s: float = 0.1, level_dbm0: float = -10.0
) -> np.ndarray:
    """A digit string as tones separated by `gap_s` of silence (none after the last)."""
    parts: list[np.ndarray] = []
    for i, digit in enumerate(digits):
        if i:
            parts.append(silence(gap_s))
        parts.append(dtmf_tone(digit, tone_s, level_dbm0=level_dbm0))
    return np.concatenate(parts) if parts else silence(0)


def cadence(
    freqs: float | Sequence[float],
    on_s: float,
    off_s: float,
    duration_s: float,
    *,
    level_dbm0: float = -16.0,
) -> np.ndarray:
    """`duration_s` of a tone switched on for `on_s` and off for `off_s`, repeating."""
    total = _samples(duration_s, RATE)
    period = np.concatenate([tone(freqs, on_s, level_dbm0=level_dbm0), silence(off_s)])
    if period.size == 0:
        return silence(duration_s)
    reps = -(-total // period.size)
    return np.tile(period, reps)[:total]


def ringback(duration_s: float = 6.0, *, level_dbm0: float = -19.0) -> np.ndarray:
    """North American ringback: 440+480 Hz, 2 s on, 4 s off."""
    freqs, on_s, off_s = RINGBACK
    return cadence(freqs, on_s, off_s, duration_s, level_dbm0=level_dbm0)


def busy(duration_s: float = 1.0, *, level_dbm0: float = -24.0) -> np.ndarray:
    """North American busy: 480+620 Hz, 0.5 s on, 0.5 s off."""
    freqs, on_s, off_s = BUSY
    return cadence(freqs, on_s, off_s, duration_s, level_dbm0=level_dbm0)
