"""SMS: send a text message (SIP MESSAGE) from the flow, and go on at once.

`message` is the text (interpolated, up to 1600 characters); `no` the destination,
default the call's caller_no; `caller_id_no` the sender, default the call's api_no
(`no` and `caller_id_no` are interpolated too). The message is accepted and delivered in
the background (control.messaging): its statuses show in GET /Messages. One that cannot
even be accepted (no text, a malformed destination) is logged, and the flow goes on.
"""

from __future__ import annotations

import logging

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions

log = logging.getLogger("voxswitch.callflow.sms")


async def run(action: Action, ctx: FlowContext) -> Outcome:
    if ctx.messaging is None:
        raise NoActions(f"{action.where()}: this switch sends no messages")
    call = ctx.port.call
    text = ctx.param(action, "message")
    no, caller_id_no = ctx.param(action, "no"), ctx.param(action, "caller_id_no")
    try:
        record = await ctx.messaging.sms(call, no or None, caller_id_no or None, str(text))
    except ValueError as exc:
        log.warning("sms.refused", extra={"call_id": call.id, "error": str(exc)})
        return Outcome.NEXT
    log.info("sms.sent_from_flow", extra={"call_id": call.id,
                                          "message_id": record.get("message_id")})
    return Outcome.NEXT


SPEC = ActionSpec("SMS", run, {
    "message": Param((str,), REQUIRED),
    "no": Param((str,), None),
    "caller_id_no": Param((str,), None),
}, interpolated=frozenset({"message", "no", "caller_id_no"}))
