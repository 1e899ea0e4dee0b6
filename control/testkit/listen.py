"""What a test phone heard, frame by frame: silence, tones (with their frequency), speech,
and in-band DTMF keys, found as the audio arrives.

Theory of operation. `Listener` takes the received 8 kHz samples (`feed`) and labels each
20 ms frame once it is complete:

- *silent*: RMS below `SILENCE_DBFS`;
- *tonal*: not silent, and the lobes of the two strongest peaks of the frame's 40 ms
  window (this frame and the one before, Hann-windowed, zero-padded FFT) hold
  `TONAL_FRACTION` of its energy. The peaks' frequencies (parabolic interpolation) and
  their shares of the energy are kept, so "a 440 Hz tone" is a frame whose peak within
  the tolerance of 440 Hz holds `TONE_SHARE` of the energy — a single tone or one of a
  pair (ringback 440+480, a DTMF key);
- *speech*: not tonal and voice-active by `media.vad.VoiceActivity` (band energy over a
  tracked noise floor, with onset and hangover, so the pauses between words stay inside
  one utterance; pauses up to `SPEECH_GAP_S` between utterances join them). A voiced
  vowel can look tonal for a frame or two, so a tonal run shorter than `MIN_TONE_S`
  inside voice activity counts as speech.

Two tones closer than about 100 Hz (ringback's 440 + 480) are one peak in 40 ms: such a
pair reads as its stronger tone.

The same frames go through the switch's own in-band DTMF detector
(`media.dsp.dtmf.DtmfDetector`), so `keys` are what the switch itself would have heard.
Times are seconds of received audio from the first packet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.dsp.dtmf import DtmfDetector
from media.vad import VoiceActivity

RATE = 8000
FRAME = 160
FRAME_S = FRAME / RATE
WINDOW = 2 * FRAME
NFFT = 4096  # zero-padded: ~2 Hz bins, for the peak's frequency
LOBE_HZ = 60.0  # half-width of a Hann main lobe over 40 ms is 50 Hz; a little leak past it
SILENCE_DBFS = -45.0
TONAL_FRACTION = 0.8
TONE_SHARE = 0.3
MIN_TONE_S = 0.15
SPEECH_GAP_S = 0.6  # a longer pause ends an utterance
_HANN = np.hanning(WINDOW)
_FREQS = np.fft.rfftfreq(NFFT, 1 / RATE)
_LOBE_BINS = round(LOBE_HZ / (RATE / NFFT))

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True)
class FrameInfo:
    """One 20 ms frame: level, whether voice-active, and its two strongest peaks as
    (frequency in Hz, share of the frame's energy), strongest first."""

    level_db: float
    voice: bool
    peaks: tuple[tuple[float, float], ...]

    @property
    def silent(self) -> bool:
        return self.level_db < SILENCE_DBFS

    @property
    def tonal(self) -> bool:
        return not self.silent and sum(share for _, share in self.peaks) >= TONAL_FRACTION

    def has_tone(self, freq: float, tolerance_hz: float) -> bool:
        return self.tonal and any(abs(f - freq) <= tolerance_hz and share >= TONE_SHARE
                                  for f, share in self.peaks)


@dataclass(frozen=True)
class Segment:
    """A run of frames of one kind: "silence", "speech", "tone" (with `freq`, the strongest
    peak's median) or "sound" (loud, neither speech nor a steady tone)."""

    kind: str
    start: float
    end: float
    freq: float | None = None

    @property
    def length(self) -> float:
        return self.end - self.start

    def __str__(self) -> str:
        what = f"tone {self.freq:.0f} Hz" if self.kind == "tone" else self.kind
        return f"{what} {self.start:.2f}-{self.end:.2f} s"


def frame_level_db(frame: Pcm) -> float:
    """RMS of a frame in dBFS (full-scale square wave = 0), at least -120."""
    rms = float(np.sqrt(np.mean(np.square(frame.astype(np.float64)))))
    return max(20 * np.log10(max(rms, 1e-6) / 32768.0), -120.0)


def window_peaks(window: npt.NDArray[np.float64]) -> tuple[tuple[float, float], ...]:
    """The two strongest spectral peaks of a 40 ms window: (Hz, share of the energy)."""
    power = np.abs(np.fft.rfft(window * _HANN, NFFT)) ** 2
    total = float(power.sum())
    if total <= 0:
        return ()
    rest = power.copy()
    peaks = []
    for _ in range(2):
        k = int(np.argmax(rest))
        if rest[k] <= 0:
            break
        lo, hi = max(k - _LOBE_BINS, 0), min(k + _LOBE_BINS + 1, len(rest))
        share = float(rest[lo:hi].sum()) / total
        freq = float(_FREQS[k])
        if 0 < k < len(power) - 1:  # parabolic interpolation on the log power
            a, b, c = np.log(power[k - 1:k + 2] + 1e-30)
            denom = a - 2 * b + c
            if denom != 0:
                freq += float(0.5 * (a - c) / denom) * (RATE / NFFT)
        peaks.append((freq, share))
        rest[lo:hi] = 0
    return tuple(peaks)


class Listener:
    """Labels received audio frame by frame; see the module docstring."""

    def __init__(self) -> None:
        self.frames: list[FrameInfo] = []
        self.keys: list[tuple[float, str]] = []  # (time, key) from the in-band detector
        self._vad = VoiceActivity(streams=1)
        self._dtmf = DtmfDetector(1)
        self._last = np.zeros(FRAME, np.int16)

    @property
    def seconds(self) -> float:
        """How much audio has been labelled."""
        return len(self.frames) * FRAME_S

    def feed(self, pcm: Pcm) -> None:
        """Label every complete frame of `pcm` past those already labelled (`pcm` is all of
        the audio so far, from the start)."""
        done = len(self.frames)
        count = len(pcm) // FRAME
        for i in range(done, count):
            frame = np.ascontiguousarray(pcm[i * FRAME:(i + 1) * FRAME], dtype=np.int16)
            voice = bool(self._vad.step(frame.reshape(1, FRAME))[0])
            window = np.concatenate((self._last, frame)).astype(np.float64)
            self._last = frame
            self.frames.append(FrameInfo(frame_level_db(frame), voice, window_peaks(window)))
            for _, key in self._dtmf.process(frame.reshape(1, FRAME)):
                self.keys.append((i * FRAME_S, key))

    def kinds(self) -> list[str]:
        """Each frame's kind: silence, tone, speech or sound, smoothed into utterances.

        A stretch of voice activity is speech from its first loud frame to its last (the
        detector's hangover after it is silence), tonal runs shorter than `MIN_TONE_S`
        and loud blips inside it included; pauses shorter than `SPEECH_GAP_S` between two
        utterances join them.
        """
        codes = []
        for f in self.frames:
            if f.tonal:
                codes.append("T")
            elif f.silent:
                codes.append("q" if f.voice else ".")
            else:
                codes.append("V" if f.voice else "s")
        min_tone = round(MIN_TONE_S / FRAME_S)
        for kind, a, b in _runs(codes):
            if kind == "T" and b - a < min_tone:
                codes[a:b] = ["s"] * (b - a)
        out = ["silence" if c in ".q" else "tone" if c == "T" else "sound" for c in codes]
        i = 0
        while i < len(codes):  # stretches of V, s and q holding some V are speech
            if codes[i] not in "Vsq":
                i += 1
                continue
            j = i
            while j < len(codes) and codes[j] in "Vsq":
                j += 1
            if "V" in codes[i:j]:
                loud = [k for k in range(i, j) if codes[k] != "q"]
                out[loud[0]:loud[-1] + 1] = ["speech"] * (loud[-1] + 1 - loud[0])
            i = j
        runs = _runs(out)
        gap = round(SPEECH_GAP_S / FRAME_S)
        for n in range(1, len(runs) - 1):
            kind, a, b = runs[n]
            if kind == "silence" and b - a < gap and runs[n - 1][0] == runs[n + 1][0] == "speech":
                out[a:b] = ["speech"] * (b - a)
        return out

    def segments(self, since: float = 0.0) -> list[Segment]:
        """Runs of one kind from `since` on; tones split where their frequency moves."""
        kinds = self.kinds()
        first = min(round(since / FRAME_S), len(kinds))
        out: list[Segment] = []
        i = first
        while i < len(kinds):
            j = i + 1
            while j < len(kinds) and kinds[j] == kinds[i] and not (
                    kinds[i] == "tone" and not self._same_tone(i, j)):
                j += 1
            freq = None
            if kinds[i] == "tone":
                freq = float(np.median([self.frames[k].peaks[0][0] for k in range(i, j)]))
            out.append(Segment(kinds[i], i * FRAME_S, j * FRAME_S, freq))
            i = j
        return out

    def _same_tone(self, a: int, b: int) -> bool:
        fa, fb = self.frames[a].peaks[0][0], self.frames[b].peaks[0][0]
        return abs(fa - fb) <= max(15.0, 0.03 * fa)

    def tone_run(self, freq: float, min_s: float, since: float, tolerance_hz: float
                 ) -> tuple[float, float] | None:
        """(start, time reached min_s) of the first run of frames holding `freq` for
        `min_s` from `since` on; one frame's dropout inside a run is ridden over."""
        need = max(1, round(min_s / FRAME_S))
        start: int | None = None
        count = misses = 0
        first = round(since / FRAME_S)
        for i in range(first, len(self.frames)):
            if self.frames[i].has_tone(freq, tolerance_hz):
                if start is None:
                    start, count = i, 0
                count += 1 + misses
                misses = 0
                if count >= need:
                    return start * FRAME_S, (i + 1) * FRAME_S
            elif start is not None:
                misses += 1
                if misses > 1:
                    start, count, misses = None, 0, 0
        return None

    def silence_run(self, min_s: float, since: float) -> tuple[float, float] | None:
        """(start, time reached min_s) of the first run of silent frames of `min_s`."""
        need = max(1, round(min_s / FRAME_S))
        run = 0
        first = round(since / FRAME_S)
        for i in range(first, len(self.frames)):
            run = run + 1 if self.frames[i].silent else 0
            if run >= need:
                return (i + 1 - run) * FRAME_S, (i + 1) * FRAME_S
        return None

    def describe(self, since: float = 0.0, limit: int = 12) -> str:
        """What was heard from `since` on, for failure messages (short runs left out)."""
        parts = [str(s) for s in self.segments(since) if s.length >= 0.06]
        if not parts:
            return "nothing" if self.seconds <= since else "nothing but short blips"
        if len(parts) > limit:
            parts = [*parts[:limit], f"... ({len(parts) - limit} more)"]
        return ", ".join(parts)


def _runs(kinds: list[str]) -> list[tuple[str, int, int]]:
    """(kind, first frame, end frame) of each run of equal kinds."""
    out = []
    i = 0
    while i < len(kinds):
        j = i
        while j < len(kinds) and kinds[j] == kinds[i]:
            j += 1
        out.append((kinds[i], i, j))
        i = j
    return out


