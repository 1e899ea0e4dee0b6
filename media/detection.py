"""Answering-machine detection on the engine's channels: who (or what) answered the call.

`DetectionMonitor` is the engine glue of `media.dsp.amd.AmdBank`, as `SilenceMonitor` is of
voice activity: an engine detect hook that runs one bank over the input frames of the
channels it watches and tells each watch's owner what the kernel decided, from the
engine's tick, in audio time (`AmdEvent.at_ms` counts the 20 ms ticks since the watch
began).

The rules of a watch, in order of its events:

1. A decision: LIVE_PERSON, VOICEMAIL or FAX, as the kernel decides them; or UNKNOWN when
   `max_s` of audio went by with none (silence, noise, hum), which ends the watch.
2. After LIVE_PERSON the watch keeps listening: a monologue with no pause for a reply, or
   a beep, corrects it to VOICEMAIL (then as 3). Otherwise it ends, silently, at `max_s`
   (or when cancelled: the owner usually stops it once it has acted on the person).
3. After VOICEMAIL comes READY, when the message should start: at the end of the beep
   (`beep_end_ms` says where it ended), or, with no beep, once the greeting has been over
   for 2 s (`beep_end_ms` None). At `max_s` with no READY yet, READY with `beep_end_ms`
   None. READY ends the watch.
4. FAX ends the watch.
5. CLOSED, whenever the channel closes first; it ends the watch.

`DetectionWatch.result` is the last class decided ("unknown" before any). Once a watch has
ended, or been cancelled, it sends nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from media.dsp.amd import FRAME_MS, AmdBank, AmdDecision, Kind
from media.watchlist import WatchList

log = logging.getLogger(__name__)


class AmdEventKind(StrEnum):
    LIVE_PERSON = "live_person"
    VOICEMAIL = "voicemail"
    FAX = "fax"
    UNKNOWN = "unknown"
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AmdEvent:
    """What a watch found, `at_ms` of audio after it began; READY only: where the beep
    ended (None when there was no beep)."""

    kind: AmdEventKind
    at_ms: int
    beep_end_ms: int | None = None


_KINDS = {Kind.LIVE_PERSON: AmdEventKind.LIVE_PERSON, Kind.VOICEMAIL: AmdEventKind.VOICEMAIL,
          Kind.FAX: AmdEventKind.FAX, Kind.READY: AmdEventKind.READY}
_ENDING = {AmdEventKind.FAX, AmdEventKind.READY, AmdEventKind.UNKNOWN, AmdEventKind.CLOSED}


class DetectionWatch:
    """One watched channel; made by `DetectionMonitor.watch`."""

    def __init__(self, monitor: DetectionMonitor, channel: Any,
                 on_event: Callable[[AmdEvent], None], max_s: float) -> None:
        self.channel = channel
        self.on_event = on_event
        self.max_frames = max(1, round(max_s * 1000 / FRAME_MS))
        self.frames = 0
        self.result = AmdEventKind.UNKNOWN.value
        self._monitor = monitor
        self._cancelled = False

    def cancel(self) -> None:
        """Stop watching (idempotent); `on_event` won't be called after this."""
        self._cancelled = True
        self._monitor._drop(self)

    def _decided(self, d: AmdDecision) -> AmdEvent:
        kind = _KINDS[d.kind]
        if kind != AmdEventKind.READY:
            self.result = kind.value
        return AmdEvent(kind, d.at_ms, d.beep_end_ms)

    def _timed_out(self) -> AmdEvent | None:
        """The event that ends the watch at `max_s`, if any."""
        at = self.frames * FRAME_MS
        if self.result == AmdEventKind.UNKNOWN:
            return AmdEvent(AmdEventKind.UNKNOWN, at)
        if self.result == AmdEventKind.VOICEMAIL:
            return AmdEvent(AmdEventKind.READY, at)
        return None


class DetectionMonitor(WatchList["DetectionWatch"]):
    """Answering-machine detection on watched channels (`config`: `AmdConfig`'s fields)."""

    def __init__(self, engine: Any, **config: Any) -> None:
        self._amd = AmdBank(**config)
        super().__init__(engine, self._amd)

    def watch(self, channel: Any, on_event: Callable[[AmdEvent], None], *,
              max_s: float = 60.0) -> DetectionWatch:
        """Listen to `channel`'s input from now on and call `on_event` from the engine's
        tick with what is found (see the module docstring for the order and the end)."""
        return self._add(DetectionWatch(self, channel, on_event, max_s))

    def _on_tick(self, channels: Sequence[Any], pcm_in: npt.NDArray[np.int16]) -> None:
        fired: list[tuple[DetectionWatch, AmdEvent]] = []
        for w in [w for w in self._watches if w.channel._slot < 0]:
            fired.append((w, AmdEvent(AmdEventKind.CLOSED, w.frames * FRAME_MS)))
            self._drop(w)
        watches = list(self._watches)
        if watches:
            decisions = self._amd.step(pcm_in[[w.channel._slot for w in watches]])
            for d in decisions:
                fired.append((watches[d.row], watches[d.row]._decided(d)))
            for w in watches:
                w.frames += 1
                ended = any(x is w and e.kind in _ENDING for x, e in fired)
                if not ended and w.frames >= w.max_frames:
                    last = w._timed_out()
                    if last is not None:
                        fired.append((w, last))
                    ended = True
                if ended:
                    self._drop(w)
        for w, event in fired:
            if not w._cancelled:  # by an earlier handler of this tick
                try:
                    w.on_event(event)
                except Exception:
                    log.exception("AMD event handler %r failed on %s", w.on_event, event)
