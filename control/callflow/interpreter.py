"""Runs a list of actions against a call.

The interpreter owns control flow (the order of actions, stopping on HANGUP/REJECT);
each action type lives in its own module under `actions/` and talks to the call only
through `CallPort`.
"""

from __future__ import annotations

import logging
from typing import Any

from control.callflow.actions import REGISTRY, Action, Outcome
from control.callflow.errors import NoActions
from control.callflow.port import CallPort

log = logging.getLogger("voxswitch.callflow")


def compile_actions(raw: list[dict[str, Any]]) -> list[Action]:
    """Check every action of a response before any runs, so a bad one fails up front."""
    out = []
    for i, item in enumerate(raw):
        kind = str(item.get("type", "")).upper()
        spec = REGISTRY.get(kind)
        if spec is None:
            raise NoActions(
                f"action {i} has type {item.get('type')!r}, which this switch does not run; "
                f"supported: {', '.join(sorted(REGISTRY))}"
            )
        out.append(spec.build(item, index=i))
    return out


class Interpreter:
    def __init__(self, port: CallPort) -> None:
        self.port = port

    async def run(self, actions: list[Action]) -> Outcome:
        """Run actions in order; END when one ended the call, else NEXT."""
        for action in actions:
            if self.port.ended:
                return Outcome.END
            log.info("action.start", extra={"call_id": self.port.call.id,
                                            "action": action.type, "action_name": action.name})
            outcome = await action.spec.run(action, self.port)
            if outcome is Outcome.END or self.port.ended:
                return Outcome.END
        return Outcome.NEXT
