"""HANGUP: end the call now."""

from __future__ import annotations

from control.callflow.actions import Action, ActionSpec, Outcome, register
from control.callflow.port import CallPort


async def run(action: Action, port: CallPort) -> Outcome:
    await port.hangup()
    return Outcome.END


SPEC = register(ActionSpec("HANGUP", run))
