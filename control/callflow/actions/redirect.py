"""REDIRECT: change the url, method, headers or content type of later callbacks.

It does not call anything itself: the next callback (live_call when the actions run
out) goes to the new place. Relative URLs resolve against the current callback URL.
"""

from __future__ import annotations

from control.callflow.context import REQUIRED, Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions

METHODS = ("post", "put", "get")
CONTENT_TYPES = ("application/json", "application/xml", "application/x-www-form-urlencoded")


async def run(action: Action, ctx: FlowContext) -> Outcome:
    headers = action.params["headers"]
    if headers is not None and not all(isinstance(v, str) for v in headers.values()):
        raise NoActions(f"{action.where()}: headers must map names to strings")
    method = ctx.param(action, "method")
    ctype = ctx.param(action, "content_type")
    if method is not None and str(method).lower() not in METHODS:
        raise NoActions(f"{action.where()}: method {method!r}; accepted: POST, PUT, GET")
    if ctype is not None and ctype not in CONTENT_TYPES:
        raise NoActions(f"{action.where()}: content_type {ctype!r}; accepted: "
                        f"{', '.join(CONTENT_TYPES)}")
    ctx.host.redirect(str(ctx.param(action, "url")), method and str(method).upper(), headers,
                      ctype)
    return Outcome.NEXT


SPEC = ActionSpec("REDIRECT", run, {
    "url": Param((str,), REQUIRED),
    "method": Param((str,), None),
    "headers": Param((dict,), None),
    "content_type": Param((str,), None),
}, interpolated=frozenset({"url", "method", "content_type"}))
