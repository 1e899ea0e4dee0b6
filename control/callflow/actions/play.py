"""PLAY: an audio file by URL, or DTMF tones."""

from __future__ import annotations

import numpy as np

from control.callflow.actions import Action, ActionSpec, Outcome, Param, register
from control.callflow.actions.say import repeat_count
from control.callflow.errors import NoActions
from control.callflow.port import CallPort
from media.tones import dtmf_tone, silence

DTMF_KEYS = set("0123456789*#ABCDabcd")
DIGIT_S = 0.1


def dtmf_audio(digits: str, delay_ms: float, dash_ms: float) -> np.ndarray:
    """In-band DTMF for `digits`: tones separated by `delay_ms`, each '-' adds `dash_ms`."""
    parts: list[np.ndarray] = []
    for ch in digits:
        if ch == " ":
            continue
        if ch == "-":
            parts.append(silence(dash_ms / 1000))
        elif ch in DTMF_KEYS:
            if parts:
                parts.append(silence(delay_ms / 1000))
            parts.append(dtmf_tone(ch.upper(), DIGIT_S))
        else:
            raise NoActions(f"PLAY: dtmf {digits!r} has {ch!r}; accepted: 0-9 * # A-D and -")
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


async def run(action: Action, port: CallPort) -> Outcome:
    url, dtmf = action.params["url"], action.params["dtmf"]
    if bool(url) == bool(dtmf):
        raise NoActions("PLAY needs exactly one of 'url' or 'dtmf'")
    if url:
        pcm = await port.audio(url)
    else:
        pcm = dtmf_audio(str(dtmf), action.params["dtmf_delay"], action.params["dtmf_dash_delay"])
    for _ in range(repeat_count(action)):
        if not await port.play(pcm):
            break
    return Outcome.NEXT


SPEC = register(ActionSpec("PLAY", run, {
    "url": Param((str,), None),
    "dtmf": Param((str, int), None),
    "dtmf_delay": Param((int, float), 250),
    "dtmf_dash_delay": Param((int, float), 250),
    "repeat": Param((int, float), None),
    "stop_on_key": Param((bool,), False),
}))
