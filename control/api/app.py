"""The `/v1` application: route registration, authentication, errors and access log.

The lead mounts it with `root.add_subapp("/v1", build_api(ctx))`. One middleware wraps
every request of the sub-app, including unknown paths below `/v1` (aiohttp resolves
those inside the sub-app, so its middleware sees the 404/405): it checks `X-API-Key`,
turns every failure into the spec's error body and logs one line per request.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import replace

from aiohttp import web

from control.api import (
    callerids,
    callflows,
    conferences,
    dials,
    events,
    history,
    integrations,
    liveactions,
    livecalls,
    messages,
    openapi,
    phonenumbers,
    queues,
    recordings,
    registrar,
    simulator,
    subaccounts,
    timeline,
    trunks,
    webrtc,
)
from control.api.context import CONTEXT, ApiContext
from control.api.errors import ApiError, new_ref_id
from control.api.routing import ROUTES, Handler, Route, RouteTable
from control.storage import StorageError

log = logging.getLogger("control.api")

# One table per resource module; a new resource is a new module listed here.
RESOURCES: tuple[RouteTable, ...] = (
    callflows.routes,
    conferences.routes,  # before livecalls: /LiveCalls/Conferences is not a call id
    queues.routes,  # before livecalls: /LiveCalls/Queues is not a call id either
    livecalls.routes,
    timeline.routes,  # /LiveCalls/{call_id}/Timeline and /Audio
    liveactions.routes,
    recordings.routes,
    dials.routes,
    history.routes,
    integrations.routes,
    messages.routes,
    registrar.routes,
    phonenumbers.routes,
    trunks.routes,
    callerids.routes,
    simulator.routes,
    webrtc.routes,
    events.routes,
    subaccounts.routes,
    openapi.routes,
)

# Not below /SubAccounts/{id}: the sub-accounts themselves and the document.
UNPREFIXED: tuple[RouteTable, ...] = (subaccounts.routes, openapi.routes)
# Application-wide (the registrar's SIP users, the recording bucket): below the prefix
# they answer 404002 rather than let one sub-account change what every account uses.
APPLICATION_LEVEL: tuple[RouteTable, ...] = (registrar.routes, integrations.routes,
                                             simulator.routes, webrtc.routes)

API_KEY_HEADER = "X-API-Key"


def build_api(ctx: ApiContext, extra: Iterable[RouteTable] = ()) -> web.Application:
    """The API sub-app with every route of `RESOURCES` (and `extra`) registered."""
    app = web.Application(middlewares=[api_middleware])
    app[CONTEXT] = ctx
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for table in (*RESOURCES, *extra):
        for route in table.routes:
            key = (route.method, route.path)
            if key in seen:
                raise ValueError(f"route {route.method} {route.path} is declared twice")
            seen.add(key)
            app.router.add_route(route.method, route.path, route.handler)
            routes.append(route)
    for table in (*RESOURCES, *extra):
        if table in UNPREFIXED:
            continue
        for route in table.routes:
            path = subaccounts.PREFIX + route.path
            scoped = replace(route, path=path, scoped=True,
                             params=(subaccounts.PREFIX_PARAM, *route.params))
            if table in APPLICATION_LEVEL:
                scoped = replace(scoped, handler=_application_level(route.handler),
                                 summary="Application-level: 404002 below a Sub Account")
            app.router.add_route(scoped.method, path, scoped.handler)
            routes.append(scoped)
    app[ROUTES] = routes
    return app


def _application_level(handler: Handler) -> Handler:
    async def not_below_a_subaccount(request: web.Request) -> web.StreamResponse:
        """The application's own: a Sub Account has none (404002)."""
        raise ApiError.not_supported()

    not_below_a_subaccount.__name__ = handler.__name__
    return not_below_a_subaccount


def _authenticate(request: web.Request) -> None:
    expected = request.config_dict[CONTEXT].api_key.encode()
    given = request.headers.get(API_KEY_HEADER, "").encode()
    # compare_digest: the time taken must not reveal how much of the key matched
    if not given or not expected or not hmac.compare_digest(given, expected):
        raise ApiError.unauthorized()


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return ApiError.method_not_allowed(request.method, set(exc.allowed_methods))
    if isinstance(exc, web.HTTPNotFound):
        return ApiError.unknown_endpoint()
    return ApiError.http(exc.status, exc.reason)


def _error_response(request: web.Request, error: ApiError) -> web.Response:
    ref_id = new_ref_id()
    level = logging.WARNING if error.status >= 500 else logging.DEBUG
    log.log(
        level,
        "%s %s failed: %d %d %s (ref_id %s)",
        request.method,
        request.path,
        error.status,
        error.code,
        error.message,
        ref_id,
    )
    return web.json_response(error.body(ref_id), status=error.status, headers=error.headers)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        try:
            _authenticate(request)
            await subaccounts.resolve(request)
            response = await handler(request)
        except ApiError as exc:
            response = _error_response(request, exc)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects pass through untouched
                status = exc.status
                raise
            response = _error_response(request, _from_http_exception(request, exc))
        except StorageError as exc:
            log.error("storage failed during %s %s: %s", request.method, request.path, exc)
            response = _error_response(request, ApiError.database(str(exc)))
        except Exception as exc:
            # a bug: answer 500999 and keep serving; the traceback goes to the log
            log.exception("uncaught error in %s %s", request.method, request.path)
            response = _error_response(request, ApiError.uncaught(exc))
        status = response.status
        return response
    finally:
        ms = (time.perf_counter() - started) * 1000
        log.info(
            "%s %s %d %.1fms",
            request.method,
            request.path,
            status,
            ms,
            extra={
                "http_method": request.method,
                "http_path": request.path,
                "http_status": status,
                "duration_ms": round(ms, 1),
            },
        )
