"""LiveCalls methods: list and view calls, End Call and Hang Up."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError
from control.api.query import (
    choice_param,
    int_param,
    json_body,
    list_param,
    number_param,
    phone_list_param,
)
from control.api.routing import RouteTable, Schema, query
from control.calls import Call
from control.flowconfig import normalize_number

routes = RouteTable("LiveCalls")

SORT_BY = ("connected_time", "id")
SORT_ORDER = ("asc", "desc")
# values of filter_on_apis; every call voxswitch runs today comes from CallFlows
ORIGIN_APIS = ("CallFlows",)
DEFAULT_MAX_RESULTS = 500

LIVE_CALL_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "no": {"type": "string"},
        "caller_id_no": {"type": "string"},
        "status": {"type": "string"},
        "detection": {"type": "string"},
        "date": {"type": "string", "format": "date-time"},
        "session_data": {},
        "connected_time": {"type": "integer", "description": "milliseconds"},
        "error": {"type": ["string", "null"]},
        "app_id": {"type": "string"},
        "subaccount_id": {"type": "integer"},
        "direction": {"enum": ["inbound", "outbound"],
                      "description": "voxswitch extension: who placed the call"},
        "parent_call_id": {"type": ["string", "null"],
                           "description": "voxswitch extension: the call that dialled this "
                                          "one (DIAL, TRANSFER)"},
    },
}
_EXTREME_SCHEMA: Schema = {
    "type": ["object", "null"],
    "properties": {"id": {"type": "string"}, "connected_time": {"type": "integer"}},
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "calls": {"type": "array", "items": LIVE_CALL_SCHEMA},
        "longest_call": _EXTREME_SCHEMA,
        "shortest_call": _EXTREME_SCHEMA,
        "total_calls": {"type": "integer"},
    },
}
HANGUP_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "message": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "TTS text, audio URLs or dtmf:// items played before hanging up.",
        }
    },
}
_CSV = {"type": "string"}
LIST_PARAMS = (
    query("sort_by", {"enum": list(SORT_BY), "default": "connected_time"}),
    query("sort_order", {"enum": list(SORT_ORDER), "default": "asc"}),
    query("filter_on_nos", _CSV, "Comma-separated caller numbers."),
    query("filter_on_call_id_nos", _CSV, "Comma-separated voxswitch (API) numbers."),
    query("filter_on_apis", _CSV, "Comma-separated APIs: CallFlows."),
    query("max_results", {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_RESULTS}),
    query("min_connected_time", {"type": "number", "minimum": 0}, "Milliseconds, inclusive."),
    query("max_connected_time", {"type": "number", "minimum": 0}, "Milliseconds, inclusive."),
)


def _same_number(raw: str) -> str:
    # numbers on calls come from SIP headers; compare them in normalised form when possible
    try:
        return normalize_number(raw)
    except ApiError:
        return raw


def _id_key(call_id: str) -> tuple[int, str]:
    # ids are "sequence@node": order by the sequence number, not as text
    seq, _, node = call_id.partition("@")
    return (int(seq), node) if seq.isdigit() else (-1, call_id)


def _origin_api(call: Call) -> str:
    return str(getattr(call, "origin_api", "CallFlows"))


def _apis_param(request: web.Request) -> set[str] | None:
    items = list_param(request, "filter_on_apis")
    if items is None:
        return None
    known = {api.lower(): api for api in ORIGIN_APIS}
    chosen = set()
    for item in items:
        api = known.get(item.strip().lower())
        if api is None:
            raise ApiError.validation("filter_on_apis", f"accepts only {', '.join(ORIGIN_APIS)}")
        chosen.add(api)
    return chosen


@routes.route(
    "GET",
    "/LiveCalls",
    summary="List live calls",
    params=LIST_PARAMS,
    responses={200: LIST_SCHEMA},
)
async def list_live_calls(request: web.Request) -> web.Response:
    """Filters apply first; `longest_call`, `shortest_call` and `total_calls` describe
    every matching call, and `max_results` then limits the `calls` array."""
    sort_by = choice_param(request, "sort_by", SORT_BY, "connected_time")
    descending = choice_param(request, "sort_order", SORT_ORDER, "asc") == "desc"
    nos = phone_list_param(request, "filter_on_nos")
    api_nos = phone_list_param(request, "filter_on_call_id_nos")
    apis = _apis_param(request)
    max_results = int_param(request, "max_results", DEFAULT_MAX_RESULTS, lo=1)
    least = number_param(request, "min_connected_time")
    most = number_param(request, "max_connected_time")

    views: list[dict[str, Any]] = []
    for call in context(request).registry.live():
        view = call.live_view()  # one snapshot per call: connected_time keeps growing
        if nos is not None and _same_number(call.caller_no) not in nos:
            continue
        if api_nos is not None and _same_number(call.api_no) not in api_nos:
            continue
        if apis is not None and _origin_api(call) not in apis:
            continue
        if least is not None and view["connected_time"] < least:
            continue
        if most is not None and view["connected_time"] > most:
            continue
        views.append(view)

    if sort_by == "id":
        views.sort(key=lambda v: _id_key(v["id"]), reverse=descending)
    else:
        views.sort(key=lambda v: (v["connected_time"], _id_key(v["id"])), reverse=descending)
    by_time = sorted(views, key=lambda v: v["connected_time"])
    return web.json_response(
        {
            "calls": views[:max_results],
            "longest_call": _extreme(by_time[-1]) if by_time else None,
            "shortest_call": _extreme(by_time[0]) if by_time else None,
            "total_calls": len(views),
        }
    )


def _extreme(view: dict[str, Any]) -> dict[str, Any]:
    return {"id": view["id"], "connected_time": view["connected_time"]}


def log_to_live_view(record: dict[str, Any]) -> dict[str, Any]:
    """A call log in the shape of View Live Call Detail (for calls ended > 5 min ago)."""
    connected = record.get("connected_time")
    if connected is None:
        connected = int(record.get("connect_time_sec") or 0) * 1000
    return {
        "id": record.get("call_id") or record.get("id"),
        "no": record.get("caller_no"),
        "caller_id_no": record.get("api_no"),
        "status": record.get("status"),
        "detection": record.get("detection", "unknown"),
        "date": record.get("connect_time") or record.get("start_time"),
        "session_data": record.get("session_data"),
        "connected_time": connected,
        "error": record.get("error"),
        "app_id": record.get("app_id"),
        "subaccount_id": record.get("subaccount_id", 0),
        "direction": record.get("direction"),
        "parent_call_id": record.get("parent_call_id"),
    }


@routes.route(
    "GET",
    "/LiveCalls/{call_id}",
    summary="View a live call, or one ended recently",
    responses={200: LIVE_CALL_SCHEMA},
)
async def get_live_call(request: web.Request) -> web.Response:
    """Live calls and calls ended less than five minutes ago come from the registry;
    older ones from the call log."""
    call_id = request.match_info["call_id"]
    ctx = context(request)
    call = ctx.registry.get(call_id)
    if call is not None:
        return web.json_response(call.live_view())
    record = await ctx.storage.get_call_log(call_id)
    if record is None or (record.get("subaccount_id") or 0) != subaccount(request):
        raise ApiError.live_call_not_found(call_id)
    return web.json_response(log_to_live_view(record))


def _live_call(request: web.Request) -> Call:
    call_id = request.match_info["call_id"]
    call = context(request).registry.get_live(call_id)
    if call is None or call.control is None:
        raise ApiError.live_call_not_found(call_id)
    return call


@routes.route(
    "DELETE",
    "/LiveCalls/{call_id}",
    summary="End a call at once",
    responses={204: None},
)
async def end_live_call(request: web.Request) -> web.Response:
    call = _live_call(request)
    assert call.control is not None  # _live_call checked
    await call.control.end()
    return web.Response(status=204)


def _hangup_message(body: Any) -> list[str] | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    message = body.get("message")
    if message is None:
        return None
    items = [message] if isinstance(message, str) else message
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise ApiError.validation(
            "message", "must be a non-empty string or an array of non-empty strings"
        )
    return items or None


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/HangUp",
    summary="Play an optional message, then hang up",
    body=HANGUP_SCHEMA,
    responses={204: None},
)
async def hang_up_live_call(request: web.Request) -> web.Response:
    call = _live_call(request)
    message = _hangup_message(await json_body(request, required=False))
    assert call.control is not None  # _live_call checked
    await call.control.hangup(message)
    return web.Response(status=204)
