"""Conferences: the service's state (joins, limits, hold, whisper, end), what it asks of
the engine's mix group and the members' channels (real engine channels, no clock: the
audio itself is tested in tests/media), and the CONFERENCE action's events and ordering
on a stand-in call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from control.callflow.actions import Outcome
from control.callflow.context import FlowContext
from control.callflow.errors import FetchFailed, NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.variables import FlowVariables
from control.calls import Call, Direction
from control.conferences import (
    Conference,
    ConferenceEnded,
    ConferenceFull,
    ConferenceMember,
    ConferenceService,
    ConferenceStatus,
    ExitReason,
    JoinOptions,
    KeyCombos,
    Participant,
    parse_keys,
    valid_name,
)
from control.holdmusic import hold_music, join_beep, leave_beep
from media.channel import Channel
from media.engine import MediaEngine
from tests.support.udp import until

SCOPE = ("app", 0)
HOLD_PCM = np.full(800, 123, dtype=np.int16)


class Member:
    """A call as the conference sees it: a real engine channel, recorded messages."""

    def __init__(self, call_id: str, channel: Channel | None = None, *,
                 no: str = "+17145551212", audio_fails: bool = False) -> None:
        self.call = Call(id=call_id, direction=Direction.INBOUND, caller_no=no,
                         api_no="+19495551212", app_id="app")
        self.channel = channel
        self.audio_fails = audio_fails
        self.told: list[list[str]] = []
        self.fetched: list[str] = []

    def media_channel(self) -> Channel | None:
        return self.channel

    async def audio(self, url: str) -> np.ndarray:
        self.fetched.append(url)
        if self.audio_fails:
            raise FetchFailed(f"could not fetch {url}")
        return HOLD_PCM

    async def play_message(self, message: list[str]) -> None:
        self.told.append(message)
        await asyncio.sleep(0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: MediaEngine, clock: Clock) -> ConferenceService:
    return ConferenceService(engine, clock=clock)


MakeMember = Callable[..., Any]


@pytest.fixture
def member(engine: MediaEngine) -> MakeMember:
    count = iter(range(1, 1000))

    async def make(**kwargs: Any) -> Member:
        n = next(count)
        return Member(f"{n}@1", await engine.open_channel(), no=f"+1714555{n:04d}", **kwargs)

    return make


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def enter(service: ConferenceService, m: Member, name: str = "room",
          **options: Any) -> Participant:
    joined = service.join(SCOPE, name, m, JoinOptions(**options))
    joined.participant.conference.enter(joined.participant)
    return joined.participant


class Spy:
    """Wraps a channel's or group's play method: what was queued, and its futures."""

    def __init__(self, target: Any, method: str = "play") -> None:
        self.played: list[tuple[np.ndarray, asyncio.Future[bool]]] = []
        original = getattr(target, method)

        def play(pcm: np.ndarray) -> asyncio.Future[bool]:
            future: asyncio.Future[bool] = original(pcm)
            self.played.append((pcm, future))
            return future

        setattr(target, method, play)


def flags(p: Participant) -> tuple[bool, bool]:
    group = p.conference._group
    assert group is not None and p.channel() is not None
    membership = group.members[p.channel()]  # type: ignore[index]
    return membership.talk, membership.listen


# ---- keys and names ---------------------------------------------------------------------


@pytest.mark.parametrize("value, keys", [
    ("off", None), ("OFF", None), (None, None), ("#", "#"), ("#0", "#0"), (1, "1"),
    ("*9#", "*9#"),
])
def test_key_combinations(value: Any, keys: str | None) -> None:
    assert parse_keys(value) == keys


@pytest.mark.parametrize("value", ["a", "1 2", "#x", True, -1, 1.5])
def test_bad_key_combinations(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_keys(value)


def test_keys_match_as_digits_arrive() -> None:
    combos = KeyCombos({"mute": "1", "unmute": "2", "exit": "#0"})
    assert [combos.feed(d) for d in "3#4#0"] == [None, None, None, None, "exit"]
    assert combos.feed("1") == "mute"
    assert combos.feed("2") == "unmute"


def test_longest_combination_wins_and_restarts() -> None:
    combos = KeyCombos({"mute": "0", "unmute": None, "exit": "#0"})
    assert combos.feed("#") is None
    assert combos.feed("0") == "exit"
    assert combos.feed("0") == "mute"  # the earlier keys were used up


def test_no_combinations_never_match() -> None:
    assert KeyCombos({"mute": None}).feed("1") is None


@pytest.mark.parametrize("value, name", [
    ("my-conference", "my-conference"), ("sales_1", "sales_1"), (" my conference ",
                                                                  "my conference"),
    (42, "42"), ("", None), ("${x}", None), ("a/b", None), (None, None), ("x" * 129, None),
])
def test_conference_names(value: Any, name: str | None) -> None:
    assert valid_name(value) == name


# ---- joining ----------------------------------------------------------------------------


async def test_first_join_creates_the_conference(service: ConferenceService,
                                                 member: MakeMember) -> None:
    m = await member()
    joined = service.join(SCOPE, "room", m, JoinOptions())
    conf = joined.participant.conference
    assert joined.events == ("on_enter_started", "on_enter_alone", "on_enter")
    assert joined.num_participants == 1
    assert service.find(SCOPE, "room") is conf
    assert service.get(SCOPE, conf.id) is conf
    assert conf.status is ConferenceStatus.IN_PROGRESS
    assert isinstance(m, ConferenceMember)
    assert conf.view() == {
        "id": conf.id, "name": "room", "status": "in-progress", "num_participants": 1,
        "participants": [{
            "id": joined.participant.id, "call": {"id": "1@1", "no": "+17145550001"},
            "muted": False, "on_hold": False, "start_on_join": True, "hold_on_join": False,
            "end_on_exit": False, "hold_on_exit": False,
        }],
    }
    assert joined.participant.id != m.call.id


async def test_same_name_same_conference_other_scope_another(
        service: ConferenceService, member: MakeMember) -> None:
    a = enter(service, await member())
    b = enter(service, await member())
    other = service.join(("other-app", 0), "room", await member(), JoinOptions())
    assert a.conference is b.conference
    assert other.participant.conference is not a.conference
    assert [c.name for c in service.conferences(SCOPE)] == ["room"]
    assert len(a.conference.participants) == 2
    assert service.get(SCOPE, other.participant.conference.id) is None


async def test_second_join_is_not_alone(service: ConferenceService, member: MakeMember) -> None:
    enter(service, await member())
    joined = service.join(SCOPE, "room", await member(), JoinOptions())
    assert joined.events == ("on_enter_started", "on_enter")
    assert joined.num_participants == 2


async def test_enter_puts_the_channel_into_the_mix(service: ConferenceService,
                                                   member: MakeMember) -> None:
    m = await member()
    joined = service.join(SCOPE, "room", m, JoinOptions(receive_dtmf=True))
    p = joined.participant
    assert not p.in_room and p.conference._group is None  # handlers run before the mix
    p.conference.enter(p)
    group = p.conference._group
    assert group is not None and m.channel in group.members
    membership = group.members[m.channel]  # type: ignore[index]
    assert (membership.talk, membership.listen, membership.receive_dtmf) == (True, True, True)


async def test_last_leave_destroys_the_conference(service: ConferenceService,
                                                  member: MakeMember) -> None:
    a = enter(service, await member())
    b = enter(service, await member())
    conf = a.conference
    group = conf._group
    assert group is not None
    conf.leave(a, ExitReason.KEY)
    assert a.left and a.exit_reason is ExitReason.KEY
    assert service.find(SCOPE, "room") is conf
    conf.leave(b, ExitReason.FLOW)
    assert service.find(SCOPE, "room") is None and group.closed
    conf.leave(b, ExitReason.FLOW)  # idempotent
    again = enter(service, await member())
    assert again.conference is not conf  # the name is free at once


async def test_max_participants(service: ConferenceService, member: MakeMember) -> None:
    enter(service, await member(), max_participants=2)
    enter(service, await member())  # no limit of its own: the room's applies
    with pytest.raises(ConferenceFull) as refused:
        service.join(SCOPE, "room", await member(), JoinOptions())
    assert refused.value.event == "on_enter_error_max_participants"
    assert refused.value.num_participants == 2
    assert len(service.find(SCOPE, "room").participants) == 2  # type: ignore[union-attr]


async def test_a_joiner_may_lower_the_limit(service: ConferenceService,
                                            member: MakeMember) -> None:
    enter(service, await member())
    with pytest.raises(ConferenceFull):
        service.join(SCOPE, "room", await member(), JoinOptions(max_participants=1))
    enter(service, await member(), max_participants=5)


async def test_a_refused_creator_leaves_no_conference(service: ConferenceService,
                                                      member: MakeMember) -> None:
    with pytest.raises(ConferenceFull):
        service.join(SCOPE, "room", await member(), JoinOptions(max_participants=0.5))
    assert service.find(SCOPE, "room") is None


# ---- mute, hold, music ------------------------------------------------------------------


async def test_mute_and_unmute(service: ConferenceService, member: MakeMember) -> None:
    a = enter(service, await member(), join_muted=True)
    assert a.muted and flags(a) == (False, True)
    a.conference.set_muted(a, False)
    assert flags(a) == (True, True) and not a.muted
    a.conference.set_muted(a, True)
    assert flags(a) == (False, True)


async def test_hold_plays_music_and_resume_stops_it(service: ConferenceService,
                                                    member: MakeMember) -> None:
    a = enter(service, await member())
    m2 = await member()
    enter(service, m2)
    channel = m2.channel
    assert channel is not None
    b = a.conference.by_call(m2.call.id)
    assert b is not None
    b.conference.set_on_hold(b, True)
    assert flags(b) == (False, False) and b.on_hold
    await until(lambda: channel.is_playing)
    assert b.conference.view()["participants"][1]["on_hold"] is True
    b.conference.set_on_hold(b, False)
    assert flags(b) == (True, True)
    await until(lambda: not channel.is_playing)


async def test_hold_music_loops(service: ConferenceService, member: MakeMember) -> None:
    m = await member()
    spy = Spy(m.channel)
    a = enter(service, m, auto_hold=True)
    await until(lambda: len(spy.played) == 1)
    assert spy.played[0][0] is hold_music()  # the built-in loop, shared
    spy.played[0][1].set_result(True)  # as if it had played to the end
    await until(lambda: len(spy.played) == 2)
    a.conference.leave(a, ExitReason.KEY)
    await until(lambda: not m.channel.is_playing)  # type: ignore[union-attr]


async def test_hold_audio_is_fetched_once_from_the_url(service: ConferenceService,
                                                       member: MakeMember) -> None:
    m = await member()
    spy = Spy(m.channel)
    a = enter(service, m, hold_audio="https://example.com/hold.wav", auto_hold=True)
    await until(lambda: m.channel.is_playing)  # type: ignore[union-attr]
    assert m.fetched == ["https://example.com/hold.wav"]
    assert spy.played[0][0] is HOLD_PCM
    a.refresh_music()
    await settle()
    assert m.fetched == ["https://example.com/hold.wav"]


async def test_unfetchable_hold_audio_falls_back_to_the_built_in_music(
        service: ConferenceService, member: MakeMember) -> None:
    m = await member(audio_fails=True)
    spy = Spy(m.channel)
    enter(service, m, hold_audio="https://example.com/missing.wav", auto_hold=True)
    await until(lambda: m.channel.is_playing)  # type: ignore[union-attr]
    assert spy.played[0][0] is hold_music()


async def test_auto_hold_while_alone(service: ConferenceService, member: MakeMember) -> None:
    m1 = await member()
    a = enter(service, m1, auto_hold=True)
    ch = m1.channel
    assert ch is not None
    await until(lambda: ch.is_playing)
    assert not a.on_hold  # music, not hold: the spec's views show on_hold false
    b = enter(service, await member())
    await until(lambda: not ch.is_playing)
    b.conference.leave(b, ExitReason.KEY)
    await until(lambda: ch.is_playing)


async def test_a_message_pauses_hold_music(service: ConferenceService,
                                           member: MakeMember) -> None:
    m = await member()
    a = enter(service, m)
    enter(service, await member())
    a.conference.set_on_hold(a, True, ["Please hold."])
    await until(lambda: m.told == [["Please hold."]])
    await a.quiet()
    await until(lambda: m.channel.is_playing)  # type: ignore[union-attr]


async def test_hold_on_join_waits_for_a_starter(service: ConferenceService,
                                                member: MakeMember) -> None:
    j1 = service.join(SCOPE, "room", await member(), JoinOptions(hold_on_join=True))
    conf = j1.participant.conference
    assert j1.events == ("on_enter_waiting", "on_enter_alone", "on_enter")
    assert conf.status is ConferenceStatus.ON_HOLD and j1.participant.on_hold
    assert j1.participant.view()["start_on_join"] is False
    j2 = service.join(SCOPE, "room", await member(),
                      JoinOptions(hold_on_join=True, start_on_join=False))
    assert j2.events == ("on_enter_waiting", "on_enter")
    conf.enter(j1.participant)
    assert flags(j1.participant) == (False, False)
    j3 = service.join(SCOPE, "room", await member(), JoinOptions(start_on_join=True))
    assert j3.events == ("on_enter_started", "on_enter")
    assert conf.status is ConferenceStatus.IN_PROGRESS
    assert not any(p.on_hold for p in conf.participants.values())
    assert flags(j1.participant) == (True, True)


async def test_hold_on_join_with_start_on_join_starts_it(service: ConferenceService,
                                                         member: MakeMember) -> None:
    joined = service.join(SCOPE, "room", await member(),
                          JoinOptions(hold_on_join=True, start_on_join=True))
    assert joined.events[0] == "on_enter_started"


async def test_hold_on_exit_puts_the_others_on_hold(service: ConferenceService,
                                                    member: MakeMember) -> None:
    host = enter(service, await member(), hold_on_exit=True)
    guest = enter(service, await member())
    conf = host.conference
    conf.leave(host, ExitReason.REST)
    assert conf.status is ConferenceStatus.ON_HOLD and guest.on_hold
    assert flags(guest) == (False, False)
    await until(lambda: guest.channel().is_playing)  # type: ignore[union-attr]
    enter(service, await member())  # start_on_join (default) starts it again
    assert conf.status is ConferenceStatus.IN_PROGRESS and not guest.on_hold


async def test_end_on_exit_ends_the_conference(service: ConferenceService,
                                               member: MakeMember, clock: Clock) -> None:
    host = enter(service, await member(), end_on_exit=True)
    guests = [enter(service, await member()) for _ in range(2)]
    conf = host.conference
    conf.leave(host, ExitReason.KEY)
    assert conf.ended and all(g.left for g in guests)
    assert {g.exit_reason for g in guests} == {ExitReason.ENDED}
    assert service.find(SCOPE, "room") is None and conf._group is not None
    assert conf._group.closed
    with pytest.raises(ConferenceEnded) as refused:
        service.join(SCOPE, "room", await member(), JoinOptions())
    assert refused.value.event == "on_enter_error_ended"
    clock.now += 10
    assert enter(service, await member()).conference is not conf


async def test_announce_on_join_beeps_to_the_conference(service: ConferenceService,
                                                        member: MakeMember) -> None:
    a = enter(service, await member())
    group = a.conference._group
    assert group is not None and not group.is_playing
    spy = Spy(group, "play_to_all")
    b = enter(service, await member(), announce_on_join=True)
    assert group.is_playing and spy.played[0][0] is join_beep()
    b.conference.leave(b, ExitReason.KEY)
    assert spy.played[1][0] is leave_beep() and group.is_playing


# ---- whisper and DTMF -------------------------------------------------------------------


async def test_whisper_reaches_the_target_only(service: ConferenceService,
                                               member: MakeMember) -> None:
    target_m = await member()
    target = enter(service, target_m)
    enter(service, await member())
    coach = enter(service, await member(), whisper_to=target_m.call.id)
    group = coach.conference._group
    assert group is not None
    membership = group.members[coach.channel()]  # type: ignore[index]
    assert membership.whisper_to is target_m.channel and membership.talk
    coach.conference.leave(target, ExitReason.KEY)
    assert coach.muted
    assert group.members[coach.channel()].whisper_to is None  # type: ignore[index]
    assert not group.members[coach.channel()].talk  # type: ignore[index]


async def test_whisper_to_someone_absent_joins_muted(service: ConferenceService,
                                                     member: MakeMember) -> None:
    enter(service, await member())
    coach = enter(service, await member(), whisper_to="999@9")
    assert coach.muted and coach.whisper_target is None


async def test_digits_are_relayed_from_senders_to_receivers(service: ConferenceService,
                                                            member: MakeMember) -> None:
    sender = enter(service, await member(), send_dtmf=True)
    quiet = enter(service, await member())
    receiver = enter(service, await member(), receive_dtmf=True)
    sender.conference.relay_digit(sender, "5")
    assert receiver.channel().is_playing  # type: ignore[union-attr]  # in-band: no 4733
    assert not quiet.channel().is_playing  # type: ignore[union-attr]
    receiver.channel().stop_audio()  # type: ignore[union-attr]
    quiet.conference.relay_digit(quiet, "5")  # send_dtmf is off for it
    assert not receiver.channel().is_playing  # type: ignore[union-attr]


# ---- the built-in music -----------------------------------------------------------------


def test_hold_music_is_a_melody() -> None:
    music = hold_music()
    assert music.dtype == np.int16 and 4 * 8000 <= len(music) <= 8 * 8000
    assert 1000 < np.abs(music).max() < 20000  # audible, far from clipping
    note = 2400  # 0.3 s
    pitches = set()
    for start in range(0, len(music) - note, note):
        spectrum = np.abs(np.fft.rfft(music[start:start + note].astype(np.float64)))
        spectrum[: round(200 * note / 8000)] = 0  # above the bass line
        pitches.add(round(np.argmax(spectrum) * 8000 / note))
    assert len(pitches) >= 5


# ---- the CONFERENCE action --------------------------------------------------------------


class Host:
    def redirect(self, url: str, method: str | None, headers: dict[str, str] | None,
                 content_type: str | None) -> None:
        pass

    async def webhook(self, params: dict[str, Any], data: Any, blocking: bool
                      ) -> tuple[bool, Any]:
        return True, None


class ConfPort(Member):
    """A stand-in call: CallPort and ConferenceMember, keys pushed by the test."""

    def __init__(self, call_id: str, channel: Channel | None) -> None:
        super().__init__(call_id, channel)
        self.answered = True
        self.ended = False
        self.said: list[str] = []
        self._keys: asyncio.Queue[str] = asyncio.Queue()

    def press(self, keys: str) -> None:
        for key in keys:
            self._keys.put_nowait(key)

    async def answer(self) -> None:
        pass

    async def reject(self, status: int, reason: str) -> None:
        self.ended = True

    async def hangup(self) -> None:
        self.ended = True

    async def speech(self, text: str, *, voice: str | None, language: str | None,
                     gender: str | None) -> np.ndarray:
        self.said.append(text)
        return np.ones(8, dtype=np.int16)

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        return True

    async def send_dtmf(self, digits: str, *, delay_ms: float, dash_ms: float) -> bool:
        return True

    async def sleep(self, seconds: float, *, stop_on_key: bool = False) -> None:
        await asyncio.sleep(seconds)

    def stop_audio(self) -> None:
        pass

    def pending_digit(self) -> bool:
        return not self._keys.empty()

    async def next_digit(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self._keys.get(), timeout)
        except TimeoutError:
            return None

    def clear_digits(self) -> None:
        while not self._keys.empty():
            self._keys.get_nowait()


class Flow:
    """One call running a list of actions in the background."""

    def __init__(self, port: ConfPort, service: ConferenceService,
                 actions: list[dict[str, Any]]) -> None:
        self.port = port
        self.ctx = FlowContext(port=port, vars=FlowVariables(port.call), host=Host(),
                               conferences=service)
        self.task = asyncio.ensure_future(Interpreter(self.ctx).run(compile_actions(actions)))

    def participant(self, service: ConferenceService, name: str = "room") -> Participant:
        conf = service.find(SCOPE, name)
        p = conf.by_call(self.port.call.id) if conf is not None else None
        assert p is not None
        return p

    def var(self) -> Any:
        return self.ctx.vars.get("$numConferenceParticipants")


@pytest.fixture
def port(engine: MediaEngine) -> Callable[[], Any]:
    count = iter(range(100, 1000))

    async def make() -> ConfPort:
        return ConfPort(f"{next(count)}@1", await engine.open_channel())

    return make


def say(text: str) -> dict[str, Any]:
    return {"type": "SAY", "params": {"text": text}}


def conference(name: str = "room", events: dict[str, Any] | None = None,
               **params: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "CONFERENCE", "params": {"name": name, **params}}
    if events:
        action["events"] = events
    return action


ALL_EVENTS = {e: [say(e)] for e in (
    "on_enter_started", "on_enter_waiting", "on_enter", "on_enter_error_max_participants",
    "on_enter_error_ended", "on_enter_error", "on_enter_alone")}


async def in_room(flow: Flow, service: ConferenceService) -> Participant:
    await until(lambda: (c := service.find(SCOPE, "room")) is not None
                and (p := c.by_call(flow.port.call.id)) is not None and p.in_room)
    return flow.participant(service)


async def test_action_runs_events_in_order_and_waits_for_the_exit_key(
        service: ConferenceService, port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [conference(events=ALL_EVENTS, exit_on_key="#0",
                                             mute_on_key="1", unmute_on_key="2"),
                                  say("after")])
    p = await in_room(flow, service)
    assert caller.said == ["on_enter_started", "on_enter_alone", "on_enter"]
    assert flow.var() == "1"
    caller.press("1")
    await until(lambda: p.muted)
    caller.press("2#")
    await until(lambda: not p.muted)
    assert not flow.task.done()
    caller.press("0")
    assert await flow.task is Outcome.NEXT
    assert caller.said[-1] == "after" and p.exit_reason is ExitReason.KEY
    assert service.find(SCOPE, "room") is None
    assert flow.var() == "0"


async def test_num_participants_counts_the_others(service: ConferenceService,
                                                  port: Callable[[], Any]) -> None:
    first, second = await port(), await port()
    f1 = Flow(first, service, [conference()])
    await in_room(f1, service)
    f2 = Flow(second, service, [conference(events=ALL_EVENTS)])
    p2 = await in_room(f2, service)
    assert f2.var() == "2" and second.said == ["on_enter_started", "on_enter"]
    service.find(SCOPE, "room").leave(p2, ExitReason.REST, ["Bye now."])  # type: ignore
    assert await f2.task is Outcome.NEXT
    assert second.told == [["Bye now."]]  # after leaving
    assert f2.var() == "1"
    f1.task.cancel()
    await asyncio.gather(f1.task, return_exceptions=True)
    assert service.find(SCOPE, "room") is None  # a cancelled flow leaves


async def test_waiting_events_and_start(service: ConferenceService,
                                        port: Callable[[], Any]) -> None:
    attendee, moderator = await port(), await port()
    f1 = Flow(attendee, service, [conference(events=ALL_EVENTS, hold_on_join=True)])
    p1 = await in_room(f1, service)
    assert attendee.said == ["on_enter_waiting", "on_enter_alone", "on_enter"]
    assert p1.on_hold and flags(p1) == (False, False)
    f2 = Flow(moderator, service, [conference(events=ALL_EVENTS, start_on_join=True,
                                              end_on_exit=True, exit_on_key="*")])
    await in_room(f2, service)
    assert moderator.said == ["on_enter_started", "on_enter"]
    assert not p1.on_hold and flags(p1) == (True, True)
    moderator.press("*")
    assert await f2.task is Outcome.NEXT
    assert await f1.task is Outcome.NEXT  # the conference ended: the attendee goes on
    assert p1.exit_reason is ExitReason.ENDED


async def test_full_conference_runs_the_error_handlers(service: ConferenceService,
                                                       port: Callable[[], Any]) -> None:
    first, late = await port(), await port()
    f1 = Flow(first, service, [conference(max_participants=1)])
    await in_room(f1, service)
    f2 = Flow(late, service, [conference(events=ALL_EVENTS), say("next")])
    assert await f2.task is Outcome.NEXT
    assert late.said == ["on_enter_error_max_participants", "on_enter_error", "next"]
    assert f2.var() == "1"
    f1.task.cancel()
    await asyncio.gather(f1.task, return_exceptions=True)


async def test_ended_conference_runs_the_error_handlers(service: ConferenceService,
                                                        port: Callable[[], Any]) -> None:
    host, guest, late = await port(), await port(), await port()
    f1 = Flow(host, service, [conference(end_on_exit=True, exit_on_key="#")])
    await in_room(f1, service)
    # the guest's flow comes straight back to the room after it ended
    f2 = Flow(guest, service, [conference(), conference(events=ALL_EVENTS)])
    await in_room(f2, service)
    host.press("#")
    await f1.task
    assert await f2.task is Outcome.NEXT
    assert guest.said == ["on_enter_error_ended", "on_enter_error"]
    assert f2.var() == "0"
    f3 = Flow(late, service, [conference(events={"on_enter_error": [say("sorry")]})])
    assert await f3.task is Outcome.NEXT and late.said == ["sorry"]


async def test_hangup_in_a_handler_ends_the_flow_and_leaves(service: ConferenceService,
                                                            port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [conference(events={"on_enter": [{"type": "HANGUP"}]}),
                                  say("never")])
    assert await flow.task is Outcome.END
    assert caller.said == [] and service.find(SCOPE, "room") is None


async def test_goto_out_of_a_handler_leaves(service: ConferenceService,
                                            port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [
        conference(events={"on_enter_alone": [{"type": "GOTO", "params": {"label": "out"}}]}),
        say("skipped"),
        {"type": "LABEL", "name": "out"},
        say("out"),
    ])
    assert await flow.task is Outcome.NEXT
    assert caller.said == ["out"] and service.find(SCOPE, "room") is None


async def test_caller_hanging_up_leaves(service: ConferenceService,
                                        port: Callable[[], Any]) -> None:
    caller, other = await port(), await port()
    f1 = Flow(caller, service, [conference()])
    p = await in_room(f1, service)
    f2 = Flow(other, service, [conference()])
    await in_room(f2, service)
    caller.ended = True
    caller.press("5")  # wakes the wait, as the session's end does
    assert await f1.task is Outcome.END
    assert p.left and len(p.conference.participants) == 1
    f2.task.cancel()
    await asyncio.gather(f2.task, return_exceptions=True)


async def test_message_and_interpolated_name(service: ConferenceService,
                                             port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [{"$room": "'room'"},
                                  conference(name="${room}", message="Joining now.")])
    p = await in_room(flow, service)
    assert caller.told == [["Joining now."]]
    p.conference.leave(p, ExitReason.REST)
    assert await flow.task is Outcome.NEXT


async def test_send_dtmf_from_the_action(service: ConferenceService,
                                         port: Callable[[], Any]) -> None:
    sender, receiver = await port(), await port()
    f1 = Flow(sender, service, [conference(send_dtmf=True)])
    await in_room(f1, service)
    f2 = Flow(receiver, service, [conference(receive_dtmf=True)])
    await in_room(f2, service)
    sender.press("7")
    await until(lambda: receiver.channel.is_playing)  # type: ignore[union-attr]
    for f in (f1, f2):
        f.task.cancel()
    await asyncio.gather(f1.task, f2.task, return_exceptions=True)


@pytest.mark.parametrize("params, problem", [
    ({"exit_on_key": "x"}, "exit_on_key"),
    ({"max_participants": 0}, "max_participants"),
    ({"name": "bad/name"}, "name"),
])
async def test_bad_params_fail_the_flow(service: ConferenceService, port: Callable[[], Any],
                                        params: dict[str, Any], problem: str) -> None:
    flow = Flow(await port(), service, [conference(**params)])
    with pytest.raises(NoActions, match=problem):
        await flow.task


@pytest.mark.parametrize("params", [{"auto_hold": "yes"}, {"announce_on_join": "loud"},
                                    {}])
def test_params_are_checked_before_running(params: dict[str, Any]) -> None:
    action = conference(**params)
    if not params:
        del action["params"]["name"]
    with pytest.raises(NoActions):
        compile_actions([action])


def test_every_event_is_an_action_list() -> None:
    [action] = compile_actions([conference(events=ALL_EVENTS)])
    assert set(action.children) == {f"events.{e}" for e in ALL_EVENTS}


async def test_a_switch_without_conferences_fails_the_flow(port: Callable[[], Any]) -> None:
    caller = await port()
    ctx = FlowContext(port=caller, vars=FlowVariables(caller.call), host=Host())
    with pytest.raises(NoActions, match="no conferences"):
        await Interpreter(ctx).run(compile_actions([conference()]))


def test_conference_type_is_exported() -> None:
    assert Conference.__name__ == "Conference"
