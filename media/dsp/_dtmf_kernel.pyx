# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled DTMF kernel: everything `media.dsp.dtmf.DtmfDetector` does after its DFT matmul.

The numpy reference in `media.dsp.dtmf` is vectorised over the slots and pays ~100 small
array operations per frame, whatever the number of slots; this kernel walks the slots one
by one in C, so a frame costs the matmul plus a few hundred flops per slot. The two are
the same algorithm, step for step (the module docstring of `media.dsp.dtmf` explains it),
and `tests/media/test_dtmf_kernel.py` holds them to the same keys and state.
"""

from libc.math cimport atan2, sqrt, fabs, cos, M_PI
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memmove

import numpy as np

ctypedef double complex cplx

cdef extern from "<complex.h>" nogil:
    double creal(cplx z)
    double cimag(cplx z)
    cplx conj(cplx z)

cdef enum:
    NF = 8  # nominal frequencies: 4 low then 4 high
    NB = 16  # DFT values per sub-block: 8 real parts then 8 imaginary
    WIN = 4  # sub-blocks per window
    TAIL = 3  # sub-blocks kept from the previous frame
    LAG = 4  # sub-blocks (besides the tail's) by which a bin's floor lags the newest


cdef inline double _norm(cplx z) noexcept nogil:
    return creal(z) * creal(z) + cimag(z) * cimag(z)


cdef class Kernel:
    cdef int hops, sub, nseq, keep
    cdef float gate, level
    cdef double normal_twist, reverse_twist, peak, harmonic, intermod, energy_ratio
    cdef double pure_ratio, rise, rate, series
    cdef float growth, floor_min
    cdef int min_run, max_miss, near_memory
    cdef double gap_subs, dip_enter, dip_leave, sub_fraction
    cdef double max_step[NF]
    cdef double max_drift[NF]
    cdef double near_step[NF]
    cdef double strict_step[NF]
    cdef bint use_diff[16]
    cdef cplx win_rot[WIN][NF]
    cdef cplx leak[WIN][16]
    cdef cplx cross[WIN][16][2]
    cdef float[:, :, ::1] check_basis  # (WIN, sub, 32): cos | -sin of 8 tones + 8 harmonics
    cdef double[::1] hann  # (WIN * sub,): the taper of the intermodulation check
    cdef double freqs[NF]
    cdef const float *basis
    # Scratch for one slot: its sub-block DFTs, energies and powers, oldest first.
    cdef float *seq
    cdef float *energy
    cdef float *power
    cdef float *floors
    cdef signed char *hits
    cdef signed char *nears
    cdef float *tsum
    cdef float *wen
    cdef double *tones
    cdef double *thetas
    # The arrays of the call in progress (C-contiguous, checked by `process`).
    cdef const short *frames
    cdef const float *dft
    cdef float *tail_dft
    cdef float *tail_energy
    cdef short *tail_pcm
    cdef signed char *cand
    cdef int *run
    cdef signed char *grade
    cdef float *theta0
    cdef float *last
    cdef signed char *down
    cdef int *miss
    cdef float *gap
    cdef float *ref
    cdef float *floor
    cdef float *lagged
    cdef signed char *near
    cdef int *near_age

    def __cinit__(
        self, *, int hops, int sub, double gate, double level, max_step, win_rot,
        check_basis, leak, cross, max_drift, near_step, int near_memory, hann, freqs,
        double rate, double normal_twist, double reverse_twist,
        double peak, double harmonic, double intermod, strict_step, double series, use_diff,
        double energy_ratio, double pure_ratio, double rise,
        float growth, float floor_min, int lag, int min_run, double gap_subs,
        double dip_enter, double dip_leave, int max_miss, double sub_fraction,
    ):
        if hops <= 0 or sub <= 0:
            raise ValueError("hops and sub must be positive")
        self.hops, self.sub = hops, sub
        self.nseq, self.keep = TAIL + hops, TAIL * sub
        self.gate, self.level = gate, level
        self.normal_twist, self.reverse_twist = normal_twist, reverse_twist
        self.peak, self.harmonic, self.energy_ratio = peak, harmonic, energy_ratio
        if lag != LAG:
            raise ValueError(f"the kernel is built for a floor lag of {LAG} sub-blocks")
        self.pure_ratio, self.rise, self.growth, self.floor_min = pure_ratio, rise, growth, floor_min
        self.near_memory = near_memory
        self.intermod, self.rate, self.series = intermod, rate, series
        self.min_run, self.gap_subs, self.max_miss = min_run, gap_subs, max_miss
        self.dip_enter, self.dip_leave, self.sub_fraction = dip_enter, dip_leave, sub_fraction
        cdef int i, f
        for f in range(NF):
            self.max_step[f] = max_step[f]
            self.max_drift[f] = max_drift[f]
            self.near_step[f] = near_step[f]
            self.strict_step[f] = strict_step[f]
            self.freqs[f] = freqs[f]
        for f in range(16):
            self.use_diff[f] = use_diff[f] != 0
        for i in range(WIN):
            for f in range(NF):
                self.win_rot[i][f] = win_rot[i, f]
            for f in range(16):
                self.leak[i][f] = leak[i, f]
                self.cross[i][f][0] = cross[i, f, 0]
                self.cross[i][f][1] = cross[i, f, 1]
        self.check_basis = check_basis
        if self.check_basis.shape[0] != WIN or self.check_basis.shape[1] != sub:
            raise ValueError("check_basis must be (4, sub, 32)")
        self.basis = &self.check_basis[0, 0, 0]
        self.hann = hann
        if self.hann.shape[0] != WIN * sub:
            raise ValueError("hann must be (4 * sub,)")
        self.seq = <float *> malloc(self.nseq * NB * sizeof(float))
        self.energy = <float *> malloc(self.nseq * sizeof(float))
        self.power = <float *> malloc(self.nseq * NF * sizeof(float))
        self.floors = <float *> malloc(hops * NF * sizeof(float))
        self.hits = <signed char *> malloc(hops * sizeof(signed char))
        self.nears = <signed char *> malloc(hops * sizeof(signed char))
        self.tsum = <float *> malloc(hops * sizeof(float))
        self.wen = <float *> malloc(hops * sizeof(float))
        self.tones = <double *> malloc(2 * hops * sizeof(double))
        self.thetas = <double *> malloc(2 * hops * sizeof(double))
        if not (self.seq and self.energy and self.power and self.floors
                and self.hits and self.nears and self.tsum and self.wen and self.tones
                and self.thetas):
            raise MemoryError()

    def __dealloc__(self):
        free(self.seq)
        free(self.energy)
        free(self.power)
        free(self.floors)
        free(self.hits)
        free(self.nears)
        free(self.tsum)
        free(self.wen)
        free(self.tones)
        free(self.thetas)

    def process(
        self,
        const short[:, ::1] frames,
        const float[:, :, ::1] dft,
        const Py_ssize_t[::1] slots,
        float[:, :, ::1] tail_dft,
        float[:, ::1] tail_energy,
        short[:, ::1] tail_pcm,
        signed char[::1] cand,
        int[::1] run,
        signed char[::1] grade,
        float[:, ::1] theta0,
        float[:, ::1] last,
        signed char[::1] down,
        int[::1] miss,
        float[::1] gap,
        float[:, ::1] ref,
        float[:, ::1] floor,
        float[:, :, ::1] lagged,
        signed char[::1] near,
        int[::1] near_age,
    ):
        """Analyse `frames` (m, frame) whose DFTs are `dft` (m, hops, 16) for `slots` (m,),
        updating the state arrays; return [(hop, row, slot, key)] for each key accepted."""
        cdef Py_ssize_t m = frames.shape[0], r, s
        if dft.shape[0] != m or slots.shape[0] != m or dft.shape[1] != self.hops or (
            dft.shape[2] != NB
        ):
            raise ValueError("frames, dft and slots disagree")
        if frames.shape[1] != self.hops * self.sub:
            raise ValueError("frame length does not match the kernel")
        cdef Py_ssize_t cap = cand.shape[0]
        if not (
            tail_dft.shape[0] == tail_energy.shape[0] == tail_pcm.shape[0] == run.shape[0]
            == grade.shape[0] == theta0.shape[0] == last.shape[0] == down.shape[0]
            == miss.shape[0]
            == gap.shape[0] == ref.shape[0] == floor.shape[0] == lagged.shape[0]
            == near.shape[0] == near_age.shape[0] == cap
            and tail_dft.shape[1] == TAIL and tail_dft.shape[2] == NB
            and tail_energy.shape[1] == TAIL and tail_pcm.shape[1] == self.keep
            and ref.shape[1] == 2 and theta0.shape[1] == 2 and last.shape[1] == 2
            and floor.shape[1] == NF
            and lagged.shape[1] == LAG and lagged.shape[2] == NF
        ):
            raise ValueError("state arrays disagree in shape")
        for r in range(m):
            if slots[r] < 0 or slots[r] >= cap:
                raise IndexError(f"slot {slots[r]} outside 0..{cap - 1}")
        if m == 0:
            return []
        self.frames, self.dft = &frames[0, 0], &dft[0, 0, 0]
        self.tail_dft, self.tail_energy = &tail_dft[0, 0, 0], &tail_energy[0, 0]
        self.tail_pcm, self.cand, self.run = &tail_pcm[0, 0], &cand[0], &run[0]
        self.grade, self.theta0, self.last = &grade[0], &theta0[0, 0], &last[0, 0]
        self.down, self.miss, self.gap, self.ref = &down[0], &miss[0], &gap[0], &ref[0, 0]
        self.floor, self.lagged = &floor[0, 0], &lagged[0, 0, 0]
        self.near, self.near_age = &near[0], &near_age[0]
        onsets = np.empty((m, 2), np.intc)
        cdef int[:, ::1] onset = onsets
        with nogil:
            for r in range(m):
                onset[r, 0] = self._slot(r, slots[r], &onset[r, 1])
        return [
            (int(onset[r, 0]), r, int(slots[r]), int(onset[r, 1]))
            for r in np.flatnonzero(onsets[:, 0] >= 0)
        ]

    cdef int _slot(self, Py_ssize_t r, Py_ssize_t s, int *onset_key) noexcept nogil:
        """One slot's frame: floors, windows, checks, tail and state machine. Returns the
        onset's hop (its key in `onset_key`) or -1.

        The gate's sums and the floors are float32 in the reference's order, so the two
        agree on them."""
        cdef int hops = self.hops, sub = self.sub, nseq = self.nseq
        cdef int i, f, h, t, g
        cdef float *seq = self.seq
        cdef float *energy = self.energy
        cdef float *power = self.power
        cdef long long sq
        cdef int keep = self.keep, frame = hops * sub
        cdef const short *fr = self.frames + r * frame
        cdef float *td = self.tail_dft + s * TAIL * NB
        cdef float *te = self.tail_energy + s * TAIL
        cdef short *tp = self.tail_pcm + s * keep
        memcpy(seq, td, TAIL * NB * sizeof(float))
        memcpy(seq + TAIL * NB, self.dft + r * hops * NB, hops * NB * sizeof(float))
        memcpy(energy, te, TAIL * sizeof(float))
        for h in range(hops):
            sq = 0  # exact, and integer adds do not wait on each other as float adds do
            for t in range(h * sub, (h + 1) * sub):
                sq += fr[t] * fr[t]
            energy[TAIL + h] = <float> sq
        for i in range(nseq):
            for f in range(NF):
                power[i * NF + f] = seq[i * NB + f] * seq[i * NB + f] + (
                    seq[i * NB + NF + f] * seq[i * NB + NF + f])
        self._floors(s)
        # Windows: gate, then the checks on the few that pass it.
        cdef float bound[NF]
        cdef float win_energy, best_low, best_high
        cdef bint any_hit = False, any_near = False, is_near
        cdef signed char key
        cdef signed char held_at_start = self.down[s]
        cdef double *tone
        for h in range(hops):
            self.hits[h] = -1
            self.nears[h] = -1
            self.tsum[h] = 0
            self.wen[h] = 0
            win_energy = energy[h]
            for f in range(NF):
                bound[f] = power[h * NF + f]
            for i in range(1, WIN):
                win_energy = win_energy + energy[h + i]
                for f in range(NF):
                    bound[f] = bound[f] + power[(h + i) * NF + f]
            best_low = bound[0]
            best_high = bound[4]
            for f in range(1, 4):
                if bound[f] > best_low:
                    best_low = bound[f]
                if bound[4 + f] > best_high:
                    best_high = bound[4 + f]
            if win_energy < self.level or best_low + best_high < self.gate * win_energy:
                continue
            tone = &self.tones[2 * h]
            key = self._screen(h, win_energy, tone, &self.thetas[2 * h], &is_near)
            if is_near:
                self.nears[h] = key
                any_near = True
                key = -1
            if key >= 0 and key != held_at_start:  # the onset checks
                if not self._harmonics_ok(fr, tp, h, key, tone[0], tone[1]):
                    key = -1
                elif held_at_start < 0 and not (  # a key change keeps the level up
                    tone[0] * self.sub_fraction >= self.floors[h * NF + key // 4] * self.rise
                    and tone[1] * self.sub_fraction
                    >= self.floors[h * NF + 4 + key % 4] * self.rise
                ):
                    key = -1
            if key >= 0:
                self.hits[h] = key
                self.tsum[h] = <float> tone[0] + <float> tone[1]
                self.wen[h] = win_energy
                any_hit = True
        # Keep the last sub-blocks for the next frame (the samples once the onset checks
        # are done with them).
        memcpy(td, seq + hops * NB, TAIL * NB * sizeof(float))
        memcpy(te, energy + hops, TAIL * sizeof(float))
        cdef int onset_hop = -1
        if any_hit or any_near or self.run[s] > 0 or self.down[s] >= 0 or (
            self.near_age[s] <= self.near_memory
        ):
            onset_hop = self._step(s, fr, tp, onset_key)  # else the state stays as it is
        if frame >= keep:
            memcpy(tp, fr + frame - keep, keep * sizeof(short))
        else:
            memmove(tp, tp + frame, (keep - frame) * sizeof(short))
            memcpy(tp + keep - frame, fr, frame * sizeof(short))
        return onset_hop

    cdef void _floors(self, Py_ssize_t s) noexcept nogil:
        """Each bin's floor for each window of the frame (into `floors`): the slot's floor
        takes in its lagged sub-block powers, then the frame's, `LAG` + `TAIL` late (see
        `DtmfDetector._floors`)."""
        cdef int hops = self.hops, h, f
        cdef float *fl = self.floor + s * NF
        cdef float *lg = self.lagged + s * LAG * NF
        cdef const float *p
        cdef float a
        for h in range(hops):
            p = lg + h * NF if h < LAG else self.power + (h - LAG) * NF
            for f in range(NF):
                a = fl[f] if fl[f] > self.floor_min else self.floor_min
                a = a * self.growth
                fl[f] = p[f] if p[f] < a else a
                self.floors[h * NF + f] = fl[f]
        # The next frame's lagged powers: the LAG sub-blocks after those just taken in.
        if hops < LAG:
            memmove(lg, lg + hops * NF, (LAG - hops) * NF * sizeof(float))
            memcpy(lg + (LAG - hops) * NF, self.power, hops * NF * sizeof(float))
        else:
            memcpy(lg, self.power + (hops - LAG) * NF, LAG * NF * sizeof(float))

    cdef signed char _screen(
        self, int h, float win_energy, double *tone, double *theta, bint *near
    ) noexcept nogil:
        """The checks but the onset ones on window `h` of the scratch sequence: the key, or
        -1; its two tones' powers at their measured frequencies go to `tone`, their phase
        steps to `theta`. A near miss (every check passed but the frequency one, within the
        near tolerance) returns its key with `near` set."""
        cdef cplx z[WIN][NF]
        cdef cplx u[2][WIN]
        cdef cplx acc, x0, x1, det
        cdef double p[NF]
        cdef int i, f, g, sel[2], key
        cdef bint off_tolerance = False
        cdef float *seq = self.seq
        near[0] = False
        for f in range(NF):
            acc = 0
            for i in range(WIN):
                z[i][f] = (seq[(h + i) * NB + f] + 1j * seq[(h + i) * NB + NF + f]) * self.win_rot[i][f]
                acc = acc + z[i][f]
            p[f] = _norm(acc)
        cdef double top
        cdef int louder
        for g in range(2):
            sel[g] = 4 * g
            for f in range(4 * g + 1, 4 * g + 4):
                if p[f] > p[sel[g]]:
                    sel[g] = f
            top = p[sel[g]]
            louder = 0
            for f in range(4 * g, 4 * g + 4):
                if p[f] * self.peak > top:
                    louder += 1
            if louder > 1:
                return -1  # peak: another bin of the group is too close
        key = 4 * sel[0] + sel[1] - 4
        for i in range(WIN):  # each tone's leak into the other's bin taken out
            x0, x1 = self.cross[i][key][0], self.cross[i][key][1]
            det = 1 - x0 * x1
            u[0][i] = (z[i][sel[0]] - x0 * z[i][sel[1]]) / det
            u[1][i] = (z[i][sel[1]] - x1 * z[i][sel[0]]) / det
        cdef cplx d, step, v
        cdef double t2, droop
        for g in range(2):
            d = 0
            for i in range(WIN - 1):
                d = d + u[g][i + 1] * conj(u[g][i])
            theta[g] = atan2(cimag(d), creal(d))
            if fabs(theta[g]) > self.near_step[sel[g]]:
                return -1  # frequency, far off
            if fabs(theta[g]) > self.max_step[sel[g]]:
                off_tolerance = True  # frequency: a near miss if all the rest passes
            step = conj(d) / (sqrt(_norm(d)) if _norm(d) > 1e-60 else 1e-30)
            v = u[g][WIN - 1]
            for i in range(WIN - 2, -1, -1):
                v = v * step + u[g][i]
            t2 = theta[g] * theta[g]
            droop = 1.0 - t2 / 24.0 + t2 * t2 / 1920.0
            tone[g] = _norm(v) / (droop * droop)
            if tone[g] < self.level:
                return -1  # level
        if tone[1] < tone[0] * self.normal_twist or tone[1] > tone[0] * self.reverse_twist:
            return -1  # twist
        if tone[0] + tone[1] < self.energy_ratio * win_energy:
            return -1  # energy
        near[0] = off_tolerance
        return <signed char> key

    cdef bint _harmonics_ok(
        self, const short *fr, const short *tp, int h, int key, double lo, double hi
    ) noexcept nogil:
        """Both tones' second harmonics at most `harmonic` of their tones, from the window's
        raw samples (see `DtmfDetector._harmonics_ok` for the leak subtracted)."""
        cdef int sub = self.sub, keep = self.keep
        cdef int col_high = 4 + key % 4, col_low2 = 8 + key // 4, col_high2 = 8 + 4 + key % 4
        cdef int i, t, at
        cdef double x, re0, im0, re1, im1, re2, im2
        cdef cplx low_sum = 0, high_sum = 0
        cdef const float *b
        for i in range(WIN):
            re0 = im0 = re1 = im1 = re2 = im2 = 0.0
            for t in range(sub):
                at = (h + i) * sub + t
                x = tp[at] if at < keep else fr[at - keep]
                b = self.basis + (i * sub + t) * 32
                re0 += x * b[col_high]
                im0 += x * b[16 + col_high]
                re1 += x * b[col_low2]
                im1 += x * b[16 + col_low2]
                re2 += x * b[col_high2]
                im2 += x * b[16 + col_high2]
            low_sum = low_sum + (re1 + 1j * im1) - (re0 + 1j * im0) * self.leak[i][key]
            high_sum = high_sum + (re2 + 1j * im2)
        return _norm(low_sum) <= lo * self.harmonic and _norm(high_sum) <= hi * self.harmonic

    cdef bint _intermods_ok(
        self, const short *fr, const short *tp, int h, int key, const double *theta
    ) noexcept nogil:
        """Nothing at 2·low - high and 2·high - low within `intermod` of the weaker tone, and
        for a key off by more than the strict tolerance, those two and high - low (where it
        is clear of the low tone) `series` down in all (see `DtmfDetector._intermods_ok`):
        Hann-tapered DFTs of window `h`'s raw samples at the tones' measured frequencies
        and those three (Goertzel's recurrence)."""
        cdef int sub = self.sub, keep = self.keep, n = WIN * sub, i, t, at
        cdef double step = self.rate / (2 * M_PI * sub)
        cdef double low = self.freqs[key // 4] + theta[0] * step
        cdef double high = self.freqs[4 + key % 4] + theta[1] * step
        cdef double coeff[5]
        cdef double s0[5]
        cdef double s1[5]
        cdef double s2[5]
        cdef double power[5]
        cdef double x, weaker, total
        coeff[0], coeff[1] = 2 * cos(2 * M_PI * low / self.rate), 2 * cos(2 * M_PI * high / self.rate)
        coeff[2] = 2 * cos(2 * M_PI * (2 * low - high) / self.rate)  # cos is even: |2·low - high|
        coeff[3] = 2 * cos(2 * M_PI * (2 * high - low) / self.rate)
        coeff[4] = 2 * cos(2 * M_PI * (high - low) / self.rate)
        for i in range(5):
            s1[i] = s2[i] = 0.0
        for t in range(n):
            at = h * sub + t
            x = (tp[at] if at < keep else fr[at - keep]) * self.hann[t]
            for i in range(5):
                s0[i] = x + coeff[i] * s1[i] - s2[i]
                s2[i] = s1[i]
                s1[i] = s0[i]
        for i in range(5):
            power[i] = s1[i] * s1[i] + s2[i] * s2[i] - coeff[i] * s1[i] * s2[i]
        weaker = min(power[0], power[1])
        if max(power[2], power[3]) > self.intermod * weaker:
            return False
        if fabs(theta[0]) <= self.strict_step[key // 4] and (
            fabs(theta[1]) <= self.strict_step[4 + key % 4]
        ):
            return True
        total = power[2] + power[3] + (power[4] if self.use_diff[key] else 0.0)
        return total <= self.series * weaker

    cdef int _step(
        self, Py_ssize_t s, const short *fr, const short *tp, int *onset_key
    ) noexcept nogil:
        """The slot's state machine over the frame's windows (the semantics of the
        reference's `DtmfDetector._runs` and `_step`); returns the onset's hop or -1. The
        intermodulation check runs only on the window that would make the onset."""
        cdef int hops = self.hops, h
        cdef signed char *hits = self.hits
        cdef int run_ = self.run[s], onset_hop = -1
        cdef signed char grade_ = self.grade[s], near_ = self.near[s]
        cdef int age = self.near_age[s]
        cdef float lt = self.last[2 * s], le = self.last[2 * s + 1], both_t, both_e
        cdef bint along, pure_h
        cdef float start0 = self.theta0[2 * s], start1 = self.theta0[2 * s + 1]
        cdef signed char down0 = self.down[s], dn = down0, prev = self.cand[s]
        cdef double hgap = self.gap[s], ref0 = self.ref[2 * s], ref1 = self.ref[2 * s + 1]
        cdef bint held = down0 >= 0, gone = False, free_h = True, ready
        cdef int low = (down0 if held else 0) // 4, high = 4 + (down0 if held else 0) % 4
        cdef double present, a, b
        cdef float *power = self.power
        cdef int k
        for h in range(hops):
            k = hits[h]
            if self.nears[h] >= 0:
                near_, age = self.nears[h], 0
            elif age <= self.near_memory:
                age += 1
            along = k >= 0 and k == prev
            both_t = self.tsum[h] + lt  # two windows in a row of the key: pure?
            both_e = self.wen[h] + le
            pure_h = along and both_t >= <float> self.pure_ratio * both_e
            lt, le = self.tsum[h], self.wen[h]
            if k < 0:
                run_ = 0
                grade_ = 0
            elif along and fabs(self.thetas[2 * h] - start0) <= self.max_drift[k // 4] and (
                fabs(self.thetas[2 * h + 1] - start1) <= self.max_drift[4 + k % 4]
            ):
                run_ += 1
                if grade_ >= 0 and pure_h:
                    grade_ = 1
            else:  # a new run: another key, or its tones have drifted
                run_ = 1
                if (along and grade_ < 0) or (near_ == k and age <= self.near_memory):
                    grade_ = -1  # drifted (the taint stays), or just after a near miss
                else:
                    grade_ = pure_h
                start0, start1 = <float> self.thetas[2 * h], <float> self.thetas[2 * h + 1]
            prev = hits[h]
            ready = run_ >= self.min_run and grade_ > 0
            if held:
                # how much of the held key's weaker tone is left in sub-block h (amplitude)
                a = power[(TAIL + h) * NF + low] / (ref0 if ref0 > 1e-9 else 1e-9)
                b = power[(TAIL + h) * NF + high] / (ref1 if ref1 > 1e-9 else 1e-9)
                present = sqrt(min(a, b, 1.0))
                if present < self.dip_enter or (hgap > 0 and present < self.dip_leave):
                    hgap += 1.0 - present
                else:
                    hgap = 0.0
                if hgap > self.gap_subs:
                    gone = True
                free_h = gone
            if free_h and ready and onset_hop < 0 and (
                k == down0 or self._intermods_ok(fr, tp, h, k, &self.thetas[2 * h])
            ):
                onset_hop = h
                onset_key[0] = hits[h]
        if onset_hop >= 0:
            dn = <signed char> onset_key[0]
        elif free_h:
            dn = -1  # released by a dip, no onset since
        if free_h or not held:
            hgap = 0.0
        # Backstop: windows in a row (to the frame's end) without the held key.
        cdef int trailing = 0
        cdef bint matched = False
        for h in range(hops - 1, -1, -1):
            if hits[h] == dn:
                matched = True
                break
            trailing += 1
        cdef int miss_ = 0
        if dn >= 0:
            miss_ = trailing if matched else self.miss[s] + hops
        if miss_ > self.max_miss:
            dn = -1
        if dn < 0:
            hgap = 0.0
        if dn != down0:
            ref0 = ref1 = 0.0
        if dn >= 0:
            for h in range(hops):
                if hits[h] == dn:
                    ref0 = max(ref0, self.tones[2 * h] * self.sub_fraction)
                    ref1 = max(ref1, self.tones[2 * h + 1] * self.sub_fraction)
        self.cand[s] = hits[hops - 1]
        self.run[s] = run_
        self.grade[s] = grade_
        self.last[2 * s] = lt
        self.last[2 * s + 1] = le
        self.near[s] = near_
        self.near_age[s] = age
        self.theta0[2 * s] = start0
        self.theta0[2 * s + 1] = start1
        self.down[s] = dn
        self.miss[s] = miss_
        self.gap[s] = <float> hgap
        self.ref[2 * s] = <float> ref0
        self.ref[2 * s + 1] = <float> ref1
        return onset_hop
