"""IF: run `then` when the JavaScript condition is truthy, else `orElse`."""

from __future__ import annotations

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param


async def run(action: Action, ctx: FlowContext) -> Outcome:
    branch = "then" if ctx.vars.truthy(action.params["condition"]) else "orElse"
    assert ctx.interpreter is not None
    return await ctx.interpreter.run_list(action.children.get(branch, []))


SPEC = ActionSpec(
    "IF", run, {"condition": Param((str,), REQUIRED)},
    top_level=frozenset({"condition"}),
    children=((("then",), None), (("orElse",), None)),
)
