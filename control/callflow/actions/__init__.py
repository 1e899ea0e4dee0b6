"""Action registry: one module per action type, each defining its ActionSpec.

An action's parameter schema is data (`params`: name → accepted types, default, choices),
and so are the places its nested action lists live (`children`: IF's `then`/`orElse`,
COLLECT's `actions`, WEBHOOK's `events.on_error`, …). The interpreter compiles a whole
response against these specs before anything runs, so a bad action fails up front.

The action modules know only `control.callflow.context`, never this package: the package
imports them and fills `REGISTRY` from their specs. The action model is re-exported here
for callers that import it from the registry.
"""

from __future__ import annotations

from control.callflow.actions import (
    collect,
    conditional,
    conference,
    detect,
    dial,
    foreach,
    goto,
    hangup,
    pause,
    play,
    queue,
    record,
    recordmessage,
    redirect,
    reject,
    say,
    sessiondata,
    sms,
    stop,
    transfer,
    webhook,
)
from control.callflow.context import ASSIGN, REQUIRED, Action, ActionSpec, Outcome, Param

__all__ = ["ASSIGN", "REGISTRY", "REQUIRED", "Action", "ActionSpec", "Outcome", "Param", "register"]

REGISTRY: dict[str, ActionSpec] = {}


def register(spec: ActionSpec) -> ActionSpec:
    """Make `spec` the action run for its type (replacing any before it)."""
    REGISTRY[spec.type] = spec
    return spec


for _spec in (
    collect.SPEC,
    conditional.SPEC,
    conference.SPEC,
    detect.SPEC,
    dial.SPEC,
    foreach.SPEC,
    goto.GOTO,
    goto.LABEL,
    hangup.SPEC,
    pause.SPEC,
    play.SPEC,
    queue.SPEC,
    record.SPEC,
    recordmessage.SPEC,
    redirect.SPEC,
    reject.SPEC,
    say.SPEC,
    sessiondata.SPEC,
    sms.SPEC,
    stop.SPEC,
    transfer.SPEC,
    webhook.SPEC,
):
    register(_spec)
