"""GOTO and LABEL: jumps within one callback response."""

from __future__ import annotations

import re

from control.callflow.actions import REQUIRED, Action, ActionSpec, Outcome, Param, register
from control.callflow.context import FlowContext
from control.callflow.errors import NoActions

LABEL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


async def goto(action: Action, ctx: FlowContext) -> Outcome:
    from control.callflow.interpreter import Goto

    label = str(ctx.param(action, "label"))
    if not LABEL_NAME.match(label):
        raise NoActions(f"{action.where()}: label {label!r} may hold only letters, digits, "
                        "dashes and underscores")
    raise Goto(label)


async def label(action: Action, ctx: FlowContext) -> Outcome:
    return Outcome.NEXT


GOTO = register(ActionSpec("GOTO", goto, {"label": Param((str,), REQUIRED)},
                           interpolated=frozenset({"label"})))
LABEL = register(ActionSpec("LABEL", label, {"name": Param((str,), None)}))
