"""Dials: Make Call (`POST /Dials/Connect`) and Dials SMS (`POST /Dials/SMS`, a SIP
MESSAGE, see control.api.messages).

The call is placed at once and answered 201 with its id; it rings in the background and,
once answered, runs the call flow of `override_callback_config`, else of
`call.caller_id_no`. It shows in LiveCalls (outbound, live-queued → live-ringing →
live-in-progress) and in the call log; one that never connects sends `failed_call` to
that flow's callback.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError
from control.api.messages import destination, messaging_of, send_checked
from control.api.query import json_body
from control.api.routing import RouteTable, Schema
from control.dialing import MAX_CALL_TIME_S, TIMEOUT_S, DialError, parse_dial
from control.messaging import MAX_TEXT, OutboundMessage

routes = RouteTable("Dials")

CALL_SCHEMA: Schema = {
    "type": "object",
    "required": ["no", "caller_id_no"],
    "properties": {
        "no": {"type": "string", "description": "E.164 number, or a SIP destination "
                                                "(user@host[:port] or sip:user@host)"},
        "caller_id_no": {"type": "string"},
    },
}
CONNECT_SCHEMA: Schema = {
    "type": "object",
    "required": ["call"],
    "properties": {
        "call": CALL_SCHEMA,
        "session_data": {"type": "object"},
        "override_callback_config": {"type": "string"},
        "inbound_api": {"enum": ["CallFlows"], "default": "CallFlows"},
        "timeout": {"type": "number", "minimum": TIMEOUT_S[0], "maximum": TIMEOUT_S[1],
                    "default": TIMEOUT_S[2], "description": "ring time, seconds"},
        "max_call_time": {"type": "number", "minimum": MAX_CALL_TIME_S[0],
                          "maximum": MAX_CALL_TIME_S[1], "default": MAX_CALL_TIME_S[2],
                          "description": "seconds"},
    },
}
CONNECTED_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "call": {"type": "object", "properties": {
            "id": {"type": "string"}, "no": {"type": "string"},
            "caller_id_no": {"type": "string"}}},
        "inbound_api": {"type": "string"},
    },
}


def dial_request_of(body: Any) -> Any:
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    call = body.get("call")
    if not isinstance(call, dict):
        raise ApiError.validation("call", "is required: an object with no and caller_id_no")
    if body.get("session_data") is not None and not isinstance(body["session_data"], dict):
        raise ApiError.validation("session_data", "must be a JSON object")
    raw = {**{k: v for k, v in body.items() if k != "call"},
           "no": call.get("no"), "caller_id_no": call.get("caller_id_no")}
    try:
        return parse_dial(raw, default_caller_id=None, prefix="call.")
    except DialError as exc:
        raise ApiError.validation(exc.field, exc.message) from None


@routes.route(
    "POST",
    "/Dials/Connect",
    summary="Make a call: ring a number or SIP destination, then run a call flow",
    body=CONNECT_SCHEMA,
    body_required=True,
    responses={201: CONNECTED_SCHEMA},
)
async def connect(request: web.Request) -> web.Response:
    ctx = context(request)
    req = replace(dial_request_of(await json_body(request)), subaccount_id=subaccount(request))
    if ctx.switchboard is None:
        raise ApiError.not_supported()
    try:
        call = await ctx.switchboard.connect(req)
    except DialError as exc:
        raise ApiError.validation("call." + exc.field if exc.field == "no" else exc.field,
                                  exc.message) from None
    return web.json_response({"call": {"id": call.id, "no": call.caller_no,
                                       "caller_id_no": call.api_no},
                              "inbound_api": req.inbound_api}, status=201)


SMS_SCHEMA: Schema = {
    "type": "object",
    "required": ["call", "message"],
    "properties": {
        "call": CALL_SCHEMA,
        "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
    },
}


@routes.route(
    "POST",
    "/Dials/SMS",
    summary="Send one SMS message (as a SIP MESSAGE) from an assigned number",
    body=SMS_SCHEMA,
    body_required=True,
    responses={201: CONNECTED_SCHEMA},
)
async def dial_sms(request: web.Request) -> web.Response:
    """`call.id` is the message's ID (see GET /Messages/{message_id}); delivery follows
    in the background as for POST /Messages."""
    service = messaging_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    call = body.get("call")
    if not isinstance(call, dict):
        raise ApiError.validation("call", "is required: an object with no and caller_id_no")
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ApiError.validation("message", "is required: the message's text")
    if len(message) > MAX_TEXT:
        raise ApiError.validation("message", f"is {len(message)} characters; at most "
                                             f"{MAX_TEXT}")
    outbound = OutboundMessage(caller_no=destination(call.get("no"), "call.no"),
                               api_no=destination(call.get("caller_id_no"),
                                                  "call.caller_id_no"),
                               text=message, subaccount_id=subaccount(request))
    record = await send_checked(service, outbound, "call.no")
    return web.json_response({"call": {"id": record["message_id"], "no": record["caller_no"],
                                       "caller_id_no": record["api_no"]}}, status=201)
