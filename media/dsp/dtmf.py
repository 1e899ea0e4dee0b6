"""In-band DTMF detector (ITU-T Q.23 tones, Q.24 limits), batched over all channels.

Theory of operation
-------------------
Each 20 ms frame (160 samples at 8 kHz) is cut into four 5 ms *sub-blocks* of 40
samples. The detector judges a sliding 20 ms *window* of four consecutive sub-blocks,
one window per sub-block (a 5 ms hop), so a frame yields four windows per channel; the
previous frame's last three sub-blocks (their DFTs, energies and samples) are the
per-slot tail state. DFT powers are scaled so that a bin's power is the energy of a
tone that fills the window.

1. Gate, every slot and window: one batched float32 matmul per frame gives each
   sub-block's DFT at the 8 nominal frequencies (each phase-referenced to its own
   sub-block's start; a window's coherent sum turns them by their position in it). By
   Cauchy-Schwarz, 4·Σ|sub-block DFT|² bounds a tone's window power at *any* frequency
   within tolerance, so a window goes on only if the best low plus best high bound
   reaches `ENERGY_RATIO` of the window energy (the 5 ms droop allowed for) and the
   energy is above the level floor. Silence and ~99 % of speech windows stop here.
2. Screen, per gated window (vectorised over them, from the same sub-block DFTs). For
   the strongest nominal bin of each group, its sub-block DFTs cleared of the other
   tone's leak (a 5 ms sub-block lets a tone 268-936 Hz away through at -14 to -25 dB,
   which would turn a weaker tone's phase by degrees; with it taken out a tone within
   1.5 % and 8 dB of twist is measured to ~0.3 %):
   - frequency: the phase step between consecutive sub-blocks gives the offset from
     nominal (±100 Hz unambiguous); accepted within ±`FREQ_TOL` (2.5 %, between Q.24's
     must-accept 1.5 % and must-reject 3.5 %);
   - power: the window DFT re-evaluated at the measured frequency (the 5 ms sub-block's
     droop corrected), so an off-nominal tone is not under-read;
   - level: each tone ≥ `MIN_LEVEL_DBM0`;
   - twist: high group at most `NORMAL_TWIST_DB` weaker and `REVERSE_TWIST_DB` stronger
     than the low group (limits 8 and 4 dB, 1 dB of margin each way);
   - purity: each peak ≥ `PEAK_DB` above the other bins of its group, and the two tones
     ≥ `ENERGY_RATIO` of the window's energy. This also measures *duration*: a window
     that a tone covers only partly (rest silent) has a ratio of about the covered
     fraction, so a valid window needs ~17 ms of tone.
   A window that passes all but the frequency check, within ±`NEAR_TOL` (5 %), is a
   *near miss* of its key: a real key is measured well inside 2.5 %, so a near miss is
   a sound whose tones are drifting (a voice's harmonics gliding with its pitch).
   Where a new key could start (windows of the key a slot already holds skip them), the
   onset checks follow: second harmonics ≤ `HARMONIC_DB`, from the raw samples; and,
   unless a key is held (a key change keeps the level up), each tone ≥ `RISE_DB` over
   its bin's *floor* from before the key: a leaky minimum of the bin's sub-block power
   that climbs `FLOOR_GROWTH_DB` per sub-block and lags the window by 7 sub-blocks. A
   key's tones start together from whatever was there; in music one note of the pair
   has usually sounded for a while before the other joins it.
3. Debounce, per slot: a state machine stepped once per window, vectorised over the slots
   with anything going on. A key is *accepted* and reported once a run of valid windows
   of it is `MIN_RUN` long (onset report: 40 ms tones always are, 23 ms ones never), its
   tones have stayed within `DRIFT` (0.8 %) of where the run began (else the run starts
   again), two windows in a row of it held `PURE_RATIO` of their energy in the two tones
   (speech's other harmonics keep a vowel near 0.9; a key at 15 dB SNR is at 0.97), and
   the key's presence did not begin within `NEAR_MEMORY` windows of a near miss of it
   (a run that starts again because its tones drifted keeps that taint); and the window
   that makes the onset has nothing at 2·low - high and 2·high - low, where two
   harmonics of one voice have their neighbours (`INTERMOD_DB`, Hann-tapered DFTs at
   the measured frequencies; the kernel works them out only for that window), and if
   either tone is over `STRICT_TOL` (1 %) off nominal, those two and high - low (also
   a harmonic of the voice) hold Q.23's -20 dB for unwanted components in all
   (`SERIES_DB`): two neighbouring harmonics of a high voice (f0 over ~150 Hz, where a
   formant can put most of a vowel's energy on just two) fit a key's pair only pulled
   1.37 % off or more (4:5 of 238 Hz on "*"; 3:4 and 2:3 need 1.85 and 2.2 %), and
   harmonics further apart have others between them that `PURE_RATIO` sees. It is
   then held until `GAP_SUBS` sub-blocks' worth of its tones' amplitude has gone missing
   in one dip, measured on the 5 ms sub-blocks against the tones' level while held
   (so the break's length is measured to ~1 ms, not to a 5 ms hop): breaks up to 12 ms
   are ridden over, gaps from 18 ms on make a new press (with `media.tones`' 5 ms
   ramps). `MAX_MISS` windows without the key also release it.

Steps 1-3 after the matmul run in one of two implementations with the same state and
results: the compiled kernel `media.dsp._dtmf_kernel` (Cython, slot by slot; a frame of
1000 channels costs a few hundred µs) and the numpy reference below (vectorised over the
slots, for machines without a C compiler, and the kernel's yardstick in the tests).

Levels use the G.711 µ-law convention of `media.tones`: a 0 dBm0 sine has a peak of
about 22300 on the int16 scale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from media.tones import dbm0_to_peak

try:
    import media.dsp._dtmf_kernel as _compiled

    _compiled_error = ""
except ImportError as exc:  # not built (no C compiler at install): the numpy reference runs
    _compiled = None  # type: ignore[assignment]
    _compiled_error = str(exc)

LOW_HZ = (697.0, 770.0, 852.0, 941.0)
HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = "123A456B789C*0#D"  # KEYS[4 * row + column]

SUB_S = 0.005  # sub-block and hop
WINDOW_SUBS = 4  # 20 ms analysis window

FREQ_TOL = 0.025
MIN_LEVEL_DBM0 = -36.0
NORMAL_TWIST_DB = 9.0
REVERSE_TWIST_DB = 5.0
PEAK_DB = 8.0
HARMONIC_DB = -10.0
INTERMOD_DB = -12.0
"""At most this (dB, against the weaker tone) at 2·low - high and 2·high - low, where two
harmonics of one voice have their neighbours in the series."""
STRICT_TOL = 0.01
"""A key measured further off nominal than this (either tone) must meet `SERIES_DB` as well:
twice the spread of a nominal key's measured offset under speech, music or 15 dB of noise
(≤ 0.5 %), and below the 1.37 % that the closest fit of two neighbouring harmonics of a
voice over 150 Hz (4:5 of 238 Hz on "*") needs on both tones."""
SERIES_DB = -20.0
"""At most this (dB, against the weaker tone) in all at 2·low - high, 2·high - low and
high - low, for a key off by more than `STRICT_TOL`: Q.23's unwanted components are 20 dB
down."""
DIFF_CLEAR_HZ = 150.0
"""high - low is left out of the `SERIES_DB` sum where it lies this close to the low tone
(keys 2, 3, 6, B and C), inside the 20 ms window's leakage of that tone."""
ENERGY_RATIO = 0.85
MIN_RUN = 3
"""Valid windows in a row to accept a key."""
GAP_SUBS = 3.8
"""Sub-blocks' worth of missing tone (5 ms each) that releases a held key."""
DIP_ENTER, DIP_LEAVE = 0.5, 0.9
"""A dip starts below this fraction of the held tones' power, and ends above that one."""
MAX_MISS = 12
"""Windows in a row without the held key that release it even without a dip (60 ms)."""
DRIFT = 0.008
"""How far (fraction of nominal) a tone may wander from where its run of windows began."""
NEAR_TOL = 0.05
"""A window that passes every check but the frequency one, within this, is a *near* miss."""
NEAR_MEMORY = 8
"""Windows after a near miss of a key in which a run of that key may not make an onset."""
PURE_RATIO = 0.93
"""A new key's run needs two windows in a row whose two tones carry this share of their
energy."""
RISE_DB = 6.0
"""A new key's tones must each stand this far above their bin's floor from before it."""
FLOOR_GROWTH_DB = 1.5
"""How fast (dB per 5 ms sub-block) a bin's floor climbs back to a steady level."""
FLOOR_LAG = 4
"""Sub-blocks (besides the tail's) by which the floor lags the newest sub-block."""

Pcm = npt.NDArray[np.int16]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]

_FREQS = np.array(LOW_HZ + HIGH_HZ)
_SUB_FRACTION = 1.0 / WINDOW_SUBS**2  # a sub-block's share of a window's tone power


def _basis(freqs: npt.NDArray[np.float64], t: npt.NDArray[np.float64], scale: float) -> F32:
    """(len(t), 2·len(freqs)) columns [cos | −sin], i.e. the real and imaginary DFT parts."""
    arg = 2.0 * np.pi * np.outer(t, freqs)
    return (np.concatenate([np.cos(arg), -np.sin(arg)], axis=1) * scale).astype(np.float32)


def _grown(a: np.ndarray, n: int, fill: int) -> np.ndarray:
    """`a` with its slot axis (the first) grown to `n`, new slots set to `fill`."""
    b = np.full((n, *a.shape[1:]), fill, dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


class DtmfDetector:
    """DTMF detector for channel slots 0..capacity-1 (grown on demand), one frame per call.

    `kernel` picks the implementation of everything after the DFT matmul: ``"c"`` the
    compiled kernel (`media.dsp._dtmf_kernel`), ``"numpy"`` the vectorised reference, and
    ``"auto"`` the compiled one when it was built. Both give the same keys (a test holds
    them to it) and keep the same per-slot state.
    """

    def __init__(
        self, capacity: int = 64, *, rate: int = 8000, frame: int = 160, kernel: str = "auto"
    ) -> None:
        sub = round(rate * SUB_S)
        if rate < 8000 or sub != rate * SUB_S or frame <= 0 or frame % sub:
            raise ValueError(
                f"need a rate ≥ 8000 Hz that is a multiple of {round(1 / SUB_S)} and a frame "
                f"that is a multiple of {sub} samples; got rate={rate}, frame={frame}"
            )
        if kernel not in ("auto", "c", "numpy"):
            raise ValueError(f"kernel must be 'auto', 'c' or 'numpy', got {kernel!r}")
        if kernel == "c" and _compiled is None:
            raise ValueError(f"the compiled DTMF kernel is not built: {_compiled_error}")
        self.rate, self.frame, self.sub = rate, frame, sub
        self.hops, self.tail = frame // sub, WINDOW_SUBS - 1
        length = WINDOW_SUBS * sub
        scale = float(np.sqrt(2.0 / length))  # then |X|² = energy of a window-filling tone
        self._basis = _basis(_FREQS, np.arange(sub) / rate, scale)  # phase 0 at sub-block start
        # A window's coherent sum turns sub-block i (local phase) by e^{-j2πf·i·sub/rate}.
        self._win_rot = np.exp(
            -2j * np.pi * np.outer(np.arange(WINDOW_SUBS) * sub / rate, _FREQS)
        ).astype(np.complex64)
        self._sub_index = np.arange(WINDOW_SUBS)
        self._harm_sel, self._harm_cols = np.array([1, 0, 1] * 2), np.array([0, 8, 8, 16, 24, 24])
        both = np.concatenate([_FREQS, 2.0 * _FREQS])
        t_win = np.arange(length).reshape(WINDOW_SUBS, sub) / rate  # phase 0 at window start
        self._check_basis = np.stack([_basis(both, t, scale) for t in t_win])
        self._level = dbm0_to_peak(MIN_LEVEL_DBM0) ** 2 * length / 2.0
        self._growth = np.float32(_db(FLOOR_GROWTH_DB))
        # The floor climbs from no lower than 40 dB under the weakest tone's sub-block power.
        self._floor_min = np.float32(self._level * _SUB_FRACTION * _db(-40.0))
        self._ones = np.ones(sub, np.float32)
        self._hann = np.hanning(length)
        self._t_win = np.arange(length) / rate
        # Per key and sub-block: the share of its high tone's DFT that leaks into the bin of
        # its low tone's second harmonic (for the harmonic check).
        pairs = np.array([(i // 4, 4 + i % 4) for i in range(16)])
        step = _FREQS[pairs[:, 1]] - 2.0 * _FREQS[pairs[:, 0]]
        leak = np.exp(2j * np.pi * np.outer(step, np.arange(sub)) / rate).sum(axis=1) / sub
        turn = np.exp(2j * np.pi * np.outer(np.arange(WINDOW_SUBS) * sub / rate, step))
        self._leak = turn * leak
        # Per sub-block and key: the share of each tone's DFT (at its nominal frequency) that
        # leaks into the other tone's bin, [..., 0] the high one's into the low bin.
        delta = np.stack([_FREQS[pairs[:, 1]] - _FREQS[pairs[:, 0]]] * 2, axis=1) * [1, -1]
        inner = np.exp(2j * np.pi * delta[..., None] * np.arange(sub) / rate).mean(axis=-1)
        at = (np.arange(WINDOW_SUBS) * sub / rate)[:, None, None]
        self._cross = (np.exp(2j * np.pi * delta[None] * at) * inner).astype(np.complex64)
        self._max_drift = (2 * np.pi * DRIFT * sub / rate * _FREQS).astype(np.float32)
        self._near_step = (2 * np.pi * NEAR_TOL * sub / rate * _FREQS).astype(np.float32)
        self._max_step = (2 * np.pi * FREQ_TOL * sub / rate * _FREQS).astype(np.float32)
        self._strict_step = (2 * np.pi * STRICT_TOL * sub / rate * _FREQS).astype(np.float32)
        low_hz, high_hz = _FREQS[pairs[:, 0]], _FREQS[pairs[:, 1]]
        self._use_diff = np.abs(high_hz - 2 * low_hz) >= DIFF_CLEAR_HZ  # per key
        # Gate: |Σ u_k e^{-jθk}|² ≤ subs·Σ|u_k|² bounds a tone's power at any frequency
        # (Cauchy-Schwarz); the 5 ms droop within FREQ_TOL is at most sinc² of max_step.
        droop = float(np.sinc(self._max_step.max() / (2 * np.pi)) ** 2)
        self._gate = ENERGY_RATIO * droop / WINDOW_SUBS
        self._kernel = None
        if kernel != "numpy" and _compiled is not None:
            self._kernel = _compiled.Kernel(
                hops=self.hops,
                sub=sub,
                gate=self._gate,
                level=self._level,
                max_step=self._max_step.astype(np.float64),
                win_rot=self._win_rot.astype(np.complex128),
                check_basis=self._check_basis,
                leak=self._leak.astype(np.complex128),
                cross=self._cross.astype(np.complex128),
                max_drift=self._max_drift.astype(np.float64),
                near_step=self._near_step.astype(np.float64),
                near_memory=NEAR_MEMORY,
                hann=self._hann,
                freqs=_FREQS.astype(np.float64),
                rate=float(rate),
                normal_twist=_db(-NORMAL_TWIST_DB),
                reverse_twist=_db(REVERSE_TWIST_DB),
                peak=_db(PEAK_DB),
                harmonic=_db(HARMONIC_DB),
                intermod=_db(INTERMOD_DB),
                strict_step=self._strict_step.astype(np.float64),
                series=_db(SERIES_DB),
                use_diff=self._use_diff.astype(np.uint8),
                energy_ratio=ENERGY_RATIO,
                pure_ratio=PURE_RATIO,
                rise=_db(RISE_DB),
                growth=float(self._growth),
                floor_min=float(self._floor_min),
                lag=FLOOR_LAG,
                min_run=MIN_RUN,
                gap_subs=GAP_SUBS,
                dip_enter=DIP_ENTER,
                dip_leave=DIP_LEAVE,
                max_miss=MAX_MISS,
                sub_fraction=_SUB_FRACTION,
            )
        self._cap = 0
        # Per-slot state, slot-major (a slot's state is contiguous for the compiled kernel).
        self._tail_dft = np.zeros((0, self.tail, 16), np.float32)  # last sub-blocks' DFTs
        self._tail_energy = np.zeros((0, self.tail), np.float32)  # and their energies
        self._tail_pcm = np.zeros((0, self.tail * sub), np.int16)  # and their samples
        self._cand = np.zeros(0, np.int8)  # key of the current run of valid windows, or -1
        self._run = np.zeros(0, np.int32)  # its length
        self._grade = np.zeros(0, np.int8)  # 1 once it was pure, -1 if it never may be
        self._last = np.zeros((0, 2), np.float32)  # its last window's tone and total energy
        self._theta0 = np.zeros((0, 2), np.float32)  # its tones' phase steps where it began
        self._near = np.zeros(0, np.int8)  # the key of the last near miss, or -1
        self._near_age = np.zeros(0, np.int32)  # windows since (NEAR_MEMORY + 1 = long ago)
        self._down = np.zeros(0, np.int8)  # the accepted key still held down, or -1
        self._miss = np.zeros(0, np.int32)  # windows in a row without the held key
        self._gap = np.zeros(0, np.float32)  # missing tone in the current dip, in sub-blocks
        self._ref = np.zeros((0, 2), np.float32)  # held key's tone powers per sub-block
        self._floor = np.zeros((0, 8), np.float32)  # each bin's leaky minimum sub-block power
        self._lagged = np.zeros((0, FLOOR_LAG, 8), np.float32)  # powers it has yet to take in
        self._all = np.zeros(0, np.intp)  # 0..capacity-1, the slots when `rows` is None
        self.ensure_capacity(capacity)

    @property
    def kernel(self) -> str:
        """The implementation in use: ``"c"`` or ``"numpy"``."""
        return "numpy" if self._kernel is None else "c"

    def ensure_capacity(self, n: int) -> None:
        """Make room for slots 0..n-1; state arrays grow geometrically."""
        if n <= self._cap:
            return
        new = max(n, 2 * self._cap)
        self._tail_dft = _grown(self._tail_dft, new, 0)
        self._tail_energy = _grown(self._tail_energy, new, 0)
        self._tail_pcm = _grown(self._tail_pcm, new, 0)
        self._cand = _grown(self._cand, new, -1)
        self._run = _grown(self._run, new, 0)
        self._grade = _grown(self._grade, new, 0)
        self._last = _grown(self._last, new, 0)
        self._near = _grown(self._near, new, -1)
        self._near_age = _grown(self._near_age, new, NEAR_MEMORY + 1)
        self._theta0 = _grown(self._theta0, new, 0)
        self._down = _grown(self._down, new, -1)
        self._miss = _grown(self._miss, new, 0)
        self._gap = _grown(self._gap, new, 0)
        self._ref = _grown(self._ref, new, 0)
        self._floor = _grown(self._floor, new, 0)
        self._lagged = _grown(self._lagged, new, 0)
        self._all = np.arange(new, dtype=np.intp)
        self._cap = new

    def reset(self, row: int) -> None:
        """Forget slot `row`'s history: it now carries a new channel."""
        self.ensure_capacity(row + 1)
        self._tail_dft[row], self._tail_energy[row], self._tail_pcm[row] = 0, 0, 0
        self._cand[row], self._run[row], self._down[row], self._miss[row] = -1, 0, -1, 0
        self._grade[row], self._theta0[row], self._last[row] = 0, 0, 0
        self._near[row], self._near_age[row] = -1, NEAR_MEMORY + 1
        self._gap[row], self._ref[row], self._floor[row], self._lagged[row] = 0, 0, 0, 0

    def move(self, src: int, dst: int) -> None:
        """Slot `src`'s channel now lives in slot `dst`: carry its state over."""
        self.ensure_capacity(max(src, dst) + 1)
        for a in self._state():
            a[dst] = a[src]

    def _state(self) -> tuple[np.ndarray, ...]:
        return (
            self._tail_dft,
            self._tail_energy,
            self._tail_pcm,
            self._cand,
            self._run,
            self._grade,
            self._theta0,
            self._last,
            self._down,
            self._miss,
            self._gap,
            self._ref,
            self._floor,
            self._lagged,
            self._near,
            self._near_age,
        )

    def process(self, pcm: np.ndarray, rows: np.ndarray | None = None) -> list[tuple[int, str]]:
        """Analyse one (N, frame) int16 frame per slot; return (slot, key) for each key accepted.

        `rows` selects the slots to analyse (the others keep their state); None means all N.
        A key is reported once per press, as soon as it has lasted long enough.
        """
        pcm = np.asarray(pcm)
        if pcm.ndim != 2 or pcm.shape[1] != self.frame or pcm.dtype != np.int16:
            raise ValueError(f"pcm must be (N, {self.frame}) int16, got {pcm.shape} {pcm.dtype}")
        self.ensure_capacity(pcm.shape[0])
        if rows is None:
            slots, frames = self._all[: pcm.shape[0]], pcm
        else:
            slots = np.asarray(rows, dtype=np.intp).reshape(-1)
            frames = pcm[slots]
        m = frames.shape[0]
        if m == 0:
            return []
        frames = np.ascontiguousarray(frames)
        dft = (frames.astype(np.float32).reshape(-1, self.sub) @ self._basis).reshape(
            m, self.hops, 16
        )
        if self._kernel is not None:
            found = self._kernel.process(frames, dft, slots, *self._state())
            return [(slot, KEYS[key]) for _, _, slot, key in sorted(found)]
        return self._debounce(*self._analyse(frames, dft, slots), slots)

    # The numpy reference: the same analysis, vectorised over the slots.

    def _analyse(
        self, frames: Pcm, dft: F32, slots: Idx
    ) -> tuple[
        npt.NDArray[np.int8], npt.NDArray[np.int8], npt.NDArray[np.bool_], F32, F32, F32, F32
    ]:
        """Per window (hops, m): the key that passes every check or -1, the key it nearly
        passed as (`NEAR_TOL`) or -1, whether it may make an onset as far as
        `_intermods_ok` goes; its two tones' energy and its whole energy, its two tones'
        powers and their phase steps (hops, m, 2); and the power of the frame's sub-blocks
        (hops, 8, m)."""
        m, hops, tail = frames.shape[0], self.hops, self.tail
        seq = np.concatenate([self._tail_dft[slots], dft], axis=1)  # (m, subs, 16), oldest first
        energy = np.empty((m, tail + hops), np.float32)
        energy[:, :tail] = self._tail_energy[slots]
        x = frames.astype(np.float32).reshape(-1, self.sub)
        energy[:, tail:] = (np.square(x) @ self._ones).reshape(m, hops)
        sub_power = seq[..., :8] * seq[..., :8]
        sub_power += seq[..., 8:] * seq[..., 8:]  # (m, subs, 8)
        bound, win_energy = sub_power[:, :hops].copy(), energy[:, :hops].copy()
        for k in range(1, WINDOW_SUBS):
            bound += sub_power[:, k : k + hops]
            win_energy += energy[:, k : k + hops]
        low = bound[..., :4].max(axis=2)
        low += bound[..., 4:].max(axis=2)
        gate = (low >= self._gate * win_energy) & (win_energy >= self._level)  # (m, hops)
        hits = np.full((hops, m), -1, np.int8)
        share = np.zeros((hops, m, 2), np.float32)
        tones = np.zeros((hops, m, 2), np.float32)
        steps = np.zeros((hops, m, 2), np.float32)
        nears = np.full((hops, m), -1, np.int8)
        lone = np.ones((hops, m), np.bool_)
        floors = self._floors(sub_power, slots)
        row, hop = np.nonzero(gate)
        if hop.size:
            key, tone, theta, sel, passed, near = self._screen(seq, win_energy, hop, row)
            nears[hop[near], row[near]] = key[near]
            ok = np.flatnonzero(passed)
            # The onset checks guard a new key: windows of a key already held skip them.
            down = self._down[slots[row[ok]]]
            need = down != key[ok]
            if need.any():
                new = ok[need]
                win = self._windows(frames, slots, hop[new], row[new])
                good = self._harmonics_ok(win, key[new], sel[new], tone[new])
                lone[hop[new], row[new]] = self._intermods_ok(win, sel[new], theta[new])
                # ...and a key change without a gap keeps the level up: no rise then.
                rise = _risen(floors[row[new], hop[new]], sel[new], tone[new])
                good &= rise | (down[need] >= 0)
                need[need] = ~good
                ok = ok[~need]
            hits[hop[ok], row[ok]], tones[hop[ok], row[ok]] = key[ok], tone[ok]
            steps[hop[ok], row[ok]] = theta[ok]
            share[hop[ok], row[ok], 0] = tone[ok].sum(axis=1)
            share[hop[ok], row[ok], 1] = win_energy[row[ok], hop[ok]]
        self._keep_tail(frames, slots, seq[:, hops:], energy[:, hops:])
        return hits, nears, lone, share, tones, steps, sub_power[:, tail:].transpose(1, 2, 0)

    def _floors(self, power: F32, slots: Idx) -> F32:
        """Each bin's floor for each of the frame's windows (m, hops, 8), from the powers of
        the slot's sub-blocks (m, tail + hops, 8).

        The floor follows a bin's power down at once and climbs back at `FLOOR_GROWTH_DB`
        per sub-block, and it takes each sub-block in `FLOOR_LAG` + tail sub-blocks late:
        a window's floor ends 2 sub-blocks before the run of windows that a key starting
        from its floor makes (that run's first window is ≥ 85 % tone), so it is the level
        from before the key."""
        floor = self._floor[slots]
        late = np.concatenate([self._lagged[slots], power], axis=1)
        floors = np.empty((power.shape[0], self.hops, 8), np.float32)
        for h in range(self.hops):
            floor = np.minimum(late[:, h], np.maximum(floor, self._floor_min) * self._growth)
            floors[:, h] = floor
        self._floor[slots] = floor
        self._lagged[slots] = late[:, self.hops : self.hops + FLOOR_LAG]
        return floors

    def _windows(self, frames: Pcm, slots: Idx, hop: Idx, row: Idx) -> F32:
        """The raw samples of the given (hop, row) windows, as (K, subs, sub) float32."""
        span = np.concatenate([self._tail_pcm[slots[row]], frames[row]], axis=1)
        blocks = span.reshape(row.size, -1, self.sub)
        return blocks[np.arange(row.size)[:, None], hop[:, None] + self._sub_index].astype(
            np.float32
        )

    def _keep_tail(self, frames: Pcm, slots: Idx, dft: F32, energy: F32) -> None:
        """Store the last sub-blocks: their DFTs (in their own phase), energies and samples."""
        self._tail_dft[slots] = dft
        self._tail_energy[slots] = energy
        keep = self.tail * self.sub
        if self.frame >= keep:
            self._tail_pcm[slots] = frames[:, -keep:]
        else:
            old_pcm = self._tail_pcm[slots][:, self.frame :]
            self._tail_pcm[slots] = np.concatenate([old_pcm, frames], axis=1)

    def _screen(
        self, seq: F32, win_energy: F32, hop: Idx, row: Idx
    ) -> tuple[Idx, F32, F32, Idx, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """For the K gated windows: the candidate key, the (K, 2) powers of its two tones
        at their measured frequencies and their (K, 2) phase steps, their (K, 2) bins,
        every check but the onset ones, and whether the window is a near miss."""
        subs = seq[row[:, None], hop[:, None] + self._sub_index]  # (K, subs, 16)
        z = subs[..., :8] + 1j * subs[..., 8:]
        z *= self._win_rot  # each sub-block's phase, relative to the window's start
        s = z.sum(axis=1)
        p = s.real * s.real
        p += s.imag * s.imag  # (K, 8) window power at nominal frequencies
        groups = p.reshape(-1, 2, 4)
        sel = groups.argmax(axis=2)
        sel[:, 1] += 4
        top = groups.max(axis=2)
        k = np.arange(hop.size)
        key = 4 * sel[:, 0] + sel[:, 1] - 4
        u = z[k[:, None, None], self._sub_index[:, None], sel[:, None]]
        theta, tone = self._measure(_unmixed(u, self._cross[:, key].swapaxes(0, 1)))
        lo, hi = tone[:, 0], tone[:, 1]
        ok = (tone >= self._level).all(axis=1)  # level
        ok &= hi >= lo * _db(-NORMAL_TWIST_DB)  # twist
        ok &= hi <= lo * _db(REVERSE_TWIST_DB)
        ok &= ((groups * _db(PEAK_DB) > top[..., None]).sum(axis=2) <= 1).all(axis=1)  # peak
        ok &= lo + hi >= ENERGY_RATIO * win_energy[row, hop]  # energy
        off = np.abs(theta)
        near = ok & (off <= self._near_step[sel]).all(axis=1)
        ok &= (off <= self._max_step[sel]).all(axis=1)  # frequency
        return key, tone, theta, sel, ok, near & ~ok

    def _measure(self, u: npt.NDArray[np.complex64]) -> tuple[F32, F32]:
        """From (K, subs, 2) sub-block DFTs: the phase step θ per sub-block (the offset from
        nominal is θ·rate/(2π·sub) Hz), and the window's power at the measured frequency."""
        d = np.einsum("kij,kij->kj", u[:, 1:], u[:, :-1].conj())
        theta = np.angle(d)
        step = d.conj() / np.maximum(np.abs(d), 1e-30)  # e^{-jθ}
        acc = u[:, -1]
        for i in range(WINDOW_SUBS - 2, -1, -1):  # Σ u_i e^{-jθi}, Horner's way
            acc = acc * step + u[:, i]
        t2 = theta * theta  # the 5 ms sub-block's own droop, sinc(θ/2π), to 4th order
        droop = 1.0 - t2 / 24.0 + t2 * t2 / 1920.0
        return theta, (acc.real**2 + acc.imag**2) / (droop * droop)

    def _harmonics_ok(self, win: F32, key: Idx, sel: Idx, tone: F32) -> npt.NDArray[np.bool_]:
        """Both tones' second harmonics ≤ `HARMONIC_DB`, for (K, window) raw windows.

        The low group's harmonics (1394-1882 Hz) lie 58-93 Hz from high-group tones, well
        inside a 20 ms window's leakage, so the high tone's share of each sub-block's
        harmonic bin is predicted from its own bin (at its nominal frequency) and
        subtracted: what remains of a clean key with ±1.5 % offsets and 4 dB of twist is
        below -14 dB.
        """
        k = win.shape[0]
        parts = np.matmul(win.swapaxes(0, 1), self._check_basis)  # (subs, K, 32)
        cols = sel[:, self._harm_sel] + self._harm_cols  # tone, both harmonics: cos | sin
        v = parts[:, np.arange(k)[:, None], cols]  # (subs, K, 6)
        u = v[..., :3] + 1j * v[..., 3:]
        low = np.abs((u[..., 1] - u[..., 0] * self._leak[:, key]).sum(axis=0)) ** 2
        high = np.abs(u[..., 2].sum(axis=0)) ** 2
        return (low <= tone[:, 0] * _db(HARMONIC_DB)) & (high <= tone[:, 1] * _db(HARMONIC_DB))

    def _intermods_ok(self, win: F32, sel: Idx, theta: F32) -> npt.NDArray[np.bool_]:
        """Neither 2·low - high nor 2·high - low within `INTERMOD_DB` of the weaker tone, for
        (K, window) raw windows, the tones' (K, 2) bins and phase steps; and for a key off
        by more than `STRICT_TOL`, those two and high - low `SERIES_DB` down in all.

        Two harmonics of a voice (its pitch f0 = their spacing over a whole number) have
        more of its harmonics there: high - low is a whole number of f0 too. A key has
        nothing there but a trace of distortion (Q.23 keeps unwanted components 20 dB
        down). Two neighbouring harmonics of a high voice (f0 over ~150 Hz) land on a key's
        pair only pulled more than `STRICT_TOL` off nominal, so there Q.23's limit holds
        at all three.
        Each is a Hann-tapered DFT of the window at the frequency the tones are measured
        at, so the tones 268-936 Hz away leak into it at under -45 dB (high - low only
        where it is `DIFF_CLEAR_HZ` from the low tone)."""
        k = win.shape[0]
        x = win.reshape(k, -1).astype(np.float64) * self._hann
        freq = _FREQS[sel] + theta * (self.rate / (2 * np.pi * self.sub))
        low, high = freq[:, 0], freq[:, 1]
        at = np.stack([low, high, np.abs(2 * low - high), 2 * high - low, high - low], axis=1)
        dft = np.einsum("kn,kfn->kf", x, np.exp(-2j * np.pi * at[..., None] * self._t_win))
        p = dft.real**2 + dft.imag**2
        weaker = np.minimum(p[:, 0], p[:, 1])
        ok = np.maximum(p[:, 2], p[:, 3]) <= _db(INTERMOD_DB) * weaker
        strict = (np.abs(theta) > self._strict_step[sel]).any(axis=1)
        series = p[:, 2] + p[:, 3] + p[:, 4] * self._use_diff[4 * sel[:, 0] + sel[:, 1] - 4]
        return ok & (~strict | (series <= _db(SERIES_DB) * weaker))

    def _debounce(
        self,
        hits: npt.NDArray[np.int8],
        nears: npt.NDArray[np.int8],
        lone: npt.NDArray[np.bool_],
        share: F32,
        tones: F32,
        steps: F32,
        subs: F32,
        slots: Idx,
    ) -> list[tuple[int, str]]:
        """Step each busy slot's state machine once per window; return the accepted keys."""
        busy = (hits >= 0).any(axis=0)
        busy |= (nears >= 0).any(axis=0)
        busy |= self._run[slots] > 0
        busy |= self._down[slots] >= 0
        busy |= self._near_age[slots] <= NEAR_MEMORY
        local = np.flatnonzero(busy)
        if local.size == 0:
            return []
        g, hits = slots[local], hits[:, local]
        ready = self._runs(g, hits, nears[:, local], share[:, local], steps[:, local])
        ready &= lone[:, local]  # checked where the onset would be (the kernel does only there)
        return self._step(g, hits, ready, tones[:, local], subs, local)

    def _runs(
        self,
        g: Idx,
        hits: npt.NDArray[np.int8],
        nears: npt.NDArray[np.int8],
        share: F32,
        steps: F32,
    ) -> npt.NDArray[np.bool_]:
        """Slots `g`'s runs of valid windows through the frame: (hops, K) where a run could
        make an onset. It is `MIN_RUN` windows of one key long, both tones within `DRIFT`
        of where the run began (`steps`, their phase steps, (hops, K, 2)); two windows in
        a row of it are pure (`share`, each window's tone and total energy, (hops, K, 2));
        and the key's presence did not begin within `NEAR_MEMORY` windows of a near miss
        of it (a run that restarts because its tones drifted keeps that taint)."""
        run, grade, start, last = self._run[g], self._grade[g], self._theta0[g], self._last[g]
        prev, near, age = self._cand[g], self._near[g], self._near_age[g]
        ready = np.empty(hits.shape, np.bool_)
        for h in range(hits.shape[0]):  # run = (run + 1 if the same key else 1), 0 without one
            key, valid = hits[h], hits[h] >= 0
            missed = nears[h] >= 0
            near = np.where(missed, nears[h], near)
            age = np.where(missed, 0, np.minimum(age + 1, NEAR_MEMORY + 1))
            along = (key == prev) & valid
            both = share[h] + last
            pure = along & (both[:, 0] >= PURE_RATIO * both[:, 1])
            last = share[h]
            bins = np.stack([key // 4, 4 + key % 4], axis=1) * valid[:, None]
            same = along & (np.abs(steps[h] - start) <= self._max_drift[bins]).all(axis=1)
            run = (run * same + 1) * valid
            kept = np.where(grade < 0, -1, grade | pure)
            fresh = np.where(along & (grade < 0), -1, pure)  # drifted: the taint stays
            fresh = np.where((near == key) & (age <= NEAR_MEMORY), -1, fresh)
            grade = (np.where(same, kept, fresh) * valid).astype(np.int8)
            start = np.where((same | ~valid)[:, None], start, steps[h])
            ready[h] = (run >= MIN_RUN) & (grade > 0)
            prev = key
        self._run[g], self._grade[g], self._theta0[g], self._cand[g] = run, grade, start, prev
        self._near[g], self._near_age[g], self._last[g] = near, age, last
        return ready

    def _step(
        self,
        g: Idx,
        hits: npt.NDArray[np.int8],
        ready: npt.NDArray[np.bool_],
        tones: F32,
        subs: F32,
        local: Idx,
    ) -> list[tuple[int, str]]:
        """Run slots `g` through the frame's windows; return the accepted keys.

        Equivalent to stepping each slot window by window: a slot that holds no key can
        only take one (an onset) where its run is `ready`; a held key is let go when
        its dip's missing tone exceeds `GAP_SUBS` (`subs`, the (hops, 8, ·) sub-block
        powers, against the tones' level while held), and after an onset the new key is
        taken as present for the rest of the frame, so there is at most one onset per slot
        and frame. So the dips and the onsets are found a stage at a time."""
        hops = hits.shape[0]
        down = self._down[g]
        miss, gap, ref = self._miss[g], self._gap[g], self._ref[g].T
        valid = hits >= 0
        free = np.empty_like(valid)
        free[:] = down < 0
        held = np.flatnonzero(~free[0])
        if held.size:
            present = _presence(subs[:, :, local[held]], down[held], ref[:, held])
            enter = present < DIP_ENTER
            hgap = gap[held]
            if enter.any() or hgap.any():
                lost, stay = 1.0 - present, present < DIP_LEAVE
                gone = np.zeros(held.size, np.bool_)
                for h in range(hops):
                    hgap = np.where(enter[h] | (hgap > 0) & stay[h], hgap + lost[h], 0)
                    gone |= hgap > GAP_SUBS
                    free[h, held] = gone
                gap[held] = hgap
        onset = free & ready
        events: list[tuple[int, str]] = []
        if onset.any():
            new = onset.any(axis=0)
            k = np.flatnonzero(new)
            first = onset[:, k].argmax(axis=0)
            for i in np.lexsort((k, first)):
                events.append((int(g[k[i]]), KEYS[hits[first[i], k[i]]]))
            down[k] = hits[first, k]
        down[free[-1] & ~onset.any(axis=0)] = -1  # released by a dip, no onset since
        gap *= ~free[-1]
        # Backstop, per frame: windows in a row (to the frame's end) without the held key.
        match = hits == down
        trailing = match[::-1].argmax(axis=0)
        miss = np.where(match.any(axis=0), trailing, miss + hops) * (down >= 0)
        down = np.where(miss > MAX_MISS, -1, down)
        gap *= down >= 0
        ref[:, down != self._down[g]] = 0  # running max of the held key's tone powers
        again = (match & (down >= 0))[..., None]
        ref = np.maximum(ref, (tones * again).max(axis=0).T * _SUB_FRACTION)
        self._down[g] = down
        self._miss[g], self._gap[g], self._ref[g] = miss, gap, ref.T
        return events


def _unmixed(
    u: npt.NDArray[np.complex64], cross: npt.NDArray[np.complex64]
) -> npt.NDArray[np.complex64]:
    """The (K, subs, 2) sub-block DFTs of a key's two tones with each one's leak into the
    other's bin taken out (`cross`, (K, subs, 2)): a 5 ms sub-block's DFT lets a tone
    268-936 Hz away through at -14 to -25 dB, enough to turn the weaker tone's phase
    steps by a few degrees."""
    x0, x1 = cross[..., 0], cross[..., 1]
    det = 1 - x0 * x1
    low = (u[..., 0] - x0 * u[..., 1]) / det
    high = (u[..., 1] - x1 * u[..., 0]) / det
    return np.stack([low, high], axis=-1)


def _risen(floors: F32, sel: Idx, tone: F32) -> npt.NDArray[np.bool_]:
    """Both tones of the K candidate keys ≥ `RISE_DB` over their bins' floors (K, 8)."""
    k = np.arange(sel.shape[0])
    rise = tone * _SUB_FRACTION >= floors[k[:, None], sel] * _db(RISE_DB)
    return np.all(rise, axis=1)


def _presence(power: F32, down: npt.NDArray[np.int8], ref: F32) -> F32:
    """(hops, K) amplitude fraction of the held key's weaker tone in each sub-block, from the
    sub-block powers (hops, 8, K) and the tones' reference powers per sub-block (2, K)."""
    k = np.arange(down.size)
    low, high = np.maximum(down, 0) // 4, 4 + np.maximum(down, 0) % 4
    frac = np.minimum(power[:, low, k] / np.maximum(ref[0], 1e-9), 1.0)
    np.minimum(frac, power[:, high, k] / np.maximum(ref[1], 1e-9), out=frac)
    return np.sqrt(frac)


def _db(db: float) -> float:
    return float(10.0 ** (db / 10.0))


def detect_digits(pcm: np.ndarray, rate: int = 8000) -> str:
    """The keys in a whole mono int16 signal, run through `DtmfDetector` frame by frame."""
    x = np.asarray(pcm).reshape(-1)
    if rate != 8000:
        x = resample(x, rate)
    x = np.clip(x, -32768, 32767).astype(np.int16)
    detector = DtmfDetector(1)
    frame = detector.frame
    x = np.concatenate([x, np.zeros(-x.size % frame, np.int16)])
    frames = x.reshape(-1, 1, frame)
    return "".join(key for f in frames for _, key in detector.process(f))


TAIL_WINDOW = 160  # 20 ms windows, 10 ms apart, for `key_tail`
TAIL_HOP = 80
TAIL_RATIO = 0.8  # of a window's energy in the key's two tones (least-squares fit)
TAIL_MIN_DBFS = -45.0
TAIL_TWIST = 10 ** (-10 / 10)  # the weaker tone within 10 dB of the stronger
TAIL_GAP_S = 0.3  # how far before the end the key's tone may have stopped


def key_tail(pcm: np.ndarray, key: str, rate: int = 8000, max_s: float = 1.5) -> int:
    """How many samples at the end of mono `pcm` hold `key`'s tone: what to cut from a
    message that the caller ended by pressing the key in-band.

    Windows of 20 ms, 10 ms apart, walk back from the end; a window holds the key when
    a least-squares fit of its two frequencies carries `TAIL_RATIO` of its energy, both
    tones are there (within 10 dB of each other) and it is louder than `TAIL_MIN_DBFS`
    (speech almost never puts 80 % of its energy in two
    exact DTMF frequencies). The tone may have stopped up to `TAIL_GAP_S` before the end
    (the recording stops a moment after the key is reported). The cut starts one hop
    before the first window of the run, for the tone's onset inside it. 0 when the last
    `TAIL_GAP_S` hold no tone of `key`."""
    if key not in KEYS:
        raise ValueError(f"{key!r} is not a DTMF key")
    k = KEYS.index(key)
    low, high = LOW_HZ[k // 4], HIGH_HZ[k % 4]
    x = np.asarray(pcm, dtype=np.float64).reshape(-1)[-int(max_s * rate):]
    if x.size < TAIL_WINDOW:
        return 0
    t = np.arange(TAIL_WINDOW) / rate
    basis = np.stack([f(2 * np.pi * hz * t) for hz in (low, high) for f in (np.cos, np.sin)],
                     axis=1)  # (window, 4)
    pinv = np.linalg.pinv(basis)
    starts = np.arange(x.size - TAIL_WINDOW, -1, -TAIL_HOP)  # newest first
    windows = np.stack([x[s:s + TAIL_WINDOW] for s in starts])
    coef = windows @ pinv.T  # (windows, 4): cos and sin of low, then of high
    fitted = ((coef @ basis.T) ** 2).sum(axis=1)
    energy = (windows ** 2).sum(axis=1)
    low_p, high_p = (coef[:, :2] ** 2).sum(axis=1), (coef[:, 2:] ** 2).sum(axis=1)
    both = np.minimum(low_p, high_p) >= TAIL_TWIST * np.maximum(low_p, high_p)
    floor = TAIL_WINDOW * (32768.0 * 10 ** (TAIL_MIN_DBFS / 20)) ** 2
    holds = (fitted >= TAIL_RATIO * np.maximum(energy, 1e-9)) & (energy >= floor) & both
    gap = int(TAIL_GAP_S * rate / TAIL_HOP)
    found = np.flatnonzero(holds[:gap + 1])
    if found.size == 0:
        return 0
    i = int(found[0])
    while i + 1 < len(holds) and holds[i + 1]:
        i += 1
    start = max(0, int(starts[i]) - TAIL_HOP)
    return int(x.size - start)


def resample(x: np.ndarray, rate: int, to: int = 8000) -> Pcm:
    """Mono int16 `x` at `rate` Hz resampled to `to` Hz with PyAV (libswresample)."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(np.clip(x, -32768, 32767).astype(np.int16)).reshape(1, -1),
        format="s16",
        layout="mono",
    )
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to)
    out = [*resampler.resample(frame), *resampler.resample(None)]
    if not out:
        return np.zeros(0, np.int16)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.int16)


def read_audio(path: str | Path) -> tuple[Pcm, int]:
    """The first channel of an audio file as int16, and its sample rate (decoded by PyAV)."""
    chunks: list[Pcm] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate
        planar: av.AudioResampler | None = None
        for frame in container.decode(stream):
            if planar is None:
                planar = av.AudioResampler(format="s16p", layout=frame.layout.name, rate=rate)
            chunks += [f.to_ndarray()[0] for f in planar.resample(frame)]
        if planar is not None:
            chunks += [f.to_ndarray()[0] for f in planar.resample(None)]
    if not rate:
        raise ValueError("unknown sample rate")
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.int16), rate


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m media.dsp.dtmf FILE``: print the file's DTMF keys on one line."""
    parser = argparse.ArgumentParser(
        prog="python -m media.dsp.dtmf",
        description="Print the in-band DTMF keys of an audio file (first channel, any rate).",
    )
    parser.add_argument("file", help="WAV (or any audio file PyAV decodes)")
    args = parser.parse_args(argv)
    try:
        pcm, rate = read_audio(args.file)
    except (OSError, ValueError, av.FFmpegError) as exc:
        print(f"dtmf: cannot decode {args.file}: {exc}", file=sys.stderr)
        return 2
    print(detect_digits(pcm, rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
