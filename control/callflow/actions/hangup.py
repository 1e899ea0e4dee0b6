"""HANGUP: end the call now."""

from __future__ import annotations

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome


async def run(action: Action, ctx: FlowContext) -> Outcome:
    await ctx.port.hangup()
    return Outcome.END


SPEC = ActionSpec("HANGUP", run)
