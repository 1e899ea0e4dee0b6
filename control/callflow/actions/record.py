"""RECORD: start, stop, pause or resume recording the call.

`start` begins a new recording (a call may hold several, each listed in the call's
`recordings` under the action's name); its `group` defaults to the caller's number.
`stop`, `pause` and `resume` act on the call's open recordings of the `group` given, or
on all of them when the action gives none; nothing open is a no-op. Recording runs in
the background: the flow goes on at once. See `control.recordings` for the file format
and the other choices the spec leaves open.

A recording that cannot start (the call has ended or has no media, the index can't be
written) is logged and the flow goes on; it never ends the call.
"""

from __future__ import annotations

import logging

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from control.recordings import RecordedCall, RecordingRefused
from control.storage import StorageError

log = logging.getLogger("voxswitch.callflow.record")

ACTIONS = ("start", "stop", "pause", "resume")


async def run(action: Action, ctx: FlowContext) -> Outcome:
    port, service = ctx.port, ctx.recordings
    if service is None or not isinstance(port, RecordedCall):
        raise NoActions(f"{action.where()}: this switch records no calls")
    what = str(ctx.param(action, "action") or "start").lower()
    if what not in ACTIONS:  # an interpolated value, checked only now
        raise NoActions(f"{action.where()}: param 'action' is {what!r}; accepted: "
                        f"{', '.join(ACTIONS)}")
    group = ctx.param(action, "group")
    group = None if group in (None, "") else str(group)
    call = port.call
    if port.ended:
        log.warning("record.call_ended", extra={"call_id": call.id, "action": what})
        return Outcome.END
    if what == "start":
        try:
            await service.start(port, group, action.name)
        except (RecordingRefused, StorageError) as exc:
            log.warning("record.refused", extra={"call_id": call.id, "error": str(exc)})
    elif what == "stop":
        await service.stop(call, group)
    elif what == "pause":
        service.pause(call, group)
    else:
        service.resume(call, group)
    return Outcome.NEXT


SPEC = ActionSpec("RECORD", run, {
    "action": Param((str,), "start", ACTIONS),
    "group": Param((str, int), None),
}, interpolated=frozenset({"action", "group"}))
