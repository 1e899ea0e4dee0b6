"""CONFERENCE: put the caller into a conference until it leaves, then go on with the flow.

The join registers the caller (`control.conferences`), sets `$numConferenceParticipants`
and runs the on_enter handlers that apply, in this order: on_enter_started or
on_enter_waiting, on_enter_alone, then on_enter (the catch-all, always last). A refused
join runs on_enter_error_max_participants or on_enter_error_ended, then on_enter_error,
and the flow goes on. After the handlers the caller's audio joins the mix and the action
waits, acting on key combinations (mute_on_key, unmute_on_key, exit_on_key) and passing
keys on when send_dtmf, until the caller leaves: exit key, REST Leave, an end_on_exit
participant leaving, or the end of the call. `$numConferenceParticipants` is set again
to the count left behind, a REST Leave's message plays, and the next action runs.

Choices where the spec is silent: on_enter runs for successful joins only (the error
handlers have on_enter_error as their catch-all), so a refused caller does not hear the
welcome; handlers run before the caller's audio joins the mix, so their prompts are not
talked over. Two voxswitch extensions serve the REST methods that inject this action:
`message` (played before joining) and `whisper_to` (the call id of the participant to
whisper to).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from control.conferences import (
    ConferenceMember,
    ExitReason,
    JoinOptions,
    JoinRefused,
    KeyCombos,
    Participant,
    parse_keys,
    valid_name,
)

EVENTS = (
    "on_enter_started",
    "on_enter_waiting",
    "on_enter",
    "on_enter_error_max_participants",
    "on_enter_error_ended",
    "on_enter_error",
    "on_enter_alone",
)
KEY_PARAMS = ("mute_on_key", "unmute_on_key", "exit_on_key")
BOOL_PARAMS = ("auto_hold", "join_muted", "hold_on_join", "end_on_exit", "hold_on_exit",
               "send_dtmf", "receive_dtmf")
IDLE_S = 3600.0  # how long one wait for a key lasts; the loop simply waits again


def join_options(action: Action) -> JoinOptions:
    """The validated params as JoinOptions; NoActions naming the bad one."""
    p = action.params
    keys: dict[str, Any] = {}
    for name in KEY_PARAMS:
        try:
            keys[name] = parse_keys(p[name])
        except ValueError as exc:
            raise NoActions(f"{action.where()}: param '{name}': {exc}") from None
    flags: dict[str, Any] = {name: bool(p[name]) for name in BOOL_PARAMS}
    limit = p["max_participants"]
    if limit is not None and (isinstance(limit, bool) or not limit >= 1):
        raise NoActions(f"{action.where()}: param 'max_participants' must be at least 1, "
                        f"got {limit!r}")
    announce = p["announce_on_join"]
    return JoinOptions(
        hold_audio=p["hold_audio"] or None,
        max_participants=limit,
        announce_on_join=isinstance(announce, str) and announce.lower() == "beep",
        start_on_join=p["start_on_join"],
        whisper_to=p["whisper_to"],
        **keys,
        **flags,
    )


def _message(action: Action) -> list[str] | None:
    raw = action.params["message"]
    items = [raw] if isinstance(raw, str) else raw or []
    if not all(isinstance(i, str) for i in items):
        raise NoActions(f"{action.where()}: param 'message' must be a string or an array "
                        "of strings")
    return [i for i in items if i.strip()] or None


async def _next_key(ctx: FlowContext, left: asyncio.Future[Any]) -> str | None:
    waiting: asyncio.Future[Any] = asyncio.ensure_future(ctx.port.next_digit(IDLE_S))
    try:
        await asyncio.wait({waiting, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    return waiting.result() if not waiting.cancelled() else None


async def _take_part(ctx: FlowContext, p: Participant) -> None:
    """Be in the conference until leaving it, acting on key combinations."""
    conference = p.conference
    combos = KeyCombos({"mute": p.options.mute_on_key, "unmute": p.options.unmute_on_key,
                        "exit": p.options.exit_on_key})
    if p.whisper_target is not None:
        await p.whisper_target.quiet()  # the target hears its message first
    conference.enter(p)
    left: asyncio.Future[Any] = asyncio.ensure_future(p.wait_left())
    try:
        while not (p.left or ctx.port.ended):
            digit = await _next_key(ctx, left)
            if digit is None or p.left:
                continue
            conference.relay_digit(p, digit)
            command = combos.feed(digit)
            if command == "exit":
                conference.leave(p, ExitReason.KEY)
            elif command is not None:
                conference.set_muted(p, command == "mute")
    finally:
        left.cancel()


async def run(action: Action, ctx: FlowContext) -> Outcome:
    port, service = ctx.port, ctx.conferences
    if service is None or not isinstance(port, ConferenceMember):
        raise NoActions(f"{action.where()}: this switch runs no conferences")
    raw_name = ctx.param(action, "name")
    name = valid_name(raw_name)
    if name is None:
        raise NoActions(f"{action.where()}: param 'name' is {raw_name!r}; accepted: letters, "
                        "digits, underscores and dashes")
    options = join_options(action)
    message = _message(action)
    if message:
        await port.play_message(message)
        if port.ended:
            return Outcome.END
    call = port.call
    try:
        joined = service.join((call.app_id, call.subaccount_id), name, port, options)
    except JoinRefused as refused:
        ctx.vars.set_num_conference_participants(refused.num_participants)
        return await ctx.run_events(action, (refused.event, "on_enter_error"))
    p = joined.participant
    ctx.vars.set_num_conference_participants(joined.num_participants)
    try:
        if await ctx.run_events(action, joined.events) is Outcome.END:
            return Outcome.END
        await _take_part(ctx, p)
    finally:
        p.conference.leave(p, ExitReason.FLOW)
    ctx.vars.set_num_conference_participants(len(p.conference.participants))
    if p.exit_message and not port.ended:
        await port.play_message(p.exit_message)
    return Outcome.END if port.ended else Outcome.NEXT


def _params() -> dict[str, Param]:
    params: dict[str, Param] = {
        "name": Param((str, int), REQUIRED),
        "hold_audio": Param((str,), None),
        "max_participants": Param((int, float), None),
        "announce_on_join": Param((str,), None, ("beep", "null")),
        "start_on_join": Param((bool,), None),
        # voxswitch extensions, used by the REST Join and JoinToWhisper methods
        "message": Param((str, list), None),
        "whisper_to": Param((str,), None),
    }
    params.update({k: Param((str, int), "off") for k in KEY_PARAMS})
    params.update({k: Param((bool,), False) for k in BOOL_PARAMS})
    return params


def _children() -> tuple[tuple[tuple[str, ...], Any], ...]:
    return tuple((("events", event), None) for event in EVENTS)


SPEC = ActionSpec("CONFERENCE", run, _params(), interpolated=frozenset({"name"}),
                  children=_children())
