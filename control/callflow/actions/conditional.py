"""IF: run `then` when the JavaScript condition is truthy, else `orElse`."""

from __future__ import annotations

from control.callflow.actions import REQUIRED, Action, ActionSpec, Outcome, Param, register
from control.callflow.context import FlowContext


async def run(action: Action, ctx: FlowContext) -> Outcome:
    branch = "then" if ctx.vars.truthy(action.params["condition"]) else "orElse"
    assert ctx.interpreter is not None
    return await ctx.interpreter.run_list(action.children.get(branch, []))


SPEC = register(ActionSpec(
    "IF", run, {"condition": Param((str,), REQUIRED)},
    top_level=frozenset({"condition"}),
    children=((("then",), None), (("orElse",), None)),
))
