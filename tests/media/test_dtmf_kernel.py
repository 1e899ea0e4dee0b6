"""The compiled DTMF kernel against the numpy reference: same keys, same state, frame by frame.

The traffic is seeded and deliberately hard: keys at and beyond every Q.24 edge (offset,
twist, level, duration, breaks), keys over noise and over each other, chirps, harmonic
stacks, late-joining, gliding and impure pairs (off nominal too) that reach the screening
and onset checks, slots analysed in changing subsets, moved and reset. `test_dtmf_detector.py`
runs each of its limit tests with both kernels too.
"""

from __future__ import annotations

import numpy as np
import pytest

from media.dsp import dtmf
from media.dsp.dtmf import KEYS, DtmfDetector
from media.tones import DTMF_FREQS, silence, tone

RATE = 8000


def key_pair(key: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One press of `key` with a random offset, twist and level around the Q.24 edges."""
    low, high = DTMF_FREQS[key]
    level = rng.uniform(-40, -3)
    twist = rng.uniform(-11, 7)
    signal = tone(low * (1 + rng.uniform(-0.04, 0.04)), seconds, level_dbm0=level)
    return signal.astype(np.int32) + tone(
        high * (1 + rng.uniform(-0.04, 0.04)), seconds, level_dbm0=level + twist
    )


def distractor(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Something that gets past the gate but is no key (or only nearly one): a chirp, a
    harmonic stack, a key's tone joined late by the other, a pair gliding through the
    tolerance, or a key with a third tone."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    kind = rng.integers(5)
    if kind == 0:
        f0, f1 = rng.uniform(600, 1700, 2)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
        return (rng.uniform(2000, 12000) * np.sin(phase)).astype(np.int32)
    if kind == 1:
        f0 = rng.uniform(300, 900)
        return sum(
            (rng.uniform(500, 5000) * np.sin(2 * np.pi * f0 * k * t)).astype(np.int32)
            for k in range(1, 4)
        )
    low, high = DTMF_FREQS[KEYS[rng.integers(16)]]
    if kind == 2:  # one tone first, the other joins for the last 40-100 %
        late = np.arange(n) >= rng.uniform(0.0, 0.6) * n
        first, second = (low, high) if rng.random() < 0.5 else (high, low)
        x = np.sin(2 * np.pi * first * t) + late * np.sin(2 * np.pi * second * t)
    elif kind == 3:  # both tones glide, from up to 5 % off to up to 5 % off
        offset = np.linspace(*rng.uniform(-0.05, 0.05, 2), n)
        x = np.sin(2 * np.pi * np.cumsum(low * (1 + offset)) / RATE)
        x += np.sin(2 * np.pi * np.cumsum(high * (1 - offset)) / RATE)
    else:  # a key (up to 2.5 % off) with a third tone 6-22 dB under it, anywhere or where a
        # voice's would be
        low, high = low * (1 + rng.uniform(-0.025, 0.025)), high * (1 + rng.uniform(-0.025, 0.025))
        third = rng.choice(
            [rng.uniform(300, 2000), abs(2 * low - high), 2 * high - low, high - low]
        )
        x = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)
        x += 10 ** (-rng.uniform(6, 22) / 20) * np.sin(2 * np.pi * third * t)
    return (rng.uniform(1000, 8000) * x).astype(np.int32)


def channel(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A channel's signal: presses, breaks, distractors and silence, over some noise."""
    parts: list[np.ndarray] = []
    n = round(seconds * RATE)
    while sum(p.size for p in parts) < n:
        choice = rng.random()
        if choice < 0.55:
            key = KEYS[rng.integers(16)]
            press = key_pair(key, rng.uniform(0.015, 0.12), rng)
            if rng.random() < 0.3:  # a break inside the press
                press = np.concatenate(
                    [press, np.zeros(rng.integers(0, 160), np.int32), key_pair(key, 0.05, rng)]
                )
            parts.append(press)
        elif choice < 0.75:
            parts.append(distractor(rng.uniform(0.02, 0.2), rng))
        else:
            parts.append(silence(rng.uniform(0.0, 0.1)).astype(np.int32))
    signal = np.concatenate(parts)[:n]
    noise = rng.normal(0, rng.choice([0.0, 30.0, 300.0]), n)
    return np.clip(signal + noise, -32768, 32767).astype(np.int16)


def assert_same_state(c: DtmfDetector, ref: DtmfDetector) -> None:
    for name in ("_cand", "_run", "_grade", "_down", "_near_age"):
        assert np.array_equal(getattr(c, name), getattr(ref, name)), name
    held = ref._down >= 0  # the miss count means something only while a key is held
    assert np.array_equal(c._miss[held], ref._miss[held])
    running = ref._run > 0  # and where a run began only while there is one
    np.testing.assert_allclose(c._theta0[running], ref._theta0[running], atol=1e-4)
    np.testing.assert_allclose(c._last, ref._last, rtol=1e-4)
    assert np.array_equal(c._floor, ref._floor)  # float32, in the same order
    assert np.array_equal(c._lagged, ref._lagged)
    recent = ref._near_age <= dtmf.NEAR_MEMORY  # the near miss's key matters while recent
    assert np.array_equal(c._near[recent], ref._near[recent])
    assert np.array_equal(c._tail_pcm, ref._tail_pcm)
    assert np.array_equal(c._tail_dft, ref._tail_dft)
    np.testing.assert_allclose(c._tail_energy, ref._tail_energy, rtol=1e-5)
    np.testing.assert_allclose(c._gap, ref._gap, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(c._ref, ref._ref, rtol=1e-3)


@pytest.fixture
def compiled() -> None:
    if dtmf._compiled is None:
        pytest.fail(f"the compiled DTMF kernel is not built ({dtmf._compiled_error}): run make")


def test_the_compiled_kernel_is_built_and_chosen_by_default(compiled: None) -> None:
    assert DtmfDetector().kernel == "c"
    assert DtmfDetector(kernel="numpy").kernel == "numpy"


def test_unknown_kernel_or_missing_build_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="kernel must be"):
        DtmfDetector(kernel="fortran")
    monkeypatch.setattr(dtmf, "_compiled", None)
    with pytest.raises(ValueError, match="not built"):
        DtmfDetector(kernel="c")
    assert DtmfDetector().kernel == "numpy"  # auto falls back


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rate,frame", [(8000, 160), (8000, 80), (8000, 240), (16000, 320)])
def test_kernels_agree_frame_by_frame(compiled: None, seed: int, rate: int, frame: int) -> None:
    rng = np.random.default_rng(seed)
    n, seconds = 24, 4.0
    pcm = np.stack([channel(seconds, rng) for _ in range(n)])
    if rate != RATE:
        pcm = np.repeat(pcm, rate // RATE, axis=1)  # coarse, but the same for both kernels
    c = DtmfDetector(4, rate=rate, frame=frame, kernel="c")
    ref = DtmfDetector(4, rate=rate, frame=frame, kernel="numpy")
    keys = 0
    for i, start in enumerate(range(0, pcm.shape[1] - frame + 1, frame)):
        block = pcm[:, start : start + frame]
        rows = None if i % 7 else np.sort(rng.permutation(n)[: rng.integers(0, n)])
        if i % 53 == 20:
            src, dst = rng.integers(n, size=2)
            c.move(src, dst), ref.move(src, dst)
        if i % 71 == 30:
            row = int(rng.integers(n))
            c.reset(row), ref.reset(row)
        got, want = c.process(block, rows), ref.process(block, rows)
        assert got == want, (i, got, want)
        keys += len(want)
    assert_same_state(c, ref)
    assert keys > 100  # the traffic really did press keys


def test_kernel_refuses_arrays_that_disagree(compiled: None) -> None:
    detector = DtmfDetector(4)
    assert detector._kernel is not None
    frames = np.zeros((2, 160), np.int16)
    dft = np.zeros((2, 4, 16), np.float32)
    state = detector._state()
    with pytest.raises(ValueError, match="disagree"):
        detector._kernel.process(frames, dft[:1], np.arange(2, dtype=np.intp), *state)
    with pytest.raises(IndexError, match="slot 9"):
        detector._kernel.process(frames, dft, np.array([0, 9], np.intp), *state)
    short_ref = state[-1][:2]
    with pytest.raises(ValueError, match="state arrays"):
        detector._kernel.process(frames, dft, np.arange(2, dtype=np.intp), *state[:-1], short_ref)
