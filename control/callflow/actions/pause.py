"""PAUSE: keep the line open for a number of seconds."""

from __future__ import annotations

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions

MAX_PAUSE_S = 3600


async def run(action: Action, ctx: FlowContext) -> Outcome:
    seconds = float(action.params["seconds"])
    if not 0 <= seconds <= MAX_PAUSE_S:
        raise NoActions(f"PAUSE: seconds must be between 0 and {MAX_PAUSE_S}, got {seconds:g}")
    await ctx.port.sleep(seconds, stop_on_key=ctx.collecting)
    return Outcome.NEXT


SPEC = ActionSpec("PAUSE", run, {"seconds": Param((int, float), 5)})
