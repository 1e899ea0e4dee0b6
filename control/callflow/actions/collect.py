"""COLLECT: record key presses, optionally after prompts that stop at the first key.

Results land in the call's `key_presses` under the action's name (`digits` the latest
group, `history` every non-empty group so far) and in `$keyPresses`; `$collectAttempt`
counts visits to this COLLECT. A COLLECT without a name is keyed `COLLECT_<index>`.
"""

from __future__ import annotations

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from control.calls import KeyPress

KEYS = ("off", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "#", "*")
PROMPTS = frozenset({"PLAY", "SAY", "PAUSE"})


def collect_name(action: Action) -> str:
    return action.name or f"COLLECT_{action.index}"


def record(ctx: FlowContext, name: str, digits: str) -> None:
    call = ctx.port.call
    entry = next((k for k in call.key_presses if k.name == name), None)
    if entry is None:
        entry = KeyPress(name=name, digits="")
        call.key_presses.append(entry)
    entry.digits = digits
    if digits:
        entry.history.append(digits)
    ctx.vars.set_key_presses(digits)


async def gather(ctx: FlowContext, *, num_digits: int, finish_on_key: str,
                 timeout_s: float) -> str:
    """Wait for keys: up to `num_digits`, until the finish key, or `timeout_s` between."""
    digits = ""
    finish = None if finish_on_key.lower() == "off" else finish_on_key
    while len(digits) < num_digits:
        key = await ctx.port.next_digit(timeout_s)
        if key is None:
            break
        if key == finish:
            break
        digits += key
    return digits


async def run(action: Action, ctx: FlowContext) -> Outcome:
    p = action.params
    num_digits, timeout_ms = int(p["num_digits"]), float(p["timeout"])
    if num_digits < 1:
        raise NoActions(f"{action.where()}: num_digits must be at least 1")
    if timeout_ms <= 0:
        raise NoActions(f"{action.where()}: timeout must be a positive number of ms")
    name = collect_name(action)
    ctx.vars.enter_collect(name)
    assert ctx.interpreter is not None
    ctx.collecting = True
    try:
        for prompt in action.children.get("actions", []):
            if ctx.port.pending_digit() or ctx.port.ended:
                break
            await ctx.interpreter.run_one(prompt)
    finally:
        ctx.collecting = False
    if ctx.port.ended:
        return Outcome.END
    digits = await gather(ctx, num_digits=num_digits, finish_on_key=str(p["finish_on_key"]),
                          timeout_s=timeout_ms / 1000)
    record(ctx, name, digits)
    return Outcome.END if ctx.port.ended else Outcome.NEXT


SPEC = ActionSpec("COLLECT", run, {
    "finish_on_key": Param((str, int), "#", KEYS),
    "num_digits": Param((int,), 1),
    "timeout": Param((int, float), 5000),
}, children=((("actions",), PROMPTS),))
