"""WebRTC phone (a voxswitch extension; the spec has no such methods): the dashboard's
browser phone signals here, without trickle ICE (the offer carries its candidates).

- `POST /WebRTC/Calls` `{"type": "offer", "sdp": "...", "to": "+15551230000" | "sip:u@h",
  "caller_id_no": "+1...", "codec": "opus" | "PCMU" | "PCMA"}`, or `"conference": "room"`
  instead of `to`: 201 `{"webrtc_id", "call_id", "type": "answer", "sdp", "codec"}` once
  the switch answered the leg (`call_id` is the leg's id in LiveCalls).
- `GET /WebRTC/Calls`, `GET /WebRTC/Calls/{webrtc_id}`: the live sessions (webrtc_id,
  call_id, state, codec, to or conference, started).
- `DELETE /WebRTC/Calls/{webrtc_id}`: hang up (204).
- `POST /WebRTC/Calls/{webrtc_id}/Digits` `{"digits": "12#"}`: sent to the switch as
  RFC 4733 events.

Errors are the spec's body: 400001 naming the field (bad SDP, no audio m-line, neither
`to` nor `conference`), 404002 for an unknown session, 404102 when the switch has no
route for the number, 409001 for a session that is not connected, 503001 when
`[webrtc] max_sessions` are up, 502001 when the switch did not take the call.
Application-level: the gateway is the switch's, below a Sub Account it answers 404002.
"""

from __future__ import annotations

from aiohttp import web

from control.api.context import CONTEXT
from control.api.errors import ApiError, ErrorPreset
from control.api.query import json_body
from control.api.routing import RouteTable, Schema
from control.webrtc import WebRtcError, WebRtcGateway, parse_request

routes = RouteTable("WebRTC")

SESSION_NOT_FOUND = ErrorPreset(404, 404002, "Not Found",
                                "No live WebRTC call has this id; it may have ended.",
                                "The requested WebRTC call was not found.")
NO_ROUTE = ErrorPreset(404, 404102, "Not Found",
                       "The switch has no route for this number.",
                       "The number could not be reached.")
NOT_CONNECTED = ErrorPreset(409, 409001, "Conflict", "", "The WebRTC call is not connected.")
TOO_MANY = ErrorPreset(503, 503001, "Service Unavailable", "",
                       "Too many WebRTC calls are up; try again later.")
FAILED = ErrorPreset(502, 502001, "Bad Gateway", "", "The call could not be placed.")

_STR = {"type": "string"}
_NULL_STR = {"type": ["string", "null"]}
SESSION_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "webrtc_id": _STR, "call_id": _NULL_STR,
        "state": {"enum": ["connecting", "connected", "ended"]},
        "codec": {"enum": ["opus", "PCMU", "PCMA"]}, "to": _NULL_STR,
        "conference": _NULL_STR, "started": {"type": "string", "format": "date-time"},
    },
}
OFFER_SCHEMA: Schema = {
    "type": "object",
    "required": ["sdp"],
    "properties": {
        "type": {"enum": ["offer"]},
        "sdp": {**_STR, "description": "the full offer, ICE candidates gathered"},
        "to": {**_STR, "description": "a number (+15551230000) or sip:user@host"},
        "conference": {**_STR, "description": "a room to join instead of to"},
        "caller_id_no": _STR,
        "codec": {"enum": ["opus", "PCMU", "PCMA"],
                  "description": "the browser side's preferred codec"},
    },
}
ANSWER_SCHEMA: Schema = {
    "type": "object",
    "properties": {"webrtc_id": _STR, "call_id": _NULL_STR, "type": {"enum": ["answer"]},
                   "sdp": _STR, "codec": {"enum": ["opus", "PCMU", "PCMA"]}},
}


def _gateway(request: web.Request) -> WebRtcGateway:
    gateway = request.config_dict[CONTEXT].webrtc
    if gateway is None:
        raise ApiError.not_supported()
    return gateway


def _error(exc: WebRtcError) -> ApiError:
    if exc.kind == "validation":
        return ApiError.validation(exc.field or "body", exc.message)
    preset = {"no_route": NO_ROUTE, "busy": TOO_MANY, "not_found": SESSION_NOT_FOUND,
              "not_connected": NOT_CONNECTED}.get(exc.kind, FAILED)
    return ApiError.from_preset(preset, message=f"{preset.message}: {exc.message}",
                                help=exc.message, field=exc.field)


def _not_found(webrtc_id: str) -> ApiError:
    return ApiError.from_preset(SESSION_NOT_FOUND,
                                help=f"No live WebRTC call {webrtc_id!r}; list them with "
                                     "GET /v1/WebRTC/Calls.")


@routes.route("POST", "/WebRTC/Calls", summary="voxswitch: a browser call (offer → answer)",
              body=OFFER_SCHEMA, body_required=True, responses={201: ANSWER_SCHEMA})
async def create_webrtc_call(request: web.Request) -> web.Response:
    """Answer the browser's offer and call the number (or join the conference)."""
    gateway = _gateway(request)
    try:
        req = parse_request(await json_body(request))
        session, answer = await gateway.create(req)
    except WebRtcError as exc:
        raise _error(exc) from None
    return web.json_response({"webrtc_id": session.webrtc_id, "call_id": session.call_id,
                              "type": "answer", "sdp": answer, "codec": session.codec},
                             status=201)


@routes.route("GET", "/WebRTC/Calls", summary="voxswitch: the live browser calls",
              responses={200: {"type": "object", "properties": {
                  "calls": {"type": "array", "items": SESSION_SCHEMA}}}})
async def list_webrtc_calls(request: web.Request) -> web.Response:
    """Every live WebRTC session, oldest first."""
    gateway = _gateway(request)
    calls = sorted(gateway.sessions.values(), key=lambda s: s.started)
    return web.json_response({"calls": [s.view() for s in calls]})


@routes.route("GET", "/WebRTC/Calls/{webrtc_id}", summary="voxswitch: one browser call",
              responses={200: SESSION_SCHEMA})
async def get_webrtc_call(request: web.Request) -> web.Response:
    webrtc_id = request.match_info["webrtc_id"]
    session = _gateway(request).get(webrtc_id)
    if session is None:
        raise _not_found(webrtc_id)
    return web.json_response(session.view())


@routes.route("DELETE", "/WebRTC/Calls/{webrtc_id}", summary="voxswitch: hang up a browser "
              "call", responses={204: None})
async def delete_webrtc_call(request: web.Request) -> web.Response:
    webrtc_id = request.match_info["webrtc_id"]
    if not await _gateway(request).hangup(webrtc_id):
        raise _not_found(webrtc_id)
    return web.Response(status=204)


@routes.route("POST", "/WebRTC/Calls/{webrtc_id}/Digits", summary="voxswitch: send DTMF "
              "from a browser call (RFC 4733)",
              body={"type": "object", "required": ["digits"],
                    "properties": {"digits": {**_STR, "pattern": "^[0-9*#A-Da-d]{1,32}$"}}},
              body_required=True,
              responses={200: {"type": "object", "properties": {
                  "webrtc_id": _STR, "digits": _STR}}})
async def send_webrtc_digits(request: web.Request) -> web.Response:
    webrtc_id = request.match_info["webrtc_id"]
    body = await json_body(request)
    digits = body.get("digits") if isinstance(body, dict) else None
    if not isinstance(digits, str):
        raise ApiError.validation("digits", "must be a string such as \"12#\"")
    try:
        _gateway(request).send_digits(webrtc_id, digits)
    except WebRtcError as exc:
        raise (_not_found(webrtc_id) if exc.kind == "not_found" else _error(exc)) from None
    return web.json_response({"webrtc_id": webrtc_id, "digits": digits.upper()})
