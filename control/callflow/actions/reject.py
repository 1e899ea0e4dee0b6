"""REJECT: refuse the call.

Before the call is answered the INVITE gets a final response and the caller's own phone
plays the matching signal; the SIP codes are our choice where the spec names only the
reasons: busy → 486 Busy Here, disconnected → 404 Not Found (a number not in service).
After answer the caller hears a busy tone or a not-in-service message, then BYE.
"""

from __future__ import annotations

import numpy as np

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from media.tones import silence, tone

SIP_STATUS = {"busy": (486, "Busy Here"), "disconnected": (404, "Not Found")}
NOT_IN_SERVICE = "The number you have reached is not in service."


def busy_signal(cycles: int = 4) -> np.ndarray:
    """North American busy: 480 + 620 Hz, 0.5 s on, 0.5 s off."""
    one = np.concatenate([tone((480.0, 620.0), 0.5, level_dbm0=-24.0), silence(0.5)])
    return np.tile(one, cycles)


def sit_tones() -> np.ndarray:
    """Special Information Tones ahead of a not-in-service announcement."""
    return np.concatenate(
        [tone(f, d, level_dbm0=-24.0) for f, d in ((913.8, 0.274), (1370.6, 0.274),
                                                   (1776.7, 0.380))] + [silence(0.2)]
    )


async def run(action: Action, ctx: FlowContext) -> Outcome:
    port = ctx.port
    reason = str(action.params["reason"]).lower()
    if not port.answered:
        status, phrase = SIP_STATUS[reason]
        await port.reject(status, phrase)
        return Outcome.END
    if reason == "busy":
        await port.play(busy_signal())
    else:
        await port.play(sit_tones())
        await port.play(await port.speech(NOT_IN_SERVICE, voice=None, language=None,
                                          gender=None))
    await port.hangup()
    return Outcome.END


SPEC = ActionSpec("REJECT", run, {
    "reason": Param((str,), "busy", ("busy", "disconnected")),
})
