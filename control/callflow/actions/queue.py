"""QUEUE: offer the caller to a call queue, poll a queue, or take the caller out of one.

- `offer` (the default) queues the call (`control.queues`) and runs on_enter. A blocking
  offer then waits, the caller hearing hold audio, until the call leaves the queue:
  polled, poll_connected, removed (REST), the queue deleted, or the caller hung up; the
  flow then goes on with the next action. An `async` offer goes on at once and the call
  stays queued; its hold audio plays until the flow plays anything else (a SAY, a PLAY),
  which then has the line: the caller hears the flow's prompts, not music under them.
- `poll` releases the head call of the queue (its flow goes on).
- `poll_connect` takes the head call and bridges it with this call; both calls'
  `last_queue_poll_connect_call` (callbacks) and `$lastQueuePollConnectCall` name the
  other. Both flows go on: the polling one at once (block it with PAUSE or COLLECT, as
  the spec notes), the polled one after its QUEUE offer. The bridge lasts until either
  call ends, or this call poll_connects again.
- `remove` takes this call out of the queue `name`; its flow goes on here.

A failure runs the handlers that apply and the flow goes on: a full queue (max_calls)
runs on_enter_error_max_calls then on_enter_error; anything else (an unknown or empty
queue for poll, poll_connect and remove, a call not queued, a call already queued, calls
that can't be bridged) runs on_enter_error. Choices where the spec is silent: on_enter
runs for accepted offers only; `async` is ignored for events other than offer;
`hold_audio` (an audio URL, else the built-in music) is a voxswitch extension, as for
CONFERENCE.
"""

from __future__ import annotations

import logging

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from control.calls import Call
from control.queues import (
    LeaveReason,
    QueuedCall,
    QueueError,
    QueueMember,
    QueueService,
    Scope,
    valid_name,
)

log = logging.getLogger("voxswitch.callflow")

EVENTS = ("on_enter", "on_enter_error_max_calls", "on_enter_error")
QUEUE_EVENTS = ("offer", "poll", "poll_connect", "remove")


async def _failed(action: Action, ctx: FlowContext, name: str, exc: QueueError) -> Outcome:
    log.info("queue.action_failed", extra={
        "call_id": ctx.port.call.id, "queue": name, "queue_event": action.params["event"],
        "error": str(exc)})
    return await ctx.run_events(action, exc.events)


def _max_calls(action: Action) -> float | None:
    limit = action.params["max_calls"]
    if limit is not None and (isinstance(limit, bool) or not limit >= 0):
        raise NoActions(f"{action.where()}: param 'max_calls' must be a number of at least "
                        f"0, got {limit!r}")
    return limit


async def _offer(action: Action, ctx: FlowContext, service: QueueService, scope: Scope,
                 name: str, member: QueueMember) -> Outcome:
    is_async = bool(action.params["async"])
    vars_ = ctx.vars

    def connected(agent: Call) -> None:
        vars_.set_last_queue_poll_connect_call(agent.id, agent.caller_no)

    try:
        entry = service.offer(scope, name, member, max_calls=_max_calls(action),
                              hold_audio=action.params["hold_audio"] or None,
                              on_connected=connected)
    except QueueError as exc:
        return await _failed(action, ctx, name, exc)
    if is_async:
        if await ctx.run_events(action, ("on_enter",)) is Outcome.END:
            return Outcome.END
        entry.start_music(yield_to_flow=True)
        return Outcome.NEXT
    try:
        if await ctx.run_events(action, ("on_enter",)) is Outcome.END:
            return Outcome.END
        await _wait(ctx, entry)
    finally:
        service.leave(entry, LeaveReason.HUNG_UP if ctx.port.ended
                      else LeaveReason.FLOW_STOPPED)
    return Outcome.END if ctx.port.ended else Outcome.NEXT


async def _wait(ctx: FlowContext, entry: QueuedCall) -> None:
    if ctx.port.ended:
        return
    entry.start_music(yield_to_flow=False)
    await entry.wait_left()  # the call's end takes it out too (QueueService hooks it)


async def run(action: Action, ctx: FlowContext) -> Outcome:
    port, service = ctx.port, ctx.queues
    if service is None or not isinstance(port, QueueMember):
        raise NoActions(f"{action.where()}: this switch runs no queues")
    raw_name = ctx.param(action, "name")
    name = valid_name(raw_name)
    if name is None:
        raise NoActions(f"{action.where()}: param 'name' is {raw_name!r}; accepted: letters, "
                        "digits, underscores and dashes")
    event = str(action.params["event"] or "offer").lower()
    call = port.call
    scope = (call.app_id, call.subaccount_id)
    if event == "offer":
        return await _offer(action, ctx, service, scope, name, port)
    try:
        if event == "poll":
            service.poll(scope, name)
        elif event == "poll_connect":
            taken = service.poll_connect(scope, name, port)
            ctx.vars.set_last_queue_poll_connect_call(taken.call.id, taken.call.caller_no)
        else:
            service.remove(scope, name, call.id)
    except QueueError as exc:
        return await _failed(action, ctx, name, exc)
    return Outcome.NEXT


SPEC = ActionSpec(
    "QUEUE",
    run,
    {
        "name": Param((str, int), REQUIRED),
        "event": Param((str,), "offer", QUEUE_EVENTS),
        "async": Param((bool,), False),
        "max_calls": Param((int, float), None),
        # voxswitch extension: an audio URL played while queued (else built-in music)
        "hold_audio": Param((str,), None),
    },
    interpolated=frozenset({"name"}),
    children=tuple((("events", event), None) for event in EVENTS),
)
