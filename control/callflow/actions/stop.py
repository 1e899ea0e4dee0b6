"""STOP: stop what is running on the call; `AUDIO` (the only kind) stops playback."""

from __future__ import annotations

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param


async def run(action: Action, ctx: FlowContext) -> Outcome:
    ctx.port.stop_audio()
    return Outcome.NEXT


SPEC = ActionSpec("STOP", run, {"actions": Param((str,), "AUDIO", ("audio",))})
