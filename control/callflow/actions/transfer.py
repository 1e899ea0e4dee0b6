"""TRANSFER: connect the caller to another number or SIP endpoint.

`event: start` (the default) places the far leg from `caller_id_no` (default: the
caller's own number, `caller_no`); the caller hears ringback, or the far end's early
media, until it answers, then the two are bridged. Blocking by default: the action ends
when the transfer does — the far end hangs up, or never connects — and the flow goes on
with the next action (the caller hanging up ends both). With `async`, the flow goes on at
once while the bridge lasts; `event: stop` hangs up the far leg. A transfer that cannot
be placed (malformed number, no route) is a Call Flow Loop error (400902): TRANSFER has
no error handlers in the spec. A far leg that does not connect sends `failed_call` to
this call's callback, with that leg's status (busy, no-answer, failed).
"""

from __future__ import annotations

from control.callflow.context import Action, ActionSpec, DialRefused, FlowContext, Outcome, Param
from control.callflow.errors import NoActions


async def run(action: Action, ctx: FlowContext) -> Outcome:
    if ctx.switchboard is None:
        raise NoActions(f"{action.where()}: this switch places no outbound calls")
    event = str(action.params["event"]).lower()
    call = ctx.port.call
    if event == "stop":
        await ctx.switchboard.stop_transfer(call)
        return Outcome.NEXT
    no = ctx.param(action, "no")
    if not no:
        raise NoActions(f"{action.where()}: missing required param 'no'")
    params = {"no": no, "caller_id_no": ctx.param(action, "caller_id_no"),
              "async": bool(action.params["async"])}
    try:
        await ctx.switchboard.transfer(call, params)
    except DialRefused as exc:
        raise NoActions(f"{action.where()}: {exc}") from None
    return Outcome.NEXT


SPEC = ActionSpec("TRANSFER", run, {
    "no": Param((str,), None),
    "caller_id_no": Param((str,), None),
    "event": Param((str,), "start", ("start", "stop")),
    "async": Param((bool,), False),
}, interpolated=frozenset({"no", "caller_id_no"}))
