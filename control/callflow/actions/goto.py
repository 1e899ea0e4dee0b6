"""GOTO and LABEL: jumps within one callback response."""

from __future__ import annotations

import re

from control.callflow.context import (
    REQUIRED,
    Action,
    ActionSpec,
    FlowContext,
    Goto,
    Outcome,
    Param,
)
from control.callflow.errors import NoActions

LABEL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


async def goto(action: Action, ctx: FlowContext) -> Outcome:
    label = str(ctx.param(action, "label"))
    if not LABEL_NAME.match(label):
        raise NoActions(f"{action.where()}: label {label!r} may hold only letters, digits, "
                        "dashes and underscores")
    raise Goto(label)


async def label(action: Action, ctx: FlowContext) -> Outcome:
    return Outcome.NEXT


GOTO = ActionSpec("GOTO", goto, {"label": Param((str,), REQUIRED)},
                  interpolated=frozenset({"label"}))
LABEL = ActionSpec("LABEL", label, {"name": Param((str,), None)})
