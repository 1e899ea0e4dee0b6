"""A fixed-delay jitter buffer for one inbound RTP stream.

Theory of operation. Packets are keyed by their extended sequence number (RFC 3550
§A.1: the 16-bit number plus a count of wraps), so reordering and wrap at 65535 are just
integer order. The engine calls `pop()` once per ptime tick:

- IDLE: nothing received yet (or the stream stopped); `pop()` returns None.
- BUFFERING: the first packet arrived; `pop()` returns None for `depth` ticks while the
  buffer fills, which is the fixed playout delay that absorbs jitter.
- PLAYING: each `pop()` returns the frame with the next extended sequence number, or
  None when that packet is missing but later ones are here (a loss: the caller conceals
  it with silence). When the buffer runs dry the stream is considered paused: back to
  IDLE, and the next packet starts a new playout delay, so a sender that stops and
  restarts never plays its first packets late.

A packet older than the playout point is too late and dropped, as is a duplicate. A
sequence jump larger than `max_jump` packets (forward or back), a timestamp jump larger
than `max_jump_samples`, or a new SSRC means the sender restarted: the buffer resyncs
(flushes and starts a new playout delay). If a sender runs fast, the buffer is kept at
no more than `capacity` frames by dropping the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class JitterState(Enum):
    IDLE = "idle"
    BUFFERING = "buffering"
    PLAYING = "playing"


# Module-level aliases: push/pop run once per packet and tick on every channel.
_IDLE = JitterState.IDLE
_BUFFERING = JitterState.BUFFERING
_PLAYING = JitterState.PLAYING


@dataclass(slots=True)
class JitterStats:
    """Counters of what the buffer did with the packets it was given."""

    pushed: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    overflow: int = 0
    resyncs: int = 0


class JitterBuffer:
    """Per-channel jitter buffer with a fixed depth; see the module docstring."""

    def __init__(
        self,
        *,
        depth_ms: int = 60,
        ptime_ms: int = 20,
        capacity_ms: int = 200,
        max_jump: int = 100,
        max_jump_samples: int = 8000 * 10,
    ) -> None:
        if ptime_ms <= 0 or depth_ms < 0:
            raise ValueError("jitter buffer depth and ptime must be positive")
        self.depth = max(1, round(depth_ms / ptime_ms))
        self.capacity = max(self.depth + 1, round(capacity_ms / ptime_ms))
        self.max_jump = max_jump
        self.max_jump_samples = max_jump_samples
        self.stats = JitterStats()
        self.state = _IDLE
        self._frames: dict[int, bytes] = {}
        self._ssrc: int | None = None
        self._max_ext = -1  # highest extended seq received in this stream; -1: none yet
        self._last_ts = 0
        self._next = 0  # extended seq to play next (the playout point)
        self._wait = 0  # ticks spent BUFFERING
        self._has_played = False  # whether _next is a real playout point yet

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def idle(self) -> bool:
        """True when `pop()` would do nothing: the engine may stop calling it."""
        return self.state is _IDLE and not self._frames

    def reset(self) -> None:
        """Forget the stream: the next packet starts a new one."""
        self._frames.clear()
        self._ssrc = None
        self._max_ext = -1
        self._has_played = False
        self.state = _IDLE

    def push(self, seq: int, ts: int, ssrc: int, payload: bytes) -> bool:
        """Offer a packet; returns True if it was buffered, False if dropped."""
        max_ext = self._max_ext
        if ssrc == self._ssrc and max_ext >= 0:
            # Fast path, the common case: the stream moves forward by a sane amount.
            delta = (seq - max_ext) & 0xFFFF
            if (
                0 < delta <= self.max_jump
                and ((ts - self._last_ts) & 0xFFFFFFFF) <= self.max_jump_samples
            ):
                self.stats.pushed += 1
                ext = max_ext + delta
                self._max_ext = ext
                self._last_ts = ts
                self._frames[ext] = payload
                if self.state is _IDLE:
                    self._begin_buffering()
                if len(self._frames) > self.capacity:
                    self._trim()
                return True
        return self._push_slow(seq, ts, ssrc, payload)

    def pop(self) -> bytes | None:
        """Take the frame due this tick; None means conceal with silence."""
        if self.state is _PLAYING:
            frame = self._frames.pop(self._next, None)
            if frame is not None:
                self._next += 1
                self.stats.played += 1
                return frame
        return self._pop_slow()

    def _push_slow(self, seq: int, ts: int, ssrc: int, payload: bytes) -> bool:
        self.stats.pushed += 1
        if self._max_ext < 0 or ssrc != self._ssrc:
            return self._start(seq, ts, ssrc, payload)
        ext = self._extend(seq)
        jump = ext - self._max_ext
        ts_jump = ((ts - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if abs(jump) > self.max_jump or abs(ts_jump) > self.max_jump_samples:
            return self._start(seq, ts, ssrc, payload)
        if ext in self._frames:
            self.stats.duplicates += 1
            return False
        if self._has_played and ext < self._next:
            self.stats.late += 1
            return False
        if jump > 0:
            self._max_ext = ext
            self._last_ts = ts
        self._frames[ext] = payload
        if self.state is _IDLE:
            self._begin_buffering()
        self._trim()
        return True

    def _pop_slow(self) -> bytes | None:
        if self.state is _BUFFERING:
            self._wait += 1
            if self._wait < self.depth:
                return None
            self.state = _PLAYING
            self._has_played = True
            # Start at the oldest buffered packet: one that arrived reordered during the
            # playout delay is played, not declared late.
            self._next = min(self._frames)
        elif self.state is _IDLE:
            return None
        frame = self._frames.pop(self._next, None)
        if frame is not None:
            self._next += 1
            self.stats.played += 1
            return frame
        if not self._frames:
            # Ran dry: the sender paused (or the network stalled). Keep the playout point
            # so stragglers still count as late, and re-buffer on the next packet.
            self.state = _IDLE
            return None
        self._next += 1
        self.stats.lost += 1
        return None

    def _start(self, seq: int, ts: int, ssrc: int, payload: bytes) -> bool:
        if self._max_ext >= 0:
            self.stats.resyncs += 1
        self._frames.clear()
        self._has_played = False
        self._ssrc = ssrc
        # Start the extended numbering one cycle up so that reordered packets from just
        # before the first one still get non-negative, ordered numbers.
        self._max_ext = 0x10000 + seq
        self._last_ts = ts
        self._frames[self._max_ext] = payload
        self._next = self._max_ext
        self._begin_buffering()
        return True

    def _begin_buffering(self) -> None:
        self.state = _BUFFERING
        self._wait = 0

    def _extend(self, seq: int) -> int:
        # RFC 3550 §A.1: pick the extended number closest to the highest one seen.
        delta = (seq - self._max_ext) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self._max_ext + delta

    def _trim(self) -> None:
        # A sender running fast (or a burst) must not grow the delay past capacity.
        while len(self._frames) > self.capacity:
            oldest = min(self._frames)
            del self._frames[oldest]
            self.stats.overflow += 1
            self._next = max(self._next, oldest + 1)
