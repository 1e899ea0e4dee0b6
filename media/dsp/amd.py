"""Answering-machine detection: live person, voicemail (and when to speak), fax or unknown.

Theory of operation
-------------------
`AmdBank` is a sans-I/O kernel over a bank of streams (one per call): each `step` takes
one 20 ms frame per stream, shape (n, 160) int16 at 8 kHz, and returns the decisions that
frame made. It is causal: a decision uses only the audio up to the end of its frame, so a
prefix of a call decides what the whole call decides up to that time.

1. Spectrum, one float32 matmul per frame for the whole bank: the Hann-windowed 160-point
   DFT at its 40 bins from 250 to 2200 Hz (50 Hz apart), and the windowed frame energy.
   From them, per stream:
   - *level*: the band's power in dBFS. Mains hum's fundamental and DC are out of band.
   - *tone purity*: the largest share of the frame's energy in three neighbouring bins.
     A Hann-windowed sine puts 98-100 % there wherever it falls between bins; a tone
     10 dB over white noise ~89 %; voiced speech, whose harmonics spread over many bins,
     mostly under 50 %. Where it reaches `tone_purity`, the tone's frequency comes from a
     parabola through the log powers of the peak bin and its neighbours (a few Hz), and
     the *side peak* is the strongest bin more than two bins away, against the peak: a
     tone in noise has none (under -20 dB), a vowel has its other harmonics (-5 to -12).
   - *V.21 share*: the energy between 1550 and 1950 Hz, where V.21 channel 2's FSK
     (1650 Hz mark, 1850 Hz space) keeps nearly all of its power.
2. Voice activity: the level against a noise floor that follows the loudest of the last
   5 frames down at once and rises slowly (`floor_rise_db`/frame) while the level moves,
   fast (`floor_fast_db`) once it has stayed within `steady_db` of its value 5 frames
   before for `steady_frames`. Noise and hum are steady and become the floor within a
   second; the 5 frames are because 60 Hz hum's harmonics beat in a 20 ms frame with a
   period of 5 frames (50 Hz: 1), up and down by 10 dB, which frame-to-frame tracking
   would read as syllables. A *voiced* frame is `margin_db` over the floor, over
   `min_level_db`, not tonal (purity, `side_db`, `tone_level_db`) and not V.21.
   Voiced frames make *utterances*, which end at a pause of `pause_frames` (600 ms:
   a sentence's pauses, 150-450 ms, stay inside); an utterance counts as speech once it
   has `min_voiced` voiced frames, `min_moves` of which moved by `move_db` from the frame
   before (a sound switched on does; a steady one that is already the floor never gets
   voiced frames at all).
3. Tones: a *run* of tonal frames whose frequency stays within `tone_drift` (+
   `tone_drift_hz`) of where the run began and whose level moves by at most
   `tone_steady_db` a frame: a beep holds both, a sung-out vowel glides away within a
   few frames. In `beep_hz`, a run of `beep_frames` (80 ms) is a *beep*, unless it began
   straight out of speech (the two frames before it voiced: a vowel). It lasts while
   tonal frames keep coming in that range (a two- or three-tone beep changes frequency),
   is dropped if `beep_voiced_after` voiced frames follow it (speech goes on: a vowel),
   and *ends* `beep_gap_frames` (240 ms) after its last tonal frame. Its end is reported
   as the end of the second frame after the last tonal one: the true end (ramps,
   a partly covered frame) cannot be later.
4. Fax, from the first frame: CED (2100 Hz ±30; `fax_frames` tonal frames allowing
   `fax_misses` missing in a row, the frames of a phase reversal), CNG (1100 Hz ±45, as
   long, before any speech: after a greeting a 1100 Hz tone is a beep) or V.21 flags
   (as long, with ≥ `v21_share` of the energy in their band).
5. Decisions, per stream, in order (see `Kind`):
   - FAX as above, while undecided or after LIVE_PERSON.
   - LIVE_PERSON: the first utterance, of at most `live_max_frames` (1.8 s) so far, has
     been followed by a pause for a reply; not while a tone is sounding. How long a
     pause that takes depends on when the speech stopped, counted from the answer: as
     long as is left before `reply_by_frames` (1.2 s), but at least `min_reply_frames`
     (140 ms) and at most `max_reply_frames` (400 ms). Why: a pause is the only evidence
     (the corpus's live persons and greetings' opening phrases sound alike up to there;
     a greeting's sentence and comma pauses, 150-600 ms, overlap a person's wait), and
     longer is surer, so the detector waits as long as the latency budget allows: a
     "Hello?" that ends at 0.6 s waits 400 ms, a sentence of a name ("This is Peter
     speaking.") that ends at 2 s waits 140 ms, and a comma pause of 140 ms or more
     late in it ("Frank here, ... go ahead") already decides. The price is the first
     decision: a greeting that opens with a phrase and a pause ("Hi, ... you've reached
     Dana", or a first sentence and its full stop) is taken for a person first, and
     corrected as below. On the tuning part (bench/amd.py), as the three settings move:

     ============================  ===========  ==============  ==================
     reply_by / min / max          live p90     first decision  voicemails first
     (frames)                      from answer  right           taken for a person
     ============================  ===========  ==============  ==================
     old: 360 ms (500 ms > 1.2 s)  2496 ms      89.8 %          42 of 152
     90 / 10 / 25                  2192 ms      83.1 %          74 of 152
     60 / 10 / 25                  2070 ms      79.1 %          93 of 152
     60 / 7 / 20 (the default)     1880 ms      75.8 %          108 of 152
     ============================  ===========  ==============  ==================

     The final decision is right for 99.1-99.8 % of the items at all four. The default
     is the latency target's (90 % of live persons within 2 s of the answer); a caller
     that acts on LIVE_PERSON at once (an agent put through) and can wait longer should
     pass larger ones (`DetectionMonitor` takes `AmdConfig`'s fields).
   - VOICEMAIL: the first utterance goes on past `live_max_frames` (a greeting), or a
     beep after speech has ended. After LIVE_PERSON, it is corrected by a beep, by the
     utterance LIVE_PERSON was decided in going on, through pauses shorter than
     `pause_frames`, past `relapse_frames` (2.4 s: the person did not wait for a reply
     after all; a live sentence decided at a comma is over well before), or by a later
     utterance that goes on past `monologue_frames` (3 s: a monologue with no pause for
     a reply).
   - READY, after VOICEMAIL: when a beep ends (with its end), or, with no beep, once the
     greeting has been over for `no_beep_frames` (2 s; a greeting's beep comes within
     about a second of it). A tone with no speech before it (a beep-only mailbox) gives
     VOICEMAIL and READY together when it ends, if it lasted at most `lone_tone_frames`
     and is not at CNG's 1100 Hz (hum's harmonics never end).
   After FAX or READY the stream is done. Nothing decides UNKNOWN: the caller does, when
   it stops listening with nothing decided (silence, noise and hum make no decision).

The thresholds (`AmdConfig`) were set on the tuning part of bench/_amd_corpus.py only
(widened with live persons who say a sentence of up to ~1.5 s); bench/amd.py scores them
on the held-out parts, and judges the targets on ``held_out_v2``, which was not run until
they were final. The cost is about 0.8-1.0 ms of one core per tick for 1000 streams
(numpy; most of it the matmul and the per-frame spectrum), under 5 % of a core, so there
is no compiled kernel.

``python -m media.dsp.amd FILE.wav`` runs one stream over an 8 kHz mono 16-bit WAV and
prints ``{"result": ..., "decision_ms": ..., "beep_end_ms": ...}``: the last class decided
(``unknown`` if none, at the file's end), when, and the beep's end from READY (null when
there was none or no beep).
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME = 160
FRAME_MS = 20
BIN_HZ = RATE / FRAME
BINS = np.arange(5, 45)  # 250 ... 2200 Hz
V21_BINS = (BINS >= 31) & (BINS <= 39)  # 1550 ... 1950 Hz
_V21 = slice(int(np.flatnonzero(V21_BINS)[0]), int(np.flatnonzero(V21_BINS)[-1]) + 1)



@dataclass(frozen=True, slots=True)
class AmdConfig:
    """The detector's thresholds (see the module docstring; frames are 20 ms)."""

    floor_rise_db: float = 0.06
    floor_fast_db: float = 1.5
    steady_db: float = 2.0
    steady_frames: int = 10
    margin_db: float = 9.0
    min_level_db: float = -55.0
    move_db: float = 3.0
    min_voiced: int = 6
    min_moves: int = 1
    pause_frames: int = 30
    reply_by_frames: int = 60
    min_reply_frames: int = 7
    max_reply_frames: int = 20
    live_max_frames: int = 90
    monologue_frames: int = 150
    relapse_frames: int = 120
    tone_purity: float = 0.5
    side_db: float = -13.0
    tone_level_db: float = -50.0
    tone_drift: float = 0.01
    tone_drift_hz: float = 4.0
    tone_steady_db: float = 2.5
    beep_hz: tuple[float, float] = (350.0, 1600.0)
    beep_frames: int = 4
    beep_gap_frames: int = 12
    beep_voiced_after: int = 3
    no_beep_frames: int = 100
    lone_tone_frames: int = 150
    fax_frames: int = 20
    fax_misses: int = 3
    v21_share: float = 0.75


Pcm = npt.NDArray[np.int16]
F32 = npt.NDArray[np.float32]


class Kind(IntEnum):
    """What a decision says (the kernel's codes; `name.lower()` is the class)."""

    NONE = 0
    LIVE_PERSON = 1
    VOICEMAIL = 2
    FAX = 3
    READY = 4


class Phase(IntEnum):
    """Where a stream is: nothing decided, a live person (still listening), a voicemail
    awaiting READY, or done (FAX or READY said)."""

    UNDECIDED = 0
    LIVE = 1
    VOICEMAIL = 2
    DONE = 3


@dataclass(frozen=True, slots=True)
class AmdDecision:
    """Stream `row` decided `kind` at `at_ms` of its audio; READY says where the beep
    ended (None: no beep)."""

    row: int
    kind: Kind
    at_ms: int
    beep_end_ms: int | None = None


def _basis() -> F32:
    n = np.arange(FRAME)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / FRAME)  # periodic Hann: a bin-centred tone is 3 bins
    arg = 2 * np.pi * np.outer(n, BINS) / FRAME
    return np.concatenate([w[:, None] * np.cos(arg), -w[:, None] * np.sin(arg)],
                          axis=1).astype(np.float32, copy=False)


_BASIS = _basis()
_INDEX = np.arange(len(BINS))[None, :]
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32, copy=False)
_WINDOW_SQ = (_WINDOW**2 * (FRAME / 2)).astype(np.float32, copy=False)
HISTORY = 5  # frames of level kept per stream
# band power → mean square: Parseval (a real signal's positive bins hold half of N·Σ(wx)²)
# over the window's mean square
_LEVEL_SCALE = 2.0 / (FRAME * float(np.sum(_WINDOW.astype(np.float64) ** 2)) * 32768.0**2)


@dataclass
class Features:
    """Per stream, one frame: band level (dBFS), tone purity and frequency, V.21 share,
    and the strongest bin away from the peak against the peak (dB)."""

    level: F32
    purity: F32
    freq: F32
    v21: F32
    side_db: F32


def features(pcm: Pcm, candidate: float = 0.3) -> Features:
    """The frame features of each row of `pcm` (n, 160). Frequency and side peak are
    worked out only where the purity reaches `candidate` (elsewhere 0 Hz and 0 dB: no
    tone), which most frames of speech and noise do not."""
    x = pcm.astype(np.float32, copy=False)
    y = x @ _BASIS
    k = len(BINS)
    p = y[:, :k] ** 2 + y[:, k:] ** 2
    bins = np.ascontiguousarray(p.T)  # (bins, n): reductions over bins run across streams
    total = (x * x) @ _WINDOW_SQ + 1e-3  # Σ(wx)², as N/2 times the positive bins' share
    level = 10 * np.log10(bins.sum(axis=0) * _LEVEL_SCALE + 1e-12)
    purity = (bins[:-2] + bins[1:-1] + bins[2:]).max(axis=0) / total  # best 3 bins
    v21 = bins[_V21].sum(axis=0) / total
    freq = np.zeros(len(p), np.float32)
    side_db = np.zeros(len(p), np.float32)
    cand = np.flatnonzero(purity >= candidate)
    if cand.size:
        pc = p[cand]
        pk = pc.argmax(axis=1)
        r = np.arange(cand.size)
        lo, hi = np.maximum(pk - 1, 0), np.minimum(pk + 1, k - 1)
        la, lb, lc = np.log(pc[r, lo] + 1e-6), np.log(pc[r, pk] + 1e-6), np.log(pc[r, hi] + 1e-6)
        den = la - 2 * lb + lc
        inner = (den < 0) & (lo < pk) & (hi > pk)
        delta = np.where(inner, 0.5 * (la - lc) / np.where(inner, den, -1), 0)
        freq[cand] = (BINS[pk] + np.clip(delta, -0.5, 0.5)) * BIN_HZ
        far = np.abs(_INDEX - pk[:, None]) > 2
        side = np.where(far, pc, 0).max(axis=1) / (pc[r, pk] + 1e-6)
        side_db[cand] = 10 * np.log10(side + 1e-9)
    return Features(level.astype(np.float32, copy=False),
                    purity.astype(np.float32, copy=False), freq,
                    v21.astype(np.float32, copy=False), side_db)


# Per-stream state: name -> (dtype, initial value).
_STATE: dict[str, tuple[type, float]] = {
    "t": (np.int32, 0), "floor": (np.float32, 0.0), "prev": (np.float32, -120.0),
    "steady": (np.int32, 0), "utt_open": (np.bool_, False), "utt_start": (np.int32, 0),
    "last_voice": (np.int32, -10**6), "voiced": (np.int32, 0), "moves": (np.int32, 0),
    "heard": (np.bool_, False), "phase": (np.int8, 0), "tone_f": (np.float32, 0.0),
    "tone_run": (np.int32, 0), "beep_on": (np.bool_, False), "beep_start": (np.int32, 0),
    "beep_f": (np.float32, 0.0), "last_tone": (np.int32, 0), "ced_run": (np.int32, 0),
    "ced_miss": (np.int32, 0),
    "cng_run": (np.int32, 0), "cng_miss": (np.int32, 0), "v21_run": (np.int32, 0),
    "v21_miss": (np.int32, 0), "born": (np.bool_, False), "after": (np.int32, 0),
    "live_start": (np.int32, -1),  # the utterance LIVE_PERSON was decided in (its start)
    "vprev": (np.int8, 0),  # bit 0: the last frame was voiced, bit 1: the one before
}


def _run(run: npt.NDArray[np.int32], miss: npt.NDArray[np.int32], hit: npt.NDArray[np.bool_],
         misses: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """A run of `hit` frames that survives up to `misses` missing ones in a row."""
    miss = np.where(hit, 0, miss + 1)
    run = np.where(hit, run + 1, np.where(miss > misses, 0, run))
    return run.astype(np.int32, copy=False), miss.astype(np.int32, copy=False)


class AmdBank:
    """A bank of answering-machine detectors, one per stream; state is one array each."""

    def __init__(self, streams: int = 0, **config: float | tuple[float, float]) -> None:
        self.config = AmdConfig(**config)  # type: ignore[arg-type]
        self.streams = 0
        self._hist = np.zeros((HISTORY, 0), np.float32)  # the last levels, oldest first
        self._s: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(0, dtype) for name, (dtype, _) in _STATE.items()}
        for _ in range(streams):
            self.add()

    def add(self) -> int:
        """Add a stream (fresh state) at the end of the bank; its index."""
        for name, (dtype, init) in _STATE.items():
            self._s[name] = np.append(self._s[name], np.array([init], dtype))
        self._hist = np.concatenate((self._hist, np.full((HISTORY, 1), -120.0, np.float32)),
                                    axis=1)
        self.streams += 1
        return self.streams - 1

    def remove(self, index: int) -> None:
        """Drop stream `index`; the streams after it move down by one."""
        for name in _STATE:
            self._s[name] = np.delete(self._s[name], index)
        self._hist = np.delete(self._hist, index, axis=1)
        self.streams -= 1

    def reset(self, index: int) -> None:
        """Start stream `index` again, as if just added."""
        for name, (_, init) in _STATE.items():
            self._s[name][index] = init
        self._hist[:, index] = -120.0

    def phase(self, index: int) -> Phase:
        """Where stream `index` is: undecided, live, voicemail (awaiting READY) or done."""
        return Phase(int(self._s["phase"][index]))

    def step(self, pcm: Pcm) -> list[AmdDecision]:
        """One frame per stream, shape (streams, 160): the decisions it made."""
        if pcm.shape != (self.streams, FRAME):
            raise ValueError(f"need a ({self.streams}, {FRAME}) frame, got {pcm.shape}")
        if not self.streams:
            return []
        s, c = self._s, self.config
        f = features(pcm, c.tone_purity)
        t = s["t"]
        first = t == 0

        # 2. voice activity and utterances
        level = f.level
        # 60 Hz hum's harmonics beat in a 20 ms frame with a period of 5 frames (50 Hz: 1):
        # steadiness compares with the level 5 frames ago, and the floor follows the
        # loudest of the last 5, so a periodic pattern is as steady as noise.
        hist = self._hist
        steady = np.where(np.abs(level - hist[0]) < c.steady_db, s["steady"] + 1, 0)
        rise = np.where(steady >= c.steady_frames, c.floor_fast_db, c.floor_rise_db)
        recent = np.maximum(np.maximum(level, hist[1]), np.maximum(hist[2], hist[3]))
        recent = np.maximum(recent, hist[4])
        floor = np.where(first, level, np.minimum(recent, s["floor"] + rise))
        hist[:-1] = hist[1:]
        hist[-1] = level
        tonal = (f.purity >= c.tone_purity) & (level >= c.tone_level_db) & (f.side_db <= c.side_db)
        v21_like = (f.v21 >= c.v21_share) & (level >= c.tone_level_db)
        voiced = ((level > s["floor"] + c.margin_db) & (level > c.min_level_db) & ~first
                  & ~tonal & ~v21_like)
        moved = voiced & (np.abs(level - s["prev"]) >= c.move_db)
        opening = voiced & ~s["utt_open"]
        utt_start = np.where(opening, t, s["utt_start"])
        n_voiced = np.where(opening, 0, s["voiced"]) + voiced
        moves = np.where(opening, 0, s["moves"]) + moved
        last_voice = np.where(voiced, t, s["last_voice"])
        utt_open = s["utt_open"] | voiced
        real = utt_open & (n_voiced >= c.min_voiced) & (moves >= c.min_moves)
        span = last_voice - utt_start + 1  # first to last voiced frame
        closing = utt_open & (t - last_voice >= c.pause_frames)
        heard_before = s["heard"]
        heard = heard_before | real

        # 3. tones and beeps
        fr = f.freq
        stable = (tonal & (np.abs(fr - s["tone_f"]) <= c.tone_drift * fr + c.tone_drift_hz)
                  & (np.abs(level - s["prev"]) <= c.tone_steady_db))
        tone_run = np.where(stable, s["tone_run"] + 1, np.where(tonal, 1, 0))
        # the run's frequency: where it began (a beep holds it, a voice glides away)
        tone_f = np.where(stable, s["tone_f"], np.where(tonal, fr, 0))
        in_beep = tonal & (fr >= c.beep_hz[0]) & (fr <= c.beep_hz[1])
        # a run that starts straight out of speech (two voiced frames before it) is a vowel
        born = np.where(tone_run == 1, (s["vprev"] & 3) == 3, s["born"] & (tone_run > 0))
        beep_now = ~s["beep_on"] & in_beep & (tone_run >= c.beep_frames) & ~born
        # and so is a "beep" that speech follows before it has ended (a frame or two of its
        # edges, with part of the tone in them, are not speech yet)
        after = np.where(in_beep, 0, s["after"] + voiced)
        beep_on = (s["beep_on"] & (after < c.beep_voiced_after)) | beep_now
        beep_start = np.where(beep_now, t - tone_run + 1, s["beep_start"])
        beep_f = np.where(beep_now, tone_f, s["beep_f"])
        last_tone = np.where(in_beep & beep_on, t, s["last_tone"])
        beep_end = beep_on & (t - last_tone >= c.beep_gap_frames)

        # 4. fax
        ced_run, s["ced_miss"] = _run(s["ced_run"], s["ced_miss"],
                                      tonal & (np.abs(fr - 2100) <= 30), c.fax_misses)
        cng_run, s["cng_miss"] = _run(s["cng_run"], s["cng_miss"],
                                      tonal & (np.abs(fr - 1100) <= 45), c.fax_misses)
        v21_run, s["v21_miss"] = _run(s["v21_run"], s["v21_miss"], v21_like, c.fax_misses)

        # 5. decisions
        phase = s["phase"]
        open_ = phase <= Phase.LIVE
        fax = open_ & ((ced_run >= c.fax_frames) | (v21_run >= c.fax_frames)
                       | ((cng_run >= c.fax_frames) & ~heard))
        und = (phase == Phase.UNDECIDED) & ~fax
        # the pause that says "a person waiting for a reply": as long as the time left
        # before `reply_by_frames` allows, within [min_reply_frames, max_reply_frames]
        pause = np.clip(c.reply_by_frames - last_voice, c.min_reply_frames,
                        c.max_reply_frames)
        live = (und & real & (t - last_voice >= pause) & (span <= c.live_max_frames)
                & ~beep_on & (tone_run < 2))  # a tone is not a pause for a reply
        vm = und & ((real & (span > c.live_max_frames)) | (beep_end & heard))
        relapse = (utt_start == s["live_start"]) & (span > c.relapse_frames)
        vm |= (phase == Phase.LIVE) & ~fax & ((real & (span > c.monologue_frames))
                                               | (beep_end & heard) | relapse)
        lone = (und & beep_end & ~heard & (last_tone - beep_start < c.lone_tone_frames)
                & (np.abs(beep_f - 1100) > 45) & (beep_start > 0))
        vm |= lone
        waiting = (phase == Phase.VOICEMAIL) | vm
        ready_beep = waiting & beep_end & (heard | lone)
        ready_quiet = (waiting & ~beep_on & ~utt_open & heard & ~ready_beep
                       & (t - last_voice >= c.no_beep_frames))
        ready = ready_beep | ready_quiet
        phase = np.where(live, Phase.LIVE, phase)
        phase = np.where(vm, Phase.VOICEMAIL, phase)
        phase = np.where(fax | ready, Phase.DONE, phase).astype(np.int8, copy=False)

        # 6. commit the state
        new = dict(
            t=t + 1, floor=floor, prev=level, steady=steady, utt_open=utt_open & ~closing,
            utt_start=utt_start, last_voice=last_voice, voiced=n_voiced, moves=moves,
            heard=heard, phase=phase, tone_f=tone_f, tone_run=tone_run,
            beep_on=beep_on & ~beep_end, beep_start=beep_start, beep_f=beep_f,
            last_tone=last_tone, ced_run=ced_run, cng_run=cng_run, v21_run=v21_run,
            born=born, after=after, live_start=np.where(live, utt_start, s["live_start"]),
            vprev=((s["vprev"] << 1) | voiced) & 3)
        for name, value in new.items():
            s[name] = np.asarray(value, _STATE[name][0])  # no copy when it is one already
        return self._decisions(t, live, vm, fax, ready_beep, ready_quiet, last_tone)

    def _decisions(self, t: npt.NDArray[np.int32], live: npt.NDArray[np.bool_],
                   vm: npt.NDArray[np.bool_], fax: npt.NDArray[np.bool_],
                   ready_beep: npt.NDArray[np.bool_], ready_quiet: npt.NDArray[np.bool_],
                   last_tone: npt.NDArray[np.int32]) -> list[AmdDecision]:
        out: list[AmdDecision] = []
        any_ = live | vm | fax | ready_beep | ready_quiet
        if not any_.any():
            return out
        for row in np.flatnonzero(any_).tolist():
            at = int(t[row] + 1) * FRAME_MS
            for kind, mask in ((Kind.LIVE_PERSON, live), (Kind.VOICEMAIL, vm), (Kind.FAX, fax)):
                if mask[row]:
                    out.append(AmdDecision(row, kind, at))
            if ready_beep[row]:
                out.append(AmdDecision(row, Kind.READY, at, int(last_tone[row] + 3) * FRAME_MS))
            elif ready_quiet[row]:
                out.append(AmdDecision(row, Kind.READY, at))
        return out

    def run_over(self, pcm: Pcm) -> list[AmdDecision]:
        """Every decision over one stream's whole signal (mono samples); for tests and
        tools. The bank must hold exactly one stream."""
        if self.streams != 1:
            raise ValueError("run_over needs a bank of exactly one stream")
        count = len(pcm) // FRAME
        blocks = np.asarray(pcm[: count * FRAME], np.int16).reshape(count, 1, FRAME)
        return [d for block in blocks for d in self.step(block)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one stream came to: the last class decided (`unknown` if none), when, and
    where the beep ended (READY's, None without one)."""

    result: str
    decision_ms: int
    beep_end_ms: int | None
    ready_ms: int | None
    first: str
    first_ms: int


def outcome(decisions: Sequence[AmdDecision], length_ms: int) -> Outcome:
    """Sum up one stream's decisions over `length_ms` of audio."""
    classes = [d for d in decisions if d.kind != Kind.READY]
    ready = [d for d in decisions if d.kind == Kind.READY]
    if not classes:
        return Outcome("unknown", length_ms, None, None, "unknown", length_ms)
    last, head = classes[-1], classes[0]
    return Outcome(last.kind.name.lower(), last.at_ms,
                   ready[0].beep_end_ms if ready else None,
                   ready[0].at_ms if ready else None, head.kind.name.lower(), head.at_ms)


def read_wav(path: Path) -> Pcm:
    """The samples of an 8 kHz mono 16-bit WAV; ValueError for anything else."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a WAV file ({exc})") from exc
    if (rate, channels, width) != (RATE, 1, 2):
        raise ValueError(f"{path}: need 8000 Hz mono 16-bit PCM, got {rate} Hz, "
                         f"{channels} channel(s), {8 * width}-bit")
    return np.frombuffer(raw, "<i2").astype(np.int16, copy=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media.dsp.amd",
                                     description="Answering-machine detection on a WAV file.")
    parser.add_argument("wav", type=Path, help="8 kHz mono 16-bit WAV")
    args = parser.parse_args(argv)
    try:
        pcm = read_wav(args.wav)
    except (OSError, ValueError) as exc:
        print(f"amd: {exc}", file=sys.stderr)
        return 2
    decisions = AmdBank(1).run_over(pcm)
    o = outcome(decisions, len(pcm) // FRAME * FRAME_MS)
    print(json.dumps({"result": o.result, "decision_ms": o.decision_ms,
                      "beep_end_ms": o.beep_end_ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
