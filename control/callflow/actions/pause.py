"""PAUSE: keep the line open for a number of seconds."""

from __future__ import annotations

from control.callflow.actions import Action, ActionSpec, Outcome, Param, register
from control.callflow.errors import NoActions
from control.callflow.port import CallPort

MAX_PAUSE_S = 3600


async def run(action: Action, port: CallPort) -> Outcome:
    seconds = float(action.params["seconds"])
    if not 0 <= seconds <= MAX_PAUSE_S:
        raise NoActions(f"PAUSE: seconds must be between 0 and {MAX_PAUSE_S}, got {seconds:g}")
    await port.sleep(seconds)
    return Outcome.NEXT


SPEC = register(ActionSpec("PAUSE", run, {"seconds": Param((int, float), 5)}))
