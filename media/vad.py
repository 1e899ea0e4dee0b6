"""Voice activity: is the caller making sound worth recording, frame by frame?

Theory of operation. `VoiceActivity` is a kernel over a bank of streams: each call to
`step` takes one 20 ms frame per stream, shape (n, 160), and returns whether each is
active. Per frame and stream:

1. level: the power between 200 and 3400 Hz (the telephone speech band) of the last
   40 ms (this frame and the one before, Hann-windowed, one real FFT), in dBFS (a
   full-scale square wave is 0). Mains hum, DC and out-of-band noise don't count, as
   they would in a raw energy measure: hum at -10 dBFS reads below -69 dB.
2. noise floor: falls at once to a quieter frame, rises by `rise_db_per_s` while the
   level stays above it. Speech dips between syllables keep it low; a steady noise
   becomes the floor within seconds and stops counting as voice.
3. loud: level above the floor by `margin_db` and above `min_level_db`.
4. onset: `onset_frames` loud frames in a row (a click is not speech), then active for
   as long as frames stay loud and `hangover_frames` after (the pauses between words).

`SilenceMonitor` is the engine glue: an engine detect hook that runs one bank over the
input frames of the channels it watches and tells each watch's owner once its channel has
been inactive for the watch's timeout, or has been watched for its maximum length
(counted in ticks, so in audio time: a recording fed by the same ticks is that long).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from media.watchlist import WatchList

RATE = 8000
FRAME = 160
FRAME_S = FRAME / RATE
WINDOW = 2 * FRAME  # samples analysed per frame: the frame and the one before
BAND_HZ = (200.0, 3400.0)
FLOOR_DB = -90.0
_freqs = np.fft.rfftfreq(WINDOW, 1 / RATE)
_BAND = (_freqs >= BAND_HZ[0]) & (_freqs <= BAND_HZ[1])
# 40 ms and a Hann window keep loud hum from leaking into the band (20 ms rectangular:
# -24 dB at 200 Hz from a 60 Hz sine). Parseval for a real FFT: mean square =
# 2·Σ|Xk|²/N² over interior bins, over the window's mean square for the signal's level.
_HANN = np.hanning(WINDOW)
_SCALE = 2.0 / (WINDOW * WINDOW * 32768.0 * 32768.0 * float(np.mean(_HANN ** 2)))


def band_level_db(windows: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """Speech-band level of each 40 ms window (rows of WINDOW samples), dBFS, at least
    FLOOR_DB."""
    spectrum = np.fft.rfft(windows * _HANN, axis=-1)[..., _BAND]
    power = (spectrum.real ** 2 + spectrum.imag ** 2).sum(axis=-1) * _SCALE
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


@dataclass
class VoiceActivity:
    """A bank of voice activity detectors, one per stream; state is one array each."""

    streams: int = 0
    margin_db: float = 9.0
    min_level_db: float = -50.0
    rise_db_per_s: float = 3.0
    initial_floor_db: float = -60.0
    onset_frames: int = 3  # 60 ms: a click is loud in two 40 ms windows
    hangover_frames: int = 15  # 300 ms
    floor: npt.NDArray[np.float64] = field(init=False)
    run: npt.NDArray[np.int64] = field(init=False)
    hang: npt.NDArray[np.int64] = field(init=False)
    last: npt.NDArray[np.int16] = field(init=False)  # each stream's previous frame

    def __post_init__(self) -> None:
        self.floor = np.full(self.streams, self.initial_floor_db)
        self.run = np.zeros(self.streams, np.int64)
        self.hang = np.zeros(self.streams, np.int64)
        self.last = np.zeros((self.streams, FRAME), np.int16)

    def add(self) -> int:
        """Add a stream (fresh state) at the end of the bank; its index."""
        self.floor = np.append(self.floor, self.initial_floor_db)
        self.run = np.append(self.run, 0)
        self.hang = np.append(self.hang, 0)
        self.last = np.concatenate((self.last, np.zeros((1, FRAME), np.int16)))
        self.streams += 1
        return self.streams - 1

    def remove(self, index: int) -> None:
        """Drop stream `index`; the streams after it move down by one."""
        self.floor = np.delete(self.floor, index)
        self.run = np.delete(self.run, index)
        self.hang = np.delete(self.hang, index)
        self.last = np.delete(self.last, index, axis=0)
        self.streams -= 1

    def step(self, frames: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
        """One frame per stream, shape (streams, 160): whether each is voice."""
        level = band_level_db(np.concatenate((self.last, frames), axis=1))
        self.last = frames.copy()
        loud = (level > self.floor + self.margin_db) & (level > self.min_level_db)
        self.run = np.where(loud, self.run + 1, 0)
        onset = self.run >= self.onset_frames
        active = onset | (self.hang > 0)
        self.hang = np.where(onset, self.hangover_frames, np.maximum(self.hang - 1, 0))
        self.floor = np.minimum(level, self.floor + self.rise_db_per_s * FRAME_S)
        return active

    def run_over(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
        """Activity of one stream's whole signal (mono samples), frame by frame; for
        tests and tools. The bank must hold exactly one stream."""
        assert self.streams == 1
        count = len(pcm) // FRAME
        blocks = np.asarray(pcm[: count * FRAME], np.int16).reshape(count, 1, FRAME)
        return np.array([self.step(block)[0] for block in blocks], dtype=bool)


class SilenceWatch:
    """One watched channel; made by `SilenceMonitor.watch`."""

    def __init__(self, monitor: SilenceMonitor, channel: Any, timeout_s: float,
                 max_s: float | None, on_end: Callable[[str], None]) -> None:
        self.channel = channel
        self.limit = max(1, round(timeout_s / FRAME_S))
        self.max_frames = None if max_s is None else max(1, round(max_s / FRAME_S))
        self.on_end = on_end
        self.frames = 0
        self.quiet_frames = 0
        self.voiced = False  # heard voice at least once
        self._monitor = monitor

    def cancel(self) -> None:
        """Stop watching (idempotent); `on_end` won't be called after this."""
        self._monitor._drop(self)

    def _end(self, voiced: bool) -> str | None:
        self.frames += 1
        if voiced:
            self.voiced, self.quiet_frames = True, 0
        else:
            self.quiet_frames += 1
        if self.quiet_frames >= self.limit:
            return SILENCE
        if self.max_frames is not None and self.frames >= self.max_frames:
            return MAX_TIME
        return None


SILENCE = "silence"
MAX_TIME = "max_time"
CLOSED = "closed"


class SilenceMonitor(WatchList["SilenceWatch"]):
    """Tells when watched channels fall silent (voice activity, not energy)."""

    def __init__(self, engine: Any, **vad: Any) -> None:
        self._vad = VoiceActivity(**vad)
        super().__init__(engine, self._vad)

    def watch(self, channel: Any, timeout_s: float, on_end: Callable[[str], None], *,
              max_s: float | None = None) -> SilenceWatch:
        """Call `on_end(reason)` once, from the engine's tick: SILENCE when `channel`'s
        input has had no voice for `timeout_s` (counted from now or from the last voice
        heard), MAX_TIME after `max_s` of audio, CLOSED when the channel closes."""
        return self._add(SilenceWatch(self, channel, timeout_s, max_s, on_end))

    def _on_tick(self, channels: Sequence[Any], pcm_in: npt.NDArray[np.int16]) -> None:
        ended = [(w, CLOSED) for w in self._watches if w.channel._slot < 0]
        live = [w for w in self._watches if w.channel._slot >= 0]
        if live:
            # the closed ones' rows are computed and dropped: one call for the bank
            slots = [max(w.channel._slot, 0) for w in self._watches]
            active = self._vad.step(pcm_in[slots]).tolist()
            for w, voiced in zip(self._watches, active, strict=True):
                reason = w._end(voiced) if w.channel._slot >= 0 else None
                if reason is not None:
                    ended.append((w, reason))
        for w, reason in ended:
            w.cancel()
            w.on_end(reason)
