"""Sans-I/O RFC 4733 telephone-events: a receiver that turns packets into events, and a
sender that turns a digit string into one packet (or none) per ptime tick.

Theory of operation (receiver). An event is keyed by its RTP timestamp, which stays
fixed while its `duration` grows (RFC 4733 §2.5.1.2); the end packet is sent three
times (§2.5.1.4). So the receiver keeps the key of the current event and reports:

- `TelephoneEventStarted` on the first packet of a new key to arrive, whatever it is:
  the marked start, a continuation (start lost) or an end packet (all else lost). The
  digit is known on that packet, so it is reported at onset;
- `TelephoneEventEnded` once: on the first end packet, when a newer event replaces an
  unfinished one, or from `handle_timer` when no packet came for `end_timeout`.

A packet with a different timestamp is a new event unless it is stale: older by
timestamp (serial arithmetic modulo 2^32) *and* by sequence number (modulo 2^16), i.e.
a late packet of an event already replaced. Requiring both keeps a sender that resets
its timestamp (sequence moving on) from being ignored, and a long talk spurt that wraps
the sequence space from hiding the next event. A repeat of the same digit is a new
timestamp, hence a new event. A new SSRC starts afresh. A long event split into
segments (§2.5.1.3: next segment's timestamp = previous timestamp + its duration, no
marker) continues the current event. Time (`now`) is always an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import TelephoneEventEnded, TelephoneEventStarted
from .rtp import DTMF_EVENTS, TelephoneEvent, pack_telephone_event

ReceiverEvent = TelephoneEventStarted | TelephoneEventEnded

_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
_SEQ_MOD = 1 << 16
_SEQ_HALF = 1 << 15
_NO_EVENTS: tuple[ReceiverEvent, ...] = ()


def _older(a: int, b: int, modulo: int, half: int) -> bool:
    """Serial-number order (RFC 1982): is `a` before `b`?"""
    return a != b and (b - a) % modulo < half


class TelephoneEventReceiver:
    """One inbound stream's RFC 4733 receiver; see the module docstring."""

    def __init__(self, *, end_timeout: float = 0.5) -> None:
        # Senders refresh an event every 50 ms (§2.5.1.2 suggests it); 0.5 s without a
        # packet is several losses in a row, so the event is over.
        self.end_timeout = end_timeout
        self._ssrc: int | None = None
        self._ts = 0  # timestamp of the current (last) event's current segment
        self._event = -1
        self._seq = 0  # highest sequence number seen
        self._base = 0  # duration of earlier segments of a long event
        self._duration = 0
        self._open = False  # started and not yet ended
        self._last_at = 0.0

    def feed(
        self, seq: int, ts: int, marker: bool, ssrc: int, event: TelephoneEvent, now: float
    ) -> tuple[ReceiverEvent, ...]:
        """Take one telephone-event packet; return what it started and/or ended."""
        if ssrc != self._ssrc:
            out = self._close(now, timed_out=True)
            self._ssrc = ssrc
            return out + self._start(seq, ts, ssrc, event, now)
        if ts == self._ts and event.event == self._event:
            if _older(self._seq, seq, _SEQ_MOD, _SEQ_HALF):
                self._seq = seq
            return self._update(event, now)
        if self._continues_segment(ts, marker, event):
            self._base += (ts - self._ts) % _TS_MOD
            self._ts = ts
            self._duration = 0
            return self._update(event, now)
        if _older(ts, self._ts, _TS_MOD, _TS_HALF) and _older(seq, self._seq, _SEQ_MOD, _SEQ_HALF):
            return _NO_EVENTS  # a late packet of an event already replaced
        return self._close(now, timed_out=False) + self._start(seq, ts, ssrc, event, now)

    def get_timer(self) -> float | None:
        """When `handle_timer` should be called: only while an event is open."""
        return self._last_at + self.end_timeout if self._open else None

    def handle_timer(self, now: float) -> tuple[ReceiverEvent, ...]:
        """End the open event if no packet came for `end_timeout`."""
        if self._open and now >= self._last_at + self.end_timeout:
            return self._close(now, timed_out=True)
        return _NO_EVENTS

    @property
    def active(self) -> bool:
        """True while an event has started and not ended."""
        return self._open

    @property
    def duration(self) -> int:
        """The current (or last) event's duration so far in samples, all segments."""
        return self._base + self._duration

    def _start(
        self, seq: int, ts: int, ssrc: int, event: TelephoneEvent, now: float
    ) -> tuple[ReceiverEvent, ...]:
        self._ts = ts
        self._event = event.event
        self._seq = seq
        self._base = 0
        self._duration = 0
        self._open = True
        started = TelephoneEventStarted(event=event.event, timestamp=ts, ssrc=ssrc, at=now)
        return (started, *self._update(event, now))

    def _update(self, event: TelephoneEvent, now: float) -> tuple[ReceiverEvent, ...]:
        if not self._open:
            return _NO_EVENTS  # redundant end packet, or a late one of an ended event
        self._last_at = now
        # Reordered packets must not shrink the duration.
        self._duration = max(self._duration, event.duration)
        if event.end:
            return self._close(now, timed_out=False)
        return _NO_EVENTS

    def _continues_segment(self, ts: int, marker: bool, event: TelephoneEvent) -> bool:
        return (
            self._open
            and not marker
            and event.event == self._event
            and self._duration > 0
            and (ts - self._ts) % _TS_MOD == self._duration
        )

    def _close(self, now: float, *, timed_out: bool) -> tuple[ReceiverEvent, ...]:
        if not self._open:
            return _NO_EVENTS
        self._open = False
        assert self._ssrc is not None
        ended = TelephoneEventEnded(
            event=self._event,
            timestamp=(self._ts - self._base) % _TS_MOD,
            ssrc=self._ssrc,
            duration=self._base + self._duration,
            at=now,
            timed_out=timed_out,
        )
        return (ended,)


# --- sender ---

DIGIT_CHARS = DTMF_EVENTS + "abcd"
END_PACKETS = 3  # RFC 4733 §2.5.1.4: the final packet is sent three times
DEFAULT_VOLUME = 10  # -10 dBm0, as the power level of the in-band equivalent


def parse_dtmf_string(digits: str) -> list[str]:
    """Split a dial string into digits ("0"-"9", "*", "#", "A"-"D") and "-" pauses.

    Spaces are ignored and a-d are taken as A-D; anything else raises `ValueError`.
    """
    out = []
    for ch in digits:
        if ch == " ":
            continue
        if ch == "-" or (len(ch) == 1 and ch in DIGIT_CHARS):
            out.append(ch.upper())
        else:
            raise ValueError(
                f"DTMF string {digits!r} has {ch!r}: accepted are 0-9 * # A-D, "
                "'-' for a pause and spaces"
            )
    return out


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event packet for this tick. On `start` the caller fixes the event's
    RTP timestamp (its current media timestamp) and uses it for every packet after."""

    payload: bytes
    marker: bool
    start: bool


class TelephoneEventSender:
    """The RFC 4733 packets for a dial string, pulled one tick at a time with `tick()`.

    Per digit: one packet per ptime with the duration growing by a ptime's samples (the
    first already covers one ptime), marker on the first, then the end packet three
    times, one per tick; the redundant end packets fall inside the inter-digit gap.
    Gaps and "-" pauses are ticks with no packet (`tick()` returns None), when the
    caller sends audio as usual. The plan is built up front (a few hundred entries at
    most), so `done` is known on the tick that sends the last packet.
    """

    def __init__(
        self,
        digits: str,
        *,
        tone_ms: int = 100,
        gap_ms: int = 250,
        dash_ms: int = 250,
        ptime_ms: int = 20,
        volume: int = DEFAULT_VOLUME,
    ) -> None:
        if tone_ms <= 0 or gap_ms < 0 or dash_ms < 0:
            raise ValueError("DTMF tone_ms must be positive, gap_ms and dash_ms not negative")
        if tone_ms * 8 > 0xFFFF:
            raise ValueError("DTMF tone_ms must be at most 8191 ms (one RFC 4733 event)")
        self.items = parse_dtmf_string(digits)
        self.volume = volume
        self._spp = ptime_ms * 8
        self._plan: list[EventPacket | None] = []
        # For each planned packet, the plan index just past its event's last end packet.
        self._event_end: list[int] = []
        self._pos = 0
        self._build(tone_ms * 8, round(gap_ms / ptime_ms), round(dash_ms / ptime_ms))

    @property
    def done(self) -> bool:
        return self._pos >= len(self._plan)

    @property
    def in_event(self) -> bool:
        """True between an event's first packet and its last end packet."""
        pos = self._pos
        return 0 < pos < len(self._plan) and pos < self._event_end[pos - 1]

    def tick(self) -> EventPacket | None:
        """This tick's packet, or None (no event now: send audio, or nothing is left)."""
        pos = self._pos
        if pos >= len(self._plan):
            return None
        self._pos = pos + 1
        return self._plan[pos]

    def stop(self) -> None:
        """Stop now, except for the end packets of an event under way, so that the far
        end never sees a key stuck down."""
        pos = self._pos
        if not self.in_event:
            del self._plan[pos:]
            return
        last = self._plan[pos - 1]
        assert last is not None
        sent = TelephoneEvent.parse(last.payload)
        if not sent.end:
            end = pack_telephone_event(sent.event, True, self.volume, sent.duration + self._spp)
            self._plan[pos:] = [EventPacket(end, marker=False, start=False)] * END_PACKETS
        else:
            del self._plan[self._event_end[pos - 1] :]

    def _build(self, tone: int, gap_ticks: int, dash_ticks: int) -> None:
        plan = self._plan
        gap = dashes = 0
        for item in self.items:
            if item == "-":
                dashes += dash_ticks
                continue
            self._pause(gap + dashes)
            start = len(plan)
            code = DTMF_EVENTS.index(item)
            duration = self._spp
            while duration < tone:
                first = len(plan) == start
                payload = pack_telephone_event(code, False, self.volume, duration)
                plan.append(EventPacket(payload, marker=first, start=first))
                duration += self._spp
            end = pack_telephone_event(code, True, self.volume, tone)
            for _ in range(END_PACKETS):
                first = len(plan) == start
                plan.append(EventPacket(end, marker=first, start=first))
            self._event_end.extend([len(plan)] * (len(plan) - start))
            # The redundant end packets already count toward the gap to the next digit.
            gap = max(0, gap_ticks - (END_PACKETS - 1))
            dashes = 0
        # Trailing "-" pauses delay completion; the gap after the last digit does not.
        self._pause(dashes)

    def _pause(self, ticks: int) -> None:
        self._plan.extend([None] * ticks)
        self._event_end.extend([-1] * ticks)


class TelephoneEventRelay:
    """One event received on another stream, re-sent live on this one (a bridge's RFC 4733
    pass-through); pulled one tick at a time with `tick()`, like `TelephoneEventSender`.

    The first tick sends the start (marker). Each tick after, while the source event
    lasts, a continuation carries the longest duration the source has reported so far
    (`update`): the far end sees the key go down one tick after it did here and stay down
    as long. `end` (the source's end packet) sends the end packet three times with the
    source's final duration. A source that goes quiet for `timeout_ticks` (its end packets
    lost) is ended with the last duration, so the far end never sees a key stuck down.
    Durations are capped at 0xFFFF samples: a press longer than 8.19 s is relayed as one
    event of that length (§2.5.1.3 segments are not re-created).
    """

    def __init__(
        self, event: int, *, volume: int = DEFAULT_VOLUME, timeout_ticks: int = 25
    ) -> None:
        self.event = event
        self.volume = volume
        self.timeout_ticks = timeout_ticks
        self._duration = 0
        self._started = False
        self._ended = False
        self._ends_left = END_PACKETS
        self._idle = 0

    @property
    def done(self) -> bool:
        return self._ends_left == 0

    @property
    def in_event(self) -> bool:
        """True between the first packet sent and the last end packet."""
        return self._started and not self.done

    @property
    def duration(self) -> int:
        """The duration the next packet carries, in samples."""
        return self._duration

    def update(self, duration: int) -> None:
        """The source event is still down, `duration` samples so far."""
        if not self._ended:
            self._duration = max(self._duration, min(duration, 0xFFFF))
            self._idle = 0

    def end(self, duration: int) -> None:
        """The source event ended after `duration` samples."""
        if not self._ended:
            self._duration = max(self._duration, min(duration, 0xFFFF))
            self._ended = True

    def stop(self) -> None:
        """End now: the end packets if the event was started, else nothing at all."""
        if not self._started:
            self._ends_left = 0
        self._ended = True

    def tick(self) -> EventPacket | None:
        """This tick's packet; None once done."""
        if self._ends_left == 0:
            return None
        start = not self._started
        self._started = True
        if not self._ended:
            self._idle += 1
            self._ended = self._idle > self.timeout_ticks
        if self._ended:
            self._ends_left -= 1
        payload = pack_telephone_event(self.event, self._ended, self.volume, self._duration)
        return EventPacket(payload, marker=start, start=start)
