"""Call timelines: every event of a call, in order, for `GET /v1/LiveCalls/{id}/Timeline`.

A `Timeline` per call holds its events (a bounded deque: past `max_events` the oldest go
and are counted in `dropped`). A `TimelineStore` keeps the live calls' timelines and the
finished ones for `keep_s` seconds, at most `max_calls` of them (the oldest go first);
`expired` hooks (the audio taps) hear of each one dropped.

Where the events come from, each a small hook that changes no behaviour:
- sip: the SIP stack's wire observer (`SipStack.on_wire`) sees every message sent and
  received; the store files them by SIP Call-ID. Messages of a dialog seen before its
  call has a timeline (the INVITE, 100 Trying) wait in a small buffer and join it when
  the session links its Call-ID (`link_sip`).
- callback: `CallbackClient`'s `trace` hook, once per HTTP attempt.
- action, digit, call: the call flow interpreter and the call session, on the session's
  `timeline`.
- detection, recording, conference, bridge, queue: the per-call INFO log events those
  services already write (`LOG_EVENTS`), read by a logging handler (`LogBridge`): they
  name the call (`call_id`), so no service needs to know about timelines.

Times: `at` is wall-clock UTC with milliseconds, `ms` milliseconds since the call started
(its first SIP message, else its timeline's creation), from the monotonic clock. Several
events may share a millisecond, so each also has `seq`, its number in the timeline: a
poller that asks `since_ms` = its last `ms` - 1 and skips the `seq`s it has cannot miss
one that came in the same millisecond as its last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from signaling.events import Destination
from signaling.message import Request, Response
from signaling.sdp import SessionDescription

log = logging.getLogger("voxswitch.timeline")

KEEP_S = 3600.0
MAX_CALLS = 1000
MAX_EVENTS = 5000
# SIP messages of dialogs not (yet) linked to a call: this many dialogs, each this many
# messages. An INVITE's call links within milliseconds; OPTIONS, REGISTER and MESSAGE
# never do and just age out of the buffer.
PENDING_DIALOGS = 256
PENDING_MESSAGES = 16
# static RTP payload types (RFC 3551) an SDP may use without an rtpmap
_STATIC_PT = {0: "PCMU", 3: "GSM", 8: "PCMA", 9: "G722", 18: "G729"}

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    mono: float  # the monotonic clock when it happened
    at: datetime
    kind: str
    summary: str
    fields: dict[str, Any] = field(default_factory=dict)
    seq: int = -1  # its number in its timeline, from 0 (set when added)


def iso_ms(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class Timeline:
    """One call's events, oldest first."""

    def __init__(self, call_id: str, subaccount_id: int, *, max_events: int = MAX_EVENTS,
                 clock: Clock = time.monotonic) -> None:
        self.call_id = call_id
        self.subaccount_id = subaccount_id
        self.live = True
        self.dropped = 0
        self._seq = 0
        self.ended_mono: float | None = None
        self._clock = clock
        self._t0 = clock()
        self._started = datetime.now(UTC)
        self._events: deque[TimelineEvent] = deque(maxlen=max_events)

    @property
    def started(self) -> datetime:
        return self._started

    def add(self, kind: str, summary: str, **fields: Any) -> None:
        self._append(TimelineEvent(self._clock(), datetime.now(UTC), kind, summary, fields))

    def _append(self, event: TimelineEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        if event.mono < self._t0:
            # a SIP message seen before the timeline existed (the INVITE): the call
            # started then
            self._t0 = event.mono
            self._started = event.at
        self._events.append(replace(event, seq=self._seq))
        self._seq += 1

    def ms_of(self, event: TimelineEvent) -> int:
        return max(0, round((event.mono - self._t0) * 1000))

    def view(self, since_ms: int | None = None) -> dict[str, Any]:
        """The API's JSON: events after `since_ms` (all when None), in order."""
        events = []
        for event in sorted(self._events, key=lambda e: e.mono):
            ms = self.ms_of(event)
            if since_ms is not None and ms <= since_ms:
                continue
            events.append({**event.fields, "at": iso_ms(event.at), "ms": ms,
                           "kind": event.kind, "summary": event.summary, "seq": event.seq})
        return {"call_id": self.call_id, "live": self.live, "started": iso_ms(self.started),
                "dropped": self.dropped, "events": events}


@dataclass
class _Pending:
    events: list[TimelineEvent] = field(default_factory=list)


class TimelineStore:
    """Live and finished timelines of one switch, with expiry."""

    def __init__(self, *, keep_s: float = KEEP_S, max_calls: int = MAX_CALLS,
                 max_events: int = MAX_EVENTS, clock: Clock = time.monotonic) -> None:
        self.keep_s = keep_s
        self.max_calls = max_calls
        self.max_events = max_events
        self._clock = clock
        self._live: dict[str, Timeline] = {}
        self._finished: OrderedDict[str, Timeline] = OrderedDict()  # oldest end first
        self._by_sip: dict[str, Timeline] = {}
        self._sip_of: dict[str, list[str]] = {}  # call id → its SIP Call-IDs
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        # told the call id of each finished timeline dropped (audio taps delete theirs)
        self.expired: list[Callable[[str], None]] = []
        self._sweeper: asyncio.Task[None] | None = None

    def start_sweeping(self) -> None:
        """Expire on a timer too, so an expired call's tap leaves the disk even when no
        one asks for timelines; a tenth of keep_s, between 1 s and a minute."""
        interval = min(60.0, max(1.0, self.keep_s / 10))
        self._sweeper = asyncio.ensure_future(self._sweep(interval))

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.expire()
            except Exception:
                log.exception("timeline.sweep_failed")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # ---- calls -----------------------------------------------------------------------

    def open(self, call_id: str, subaccount_id: int = 0) -> Timeline:
        timeline = self._live.get(call_id)
        if timeline is None:
            timeline = Timeline(call_id, subaccount_id, max_events=self.max_events,
                                clock=self._clock)
            self._live[call_id] = timeline
        return timeline

    def link_sip(self, timeline: Timeline, sip_call_id: str | None) -> None:
        """File the dialog `sip_call_id`'s messages (those seen already too) under
        `timeline`."""
        if not sip_call_id or self._by_sip.get(sip_call_id) is timeline:
            return
        self._by_sip[sip_call_id] = timeline
        self._sip_of.setdefault(timeline.call_id, []).append(sip_call_id)
        pending = self._pending.pop(sip_call_id, None)
        for event in pending.events if pending else ():
            timeline._append(event)

    def finish(self, call_id: str) -> None:
        """The call ended: its timeline is kept for `keep_s` (later SIP messages of its
        dialog, a BYE's 200 say, still join it)."""
        timeline = self._live.pop(call_id, None)
        if timeline is None:
            return
        timeline.live = False
        timeline.ended_mono = self._clock()
        self._finished[call_id] = timeline
        self.expire()

    def get(self, call_id: str) -> Timeline | None:
        self.expire()
        return self._live.get(call_id) or self._finished.get(call_id)

    def is_kept(self, call_id: str) -> bool:
        """Whether the call's timeline is still kept (live, or finished and not expired)."""
        return self.get(call_id) is not None

    def expire(self) -> list[str]:
        """Drop finished timelines older than keep_s and those over max_calls; their ids."""
        now = self._clock()
        gone: list[str] = []
        while self._finished:
            call_id, oldest = next(iter(self._finished.items()))
            too_many = len(self._finished) > self.max_calls
            if not too_many and now - (oldest.ended_mono or now) < self.keep_s:
                break
            del self._finished[call_id]
            for sip_call_id in self._sip_of.pop(call_id, []):
                if self._by_sip.get(sip_call_id) is oldest:
                    del self._by_sip[sip_call_id]
            gone.append(call_id)
        for call_id in gone:
            for hook in self.expired:
                try:
                    hook(call_id)
                except Exception:
                    log.exception("timeline.expired_hook_failed", extra={"call_id": call_id})
        return gone

    def __len__(self) -> int:
        return len(self._live) + len(self._finished)

    # ---- SIP ------------------------------------------------------------------------

    def observe_sip(self, direction: str, message: Request | Response,
                    peer: Destination) -> None:
        """`SipStack.on_wire`: a message sent ("out") or received ("in")."""
        event = TimelineEvent(self._clock(), datetime.now(UTC), "sip", "",
                              {"_message": message, "_direction": direction, "_peer": peer})
        timeline = self._by_sip.get(message.call_id)
        if timeline is not None:
            timeline._append(_sip_event(event))
            return
        pending = self._pending.get(message.call_id)
        if pending is None:
            pending = self._pending[message.call_id] = _Pending()
            while len(self._pending) > PENDING_DIALOGS:
                self._pending.popitem(last=False)
        if len(pending.events) < PENDING_MESSAGES:
            pending.events.append(_sip_event(event))


def _sip_event(raw: TimelineEvent) -> TimelineEvent:
    """The timeline entry of a SIP message: first line, CSeq, peer, SDP summary."""
    message: Request | Response = raw.fields["_message"]
    direction: str = raw.fields["_direction"]
    peer: Destination = raw.fields["_peer"]
    remote = f"{peer.addr[0]}:{peer.addr[1]}"
    fields: dict[str, Any] = {"direction": direction, "cseq": message.headers.get("CSeq"),
                              "remote": remote, "transport": peer.transport}
    if isinstance(message, Request):
        fields["method"] = message.method
        first = f"{message.method} {message.uri}"
    else:
        fields["status"] = message.status
        fields["reason"] = message.reason
        first = f"{message.status} {message.reason}"
    sdp = _sdp_summary(message)
    if sdp is not None:
        fields["sdp"] = sdp
    where = f"to {remote}" if direction == "out" else f"from {remote}"
    verb = "sent" if direction == "out" else "received"
    summary = f"{verb} {first} ({fields['cseq']}) {where}"
    if sdp is not None and sdp.get("codecs"):
        summary += f", SDP {'/'.join(sdp['codecs'])} port {sdp['port']}"
    return TimelineEvent(raw.mono, raw.at, "sip", summary, fields)


def _sdp_summary(message: Request | Response) -> dict[str, Any] | None:
    if not message.body or "sdp" not in (message.headers.get("Content-Type") or "").lower():
        return None
    try:
        sdp = SessionDescription.parse(message.body)
    except ValueError as exc:
        return {"error": str(exc)}
    audio = next((m for m in sdp.media if m.media == "audio"), None)
    if audio is None:
        return {"codecs": [], "port": None}
    rtpmaps = audio.rtpmaps
    codecs = []
    for fmt in audio.formats:
        pt = int(fmt) if fmt.isdigit() else -1
        codec = rtpmaps.get(pt)
        codecs.append(codec.name if codec is not None else _STATIC_PT.get(pt, fmt))
    connection = audio.connection or sdp.connection
    return {"codecs": codecs, "port": audio.port,
            "host": connection.address if connection else None,
            "direction": audio.direction or sdp.direction or "sendrecv"}


# ---- the log bridge ------------------------------------------------------------------

# per-call log events that become timeline events: event → (kind, summary format); the
# format's {names} are the record's `extra` fields (missing ones read "?")
LOG_EVENTS: dict[str, tuple[str, str]] = {
    "call.answered": ("call", "answered"),
    "detection.started": ("detection", "answering-machine detection started"),
    "detection.event": ("detection", "detection: {event} at {at_ms} ms of audio"),
    "detect.decided": ("detection", "DETECT decided {result} after {decision_ms} ms"),
    "detect.corrected": ("detection", "detection corrected to voicemail"),
    "detect.voicemail_ready": ("detection", "voicemail ready to record"),
    "recording.started": ("recording", "recording {recording_id} started"),
    "recording.saved": ("recording", "recording {recording_id} saved"),
    "recording.refused": ("recording", "recording refused: {error}"),
    "message.started": ("recording", "message {recording_id} recording"),
    "message.saved": ("recording", "message {recording_id} saved"),
    "message.discarded": ("recording", "message {recording_id} discarded"),
    "conference.joined": ("conference", "joined conference {conference} "
                                        "({num_participants} in it)"),
    "conference.left": ("conference", "left conference {conference}: {reason}"),
    "transfer.bridged": ("bridge", "bridged to call {leg}"),
    "transfer.owner_hung_up": ("bridge", "hung up while bridged to {leg}"),
    "transfer.ended": ("bridge", "transfer to {leg} ended: {status}"),
    "queue.offered": ("queue", "entered queue {queue}"),
    "queue.left": ("queue", "left queue {queue}"),
    "queue.connected": ("queue", "connected in queue {queue}"),
    "callflow.redirect": ("callback", "REDIRECT to {url}"),
    "callflow.error": ("call", "call flow error {error_code}: {error}"),
    "callflow.ended_by_204": ("callback", "callback answered 204: the flow ends"),
    "session.reinvite": ("sip", "re-INVITE: media now {direction}"),
}
_SKIP = {"call_id", "message", "msg", "args"}


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


class LogBridge(logging.Handler):
    """Turns the `LOG_EVENTS` records of calls `store` knows into their timeline events.
    Several switches in one process each have theirs; a call id belongs to one."""

    def __init__(self, store: TimelineStore) -> None:
        super().__init__(logging.INFO)
        self.store = store

    def emit(self, record: logging.LogRecord) -> None:
        spec = LOG_EVENTS.get(record.msg) if isinstance(record.msg, str) else None
        if spec is None:
            return
        from control.logs import CALL_ID  # control.logs imports nothing of ours

        call_id = getattr(record, "call_id", None) or CALL_ID.get()
        timeline = (self.store._live.get(call_id) or self.store._finished.get(call_id)
                    if call_id else None)
        if timeline is None:
            return
        extra = {k: v for k, v in vars(record).items()
                 if k not in _STANDARD_ATTRS and k not in _SKIP and not k.startswith("_")}
        kind, text = spec
        try:
            summary = text.format_map(_Default(extra))
        except (ValueError, IndexError):
            summary = record.msg
        fields = {k: v for k, v in extra.items() if _jsonable(v)}
        fields["log_event"] = record.msg
        timeline._append(TimelineEvent(self.store._clock(), datetime.now(UTC), kind, summary,
                                       fields))

    def attach(self) -> None:
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)

