"""Conferences: rooms by name per application, their participants, and what each hears.

Theory of operation. A conference is found by (scope, name), the scope being the
application and sub account of the call that joins; the first join creates it (with an
id and an engine mix group) and the last leave destroys it. Joining is two steps, so
that the CONFERENCE action can run its on_enter handlers in between:

1. `ConferenceService.join` checks the limits (`max_participants`, a conference that
   has ended), registers the participant (counted from here on: views, the limit,
   `$numConferenceParticipants`) and says which on_enter events fire;
2. `Conference.enter` puts its channel into the mix, beeps when `announce_on_join`.

Every state change (mute, hold, whisper, start, leave) goes through the `Conference`,
which re-applies each member's flags to the mix group and starts or stops hold music on
each member's own channel: hold music plays while a participant is on hold, or alone in
the room with `auto_hold`. All of it is synchronous, so the action can leave in a
`finally` even when its task is cancelled. Messages to one participant (the REST
methods' `message`) pause its hold music while they play.

Choices where the spec is silent:
- `start_on_join` defaults to true only for participants without `hold_on_join`, so
  that `hold_on_join: true` alone makes a participant wait (as the spec describes);
  the views show this effective value.
- A conference ended by an `end_on_exit` participant refuses joins (on_enter_error_ended)
  for `ended_retain_s` (5 s), long enough for the flows it released to come back; a
  conference that merely emptied is gone at once and its name free again.
- `max_participants` is the room's limit set by whoever created it, lowered for one
  join by a joiner that gives a smaller one.
- While a conference waits (hold_on_join, or after a `hold_on_exit` participant left)
  everybody in it is on hold; the arrival of a `start_on_join` participant takes all of
  them off hold, including any put on hold over REST.
- A whisperer's target leaving mutes the whisperer: what was meant for one participant
  is never broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from control.callflow.errors import FetchFailed
from control.calls import Call
from control.holdmusic import hold_music, join_beep, leave_beep
from media.errors import MediaError

if TYPE_CHECKING:
    from media.channel import Channel
    from media.conference import MixGroup

log = logging.getLogger("voxswitch.conference")

Scope = tuple[str, int]  # (app_id, subaccount_id)
ENDED_RETAIN_S = 5.0
_NAME = re.compile(r"[\w][\w .@-]{0,127}\Z")
_KEYS = re.compile(r"[0-9#*]{1,16}\Z")


class ConferenceStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"


class ExitReason(StrEnum):
    """Why a participant left (logs; the flow goes on the same way in every case)."""

    KEY = "exit_on_key"
    REST = "rest_leave"
    ENDED = "conference_ended"
    FLOW = "flow_stopped"  # hang-up, REST inject, a GOTO out of an on_enter handler


class JoinRefused(Exception):
    """A join the conference did not take; `event` names the handler that runs."""

    event = "on_enter_error"

    def __init__(self, message: str, num_participants: int) -> None:
        super().__init__(message)
        self.num_participants = num_participants


class ConferenceFull(JoinRefused):
    event = "on_enter_error_max_participants"


class ConferenceEnded(JoinRefused):
    event = "on_enter_error_ended"


@runtime_checkable
class ConferenceMember(Protocol):
    """What a conference needs of a call: the call session implements it."""

    call: Call

    def media_channel(self) -> Channel | None:
        """The call's media channel (None before media exists or after it closed)."""

    async def audio(self, url: str) -> np.ndarray:
        """Fetch and decode an audio URL (raises FetchFailed)."""

    async def play_message(self, message: list[str]) -> None:
        """Play REST `message` items (TTS text, audio URLs, dtmf://) to this call."""


class MixEngine(Protocol):
    def create_mix_group(self) -> MixGroup: ...


def valid_name(value: Any) -> str | None:
    """The conference name, or None when it is not one (letters, digits, `_`, `-`; the
    spec's own REST example has a space, so spaces, dots and @ pass too)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _NAME.match(value) else None


def parse_keys(value: Any) -> str | None:
    """A key combination ("#0"), or None for "off"/null; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a key combination")
    if value.strip().lower() in ("off", ""):
        return None
    if not _KEYS.match(value.strip()):
        raise ValueError(f"{value!r} is not a key combination: use 0-9, # and *, or off")
    return value.strip()


@dataclass(frozen=True)
class JoinOptions:
    """One participant's CONFERENCE params (plus REST JoinToWhisper's target)."""

    hold_audio: str | None = None
    auto_hold: bool = False
    join_muted: bool = False
    max_participants: float | None = None  # None: no limit
    announce_on_join: bool = False
    mute_on_key: str | None = None
    unmute_on_key: str | None = None
    exit_on_key: str | None = None
    hold_on_join: bool = False
    start_on_join: bool | None = None  # None: true unless hold_on_join
    end_on_exit: bool = False
    hold_on_exit: bool = False
    send_dtmf: bool = False
    receive_dtmf: bool = False
    whisper_to: str | None = None  # call id of the participant to whisper to

    @property
    def starts(self) -> bool:
        return self.start_on_join if self.start_on_join is not None else not self.hold_on_join


class KeyCombos:
    """Matches key combinations as digits arrive: the longest combination that the
    latest keys end with wins, and a match starts the next one afresh."""

    def __init__(self, combos: dict[str, str | None]) -> None:
        self._combos = sorted(((k, c) for c, k in combos.items() if k), key=lambda kc:
                              -len(kc[0]))
        self._longest = max((len(k) for k, _ in self._combos), default=0)
        self._keys = ""

    def feed(self, digit: str) -> str | None:
        """The command ("mute", "unmute", "exit") that `digit` completes, if any."""
        if not self._combos:
            return None
        self._keys = (self._keys + digit)[-self._longest:]
        for keys, command in self._combos:
            if self._keys.endswith(keys):
                self._keys = ""
                return command
        return None


class Participant:
    """One call in one conference."""

    def __init__(self, conference: Conference, member: ConferenceMember,
                 options: JoinOptions) -> None:
        self.id = secrets.token_hex(8)
        self.conference = conference
        self.member = member
        self.options = options
        self.muted = options.join_muted
        self.on_hold = False
        self.whisper_target: Participant | None = None
        self.in_room = False  # its channel is in the mix
        self.exit_reason: ExitReason | None = None
        self.exit_message: list[str] | None = None
        self._left = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._speaking = 0
        self._music: asyncio.Task[None] | None = None
        self._hold_pcm: np.ndarray | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Participant {self.id} call={self.call.id} conference={self.conference.name}>"

    @property
    def call(self) -> Call:
        return self.member.call

    @property
    def left(self) -> bool:
        return self._left.is_set()

    @property
    def talks(self) -> bool:
        target = self.whisper_target
        return not (self.muted or self.on_hold) and (target is None or target.in_room)

    def hears_music(self, alone: bool) -> bool:
        return self.in_room and (self.on_hold or (self.options.auto_hold and alone))

    async def wait_left(self) -> None:
        await self._left.wait()

    async def quiet(self) -> None:
        """Wait until no message is playing to this participant."""
        await self._quiet.wait()

    def view(self) -> dict[str, Any]:
        """The spec's participant object."""
        return {
            "id": self.id,
            "call": {"id": self.call.id, "no": self.call.caller_no},
            "muted": self.muted,
            "on_hold": self.on_hold,
            "start_on_join": self.options.starts,
            "hold_on_join": self.options.hold_on_join,
            "end_on_exit": self.options.end_on_exit,
            "hold_on_exit": self.options.hold_on_exit,
        }

    def channel(self) -> Channel | None:
        ch = self.member.media_channel()
        return None if ch is None or ch.closed else ch

    def tell(self, message: list[str] | None) -> None:
        """Play `message` to this participant alone, hold music paused meanwhile."""
        if not message:
            return
        self._speaking += 1
        self._quiet.clear()
        self._spawn(self._tell(message))

    async def _tell(self, message: list[str]) -> None:
        try:
            self._stop_music()
            await self.member.play_message(message)
        finally:
            self._speaking -= 1
            if not self._speaking:
                self._quiet.set()
                self.refresh_music()

    def refresh_music(self, alone: bool | None = None) -> None:
        """Start or stop hold music to match the participant's state."""
        if alone is None:
            alone = self.conference.in_room() == [self]
        if self.hears_music(alone) and not self.left and not self._speaking:
            if self._music is None or self._music.done():
                self._music = asyncio.ensure_future(self._music_loop())
        else:
            self._stop_music()

    def _stop_music(self) -> None:
        # cancelling the awaiting task takes the audio off the channel's queue
        if self._music is not None:
            self._music.cancel()
            self._music = None

    async def _music_loop(self) -> None:
        pcm = await self._music_pcm()
        while True:
            channel = self.channel()
            if channel is None or not await channel.play(pcm):
                return

    async def _music_pcm(self) -> np.ndarray:
        url = self.options.hold_audio
        if url and self._hold_pcm is None:
            try:
                self._hold_pcm = await self.member.audio(url)
            except (FetchFailed, MediaError) as exc:
                log.warning("conference.hold_audio_failed", extra={
                    "call_id": self.call.id, "url": url, "error": str(exc)})
                self._hold_pcm = hold_music()
        pcm = self._hold_pcm
        return pcm if pcm is not None and len(pcm) else hold_music()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _gone(self, reason: ExitReason) -> None:
        self.exit_reason = reason
        self.in_room = False
        self._stop_music()
        self._left.set()


@dataclass(frozen=True)
class Joined:
    """A successful join: who, which on_enter events fire (in order), and the count."""

    participant: Participant
    events: tuple[str, ...]
    num_participants: int


class Conference:
    """One live conference; create through `ConferenceService.join`."""

    def __init__(self, service: ConferenceService, scope: Scope, name: str,
                 max_participants: float | None, started: bool) -> None:
        self.id = secrets.token_hex(8)
        self.service = service
        self.scope = scope
        self.name = name
        self.max_participants = max_participants
        self.started = started
        self.ended = False
        self.participants: dict[str, Participant] = {}
        self._group: MixGroup | None = None

    def __repr__(self) -> str:
        return f"<Conference {self.id} {self.name!r} n={len(self.participants)}>"

    @property
    def status(self) -> ConferenceStatus:
        return ConferenceStatus.IN_PROGRESS if self.started else ConferenceStatus.ON_HOLD

    def view(self) -> dict[str, Any]:
        """The spec's conference object."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "num_participants": len(self.participants),
            "participants": [p.view() for p in self.participants.values()],
        }

    def by_call(self, call_id: str) -> Participant | None:
        return next((p for p in self.participants.values() if p.call.id == call_id), None)

    def in_room(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.in_room]

    # ---- joining and leaving ---------------------------------------------------------

    def _admit(self, member: ConferenceMember, options: JoinOptions) -> Joined:
        limit = min((m for m in (self.max_participants, options.max_participants)
                     if m is not None), default=None)
        count = len(self.participants)
        if limit is not None and count + 1 > limit:
            raise ConferenceFull(f"conference {self.name!r} is full ({count} of "
                                 f"{limit:g})", count)
        p = Participant(self, member, options)
        if options.whisper_to is not None:
            p.whisper_target = self.by_call(options.whisper_to)
            p.muted = p.muted or p.whisper_target is None
        self.participants[p.id] = p
        if not self.started and options.starts:
            self._start()
        p.on_hold = not self.started
        events: tuple[str, ...] = ("on_enter_started" if self.started
                                   else "on_enter_waiting",)
        if len(self.participants) == 1:
            events += ("on_enter_alone",)
        log.info("conference.joined", extra={
            "conference": self.name, "conference_id": self.id, "participant": p.id,
            "call_id": member.call.id, "num_participants": len(self.participants)})
        return Joined(p, (*events, "on_enter"), len(self.participants))

    def enter(self, p: Participant) -> None:
        """Put a joined participant's audio into the mix (after its on_enter handlers)."""
        if p.left or p.in_room:
            return
        channel = p.channel()
        if channel is not None:
            try:
                self._mix().add(channel, talk=False, listen=False,
                                receive_dtmf=p.options.receive_dtmf)
            except ValueError as exc:
                log.warning("conference.no_media", extra={"call_id": p.call.id,
                                                          "error": str(exc)})
        p.in_room = True
        self._apply_all()
        if p.options.announce_on_join:
            self._beep(join_beep())

    def leave(self, p: Participant, reason: ExitReason,
              message: list[str] | None = None) -> None:
        """Take `p` out (idempotent); end_on_exit and hold_on_exit act here."""
        if p.left or self.participants.get(p.id) is not p:
            return
        was_in_room = p.in_room
        del self.participants[p.id]
        channel = p.channel()
        if channel is not None and self._group is not None:
            self._group.remove(channel)
        p.exit_message = message
        p._gone(reason)
        log.info("conference.left", extra={
            "conference": self.name, "conference_id": self.id, "participant": p.id,
            "call_id": p.call.id, "reason": reason.value})
        for other in self.participants.values():
            if other.whisper_target is p:
                other.whisper_target = None
                other.muted = True
        if self.ended:  # end() is taking everybody out
            return
        if p.options.end_on_exit:
            self.end()
            return
        if p.options.hold_on_exit and self.participants:
            self.started = False
            for other in self.participants.values():
                other.on_hold = True
        if was_in_room and p.options.announce_on_join and self.participants:
            self._beep(leave_beep())
        self._apply_all()
        if not self.participants:
            self._destroy()

    def end(self) -> None:
        """End the conference: everybody leaves, their flows go on."""
        if self.ended:
            return
        self.ended = True
        for other in list(self.participants.values()):
            self.leave(other, ExitReason.ENDED)
        self.service._ended(self)
        self._destroy()

    # ---- steering --------------------------------------------------------------------

    def set_muted(self, p: Participant, muted: bool, message: list[str] | None = None) -> None:
        p.muted = muted
        self._apply_all()
        p.tell(message)

    def set_on_hold(self, p: Participant, on_hold: bool,
                    message: list[str] | None = None) -> None:
        p.on_hold = on_hold
        self._apply_all()
        p.tell(message)

    def relay_digit(self, p: Participant, digit: str) -> None:
        """Pass a key press on to the participants with receive_dtmf (send_dtmf only)."""
        channel = p.channel()
        if not (p.options.send_dtmf and p.in_room and channel is not None):
            return
        group = self._group
        if group is not None and channel in group.members:
            with contextlib.suppress(ValueError):
                group.relay_digit(channel, digit)

    # ---- internals -------------------------------------------------------------------

    def _start(self) -> None:
        self.started = True
        for other in self.participants.values():
            other.on_hold = False
        self._apply_all()

    def _mix(self) -> MixGroup:
        if self._group is None:
            self._group = self.service._new_group()
        return self._group

    def _apply_all(self) -> None:
        # flags first (whisper targets must be members), then hold music
        group = self._group
        for p in self.participants.values():
            channel = p.channel()
            if group is None or channel is None or channel not in group.members:
                continue
            target = p.whisper_target.channel() if p.whisper_target is not None else None
            if target is not None and target not in group.members:
                target = None
            group.update(channel, talk=p.talks, listen=p.in_room and not p.on_hold,
                         whisper_to=target)
        alone = len(self.in_room()) == 1
        for p in self.participants.values():
            p.refresh_music(alone)

    def _beep(self, pcm: np.ndarray) -> None:
        if self._group is not None and not self._group.closed:
            self._group.play_to_all(pcm)

    def _destroy(self) -> None:
        if self._group is not None:
            self._group.close()
        self.service._remove(self)


class ConferenceService:
    """The live conferences of the switch, by scope and name."""

    def __init__(self, engine: MixEngine | None, *, ended_retain_s: float = ENDED_RETAIN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._retain = ended_retain_s
        self._clock = clock
        self._live: dict[tuple[Scope, str], Conference] = {}
        self._ended_names: dict[tuple[Scope, str], float] = {}

    def conferences(self, scope: Scope) -> list[Conference]:
        return [c for (s, _), c in self._live.items() if s == scope]

    def get(self, scope: Scope, conf_id: str) -> Conference | None:
        return next((c for c in self.conferences(scope) if c.id == conf_id), None)

    def find(self, scope: Scope, name: str) -> Conference | None:
        return self._live.get((scope, name))

    def counts(self) -> tuple[int, int]:
        """(live conferences, their participants) across every scope, for /metrics."""
        return len(self._live), sum(len(c.participants) for c in self._live.values())

    def join(self, scope: Scope, name: str, member: ConferenceMember,
             options: JoinOptions) -> Joined:
        """Register `member` in the conference `name` (created when it does not exist);
        raises ConferenceFull or ConferenceEnded."""
        key = (scope, name)
        conference = self._live.get(key)
        if conference is None:
            ended_at = self._ended_names.get(key)
            if ended_at is not None and self._clock() - ended_at < self._retain:
                raise ConferenceEnded(f"conference {name!r} has ended", 0)
            self._ended_names.pop(key, None)
            conference = Conference(self, scope, name, options.max_participants,
                                    started=options.starts)
            self._live[key] = conference
            log.info("conference.created", extra={"conference": name,
                                                  "conference_id": conference.id})
        try:
            return conference._admit(member, options)
        except JoinRefused:
            if not conference.participants:
                self._remove(conference)
            raise

    def _new_group(self) -> MixGroup:
        if self._engine is None:
            raise ValueError("this switch has no media engine for conferences")
        return self._engine.create_mix_group()

    def _ended(self, conference: Conference) -> None:
        now = self._clock()
        self._ended_names = {k: t for k, t in self._ended_names.items()
                             if now - t < self._retain}
        self._ended_names[(conference.scope, conference.name)] = now

    def _remove(self, conference: Conference) -> None:
        key = (conference.scope, conference.name)
        if self._live.get(key) is conference:
            del self._live[key]
            log.info("conference.destroyed", extra={"conference": conference.name,
                                                    "conference_id": conference.id})
