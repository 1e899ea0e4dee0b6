"""WEBHOOK: an HTTP request from anywhere in the flow.

Fire-and-forget unless `await_response` is set or an `on_error` handler exists; then
the flow waits (up to `timeout`, 1-30 s) and a JSON response lands in `$webhookData`.
`webhook_data` is an object, or a string: `${…}` text is interpolated, anything else is
evaluated as a JavaScript expression (the spec's `"$dataMap.webhookData"`).
"""

from __future__ import annotations

from typing import Any

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions


def webhook_data(action: Action, ctx: FlowContext) -> Any:
    raw = action.params["webhook_data"]
    if raw is None:
        return {}
    if isinstance(raw, str):
        return ctx.param(action, "webhook_data") if "${" in raw else ctx.vars.evaluate(raw)
    return raw


async def run(action: Action, ctx: FlowContext) -> Outcome:
    p = action.params
    timeout = float(p["timeout"])
    if not 1 <= timeout <= 30:
        raise NoActions(f"{action.where()}: timeout must be 1-30 seconds, got {timeout:g}")
    on_error = action.children.get("events.on_error")
    blocking = bool(p["await_response"]) or on_error is not None
    params = {k: ctx.param(action, k) for k in ("event_name", "url", "method",
                                                "content_type")}
    params.update(headers=p["headers"], timeout=timeout)
    ok, response = await ctx.host.webhook(params, webhook_data(action, ctx), blocking)
    if not blocking:
        return Outcome.NEXT
    if ok:
        if response is not None:
            ctx.vars.set_webhook_data(response)
        return Outcome.NEXT
    if on_error:
        assert ctx.interpreter is not None
        return await ctx.interpreter.run_list(on_error)
    return Outcome.NEXT


SPEC = ActionSpec("WEBHOOK", run, {
    "event_name": Param((str,), REQUIRED),
    "webhook_data": Param((dict, list, str), None),
    "url": Param((str,), None),
    "method": Param((str,), None, ("get", "post", "put")),
    "content_type": Param((str,), None),
    "headers": Param((dict,), None),
    "await_response": Param((bool,), False),
    "timeout": Param((int, float), 30),
}, interpolated=frozenset({"event_name", "url", "method", "content_type", "webhook_data"}),
    children=((("events", "on_error"), None),))
