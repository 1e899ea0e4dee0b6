"""SESSIONDATA: replace the call's session_data.

The spec's example puts `session_data` beside `type`; `params.session_data` is accepted
too.
"""

from __future__ import annotations

import json

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome
from control.callflow.errors import NoActions

MAX_BYTES = 16 * 1024


async def run(action: Action, ctx: FlowContext) -> Outcome:
    params = action.raw.get("params")
    data = action.raw.get("session_data")
    if data is None and isinstance(params, dict):
        data = params.get("session_data")
    if not isinstance(data, dict):
        raise NoActions("SESSIONDATA needs 'session_data' to be a JSON object")
    size = len(json.dumps(data, separators=(",", ":")))
    if size > MAX_BYTES:
        raise NoActions(f"SESSIONDATA: session_data is {size} bytes, over {MAX_BYTES}")
    ctx.port.call.session_data = data
    ctx.vars.sync_from_call()
    return Outcome.NEXT


SPEC = ActionSpec("SESSIONDATA", run)
