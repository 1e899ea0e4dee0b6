# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled DTMF kernel: everything `media.dsp.dtmf.DtmfDetector` does after its DFT matmul.

The numpy reference in `media.dsp.dtmf` is vectorised over the slots and pays ~100 small
array operations per frame, whatever the number of slots; this kernel walks the slots one
by one in C, so a frame costs the matmul plus a few hundred flops per slot. The two are
the same algorithm, step for step (the module docstring of `media.dsp.dtmf` explains it),
and `tests/media/test_dtmf_kernel.py` holds them to the same keys and state.
"""

from libc.math cimport atan2, sqrt, fabs
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


cdef inline double _norm(cplx z) noexcept nogil:
    return creal(z) * creal(z) + cimag(z) * cimag(z)


cdef class Kernel:
    cdef int hops, sub, nseq, keep
    cdef float gate, level
    cdef double normal_twist, reverse_twist, peak, harmonic, energy_ratio
    cdef int min_run, max_miss
    cdef double gap_subs, dip_enter, dip_leave, sub_fraction
    cdef double max_step[NF]
    cdef cplx win_rot[WIN][NF]
    cdef cplx leak[WIN][16]
    cdef float[:, :, ::1] check_basis  # (WIN, sub, 32): cos | -sin of 8 tones + 8 harmonics
    cdef const float *basis
    # Scratch for one slot: its sub-block DFTs, energies and powers, oldest first.
    cdef float *seq
    cdef float *energy
    cdef float *power
    cdef signed char *hits
    cdef double *tones
    # The arrays of the call in progress (C-contiguous, checked by `process`).
    cdef const short *frames
    cdef const float *dft
    cdef float *tail_dft
    cdef float *tail_energy
    cdef short *tail_pcm
    cdef signed char *cand
    cdef int *run
    cdef signed char *down
    cdef int *miss
    cdef float *gap
    cdef float *ref

    def __cinit__(
        self, *, int hops, int sub, double gate, double level, max_step, win_rot,
        check_basis, leak, double normal_twist, double reverse_twist, double peak,
        double harmonic, double energy_ratio, int min_run, double gap_subs,
        double dip_enter, double dip_leave, int max_miss, double sub_fraction,
    ):
        if hops <= 0 or sub <= 0:
            raise ValueError("hops and sub must be positive")
        self.hops, self.sub = hops, sub
        self.nseq, self.keep = TAIL + hops, TAIL * sub
        self.gate, self.level = gate, level
        self.normal_twist, self.reverse_twist = normal_twist, reverse_twist
        self.peak, self.harmonic, self.energy_ratio = peak, harmonic, energy_ratio
        self.min_run, self.gap_subs, self.max_miss = min_run, gap_subs, max_miss
        self.dip_enter, self.dip_leave, self.sub_fraction = dip_enter, dip_leave, sub_fraction
        cdef int i, f
        for f in range(NF):
            self.max_step[f] = max_step[f]
        for i in range(WIN):
            for f in range(NF):
                self.win_rot[i][f] = win_rot[i, f]
            for f in range(16):
                self.leak[i][f] = leak[i, f]
        self.check_basis = check_basis
        if self.check_basis.shape[0] != WIN or self.check_basis.shape[1] != sub:
            raise ValueError("check_basis must be (4, sub, 32)")
        self.basis = &self.check_basis[0, 0, 0]
        self.seq = <float *> malloc(self.nseq * NB * sizeof(float))
        self.energy = <float *> malloc(self.nseq * sizeof(float))
        self.power = <float *> malloc(self.nseq * NF * sizeof(float))
        self.hits = <signed char *> malloc(hops * sizeof(signed char))
        self.tones = <double *> malloc(2 * hops * sizeof(double))
        if not (self.seq and self.energy and self.power and self.hits and self.tones):
            raise MemoryError()

    def __dealloc__(self):
        free(self.seq)
        free(self.energy)
        free(self.power)
        free(self.hits)
        free(self.tones)

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
        signed char[::1] down,
        int[::1] miss,
        float[::1] gap,
        float[:, ::1] ref,
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
            == down.shape[0] == miss.shape[0] == gap.shape[0] == ref.shape[0] == cap
            and tail_dft.shape[1] == TAIL and tail_dft.shape[2] == NB
            and tail_energy.shape[1] == TAIL and tail_pcm.shape[1] == self.keep
            and ref.shape[1] == 2
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
        self.down, self.miss, self.gap, self.ref = &down[0], &miss[0], &gap[0], &ref[0, 0]
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
        """One slot's frame: windows, checks, tail and state machine. Returns the onset's
        hop (its key in `onset_key`) or -1.

        The gate's sums are float32 in the reference's order, so the two agree on it."""
        cdef int hops = self.hops, sub = self.sub, nseq = self.nseq
        cdef int i, f, h, t
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
        # Windows: gate, then the checks on the few that pass it.
        cdef float bound[NF]
        cdef float win_energy, best_low, best_high
        cdef bint any_hit = False
        cdef signed char key
        cdef signed char held_at_start = self.down[s]
        for h in range(hops):
            self.hits[h] = -1
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
            key = self._screen(h, win_energy, &self.tones[2 * h])
            if key >= 0 and key != held_at_start and not self._harmonics_ok(
                fr, tp, h, key, self.tones[2 * h], self.tones[2 * h + 1]
            ):
                key = -1
            if key >= 0:
                self.hits[h] = key
                any_hit = True
        # Keep the last sub-blocks for the next frame (after the harmonic check used them).
        memcpy(td, seq + hops * NB, TAIL * NB * sizeof(float))
        memcpy(te, energy + hops, TAIL * sizeof(float))
        if frame >= keep:
            memcpy(tp, fr + frame - keep, keep * sizeof(short))
        else:
            memmove(tp, tp + frame, (keep - frame) * sizeof(short))
            memcpy(tp + keep - frame, fr, frame * sizeof(short))
        if not any_hit and self.run[s] <= 0 and self.down[s] < 0:
            return -1  # nothing going on: the state stays as it is
        return self._step(s, onset_key)

    cdef signed char _screen(self, int h, float win_energy, double *tone) noexcept nogil:
        """The checks but the harmonic one on window `h` of the scratch sequence: the key,
        or -1; the powers of its two tones at their measured frequencies go to `tone`."""
        cdef cplx z[WIN][NF]
        cdef cplx acc
        cdef double p[NF]
        cdef int i, f, g, sel[2]
        cdef float *seq = self.seq
        for f in range(NF):
            acc = 0
            for i in range(WIN):
                z[i][f] = (seq[(h + i) * NB + f] + 1j * seq[(h + i) * NB + NF + f]) * self.win_rot[i][f]
                acc = acc + z[i][f]
            p[f] = _norm(acc)
        cdef double top, theta
        cdef int louder
        cdef cplx d, step, u
        cdef double t2, droop
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
            f = sel[g]
            d = 0
            for i in range(WIN - 1):
                d = d + z[i + 1][f] * conj(z[i][f])
            theta = atan2(cimag(d), creal(d))
            if fabs(theta) > self.max_step[f]:
                return -1  # frequency
            step = conj(d) / (sqrt(_norm(d)) if _norm(d) > 1e-60 else 1e-30)
            u = z[WIN - 1][f]
            for i in range(WIN - 2, -1, -1):
                u = u * step + z[i][f]
            t2 = theta * theta
            droop = 1.0 - t2 / 24.0 + t2 * t2 / 1920.0
            tone[g] = _norm(u) / (droop * droop)
            if tone[g] < self.level:
                return -1  # level
        if tone[1] < tone[0] * self.normal_twist or tone[1] > tone[0] * self.reverse_twist:
            return -1  # twist
        if tone[0] + tone[1] < self.energy_ratio * win_energy:
            return -1  # energy
        return <signed char> (4 * sel[0] + sel[1] - 4)

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

    cdef int _step(self, Py_ssize_t s, int *onset_key) noexcept nogil:
        """The slot's state machine over the frame's windows (the semantics of the
        reference's `DtmfDetector._step`); returns the onset's hop or -1."""
        cdef int hops = self.hops, h
        cdef signed char *hits = self.hits
        cdef int run_ = self.run[s], onset_hop = -1
        cdef signed char down0 = self.down[s], dn = down0, prev = self.cand[s]
        cdef double hgap = self.gap[s], ref0 = self.ref[2 * s], ref1 = self.ref[2 * s + 1]
        cdef bint held = down0 >= 0, gone = False, free_h = True, ready
        cdef int low = (down0 if held else 0) // 4, high = 4 + (down0 if held else 0) % 4
        cdef double present, a, b
        cdef float *power = self.power
        for h in range(hops):
            if hits[h] < 0:
                run_ = 0
            elif hits[h] == (prev if h == 0 else hits[h - 1]):
                run_ += 1
            else:
                run_ = 1
            ready = run_ >= self.min_run
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
            if free_h and ready and onset_hop < 0:
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
        self.down[s] = dn
        self.miss[s] = miss_
        self.gap[s] = <float> hgap
        self.ref[2 * s] = <float> ref0
        self.ref[2 * s + 1] = <float> ref1
        return onset_hop
