"""Call queues: the service's state on a fake clock (order, positions, hold times and the
estimate, max_calls, long polls, every way out, delete, garbage collection), what it asks
of the engine (bridges) and of the members' channels (hold audio; real engine channels,
no ticks: the audio itself is tested in tests/media)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from control.callflow.errors import FetchFailed
from control.calls import Call, CallStatus, Direction, HangupEnd
from control.holdmusic import hold_music
from control.queues import (
    MUSIC_CHUNK,
    PACE_WINDOW,
    CallNotQueued,
    Departure,
    LeaveReason,
    QueuedCall,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueMember,
    QueueNotFound,
    QueueService,
    valid_name,
)
from media.channel import Channel
from media.engine import MediaEngine

SCOPE = ("app", 0)
T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
HOLD_PCM = np.full(12000, 77, dtype=np.int16)


class Clock:
    """Monotonic seconds and the wall clock, moved together by `advance`."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now - 500.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Member:
    """A call as the queue sees it: a Call, maybe a real engine channel."""

    def __init__(self, call_id: str, channel: Channel | None = None, *,
                 no: str = "+17145551212", audio_fails: bool = False) -> None:
        self.call = Call(id=call_id, direction=Direction.INBOUND, caller_no=no,
                         api_no="+19495551212", app_id="app")
        self.channel = channel
        self.audio_fails = audio_fails
        self.fetched: list[str] = []

    def media_channel(self) -> Channel | None:
        return self.channel

    async def audio(self, url: str) -> np.ndarray:
        self.fetched.append(url)
        if self.audio_fails:
            raise FetchFailed(f"could not fetch {url}")
        return HOLD_PCM

    def hang_up(self) -> None:
        self.call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: MediaEngine, clock: Clock) -> QueueService:
    return QueueService(engine, clock=clock, wall=clock.wall)


MakeMember = Callable[..., Member]


@pytest.fixture
def member() -> MakeMember:
    count = iter(range(1, 1000))

    def make(**kwargs: Any) -> Member:
        n = next(count)
        return Member(f"{n}@1", no=f"+1714555{n:04d}", **kwargs)

    return make


@pytest.fixture
def media_member(engine: MediaEngine) -> Callable[..., Any]:
    count = iter(range(500, 1000))

    async def make(**kwargs: Any) -> Member:
        n = next(count)
        return Member(f"{n}@1", await engine.open_channel(), no=f"+1310555{n:04d}", **kwargs)

    return make


def offer(service: QueueService, m: Member, name: str = "sales", **kw: Any) -> QueuedCall:
    return service.offer(SCOPE, name, m, **kw)


def ids(service: QueueService, name: str = "sales") -> list[str]:
    return [e.call.id for e in service.get(SCOPE, name).entries]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# ---- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("value, name", [
    ("high-priority", "high-priority"), ("low_priority_2", "low_priority_2"), (42, "42"),
    (" sales ", "sales"), ("", None), ("two words", None), ("a/b", None), ("${q}", None),
    ("x" * 129, None), (None, None), (True, None), (1.5, None),
])
def test_queue_names(value: Any, name: str | None) -> None:
    assert valid_name(value) == name


# ---- offering, order and the views ------------------------------------------------------


def test_first_offer_creates_the_queue_and_calls_line_up(service: QueueService,
                                                         member: MakeMember,
                                                         clock: Clock) -> None:
    assert service.find(SCOPE, "sales") is None
    a, b, c = member(), member(), member()
    first = offer(service, a)
    clock.advance(10)
    offer(service, b)
    clock.advance(5)
    offer(service, c)
    clock.advance(2.5)
    queue = service.get(SCOPE, "sales")
    assert isinstance(a, QueueMember)
    assert ids(service) == ["1@1", "2@1", "3@1"]
    assert [e.position() for e in queue.entries] == [1, 2, 3]
    assert [e.position_taken for e in queue.entries] == [1, 2, 3]
    assert first.view() == {
        "call": {"id": "1@1", "no": "+17145550001", "caller_id_no": "+19495551212"},
        "queued_on": "2026-11-27T12:00:00.000Z", "hold_time": 17.5, "position": 1}
    assert queue.calls_view() == {
        "calls": [first.view(), queue.entries[1].view(), queue.entries[2].view()],
        "queue_name": "sales",
        "hold_times": {"average": 9.167, "least": 2.5, "greatest": 17.5},
    }
    assert [e.view()["queued_on"] for e in queue.entries] == [
        "2026-11-27T12:00:00.000Z", "2026-11-27T12:00:10.000Z", "2026-11-27T12:00:15.000Z"]
    # no call served yet: the estimate is the mean current hold time
    assert queue.view() == {"name": "sales", "hold_times": {"estimated": 9.167}}


def test_queues_are_per_scope_and_name(service: QueueService, member: MakeMember) -> None:
    offer(service, member())
    offer(service, member(), "support")
    service.offer(("other-app", 0), "sales", member())
    assert [q.name for q in service.queues(SCOPE)] == ["sales", "support"]
    assert ids(service) == ["1@1"]
    assert [e.call.id for e in service.get(("other-app", 0), "sales").entries] == ["3@1"]
    with pytest.raises(QueueNotFound):
        service.get(SCOPE, "nowhere")


def test_an_empty_queue_has_zero_hold_times(service: QueueService, member: MakeMember,
                                            clock: Clock) -> None:
    m = member()
    offer(service, m)
    clock.advance(3)
    service.poll(SCOPE, "sales")
    queue = service.get(SCOPE, "sales")
    assert queue.calls_view() == {"calls": [], "queue_name": "sales",
                                  "hold_times": {"average": 0.0, "least": 0.0,
                                                 "greatest": 0.0}}


def test_a_call_is_in_one_queue_at_a_time(service: QueueService, member: MakeMember) -> None:
    m = member()
    offer(service, m)
    with pytest.raises(QueueError, match="already queued in 'sales'"):
        offer(service, m)
    with pytest.raises(QueueError, match="already queued"):
        offer(service, m, "support")
    assert service.find(SCOPE, "support") is None
    assert service.queued(m.call.id) is not None


def test_an_ended_call_is_not_queued(service: QueueService, member: MakeMember) -> None:
    m = member()
    m.hang_up()
    with pytest.raises(QueueError, match="has ended"):
        offer(service, m)
    assert service.find(SCOPE, "sales") is None


# ---- max_calls ----------------------------------------------------------------------------


def test_max_calls_refuses_the_call_that_would_exceed_it(service: QueueService,
                                                         member: MakeMember) -> None:
    offer(service, member(), max_calls=2)
    offer(service, member(), max_calls=2)
    with pytest.raises(QueueFull, match=r"full \(2 of 2\)") as refused:
        offer(service, member(), max_calls=2)
    assert refused.value.events == ("on_enter_error_max_calls", "on_enter_error")
    assert ids(service) == ["1@1", "2@1"]
    offer(service, member(), max_calls=3)  # the limit is the offer's own
    offer(service, member())  # none: no limit
    assert len(ids(service)) == 4


def test_max_calls_zero_refuses_and_creates_no_queue(service: QueueService,
                                                     member: MakeMember) -> None:
    with pytest.raises(QueueFull):
        offer(service, member(), max_calls=0)
    assert service.find(SCOPE, "sales") is None


# ---- leaving ---------------------------------------------------------------------------------


def test_poll_takes_the_head_and_the_others_move_up(service: QueueService,
                                                    member: MakeMember, clock: Clock) -> None:
    a, b, c = member(), member(), member()
    for m in (a, b, c):
        offer(service, m)
        clock.advance(1)
    polled = service.poll(SCOPE, "sales")
    assert polled.call is a.call and polled.reason is LeaveReason.POLLED
    assert polled.left and polled.wait_s == 3.0
    assert polled.view()["position"] == 1 and polled.view()["hold_time"] == 3.0
    assert ids(service) == ["2@1", "3@1"]
    assert service.peek(SCOPE, "sales").call is b.call
    assert service.get(SCOPE, "sales").by_call(c.call.id).position() == 2  # type: ignore
    assert service.queued(a.call.id) is None


def test_peek_and_poll_errors(service: QueueService, member: MakeMember) -> None:
    with pytest.raises(QueueNotFound):
        service.peek(SCOPE, "sales")
    with pytest.raises(QueueNotFound):
        service.poll(SCOPE, "sales")
    offer(service, member())
    service.poll(SCOPE, "sales")
    with pytest.raises(QueueEmpty):
        service.peek(SCOPE, "sales")
    with pytest.raises(QueueEmpty):
        service.poll(SCOPE, "sales")


def test_remove_takes_a_call_from_anywhere(service: QueueService, member: MakeMember) -> None:
    a, b, c = member(), member(), member()
    for m in (a, b, c):
        offer(service, m)
    removed = service.remove(SCOPE, "sales", b.call.id)
    assert removed.reason is LeaveReason.REMOVED and removed.position() == 2
    assert ids(service) == ["1@1", "3@1"]
    with pytest.raises(CallNotQueued):
        service.remove(SCOPE, "sales", b.call.id)
    with pytest.raises(QueueNotFound):
        service.remove(SCOPE, "support", a.call.id)


async def test_wait_left_wakes_on_leaving(service: QueueService, member: MakeMember) -> None:
    entry = offer(service, member())
    waiting = asyncio.ensure_future(entry.wait_left())
    await settle()
    assert not waiting.done()
    service.poll(SCOPE, "sales")
    await settle()
    assert waiting.done()


def test_hanging_up_leaves_at_once_and_is_logged(service: QueueService, member: MakeMember,
                                                 clock: Clock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    a, b, c = member(), member(), member()
    for m in (a, b, c):
        offer(service, m)
    clock.advance(4.25)
    with caplog.at_level(logging.INFO, logger="voxswitch.queue"):
        b.hang_up()
    assert ids(service) == ["1@1", "3@1"]
    assert service.get(SCOPE, "sales").by_call(c.call.id).position() == 2  # type: ignore
    [line] = [r for r in caplog.records if r.getMessage() == "queue.left"]
    assert (line.queue, line.call_id, line.wait_s, line.reason) == (  # type: ignore
        "sales", "2@1", 4.25, "hung_up")
    assert b.call.queue_visits == [{"name": "sales", "queued_on": "2026-11-27T12:00:00.000Z",
                                    "wait_s": 4.25, "reason": "hung_up"}]
    assert b.call.log_record()["queues"] == b.call.queue_visits
    assert b.call.on_ended == []  # the hook went with the stay


def test_every_departure_is_recorded(service: QueueService, member: MakeMember,
                                     clock: Clock) -> None:
    ms = [member() for _ in range(5)]
    for m in ms:
        offer(service, m)
    clock.advance(1)
    service.poll(SCOPE, "sales")
    service.remove(SCOPE, "sales", ms[1].call.id)
    ms[2].hang_up()
    entry = service.queued(ms[3].call.id)
    assert entry is not None
    service.leave(entry, LeaveReason.FLOW_STOPPED)
    service.leave(entry, LeaveReason.REMOVED)  # idempotent: it left once
    service.delete(SCOPE, "sales")
    assert [m.call.queue_visits[0]["reason"] for m in ms] == [
        "polled", "removed", "hung_up", "flow_stopped", "queue_deleted"]
    assert all(len(m.call.queue_visits) == 1 for m in ms)


def test_a_call_queued_twice_keeps_both_stays(service: QueueService, member: MakeMember,
                                              clock: Clock) -> None:
    m = member()
    offer(service, m)
    clock.advance(2)
    service.poll(SCOPE, "sales")
    offer(service, m, "support")
    clock.advance(3)
    service.poll(SCOPE, "support")
    assert [(v["name"], v["wait_s"]) for v in m.call.log_record()["queues"]] == [
        ("sales", 2.0), ("support", 3.0)]


# ---- the estimate -------------------------------------------------------------------------------


def test_estimate_before_and_after_calls_are_served(service: QueueService,
                                                    member: MakeMember, clock: Clock) -> None:
    a, b, c = member(), member(), member()
    offer(service, a)
    queue = service.get(SCOPE, "sales")
    assert queue.estimate() == 0.0  # just queued, no history: the mean current wait
    clock.advance(30)
    offer(service, b)
    clock.advance(10)
    assert queue.estimate() == 25.0  # (40 + 10) / 2
    service.poll(SCOPE, "sales")  # a: waited 40 s from position 1 → 40 s per position
    assert queue.estimate() == 80.0  # a new caller would be at position 2
    assert queue.estimate(position=1) == 40.0
    offer(service, c)  # position 2
    clock.advance(20)
    service.poll(SCOPE, "sales")  # b: 30 s from position 2 → 15 s per position
    assert queue.estimate(position=1) == 27.5  # mean pace (40 + 15) / 2
    assert queue.view()["hold_times"]["estimated"] == 55.0  # c is queued: a new one is 2nd
    service.poll(SCOPE, "sales")  # c: 20 s from position 2 → 10
    assert queue.estimate() == pytest.approx(21.667, abs=1e-3)  # empty: position 1


def test_waits_of_calls_not_served_do_not_move_the_estimate(
        service: QueueService, member: MakeMember, clock: Clock) -> None:
    offer(service, member())
    clock.advance(12)
    service.poll(SCOPE, "sales")
    queue = service.get(SCOPE, "sales")
    assert queue.estimate() == 12.0
    quitter, removed = member(), member()
    offer(service, quitter)
    offer(service, removed)
    clock.advance(300)
    quitter.hang_up()
    service.remove(SCOPE, "sales", removed.call.id)
    assert queue.estimate() == 12.0
    assert [d.reason for d in queue.departures] == [
        LeaveReason.POLLED, LeaveReason.HUNG_UP, LeaveReason.REMOVED]
    assert queue.departures[1] == Departure("2@1", 300.0, LeaveReason.HUNG_UP, 1)


def test_estimate_averages_the_last_served_calls_only(service: QueueService,
                                                      member: MakeMember,
                                                      clock: Clock) -> None:
    queue = None
    for wait in [1000.0] * 5 + [10.0] * PACE_WINDOW:
        offer(service, member())
        clock.advance(wait)
        service.poll(SCOPE, "sales")
        queue = service.get(SCOPE, "sales")
    assert queue is not None and queue.estimate() == 10.0


# ---- long polls ------------------------------------------------------------------------------


async def test_a_long_poll_returns_the_call_offered_at_once(service: QueueService,
                                                            member: MakeMember) -> None:
    m = member()
    offer(service, member())
    service.poll(SCOPE, "sales")  # the queue exists, and is empty
    polling = asyncio.ensure_future(service.wait_poll(SCOPE, "sales", timeout=3600))
    await settle()
    assert not polling.done()
    offer(service, m)
    # handed over by the offer itself: no timer, no re-check
    assert service.queued(m.call.id) is None and ids(service) == []
    await asyncio.sleep(0)
    assert polling.done()
    entry = polling.result()
    assert entry.call is m.call and entry.reason is LeaveReason.POLLED
    assert not service.get(SCOPE, "sales").waiters


async def test_long_polls_are_served_in_order(service: QueueService,
                                              member: MakeMember) -> None:
    offer(service, member())
    service.poll(SCOPE, "sales")
    first = asyncio.ensure_future(service.wait_poll(SCOPE, "sales", timeout=3600))
    second = asyncio.ensure_future(service.wait_poll(SCOPE, "sales", timeout=3600))
    await settle()
    a, b = member(), member()
    offer(service, a)
    await settle()
    assert first.done() and not second.done()
    offer(service, b)
    await settle()
    assert first.result().call is a.call and second.result().call is b.call


async def test_a_long_poll_of_a_queue_with_calls_returns_the_head(service: QueueService,
                                                                 member: MakeMember) -> None:
    a = member()
    offer(service, a)
    offer(service, member())
    entry = await service.wait_poll(SCOPE, "sales", timeout=3600)
    assert entry.call is a.call and entry.reason is LeaveReason.POLLED


async def test_a_long_poll_times_out_empty(service: QueueService, member: MakeMember) -> None:
    offer(service, member())
    service.poll(SCOPE, "sales")
    with pytest.raises(QueueEmpty):
        await service.wait_poll(SCOPE, "sales", timeout=0.01)
    assert not service.get(SCOPE, "sales").waiters
    late = member()
    offer(service, late)  # nobody waits any more: the call stays queued
    assert ids(service) == [late.call.id]


async def test_a_cancelled_long_poll_takes_no_call(service: QueueService,
                                                   member: MakeMember) -> None:
    offer(service, member())
    service.poll(SCOPE, "sales")
    polling = asyncio.ensure_future(service.wait_poll(SCOPE, "sales", timeout=3600))
    await settle()
    polling.cancel()
    await asyncio.gather(polling, return_exceptions=True)
    m = member()
    offer(service, m)
    assert ids(service) == [m.call.id]


async def test_long_poll_of_an_unknown_or_deleted_queue(service: QueueService,
                                                        member: MakeMember) -> None:
    with pytest.raises(QueueNotFound):
        await service.wait_poll(SCOPE, "nowhere", timeout=3600)
    offer(service, member())
    service.poll(SCOPE, "sales")
    polling = asyncio.ensure_future(service.wait_poll(SCOPE, "sales", timeout=3600))
    await settle()
    service.delete(SCOPE, "sales")
    with pytest.raises(QueueNotFound):
        await polling


# ---- delete and garbage ------------------------------------------------------------------------


def test_delete_releases_every_call(service: QueueService, member: MakeMember,
                                    clock: Clock) -> None:
    ms = [member() for _ in range(3)]
    entries = [offer(service, m) for m in ms]
    clock.advance(6)
    view = service.delete(SCOPE, "sales")
    assert view == {"name": "sales", "hold_times": {"estimated": 6.0}}
    assert all(e.reason is LeaveReason.QUEUE_DELETED for e in entries)
    assert service.find(SCOPE, "sales") is None and service.queues(SCOPE) == []
    assert all(service.queued(m.call.id) is None for m in ms)
    with pytest.raises(QueueNotFound):
        service.delete(SCOPE, "sales")
    offer(service, member())  # an offer creates it again, with no history
    assert service.get(SCOPE, "sales").estimate(position=1) == 0.0


def test_an_idle_empty_queue_is_garbage_collected(clock: Clock, member: MakeMember) -> None:
    service = QueueService(None, clock=clock, wall=clock.wall, idle_retain_s=60)
    offer(service, member())
    clock.advance(1000)  # a queue with calls is never collected
    assert service.find(SCOPE, "sales") is not None
    service.poll(SCOPE, "sales")
    clock.advance(59)
    assert service.find(SCOPE, "sales") is not None
    clock.advance(1)
    assert service.find(SCOPE, "sales") is None and service.queues(SCOPE) == []


# ---- poll_connect --------------------------------------------------------------------------------


async def test_poll_connect_bridges_the_head_with_the_agent(
        service: QueueService, media_member: Callable[..., Any], clock: Clock) -> None:
    caller: Member = await media_member()
    other: Member = await media_member()
    agent: Member = await media_member()
    connected: list[Call] = []
    offer(service, caller, on_connected=connected.append)
    offer(service, other)
    clock.advance(8)
    taken = service.poll_connect(SCOPE, "sales", agent)
    assert taken.call is caller.call and taken.reason is LeaveReason.POLL_CONNECTED
    assert taken.partner is agent.call and connected == [agent.call]
    assert caller.channel.bridged_to is agent.channel  # type: ignore[union-attr]
    assert caller.call.last_queue_poll_connect_call == {"id": agent.call.id,
                                                        "no": agent.call.caller_no}
    assert agent.call.last_queue_poll_connect_call == {"id": caller.call.id,
                                                       "no": caller.call.caller_no}
    assert ids(service) == [other.call.id]
    assert service.get(SCOPE, "sales").estimate(position=1) == 8.0  # it was served
    assert service.connection(agent.call.id) is service.connection(caller.call.id)


@pytest.mark.parametrize("who", ["caller", "agent"])
async def test_the_bridge_ends_when_either_hangs_up(
        service: QueueService, media_member: Callable[..., Any], who: str) -> None:
    caller, agent = await media_member(), await media_member()
    offer(service, caller)
    service.poll_connect(SCOPE, "sales", agent)
    gone, survivor = (caller, agent) if who == "caller" else (agent, caller)
    gone.hang_up()
    assert survivor.channel.bridged_to is None  # type: ignore[union-attr]
    assert service.connection(caller.call.id) is None
    assert service.connection(agent.call.id) is None
    assert survivor.call.on_ended == [] and gone.call.on_ended == []


async def test_a_second_poll_connect_replaces_the_agents_bridge(
        service: QueueService, media_member: Callable[..., Any]) -> None:
    first, second, agent = await media_member(), await media_member(), await media_member()
    offer(service, first)
    offer(service, second)
    service.poll_connect(SCOPE, "sales", agent)
    service.poll_connect(SCOPE, "sales", agent)
    assert first.channel.bridged_to is None  # type: ignore[union-attr]
    assert second.channel.bridged_to is agent.channel  # type: ignore[union-attr]
    assert agent.call.last_queue_poll_connect_call["id"] == second.call.id  # type: ignore


async def test_poll_connect_errors_leave_the_head_queued(
        service: QueueService, media_member: Callable[..., Any], member: MakeMember) -> None:
    agent = await media_member()
    with pytest.raises(QueueNotFound):
        service.poll_connect(SCOPE, "sales", agent)
    caller = await media_member()
    offer(service, caller)
    with pytest.raises(QueueError, match="need media"):
        service.poll_connect(SCOPE, "sales", member())  # an agent without media
    other, partner = await media_member(), await media_member()
    service._engine.bridge(agent.channel, partner.channel)  # type: ignore
    with pytest.raises(QueueError, match="can't connect"):
        service.poll_connect(SCOPE, "sales", agent)  # bridged elsewhere
    assert ids(service) == [caller.call.id]
    assert caller.call.last_queue_poll_connect_call is None
    service.poll(SCOPE, "sales")
    with pytest.raises(QueueEmpty):
        service.poll_connect(SCOPE, "sales", other)


# ---- hold audio ----------------------------------------------------------------------------------


class Spy:
    """Wraps a channel's play: what was queued, and its futures."""

    def __init__(self, channel: Channel) -> None:
        self.played: list[tuple[np.ndarray, asyncio.Future[bool]]] = []
        original = channel.play

        def play(pcm: Any) -> asyncio.Future[bool]:
            future: asyncio.Future[bool] = original(pcm)
            self.played.append((np.asarray(pcm), future))
            return future

        channel.play = play  # type: ignore[method-assign]


async def test_hold_music_plays_a_chunk_at_a_time_and_loops(
        service: QueueService, media_member: Callable[..., Any]) -> None:
    m = await media_member()
    spy = Spy(m.channel)
    entry = offer(service, m)
    entry.start_music(yield_to_flow=False)
    await settle()
    music = hold_music()
    assert len(spy.played) == 1 and np.array_equal(spy.played[0][0], music[:MUSIC_CHUNK])
    chunks = -(-len(music) // MUSIC_CHUNK)
    for _i in range(chunks):
        spy.played[-1][1].set_result(True)  # as the engine does once a chunk was sent
        await settle()
    assert len(spy.played) == chunks + 1
    assert np.array_equal(np.concatenate([p for p, _ in spy.played[:chunks]]), music)
    assert np.array_equal(spy.played[-1][0], music[:MUSIC_CHUNK])  # round again


async def test_hold_music_stops_when_the_call_leaves(
        service: QueueService, media_member: Callable[..., Any]) -> None:
    m = await media_member()
    entry = offer(service, m)
    entry.start_music(yield_to_flow=False)
    await settle()
    assert m.channel.is_playing  # type: ignore[union-attr]
    service.poll(SCOPE, "sales")
    await settle()
    assert not m.channel.is_playing  # type: ignore[union-attr]


async def test_blocking_hold_music_resumes_after_other_audio(
        service: QueueService, media_member: Callable[..., Any]) -> None:
    m = await media_member()
    spy = Spy(m.channel)
    entry = offer(service, m)
    entry.start_music(yield_to_flow=False)
    await settle()
    told = m.channel.play(np.ones(160, np.int16))  # type: ignore[union-attr]  # a REST Tell
    spy.played[0][1].set_result(True)
    await settle()
    assert len(spy.played) == 3 and spy.played[1][1] is told  # next chunk queued after it
    assert np.array_equal(spy.played[2][0], hold_music()[MUSIC_CHUNK:2 * MUSIC_CHUNK])


async def test_async_hold_music_gives_way_to_the_flow(
        service: QueueService, media_member: Callable[..., Any]) -> None:
    m = await media_member()
    spy = Spy(m.channel)
    entry = offer(service, m)
    entry.start_music(yield_to_flow=True)
    await settle()
    m.channel.play(np.ones(160, np.int16))  # type: ignore[union-attr]  # the flow's SAY
    spy.played[0][1].set_result(True)
    await settle()
    assert len(spy.played) == 2  # no more music
    assert entry.reason is None  # still queued

    busy = await media_member()
    spy = Spy(busy.channel)
    busy.channel.play(np.ones(160, np.int16))  # type: ignore[union-attr]
    offer(service, busy).start_music(yield_to_flow=True)
    await settle()
    assert len(spy.played) == 1  # the flow was playing already: no music at all


async def test_hold_audio_url_and_its_fallback(service: QueueService,
                                               media_member: Callable[..., Any]) -> None:
    m, broken = await media_member(), await media_member(audio_fails=True)
    spies = Spy(m.channel), Spy(broken.channel)
    offer(service, m, hold_audio="http://x/hold.wav").start_music(yield_to_flow=False)
    offer(service, broken, hold_audio="http://x/gone.wav").start_music(yield_to_flow=False)
    await settle()
    assert m.fetched == ["http://x/hold.wav"] and broken.fetched == ["http://x/gone.wav"]
    assert np.array_equal(spies[0].played[0][0], HOLD_PCM[:MUSIC_CHUNK])
    assert np.array_equal(spies[1].played[0][0], hold_music()[:MUSIC_CHUNK])
