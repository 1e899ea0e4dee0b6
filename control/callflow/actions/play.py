"""PLAY: an audio file by URL, or DTMF."""

from __future__ import annotations

import numpy as np

from control.callflow.actions.say import repeat_count
from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from media.tones import dtmf_tone, silence

DTMF_KEYS = set("0123456789*#ABCDabcd")
DIGIT_S = 0.1


def check_dtmf(digits: str, where: str = "PLAY") -> str:
    """The digits to send ('-' kept as a pause, spaces dropped); NoActions on bad keys."""
    out = ""
    for ch in digits:
        if ch == " ":
            continue
        if ch != "-" and ch not in DTMF_KEYS:
            raise NoActions(f"{where}: dtmf {digits!r} has {ch!r}; accepted: 0-9 * # A-D and -")
        out += ch.upper()
    return out


def dtmf_audio(digits: str, delay_ms: float, dash_ms: float) -> np.ndarray:
    """In-band DTMF for `digits`: tones separated by `delay_ms`, each '-' adds `dash_ms`."""
    parts: list[np.ndarray] = []
    for ch in check_dtmf(digits):
        if ch == "-":
            parts.append(silence(dash_ms / 1000))
        else:
            if parts:
                parts.append(silence(delay_ms / 1000))
            parts.append(dtmf_tone(ch, DIGIT_S))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


async def run(action: Action, ctx: FlowContext) -> Outcome:
    url, dtmf = ctx.param(action, "url"), ctx.param(action, "dtmf")
    if bool(url) == bool(dtmf not in (None, "")):
        raise NoActions(f"{action.where()}: PLAY needs exactly one of 'url' or 'dtmf'")
    if url:
        pcm = await ctx.port.audio(str(url))
        for _ in range(repeat_count(action)):
            if not await ctx.port.play(pcm, stop_on_key=ctx.stop_on_key(action)):
                break
        return Outcome.NEXT
    digits = check_dtmf(str(dtmf))
    for _ in range(repeat_count(action)):
        sent = await ctx.port.send_dtmf(digits, delay_ms=action.params["dtmf_delay"],
                                        dash_ms=action.params["dtmf_dash_delay"])
        if not sent:
            break
    return Outcome.NEXT


SPEC = ActionSpec("PLAY", run, {
    "url": Param((str,), None),
    "dtmf": Param((str, int), None),
    "dtmf_delay": Param((int, float), 250),
    "dtmf_dash_delay": Param((int, float), 250),
    "repeat": Param((int, float), None),
    "stop_on_key": Param((bool,), False),
}, interpolated=frozenset({"url", "dtmf"}))
