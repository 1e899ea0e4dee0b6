"""Call queues: callers waiting by name, taken from the head by polls, one at a time.

Theory of operation. A queue is found by (scope, name), the scope being the application
and sub account of the call offered; the first offer creates it. Each waiting call is a
`QueuedCall`: the call, its member (the session), `queued_on` (wall clock, for the
views), the monotonic time it was queued (hold times) and the position it took. Positions
count from 1 at the head. A call leaves exactly once, through `QueueService._leave`, for
one `LeaveReason`: polled (QUEUE poll or REST Poll), poll_connected, removed (QUEUE
remove or REST Remove Queued Call), queue_deleted, hung_up, or flow_stopped (a blocking
offer whose flow was replaced or jumped away). Nothing is lost: every departure is
logged (`queue.left` with queue, call id, wait_s and reason), added to the call's record
(`Call.queue_visits`, the call log's `queues`) and kept in the queue's recent
departures. A call that hangs up leaves at once: the service hooks the call's end
(`Call.on_ended`), so its wait is in the call log and the others move up.

Hold-time estimate (`hold_times.estimated`): the wait a new caller at the back can
expect. Each call that was served (polled or poll_connected) leaves a pace: its wait
divided by the position it took. The estimate for position p is p times the mean pace
of the last 20 served calls of that queue. Before any call was served the estimate is
the mean hold time of the calls now queued (they have waited at least that long), and 0
for an empty queue. Callers who hung up, were removed or released are not served: their
waits are recorded but do not move the estimate.

Long poll (REST Poll): on an empty queue the request leaves a future in the queue's
waiters and `offer` hands the new call straight to the oldest one, so the poll returns
in the loop iteration the offer ran in; a timer of the loop fails the future with
QueueEmpty after the timeout instead. Each future gets exactly one outcome, so a call
handed to a poll is never also reported as a timeout.

Poll-connect: the head call is bridged with the polling call in the media engine
(`engine.bridge`), its hold audio stops, and each call's `last_queue_poll_connect_call`
names the other. Both flows go on; the bridge lasts until either call ends (then it is
undone and the other call's flow goes on alone) or the agent poll_connects again.

Choices where the spec is silent:
- `max_calls` is checked per offer: the offer errors when the queue already holds
  max_calls calls (the new one would exceed it); max_calls 0 refuses every offer.
- A call is in at most one queue; offering it while queued is an error (on_enter_error).
- An empty queue stays (with its statistics) until REST deletes it or it has been empty
  for IDLE_RETAIN_S (an hour); then it is garbage collected and reads as 404711. A Poll
  of a queue that does not exist answers 404711 at once; only an existing empty queue
  is long-polled.
- Hold times of an empty queue (average, least, greatest) are 0.
- Times are seconds rounded to milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from control.callflow.errors import FetchFailed
from control.calls import Call, iso, utcnow
from control.holdmusic import hold_music
from media.errors import MediaError

if TYPE_CHECKING:
    from media.channel import Channel

log = logging.getLogger("voxswitch.queue")

Scope = tuple[str, int]  # (app_id, subaccount_id)
PACE_WINDOW = 20  # served calls the estimate averages over
DEPARTURES_KEPT = 100
IDLE_RETAIN_S = 3600.0
POLL_TIMEOUT_S = 15.0  # REST Poll's long poll (spec: "up to 15 seconds")
MUSIC_CHUNK = 8000  # hold audio is queued a second at a time, so other audio gets in
_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")


class LeaveReason(StrEnum):
    POLLED = "polled"
    POLL_CONNECTED = "poll_connected"
    REMOVED = "removed"
    QUEUE_DELETED = "queue_deleted"
    HUNG_UP = "hung_up"
    FLOW_STOPPED = "flow_stopped"

    @property
    def served(self) -> bool:
        return self in (LeaveReason.POLLED, LeaveReason.POLL_CONNECTED)


class QueueError(Exception):
    """A queue operation that failed; `events` are the QUEUE handlers that run."""

    events: tuple[str, ...] = ("on_enter_error",)


class QueueFull(QueueError):
    events = ("on_enter_error_max_calls", "on_enter_error")


class QueueNotFound(QueueError):
    """404711."""


class CallNotQueued(QueueError):
    """404712."""


class QueueEmpty(QueueError):
    """404713."""


@runtime_checkable
class QueueMember(Protocol):
    """What a queue needs of a call: the call session implements it."""

    call: Call

    def media_channel(self) -> Channel | None:
        """The call's media channel (None before media exists or after it closed)."""

    async def audio(self, url: str) -> np.ndarray:
        """Fetch and decode an audio URL (raises FetchFailed)."""


class BridgeEngine(Protocol):
    def bridge(self, a: Channel, b: Channel) -> None: ...

    def unbridge(self, channel: Channel) -> None: ...


def valid_name(value: Any) -> str | None:
    """The queue name, or None when it is not one (letters, digits, `_` and `-`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _NAME.match(value) else None


def _s(seconds: float) -> float:
    return round(max(seconds, 0.0), 3)


@dataclass(frozen=True)
class Departure:
    """One call's stay in a queue, once it left."""

    call_id: str
    wait_s: float
    reason: LeaveReason
    position: int  # the position it took when offered


class QueuedCall:
    """One call waiting in one queue (or, once `left`, the record of its stay)."""

    def __init__(self, queue: Queue, member: QueueMember, position: int, enqueued: float,
                 queued_on: datetime, hold_audio: str | None,
                 on_connected: Callable[[Call], None] | None) -> None:
        self.queue = queue
        self.member = member
        self.position_taken = position
        self.enqueued = enqueued
        self.queued_on = queued_on
        self.hold_audio = hold_audio
        self.on_connected = on_connected
        self.reason: LeaveReason | None = None
        self.wait_s: float | None = None
        self.partner: Call | None = None  # the call it was poll_connected with
        self._last_position = position
        self._left = asyncio.Event()
        self._music: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<QueuedCall {self.call.id} queue={self.queue.name!r}>"

    @property
    def call(self) -> Call:
        return self.member.call

    @property
    def left(self) -> bool:
        return self.reason is not None

    async def wait_left(self) -> None:
        await self._left.wait()

    def hold_time(self, now: float | None = None) -> float:
        """Seconds queued: so far, or in all once it left."""
        if self.wait_s is not None:
            return self.wait_s
        return _s(self.queue.now(now) - self.enqueued)

    def position(self) -> int:
        """1 at the head; the last position it held once it left (1 when polled)."""
        if self.left:
            return self._last_position
        return self.queue.entries.index(self) + 1

    def view(self, now: float | None = None) -> dict[str, Any]:
        """The spec's queued call object."""
        call = self.call
        return {
            "call": {"id": call.id, "no": call.caller_no, "caller_id_no": call.api_no},
            "queued_on": iso(self.queued_on),
            "hold_time": self.hold_time(now),
            "position": self.position(),
        }

    # ---- hold audio ------------------------------------------------------------------

    def start_music(self, *, yield_to_flow: bool) -> None:
        """Play the hold audio while queued. With `yield_to_flow` (async offers) it stops
        for good the moment anything else is queued on the channel; otherwise other
        audio (a REST Tell) plays between two chunks and the music resumes after it."""
        if not self.left and (self._music is None or self._music.done()):
            self._music = asyncio.ensure_future(self._music_loop(yield_to_flow))

    def stop_music(self) -> None:
        # cancelling the awaiting task takes the chunk off the channel's queue
        if self._music is not None:
            self._music.cancel()
            self._music = None

    def _channel(self) -> Channel | None:
        channel = self.member.media_channel()
        return None if channel is None or channel.closed else channel

    async def _music_loop(self, yield_to_flow: bool) -> None:
        pcm = await self._music_pcm()
        pos = 0
        while not self.left:
            channel = self._channel()
            if channel is None or (yield_to_flow and channel.is_playing):
                return
            chunk = pcm[pos:pos + MUSIC_CHUNK]
            pos = 0 if pos + len(chunk) >= len(pcm) else pos + len(chunk)
            if not await channel.play(chunk):
                return

    async def _music_pcm(self) -> np.ndarray:
        if self.hold_audio:
            try:
                pcm = await self.member.audio(self.hold_audio)
                if len(pcm):
                    return pcm
            except (FetchFailed, MediaError) as exc:
                log.warning("queue.hold_audio_failed", extra={
                    "call_id": self.call.id, "url": self.hold_audio, "error": str(exc)})
        return hold_music()

    def _gone(self, reason: LeaveReason, wait_s: float, position: int) -> None:
        self.reason = reason
        self.wait_s = wait_s
        self._last_position = position
        self.stop_music()
        self._left.set()


class Queue:
    """One call queue; create through `QueueService.offer`."""

    def __init__(self, scope: Scope, name: str, clock: Callable[[], float]) -> None:
        self.scope = scope
        self.name = name
        self._clock = clock
        self.entries: list[QueuedCall] = []
        self.waiters: deque[asyncio.Future[QueuedCall]] = deque()
        self.paces: deque[float] = deque(maxlen=PACE_WINDOW)
        self.departures: deque[Departure] = deque(maxlen=DEPARTURES_KEPT)
        self.idle_since: float | None = None  # when it last became empty

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} n={len(self.entries)}>"

    def now(self, now: float | None = None) -> float:
        """`now`, or the service clock's reading when it is None."""
        return self._clock() if now is None else now

    def estimate(self, position: int | None = None, now: float | None = None) -> float:
        """The expected wait (s) at `position` (default: a new caller at the back)."""
        p = len(self.entries) + 1 if position is None else position
        if self.paces:
            return _s(p * sum(self.paces) / len(self.paces))
        return self.hold_times(now)["average"]

    def hold_times(self, now: float | None = None) -> dict[str, float]:
        """Average, least and greatest hold time of the calls now queued (0 when none)."""
        t = self.now(now)
        waits = [e.hold_time(t) for e in self.entries]
        if not waits:
            return {"average": 0.0, "least": 0.0, "greatest": 0.0}
        return {"average": _s(sum(waits) / len(waits)), "least": min(waits),
                "greatest": max(waits)}

    def view(self, now: float | None = None) -> dict[str, Any]:
        """The spec's queue object (List Queues, View Queue Details, Delete Queue)."""
        return {"name": self.name, "hold_times": {"estimated": self.estimate(now=now)}}

    def calls_view(self, now: float | None = None) -> dict[str, Any]:
        """List Queued Calls: the calls from first to last and their hold times."""
        t = self.now(now)
        return {"calls": [e.view(t) for e in self.entries], "queue_name": self.name,
                "hold_times": self.hold_times(t)}

    def by_call(self, call_id: str) -> QueuedCall | None:
        return next((e for e in self.entries if e.call.id == call_id), None)


@dataclass
class Connection:
    """A poll_connect bridge: the agent (polling call) and the caller it took."""

    queue: str
    agent: QueueMember
    caller: QueueMember
    agent_channel: Channel
    caller_channel: Channel
    hooks: tuple[Callable[[Call], None], ...] = ()


class QueueService:
    """The call queues of the switch, by scope and name."""

    def __init__(self, engine: BridgeEngine | None, *, clock: Callable[[], float] =
                 time.monotonic, wall: Callable[[], datetime] = utcnow,
                 idle_retain_s: float = IDLE_RETAIN_S) -> None:
        self._engine = engine
        self._clock = clock
        self._wall = wall
        self._retain = idle_retain_s
        self._queues: dict[tuple[Scope, str], Queue] = {}
        self._by_call: dict[str, QueuedCall] = {}
        self._connections: dict[str, Connection] = {}  # by each call's id

    # ---- finding ---------------------------------------------------------------------

    def queues(self, scope: Scope) -> list[Queue]:
        self._collect()
        return [q for (s, _), q in self._queues.items() if s == scope]

    def find(self, scope: Scope, name: str) -> Queue | None:
        self._collect()
        return self._queues.get((scope, name))

    def get(self, scope: Scope, name: str) -> Queue:
        """The queue, or QueueNotFound."""
        queue = self.find(scope, name)
        if queue is None:
            raise QueueNotFound(f"no queue {name!r}")
        return queue

    def counts(self) -> tuple[int, int]:
        """(queues, calls waiting in them) across every scope, for /metrics."""
        self._collect()
        return len(self._queues), len(self._by_call)

    def queued(self, call_id: str) -> QueuedCall | None:
        """Where the call waits now, if anywhere."""
        return self._by_call.get(call_id)

    def connection(self, call_id: str) -> Connection | None:
        """The poll_connect bridge the call is in, if any."""
        return self._connections.get(call_id)

    # ---- offering and leaving ----------------------------------------------------------

    def offer(self, scope: Scope, name: str, member: QueueMember, *,
              max_calls: float | None = None, hold_audio: str | None = None,
              on_connected: Callable[[Call], None] | None = None) -> QueuedCall:
        """Queue `member`'s call at the back of `name` (created when it does not exist);
        QueueFull, or QueueError for a call that ended or is already queued. A long poll
        waiting on the queue takes the call at once."""
        call = member.call
        if not call.is_live:
            raise QueueError(f"call {call.id} has ended")
        already = self._by_call.get(call.id)
        if already is not None:
            raise QueueError(f"call {call.id} is already queued in {already.queue.name!r}")
        queue = self.find(scope, name)
        count = len(queue.entries) if queue is not None else 0
        if max_calls is not None and count >= max_calls:
            raise QueueFull(f"queue {name!r} is full ({count} of {max_calls:g})")
        if queue is None:
            queue = self._queues[(scope, name)] = Queue(scope, name, self._clock)
            log.info("queue.created", extra={"queue": name})
        entry = QueuedCall(queue, member, count + 1, self._clock(), self._wall(), hold_audio,
                           on_connected)
        queue.entries.append(entry)
        queue.idle_since = None
        self._by_call[call.id] = entry
        call.on_ended.append(self._call_ended)
        log.info("queue.offered", extra={"queue": name, "call_id": call.id,
                                         "position": entry.position_taken})
        while queue.waiters:
            waiter = queue.waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._leave(entry, LeaveReason.POLLED))
                break
        return entry

    def leave(self, entry: QueuedCall, reason: LeaveReason) -> None:
        """Take `entry` out of its queue (idempotent)."""
        self._leave(entry, reason)

    def _leave(self, entry: QueuedCall, reason: LeaveReason) -> QueuedCall:
        if entry.left:
            return entry
        queue, call = entry.queue, entry.call
        now = self._clock()
        position = queue.entries.index(entry) + 1
        queue.entries.remove(entry)
        if not queue.entries:
            queue.idle_since = now
        if self._by_call.get(call.id) is entry:
            del self._by_call[call.id]
        if self._call_ended in call.on_ended:
            call.on_ended.remove(self._call_ended)
        wait = now - entry.enqueued
        if reason.served:
            queue.paces.append(wait / entry.position_taken)
        queue.departures.append(Departure(call.id, _s(wait), reason, entry.position_taken))
        call.queue_visits.append({"name": queue.name, "queued_on": iso(entry.queued_on),
                                  "wait_s": _s(wait), "reason": reason.value})
        entry._gone(reason, _s(wait), position)
        log.info("queue.left", extra={"queue": queue.name, "call_id": call.id,
                                      "wait_s": _s(wait), "reason": reason.value,
                                      "position": position})
        return entry

    def _call_ended(self, call: Call) -> None:
        entry = self._by_call.get(call.id)
        if entry is not None:
            self._leave(entry, LeaveReason.HUNG_UP)

    # ---- polling -----------------------------------------------------------------------

    def peek(self, scope: Scope, name: str) -> QueuedCall:
        """The head call, left in place; QueueNotFound or QueueEmpty."""
        queue = self.get(scope, name)
        if not queue.entries:
            raise QueueEmpty(f"queue {name!r} is empty")
        return queue.entries[0]

    def poll(self, scope: Scope, name: str) -> QueuedCall:
        """Release the head call (its flow goes on); QueueNotFound or QueueEmpty."""
        return self._leave(self.peek(scope, name), LeaveReason.POLLED)

    async def wait_poll(self, scope: Scope, name: str,
                        timeout: float = POLL_TIMEOUT_S) -> QueuedCall:
        """`poll`, waiting up to `timeout` s for an offer when the queue is empty
        (QueueEmpty then); QueueNotFound at once for an unknown queue, or when the queue
        is deleted meanwhile."""
        queue = self.get(scope, name)
        if queue.entries:
            return self._leave(queue.entries[0], LeaveReason.POLLED)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[QueuedCall] = loop.create_future()
        queue.waiters.append(waiter)

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(QueueEmpty(f"queue {name!r} is empty"))

        timer = loop.call_later(timeout, expire)
        try:
            return await waiter
        finally:
            timer.cancel()
            if waiter in queue.waiters:
                queue.waiters.remove(waiter)

    def remove(self, scope: Scope, name: str, call_id: str,
               reason: LeaveReason = LeaveReason.REMOVED) -> QueuedCall:
        """Take the call out, wherever it is in the queue (its flow goes on);
        QueueNotFound or CallNotQueued."""
        entry = self.get(scope, name).by_call(call_id)
        if entry is None:
            raise CallNotQueued(f"call {call_id!r} is not in queue {name!r}")
        return self._leave(entry, reason)

    def delete(self, scope: Scope, name: str) -> dict[str, Any]:
        """Delete the queue: its calls are released to go on with their flows and long
        polls fail with QueueNotFound. The queue's view as it was; QueueNotFound."""
        queue = self.get(scope, name)
        view = queue.view()
        for entry in list(queue.entries):
            self._leave(entry, LeaveReason.QUEUE_DELETED)
        for waiter in queue.waiters:
            if not waiter.done():
                waiter.set_exception(QueueNotFound(f"queue {name!r} was deleted"))
        queue.waiters.clear()
        del self._queues[(scope, name)]
        log.info("queue.deleted", extra={"queue": name})
        return view

    # ---- poll_connect --------------------------------------------------------------------

    def poll_connect(self, scope: Scope, name: str, agent: QueueMember) -> QueuedCall:
        """Take the head call and bridge it with `agent`'s call; QueueNotFound,
        QueueEmpty, or QueueError when the two cannot be bridged (the head call then
        stays queued)."""
        head = self.peek(scope, name)
        if self._engine is None:
            raise QueueError("this switch has no media engine to bridge calls")
        a, b = agent.media_channel(), head.member.media_channel()
        if a is None or a.closed or b is None or b.closed:
            raise QueueError("both calls need media to be connected")
        previous = self._connections.get(agent.call.id)
        if previous is not None:
            self._disconnect(previous, "reconnected")
        try:
            self._engine.bridge(a, b)
        except MediaError as exc:
            raise QueueError(f"can't connect {agent.call.id} with {head.call.id}: "
                             f"{exc}") from None
        head.partner = agent.call
        self._leave(head, LeaveReason.POLL_CONNECTED)
        caller = head.member
        agent.call.last_queue_poll_connect_call = {"id": caller.call.id,
                                                   "no": caller.call.caller_no}
        caller.call.last_queue_poll_connect_call = {"id": agent.call.id,
                                                    "no": agent.call.caller_no}
        conn = Connection(name, agent, caller, a, b)

        def ended(_call: Call) -> None:
            self._disconnect(conn, "hung_up")

        conn.hooks = (ended,)
        for member in (agent, caller):
            self._connections[member.call.id] = conn
            member.call.on_ended.append(ended)
        log.info("queue.connected", extra={"queue": name, "call_id": caller.call.id,
                                           "agent": agent.call.id})
        if head.on_connected is not None:
            head.on_connected(agent.call)
        return head

    def _disconnect(self, conn: Connection, why: str) -> None:
        for member in (conn.agent, conn.caller):
            if self._connections.get(member.call.id) is conn:
                del self._connections[member.call.id]
            for hook in conn.hooks:
                if hook in member.call.on_ended:
                    member.call.on_ended.remove(hook)
        a, b = conn.agent_channel, conn.caller_channel
        if self._engine is not None and not a.closed and a.bridged_to is b:
            self._engine.unbridge(a)
        log.info("queue.disconnected", extra={"queue": conn.queue, "agent": conn.agent.call.id,
                                              "call_id": conn.caller.call.id, "why": why})

    # ---- garbage -----------------------------------------------------------------------

    def _collect(self) -> None:
        now = self._clock()
        for key, queue in list(self._queues.items()):
            if not queue.entries and not queue.waiters and queue.idle_since is not None \
                    and now - queue.idle_since >= self._retain:
                del self._queues[key]
                log.info("queue.collected", extra={"queue": queue.name})
