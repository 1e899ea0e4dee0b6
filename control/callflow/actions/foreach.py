"""FOREACH: run `then` once per element of an array or object.

For an array the key variable gets the index; for an object it gets the property name
and the index variable counts iterations.
"""

from __future__ import annotations

import re
from typing import Any

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions

MAX_ITEMS = 10_000
VAR = re.compile(r"^\$[A-Za-z_][\w$]*$")


async def run(action: Action, ctx: FlowContext) -> Outcome:
    p = action.params
    value = ctx.vars.evaluate(p["iterator"])
    items: list[tuple[Any, Any]]
    if isinstance(value, list):
        items = list(enumerate(value))
    elif isinstance(value, dict):
        items = list(value.items())
    elif value is None:
        items = []
    else:
        raise NoActions(f"{action.where()}: iterator {p['iterator']!r} is a "
                        f"{type(value).__name__}, not an array or object")
    for var in ("valueVar", "keyVar", "indexVar"):
        if not VAR.match(p[var]):
            raise NoActions(f"{action.where()}: {var} {p[var]!r} must be a $name")
    if len(items) > MAX_ITEMS:
        raise NoActions(f"{action.where()}: {len(items)} elements, over {MAX_ITEMS}")
    assert ctx.interpreter is not None
    for index, (key, item) in enumerate(items):
        ctx.vars.set_vars({p["valueVar"]: item, p["keyVar"]: key, p["indexVar"]: index})
        if await ctx.interpreter.run_list(action.children.get("then", [])) is Outcome.END:
            return Outcome.END
    return Outcome.NEXT


SPEC = ActionSpec("FOREACH", run, {
    "iterator": Param((str,), REQUIRED),
    "valueVar": Param((str,), "$val"),
    "keyVar": Param((str,), "$key"),
    "indexVar": Param((str,), "$index"),
}, children=((("then",), None),))
