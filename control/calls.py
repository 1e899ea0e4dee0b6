"""Calls as the API sees them: status, times, data, and the registry of live calls.

A `Call` is the record the REST API, the callback loop and the call log all read. The
SIP leg and media channel behind it belong to the call session (`control.session`); the
API reaches them only through the narrow `CallControl` interface so that neither side
reaches into the other.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger("voxswitch.calls")


class CallStatus(StrEnum):
    """The spec's Call Status table."""

    QUEUED = "live-queued"
    RINGING = "live-ringing"
    IN_PROGRESS = "live-in-progress"
    COMPLETED = "completed"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    CANCELED = "canceled"
    FAILED = "failed"
    RESTRICTED = "restricted"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return not self.value.startswith("live-")


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class HangupEnd(StrEnum):
    """Which end hung up first (call log `hangup_end`)."""

    API = "api"
    CALLER = "caller"


class CallControl(Protocol):
    """What the REST API may ask of a live call."""

    async def hangup(self, message: list[str] | None = None) -> None:
        """Play the optional message items (TTS text, audio URLs), then hang up."""

    async def end(self) -> None:
        """Hang up at once."""

    # LiveCalls Actions. Each returns at once: the call session schedules the work.

    async def collect(self, message: list[str] | None, options: dict[str, Any]) -> None:
        """Play the optional message items, then collect digits (Collect Digits).

        `options`: callback ({url, method}), num_digits, finish_on_key, timeout (s).
        """

    async def stop(self, what: str) -> None:
        """Stop running actions; `what` is a comma-separated list, today "AUDIO"."""

    async def tell(self, message: list[str]) -> None:
        """Play TTS text, audio URLs and dtmf:// items to this caller only (Tell)."""

    async def inject(self, actions: list[dict[str, Any]]) -> None:
        """Run these call-flow actions on the call (Inject Actions List)."""

    async def set_session_data(self, data: dict[str, Any]) -> None:
        """Replace the call's session data (Modify Session Data)."""

    async def transfer(self, message: list[str] | None, no: str,
                       caller_id_no: str | None) -> None:
        """Play the optional message items, then transfer the call to `no` (Call
        Transfer); the call's flow goes on when the transfer ends."""

    async def start_recording(self, group: str | None, pre_message: list[str] | None,
                              message: list[str] | None) -> None:
        """Start a new recording (Start Recording): `pre_message` plays before it starts,
        `message` once it has. Without a pre_message it starts before this returns and
        raises `control.recordings.RecordingRefused` when it can't."""

    async def recording(self, what: str) -> None:
        """"pause", "resume" or "stop" the call's open recordings (a no-op if none)."""

    async def leave_voicemail(self, message: list[str] | None) -> None:
        """Stop the flow, wait for the voicemail's beep (or the end of its greeting),
        play `message` and hang up (Leave Voicemail). Raises
        `control.detection.DetectionRefused` when the call has no media to analyse."""


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as in the spec's examples."""
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def utcnow() -> datetime:
    return datetime.now(UTC)


_counter = itertools.count(random.randint(100000, 899999))


def new_call_id(node: int) -> str:
    """Call ids look like the spec's `123456@7890`: a sequence number @ the node id."""
    return f"{next(_counter)}@{node}"


@dataclass
class KeyPress:
    name: str
    digits: str
    history: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digits": self.digits, "history": list(self.history)}


@dataclass
class Call:
    """One call's state, shared by the callback loop, the REST API and the call log."""

    id: str
    direction: Direction
    caller_no: str
    api_no: str
    app_id: str
    subaccount_id: int = 0
    status: CallStatus = CallStatus.QUEUED
    start_time: datetime = field(default_factory=utcnow)
    connect_time: datetime | None = None
    end_time: datetime | None = None
    parent_call_id: str | None = None
    session_data: Any = None
    custom_data: Any = None
    key_presses: list[KeyPress] = field(default_factory=list)
    recordings: list[dict[str, str]] = field(default_factory=list)
    detection: str = "unknown"
    error: str | None = None
    error_code: int | None = None
    hangup_end: HangupEnd | None = None
    sip_call_id: str | None = None
    sip_response_code: int | None = None
    sip_domain: str | None = None
    sip_forwarded_for: str | None = None
    config: dict[str, Any] | None = None
    control: CallControl | None = None
    # {id, no} of the call a QUEUE poll_connect last bridged this one with (callbacks)
    last_queue_poll_connect_call: dict[str, str] | None = None
    # every stay in a call queue, once it left: {name, queued_on, wait_s, reason}
    queue_visits: list[dict[str, Any]] = field(default_factory=list)
    # the log's service: sip_trunking for the calls a trunk carries (control.trunkcalls)
    service: str = "programmable_voice"
    # run once, synchronously, when the call ends (queues take a hung-up call out)
    on_ended: list[Callable[[Call], None]] = field(default_factory=list, repr=False)
    # monotonic clock readings for durations that do not jump with the wall clock
    _t_start: float = field(default_factory=time.monotonic, repr=False)
    _t_connect: float | None = field(default=None, repr=False)
    _t_end: float | None = field(default=None, repr=False)

    # A call's status only moves forward: queued → ringing → in progress → one final
    # status, set once. What comes late (a ring after a CANCEL, say) changes nothing.

    def mark_ringing(self) -> None:
        if self.is_live and self.status is CallStatus.QUEUED:
            self.status = CallStatus.RINGING

    def mark_connected(self) -> None:
        if not self.is_live or self.connect_time is not None:
            return
        self.status = CallStatus.IN_PROGRESS
        self.connect_time = utcnow()
        self._t_connect = time.monotonic()

    def mark_ended(self, status: CallStatus, hangup_end: HangupEnd | None) -> None:
        """End the call with final `status`; only the first call counts."""
        if not status.is_final:
            raise ValueError(f"can't end a call with status {status.value}: not final")
        if self.end_time is not None:
            return
        self.status = status
        self.end_time = utcnow()
        self._t_end = time.monotonic()
        self.hangup_end = hangup_end
        for hook in list(self.on_ended):
            try:
                hook(self)
            except Exception:
                log.exception("call.ended_hook_failed", extra={"call_id": self.id})

    def fail(self, code: int, message: str) -> None:
        """Record the first error; later ones do not overwrite it."""
        if self.error_code is None:
            self.error_code = code
            self.error = message

    @property
    def is_live(self) -> bool:
        return self.end_time is None

    def duration_ms(self) -> int:
        end = self._t_end if self._t_end is not None else time.monotonic()
        return int((end - self._t_start) * 1000)

    def connected_ms(self) -> int:
        if self._t_connect is None:
            return 0
        end = self._t_end if self._t_end is not None else time.monotonic()
        return int((end - self._t_connect) * 1000)

    def live_view(self) -> dict[str, Any]:
        """The LiveCalls representation (List Live Calls / View Live Call Detail)."""
        return {
            "id": self.id,
            "no": self.caller_no,
            "caller_id_no": self.api_no,
            "status": self.status.value,
            "detection": self.detection,
            "date": iso(self.connect_time or self.start_time),
            "session_data": self.session_data,
            "connected_time": self.connected_ms(),
            "error": self.error,
            "app_id": self.app_id,
            "subaccount_id": self.subaccount_id,
            "direction": self.direction.value,
            "parent_call_id": self.parent_call_id,
        }

    def log_record(self) -> dict[str, Any]:
        """The call log (History/Logs/Calls) representation."""
        connect_s = self.connected_ms() // 1000
        return {
            "id": self.id,
            "app_id": self.app_id,
            "subaccount_id": self.subaccount_id,
            "call_id": self.id,
            "parent_call_id": self.parent_call_id,
            "caller_no": self.caller_no,
            "api_no": self.api_no,
            "start_time": iso(self.start_time),
            "end_time": iso(self.end_time),
            "type": "voice",
            "direction": self.direction.value,
            "hangup_end": self.hangup_end.value if self.hangup_end else None,
            "duration": self.duration_ms(),
            "status": self.status.value,
            "detection": self.detection,
            "error": self.error,
            "error_code": self.error_code,
            "connect_time_billed": round(self.connected_ms() / 60000, 3),
            "connect_time_sec": connect_s,
            "connected_time": self.connected_ms(),
            "session_data": self.session_data,
            "origin_api": "CallFlows",
            "text_message": None,  # for type sms (control.messaging.message_log)
            "config": self.config,
            "sip": {"call_id": self.sip_call_id, "response_code": self.sip_response_code},
            "charge": {"total": 0.0},
            "service": self.service,
            "lrn": None,
            "created_on": iso(self.start_time),  # View Call Log's
            "updated_on": iso(self.end_time or self.start_time),
            "queues": list(self.queue_visits),  # voxswitch: its stays in call queues
            "recordings": list(self.recordings),  # voxswitch: {name, id} as in callbacks
        }


class CallRegistry:
    """Live calls, plus ended ones for five minutes (View Live Call Detail reads both)."""

    RETAIN_ENDED_S = 300.0

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._live: dict[str, Call] = {}
        self._ended: dict[str, tuple[float, Call]] = {}
        # calls added since start, by direction: /metrics derives calls per second
        self.started: Counter[Direction] = Counter()

    def add(self, call: Call) -> None:
        if call.id not in self._live:
            self.started[call.direction] += 1
        self._live[call.id] = call

    def ended(self, call: Call) -> None:
        """Move a call from live to recently ended."""
        self._live.pop(call.id, None)
        self._ended.pop(call.id, None)  # re-inserted at the back: time order holds
        self._ended[call.id] = (self._clock(), call)
        self._expire()

    def get(self, call_id: str) -> Call | None:
        """A live call, or one that ended less than five minutes ago."""
        call = self._live.get(call_id)
        if call is not None:
            return call
        self._expire()
        entry = self._ended.get(call_id)
        return entry[1] if entry else None

    def get_live(self, call_id: str) -> Call | None:
        return self._live.get(call_id)

    def live(self) -> Iterable[Call]:
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self._live)

    def _expire(self) -> None:
        # Entries go in as calls end, so the dict is in time order: drop from the front
        # until the first one still kept (a full scan per ended call would be O(n²) at a
        # few hundred calls a second).
        horizon = self._clock() - self.RETAIN_ENDED_S
        ended = self._ended
        while ended:
            cid = next(iter(ended))
            if ended[cid][0] >= horizon:
                return
            del ended[cid]
