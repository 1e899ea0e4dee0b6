"""STOP: stop what is running on the call; `AUDIO` (the only kind) stops playback."""

from __future__ import annotations

from control.callflow.actions import Action, ActionSpec, Outcome, Param, register
from control.callflow.context import FlowContext


async def run(action: Action, ctx: FlowContext) -> Outcome:
    ctx.port.stop_audio()
    return Outcome.NEXT


SPEC = register(ActionSpec("STOP", run, {"actions": Param((str,), "AUDIO", ("audio",))}))
