"""HANGUP: end the call now."""

from __future__ import annotations

from control.callflow.actions import Action, ActionSpec, Outcome, register
from control.callflow.context import FlowContext


async def run(action: Action, ctx: FlowContext) -> Outcome:
    await ctx.port.hangup()
    return Outcome.END


SPEC = register(ActionSpec("HANGUP", run))
