"""History methods: List Call Logs and View Call Log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from control.api.context import context, owns, subaccount
from control.api.errors import ApiError
from control.api.query import choice_param, datetime_param, int_param, list_param, phone_param
from control.api.routing import RouteTable, Schema, query
from control.calls import iso, utcnow
from control.messagestore import MessageFilter
from control.messaging import message_log
from control.storage import log_cursor, parse_log_cursor

routes = RouteTable("History")

MAX_LOGS = 1000
DEFAULT_SPAN = timedelta(hours=1)
DIRECTIONS = ("inbound", "outbound")
TYPES = ("voice", "sms")
# the spec's services of voice logs; type=sms logs are programmable_messaging's
SERVICES = ("programmable_voice", "sip_trunking", "programmable_messaging")
# the opaque position of a truncated listing, carried by next_block_uri
CURSOR_PARAM = "after"

CALL_LOG_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        **{
            name: {"type": ["string", "null"]}
            for name in (
                "id",
                "app_id",
                "call_id",
                "parent_call_id",
                "caller_no",
                "api_no",
                "type",
                "direction",
                "hangup_end",
                "status",
                "detection",
                "error",
                "origin_api",
                "service",
                "lrn",
            )
        },
        "start_time": {"type": "string", "format": "date-time"},
        "end_time": {"type": ["string", "null"], "format": "date-time"},
        "subaccount_id": {"type": "integer"},
        "duration": {"type": "integer", "description": "milliseconds"},
        "error_code": {"type": ["integer", "null"]},
        "connect_time_billed": {"type": "number"},
        "connect_time_sec": {"type": "integer"},
        "config": {"type": ["object", "null"]},
        "sip": {"type": "object"},
        "charge": {"type": "object"},
        "text_message": {"type": ["string", "null"]},
        "created_on": {"type": "string", "format": "date-time"},
        "updated_on": {"type": "string", "format": "date-time"},
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "logs": {"type": "array", "items": CALL_LOG_SCHEMA},
        "begin_date": {"type": "string", "format": "date-time"},
        "end_date": {"type": "string", "format": "date-time"},
        "is_truncated": {"type": "boolean"},
        "next_block_uri": {"type": ["string", "null"]},
    },
}
_DATE = {"type": "string", "format": "date-time"}
LIST_PARAMS = (
    query("begin_date", _DATE, "Inclusive; default one hour before now."),
    query("end_date", _DATE, "Exclusive; default now."),
    query("direction", {"type": "string"}, "inbound, outbound, or both (inbound|outbound)."),
    query("connect_time", {"type": "integer", "minimum": 0}, "Minimum connected seconds."),
    query("type", {"enum": list(TYPES), "default": "voice"}),
    query("service", {"enum": list(SERVICES)}, "The service that produced the log; all."),
    query("caller_no", {"type": "string"}, "The far end's number."),
    query("api_no", {"type": "string"}, "voxswitch's number."),
    query(CURSOR_PARAM, {"type": "string"}, "Position from next_block_uri; leave it as is."),
    query("trunk_id", {"type": "string"}, "voxswitch: only calls this SIP Trunk carried."),
)


def date_range(request: web.Request) -> tuple[datetime, datetime]:
    """[begin_date, end_date): by default the hour up to now; 400001 when empty."""
    end = datetime_param(request, "end_date", utcnow())
    begin = datetime_param(request, "begin_date", end - DEFAULT_SPAN)
    if begin >= end:
        raise ApiError.validation("begin_date", "must be earlier than end_date")
    return begin, end


def _directions(request: web.Request) -> list[str] | None:
    items = list_param(request, "direction", separators=",|")
    if not items:
        return None
    chosen = {item.strip().lower() for item in items}
    if not chosen <= set(DIRECTIONS):
        raise ApiError.validation("direction", f"must be {' or '.join(DIRECTIONS)} (or both)")
    return sorted(chosen)


async def sms_logs(request: web.Request, begin: datetime, end: datetime,
                   directions: list[str] | None, caller_no: str | None, api_no: str | None,
                   after: str | None) -> tuple[list[dict[str, Any]], bool]:
    """type=sms: the messages (control.messaging), as logs."""
    messaging = context(request).messaging
    assert messaging is not None
    direction = directions[0] if directions and len(directions) == 1 else None
    flt = MessageFilter(begin, end, caller_no=caller_no, api_no=api_no, direction=direction,
                        subaccount_id=subaccount(request))
    records, truncated = await messaging.store.list(
        flt, MAX_LOGS, parse_log_cursor(after) if after else None)
    return [message_log(r) for r in records], truncated


@routes.route(
    "GET",
    "/History/Logs/Calls",
    summary="List call logs (at most 1,000 per block)",
    params=LIST_PARAMS,
    responses={200: LIST_SCHEMA},
)
async def list_call_logs(request: web.Request) -> web.Response:
    """Logs whose call started in [begin_date, end_date), oldest first. When more than
    1,000 match, `next_block_uri` repeats the query from just after the last one."""
    begin, end = date_range(request)
    directions = _directions(request)
    # the spec's example request spells it connectTime
    connect_time = int_param(request, "connect_time" if "connect_time" in request.query
                             or "connectTime" not in request.query else "connectTime",
                             None, lo=0)
    kind = choice_param(request, "type", TYPES, "voice")
    service = choice_param(request, "service", SERVICES, None)
    caller_no = phone_param(request, "caller_no")
    api_no = phone_param(request, "api_no")
    after = request.query.get(CURSOR_PARAM) or None
    if after is not None:
        try:
            parse_log_cursor(after)
        except ValueError:
            raise ApiError.validation(CURSOR_PARAM, "is not a position we issued") from None

    logs: list[dict[str, Any]] = []
    truncated = False
    trunk_id = request.query.get("trunk_id") or None
    inventory = context(request).inventory
    if kind == "voice" and trunk_id is not None:  # without trunks, none carried any
        trunk = await inventory.store.get_trunk(trunk_id) if inventory is not None else None
        if inventory is not None and trunk is not None and owns(request, trunk):
            logs, truncated = await inventory.store.trunk_call_logs(
                trunk_id, begin, end, directions, MAX_LOGS, connect_time=connect_time,
                caller_no=caller_no, api_no=api_no, after=after, service=service)
    elif kind == "voice":
        logs, truncated = await context(request).storage.list_call_logs(
            begin, end, directions, connect_time, caller_no, api_no, MAX_LOGS, after,
            service=service, subaccount_id=subaccount(request),
        )
    elif context(request).messaging is not None and not connect_time \
            and service in (None, "programmable_messaging"):  # never connected
        logs, truncated = await sms_logs(request, begin, end, directions, caller_no, api_no,
                                         after)
    next_uri = None
    if truncated:
        url = request.rel_url.update_query(
            {
                "begin_date": str(iso(begin)),
                "end_date": str(iso(end)),
                CURSOR_PARAM: log_cursor(logs[-1]),
            }
        )
        next_uri = str(url)
    return web.json_response(
        {
            "logs": logs,
            "begin_date": iso(begin),
            "end_date": iso(end),
            "is_truncated": truncated,
            "next_block_uri": next_uri,
        }
    )


@routes.route(
    "GET",
    "/History/Logs/Calls/{call_id}",
    summary="View the log of one call",
    responses={200: CALL_LOG_SCHEMA},
)
async def get_call_log(request: web.Request) -> web.Response:
    """A missing log answers 404404, the spec's code for an unknown call ID."""
    call_id = request.match_info["call_id"]
    record = await context(request).storage.get_call_log(call_id)
    if record is None or not owns(request, record):  # another account's: never existed
        raise ApiError.live_call_not_found(call_id)
    return web.json_response(record)
