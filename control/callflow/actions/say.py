"""SAY: text to speech."""

from __future__ import annotations

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param

MAX_REPEAT = 100


def repeat_count(action: Action) -> int:
    """`repeat` (the spec) or `loop` (used in the spec's own examples), 1 by default."""
    value = action.params.get("repeat")
    if value is None:
        loop = (action.raw.get("params") or {}).get("loop")
        value = loop if isinstance(loop, int | float) else 1
    return max(0, min(int(value), MAX_REPEAT))


async def run(action: Action, ctx: FlowContext) -> Outcome:
    text = ctx.param(action, "text", speech=True)
    pcm = await ctx.port.speech(
        str(text),
        voice=action.params["voice"],
        language=action.params["language"],
        gender=action.params["gender"],
    )
    for _ in range(repeat_count(action)):
        if not await ctx.port.play(pcm, stop_on_key=ctx.stop_on_key(action)):
            break
    return Outcome.NEXT


SPEC = ActionSpec("SAY", run, {
    "text": Param((str, int, float), REQUIRED),
    "repeat": Param((int, float), None),
    "voice": Param((str,), None),
    "language": Param((str,), None),
    "gender": Param((str,), None, ("female", "male")),
    "stop_on_key": Param((bool,), False),
}, interpolated=frozenset({"text"}))
