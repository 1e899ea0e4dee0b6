"""LiveCalls Actions: Collect Digits, Stop, Tell, Inject Actions List, Modify Session Data,
Call Transfer, Leave Voicemail.

Each handler validates its body (400001 naming the field), finds the live call (404404
otherwise) and hands the request to the call's `CallControl`, which schedules the work
and returns at once; the answer is always 204.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from control.api.context import context
from control.api.errors import ApiError
from control.api.query import json_body
from control.api.routing import RouteTable, Schema
from control.calls import CallControl
from control.detection import DetectionRefused
from control.dialing import DialError

routes = RouteTable("LiveCalls")

METHODS = ("POST", "GET", "PUT", "DELETE")
FINISH_KEYS = "0123456789#*"
STOPPABLE = ("AUDIO",)
SESSION_DATA_LIMIT = 16 * 1024  # "Any valid JSON object up to 16k", measured minimised
ACTIONS_LIMIT = 81 * 1024  # the callback response hard limit applies to injected actions
DTMF_ITEM = re.compile(r"dtmf://[0-9*#A-Da-dwW,-]+\Z")

MESSAGE_SCHEMA: Schema = {
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    "description": "TTS text, audio URLs and/or dtmf:// items (example: dtmf://1234).",
}
COLLECT_SCHEMA: Schema = {
    "type": "object",
    "required": ["callback"],
    "properties": {
        "message": MESSAGE_SCHEMA,
        "callback": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {"type": "string"},
                "method": {"enum": list(METHODS), "default": "POST"},
            },
        },
        "num_digits": {"type": "integer", "minimum": 1, "default": 1},
        "finish_on_key": {"enum": list(FINISH_KEYS), "default": "#"},
        "timeout": {"type": "number", "minimum": 0, "description": "seconds"},
    },
}
STOP_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "actions": {
            "type": "string",
            "default": "AUDIO",
            "description": "Comma-separated list of what to stop. Accepts: AUDIO.",
        }
    },
}
TELL_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "message": MESSAGE_SCHEMA,
        "messages": {**MESSAGE_SCHEMA, "description": "Alias of message (the spec's example)."},
    },
}
ACTION_SCHEMA: Schema = {
    "type": "object",
    "description": "A call-flow action ({type, params, …}) or an assignment {\"$var\": …}.",
}
INJECT_SCHEMA: Schema = {
    "oneOf": [
        {"type": "array", "items": ACTION_SCHEMA, "minItems": 1},
        {
            "type": "object",
            "required": ["actions"],
            "properties": {"actions": {"type": "array", "items": ACTION_SCHEMA, "minItems": 1}},
        },
    ]
}
TRANSFER_SCHEMA: Schema = {
    "type": "object",
    "required": ["call"],
    "properties": {
        "message": MESSAGE_SCHEMA,
        "call": {
            "type": "object",
            "required": ["no"],
            "properties": {
                "no": {"type": "string", "description": "E.164 number or SIP destination"},
                "caller_id_no": {"type": "string",
                                 "description": "default: the caller's own number"},
            },
        },
    },
}
VOICEMAIL_SCHEMA: Schema = {
    "type": "object",
    "properties": {"message": MESSAGE_SCHEMA},
}
SESSION_DATA_SCHEMA: Schema = {
    "type": "object",
    "description": "The new session_data: any JSON object up to 16 KB minimised.",
}


def live_control(request: web.Request) -> CallControl:
    """The `CallControl` of the live call `{call_id}` names; 404404 when there is none."""
    call_id = request.match_info["call_id"]
    call = context(request).registry.get_live(call_id)
    if call is None or call.control is None:
        raise ApiError.live_call_not_found(call_id)
    return call.control


def body_object(body: Any, required: bool = False) -> dict[str, Any]:
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    return body


def message_items(value: Any, field: str, required: bool = False) -> list[str] | None:
    """A `message`: one string or an array of non-empty strings; None when absent."""
    if value is None or value == []:
        if required:
            raise ApiError.validation(field, "is required: a string or an array of strings")
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ApiError.validation(
            field, "must be a non-empty string or an array of non-empty strings"
        )
    for item in items:
        if item.lower().startswith("dtmf://") and not DTMF_ITEM.match(item):
            raise ApiError.validation(field, f"has a bad DTMF item {item!r}: use dtmf://0-9*#")
    return items


def _minimised(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _int(body: dict[str, Any], name: str, default: int, lo: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ApiError.validation(name, f"must be an integer of at least {lo}")
    return value


def collect_options(body: dict[str, Any]) -> dict[str, Any]:
    """The validated Collect Digits options (spec defaults filled in)."""
    callback = body.get("callback")
    if not isinstance(callback, dict):
        raise ApiError.validation("callback", "is required: an object with a url")
    url = callback.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ApiError.validation("callback.url", "is required: a non-empty string")
    method = callback.get("method") or "POST"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ApiError.validation("callback.method", f"must be one of {', '.join(METHODS)}")
    finish = body.get("finish_on_key")
    finish = "#" if finish is None else finish
    if not isinstance(finish, str) or len(finish) != 1 or finish not in FINISH_KEYS:
        raise ApiError.validation("finish_on_key", "must be one of 0-9, # or *")
    timeout = body.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
    ):
        raise ApiError.validation("timeout", "must be a non-negative number of seconds")
    return {
        "callback": {"url": url, "method": method.upper()},
        "num_digits": _int(body, "num_digits", 1, lo=1),
        "finish_on_key": finish,
        "timeout": timeout,
    }


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/Collect",
    summary="Collect digits, after an optional message",
    body=COLLECT_SCHEMA,
    body_required=True,
    responses={204: None},
)
async def collect_digits(request: web.Request) -> web.Response:
    """The digits are sent to `callback.url` as a callback request with `key_presses`."""
    control = live_control(request)
    body = body_object(await json_body(request), required=True)
    message = message_items(body.get("message"), "message")
    await control.collect(message, collect_options(body))
    return web.Response(status=204)


def stop_what(body: dict[str, Any]) -> str:
    raw = body.get("actions")
    raw = "AUDIO" if raw is None else raw
    if not isinstance(raw, str):
        raise ApiError.validation("actions", "must be a comma-separated string: AUDIO")
    items: list[str] = []
    for item in (i.strip().upper() for i in raw.split(",")):
        if item and item not in STOPPABLE:
            raise ApiError.validation("actions", f"accepts only {', '.join(STOPPABLE)}")
        if item and item not in items:
            items.append(item)
    return ",".join(items) or "AUDIO"


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/Stop",
    summary="Stop running actions (playing audio)",
    body=STOP_SCHEMA,
    responses={204: None},
)
async def stop_actions(request: web.Request) -> web.Response:
    control = live_control(request)
    what = stop_what(body_object(await json_body(request, required=False)))
    await control.stop(what)
    return web.Response(status=204)


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/Tell",
    summary="Play TTS, audio files and DTMF to this caller only",
    body=TELL_SCHEMA,
    body_required=True,
    responses={204: None},
)
async def tell(request: web.Request) -> web.Response:
    """`message` (the spec's table) and `messages` (its example) are both accepted."""
    control = live_control(request)
    body = body_object(await json_body(request), required=True)
    if body.get("message") is not None and body.get("messages") is not None:
        raise ApiError.validation("message", "and messages are the same field; give one")
    field = "messages" if body.get("messages") is not None else "message"
    message = message_items(body.get(field), field, required=True)
    assert message is not None  # required=True
    await control.tell(message)
    return web.Response(status=204)


def inject_actions(body: Any) -> list[dict[str, Any]]:
    """The actions of an Inject body: a bare array (the spec's example) or {actions}."""
    field = "actions"
    if isinstance(body, dict):
        body = body.get("actions")
    elif not isinstance(body, list):
        raise ApiError.validation("body", "must be an array of actions or {\"actions\": [...]}")
    if not isinstance(body, list) or not body:
        raise ApiError.validation(field, "is required: a non-empty array of actions")
    for i, action in enumerate(body):
        if not isinstance(action, dict) or not action:
            raise ApiError.validation(f"actions[{i}]", "must be an action object")
        assignment = "type" not in action and all(k.startswith("$") for k in action)
        kind = action.get("type")
        if not assignment and not (isinstance(kind, str) and kind.strip()):
            raise ApiError.validation(f"actions[{i}].type", "must be a non-empty string")
    if _minimised(body) > ACTIONS_LIMIT:
        raise ApiError.validation(field, f"exceeds {ACTIONS_LIMIT // 1024} KB minimised")
    return body


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions",
    summary="Inject call-flow actions into a live call",
    body=INJECT_SCHEMA,
    body_required=True,
    responses={204: None},
)
async def inject_actions_list(request: web.Request) -> web.Response:
    """Any callback-response action is accepted, including assignments."""
    control = live_control(request)
    actions = inject_actions(await json_body(request))
    await control.inject(actions)
    return web.Response(status=204)


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/SessionData",
    summary="Replace the session data of a live call",
    body=SESSION_DATA_SCHEMA,
    body_required=True,
    responses={204: None},
)
async def modify_session_data(request: web.Request) -> web.Response:
    """The body is the new session_data; actions already running keep the old values."""
    control = live_control(request)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError.validation("session_data", "must be a JSON object")
    size = _minimised(data)
    if size > SESSION_DATA_LIMIT:
        raise ApiError.validation(
            "session_data", f"exceeds 16 KB minimised ({size} bytes; the limit is "
            f"{SESSION_DATA_LIMIT})"
        )
    await control.set_session_data(data)
    return web.Response(status=204)


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/Transfer",
    summary="Transfer a live call to a number or SIP endpoint, after an optional message",
    body=TRANSFER_SCHEMA,
    body_required=True,
    responses={204: None},
)
async def transfer_call(request: web.Request) -> web.Response:
    """The running actions stop; the message plays, the far leg rings (the caller hears
    ringback or its early media) and the two are bridged. When the far leg hangs up or
    never connects, the call's flow goes on with a live_call callback."""
    control = live_control(request)
    body = body_object(await json_body(request), required=True)
    message = message_items(body.get("message"), "message")
    call = body.get("call")
    if not isinstance(call, dict):
        raise ApiError.validation("call", "is required: an object with no")
    no, caller = call.get("no"), call.get("caller_id_no")
    if not isinstance(no, str) or not no.strip():
        raise ApiError.validation("call.no", "is required: a phone number or SIP destination")
    if caller is not None and (not isinstance(caller, str) or not caller.strip()):
        raise ApiError.validation("call.caller_id_no", "must be a non-empty string")
    switchboard = context(request).switchboard
    if switchboard is None:
        raise ApiError.not_supported()
    try:
        switchboard.dialer.route(no)
    except DialError as exc:
        raise ApiError.validation("call.no", exc.message) from None
    await control.transfer(message, no.strip(), caller)
    return web.Response(status=204)


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/LeaveVoiceMail",
    summary="Wait for the voicemail's beep, leave a message, then hang up",
    body=VOICEMAIL_SCHEMA,
    responses={204: None},
)
async def leave_voicemail(request: web.Request) -> web.Response:
    """The running actions stop at once; the call's answering-machine detection (started
    now unless it runs already) waits for the beep, or for the end of a greeting without
    one, then the message plays and the call is hung up. When no voicemail is found (a
    live person answered, or nothing was decided within the detection's horizon) the
    message plays once the analysis has ended. No message: the call is hung up after
    the beep."""
    control = live_control(request)
    body = body_object(await json_body(request, required=False))
    message = message_items(body.get("message"), "message")
    try:
        await control.leave_voicemail(message)
    except DetectionRefused as exc:
        raise ApiError.validation("call_id", f"has no media to analyse ({exc})") from None
    return web.Response(status=204)
