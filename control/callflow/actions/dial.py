"""DIAL: start a new, independent call (not connected to this one).

The new call rings `no` from `caller_id_no` (default: this call's api_no) and, once
answered, runs the call flow of `override_callback_config`, else of `caller_id_no`; its
`parent_call_id` is this call. The flow goes on at once. A dial that cannot be placed
(a malformed number, no outbound route, bad timeout) runs `events.on_error`; a dial that
is placed but does not connect (busy, no answer, failed) sends `failed_call` to this
call's callback. `session_data` sits beside `params` as in the spec's examples (an object,
or a string naming a variable such as "$sessionData"); `detection` is accepted and
passed on (answering-machine detection is wired up with the recording issue).
"""

from __future__ import annotations

from typing import Any

from control.callflow.context import (
    REQUIRED,
    Action,
    ActionSpec,
    DialRefused,
    FlowContext,
    Outcome,
    Param,
)
from control.callflow.errors import NoActions

DIAL_PARAMS = ("no", "caller_id_no", "detection", "override_callback_config", "inbound_api",
               "max_call_time", "timeout")


def session_data(action: Action, ctx: FlowContext) -> Any:
    raw = action.raw.get("session_data", action.params.get("session_data"))
    if isinstance(raw, str):
        value = ctx.vars.evaluate(raw) if raw.strip().startswith("$") else raw
        if value is not None and not isinstance(value, dict):
            raise NoActions(f"{action.where()}: session_data {raw!r} is not an object")
        return value
    if raw is not None and not isinstance(raw, dict):
        raise NoActions(f"{action.where()}: session_data must be an object")
    return raw


async def run(action: Action, ctx: FlowContext) -> Outcome:
    if ctx.switchboard is None:
        raise NoActions(f"{action.where()}: this switch places no outbound calls")
    params = {k: ctx.param(action, k) for k in DIAL_PARAMS}
    params["session_data"] = session_data(action, ctx)
    try:
        await ctx.switchboard.dial(ctx.port.call, params)
    except DialRefused:
        return await ctx.run_events(action, ("on_error",))
    return Outcome.NEXT


SPEC = ActionSpec("DIAL", run, {
    "no": Param((str,), REQUIRED),
    "caller_id_no": Param((str,), None),
    "detection": Param((str,), None, ("preconnect", "full", "none")),
    "override_callback_config": Param((str,), None),
    "inbound_api": Param((str,), None),
    "max_call_time": Param((int, float), None),
    "timeout": Param((int, float), None),
    "session_data": Param((dict, str), None),
}, interpolated=frozenset({"no", "caller_id_no", "override_callback_config"}),
    children=((("events", "on_error"), None),))
