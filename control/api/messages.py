"""Messages: Send Message (`POST /Messages`), List Messages (`GET /Messages`) and View
Message (`GET /Messages/{message_id}`), over SIP MESSAGE (control.messaging).

Choices where the spec is silent:
- `caller_no` and `api_no` are E.164 numbers as the spec says, or (lab use) a registrar
  user such as `alice`, or a SIP URI for `caller_no`; anything else is 400001.
- `time_to_live` (milliseconds, at least 1000; a number or a numeric string) bounds the
  wait for the far end's final response: past it the message is `failed`.
- Send answers 200 (the spec's code) with the message `accepted`; delivery and its status
  webhooks follow. A destination with no route is accepted and then `failed`, with
  `error_code` and `error` saying why (404 no route, 480 a softphone not registered).
- List: `begin_date` (inclusive, default an hour before `end_date`) and `end_date`
  (exclusive, default now) on `created_on`; `direction`, `status` (any of the Message
  Status table), `caller_no`, `api_no`, `external_id`, `external_group_id` must match.
  At most 1,000 messages, oldest first; `is_truncated` says when more matched.
- An unknown `message_id` is 404002 (the spec's "no longer exists" code).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError, ErrorPreset
from control.api.history import date_range
from control.api.query import choice_param, fix_plus, json_body
from control.api.routing import RouteTable, Schema, query
from control.calls import iso
from control.flowconfig import CallbackTarget, normalize_number
from control.messagestore import MessageFilter
from control.messaging import (
    MAX_TEXT,
    STATUSES,
    MessageRefused,
    MessagingService,
    OutboundMessage,
)

routes = RouteTable("Messages")

MAX_MESSAGES = 1000
MESSAGE_NOT_FOUND = ErrorPreset(404, 404002, "Not Found",
                                "No message has this ID.", "The requested message was not found.")
_STR = {"type": "string"}
_NULL_STR = {"type": ["string", "null"]}
SEND_SCHEMA: Schema = {
    "type": "object",
    "required": ["caller_no", "api_no", "text_message"],
    "properties": {
        "caller_no": {**_STR, "description": "the destination: E.164, a registrar user, "
                                             "or a SIP URI"},
        "api_no": {**_STR, "description": "the number it is sent from"},
        "text_message": {**_STR, "minLength": 1, "maxLength": MAX_TEXT},
        "external_id": _STR,
        "external_group_id": _STR,
        "time_to_live": {"type": ["integer", "string"], "minimum": 1000,
                         "description": "milliseconds"},
        "status_webhook": {"type": "object", "required": ["url"],
                           "properties": {"url": {**_STR, "format": "uri"}}},
    },
}
MESSAGE_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        **{name: _NULL_STR for name in (
            "message_id", "app_id", "caller_no", "api_no", "type", "direction", "error",
            "text_message", "external_id", "external_group_id", "uri", "service")},
        "created_on": {"type": "string", "format": "date-time"},
        "updated_on": {"type": "string", "format": "date-time"},
        "status": {"enum": list(STATUSES)},
        "subaccount_id": {"type": "integer"},
        "error_code": {"type": ["integer", "null"]},
        "num_parts": {"type": ["integer", "null"]},
        "time_to_live": {"type": ["integer", "null"]},
        "charge": {"type": "object"},
        "config": {"type": ["object", "null"]},
        "status_webhook": {"type": ["object", "null"]},
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "messages": {"type": "array", "items": MESSAGE_SCHEMA},
        "begin_date": {"type": "string", "format": "date-time"},
        "end_date": {"type": "string", "format": "date-time"},
        "is_truncated": {"type": "boolean"},
    },
}
_DATE = {"type": "string", "format": "date-time"}
LIST_PARAMS = (
    query("begin_date", _DATE, "Inclusive; default one hour before end_date."),
    query("end_date", _DATE, "Exclusive; default now."),
    query("direction", {"enum": ["inbound", "outbound"]}, "Default: both."),
    query("status", {"enum": list(STATUSES)}),
    query("caller_no", _STR, "The far end."),
    query("api_no", _STR, "Our number."),
    query("external_id", _STR),
    query("external_group_id", _STR),
)


def messaging_of(request: web.Request) -> MessagingService:
    service = context(request).messaging
    if service is None:
        raise ApiError.not_supported()
    return service


def destination(value: Any, field: str) -> str:
    """E.164, a SIP user, or (for destinations) a SIP URI; 400001 naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError.validation(field, "is required: an E.164 number such as "
                                         "+19495551212")
    text = fix_plus(value).strip()  # a query's unencoded '+' arrives as a space
    if text[:4].lower() == "sip:" or "@" in text:
        return text
    return normalize_number(text, field)


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 255:
        raise ApiError.validation(name, "must be a string of at most 255 characters")
    return value


def _ttl(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1000:
        raise ApiError.validation("time_to_live", "must be a number of milliseconds, at "
                                                  "least 1000")
    return value


def _webhook(value: Any) -> str | None:
    if value is None:
        return None
    return CallbackTarget.from_request(value, "status_webhook").url


def parse_send(body: Any) -> OutboundMessage:
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    text = body.get("text_message")
    if not isinstance(text, str) or not text.strip():
        raise ApiError.validation("text_message", "is required: the message's text")
    if len(text) > MAX_TEXT:
        raise ApiError.validation("text_message", f"is {len(text)} characters; at most "
                                                  f"{MAX_TEXT}")
    return OutboundMessage(
        caller_no=destination(body.get("caller_no"), "caller_no"),
        api_no=destination(body.get("api_no"), "api_no"),
        text=text,
        external_id=_optional_text(body, "external_id"),
        external_group_id=_optional_text(body, "external_group_id"),
        time_to_live=_ttl(body.get("time_to_live")),
        status_webhook=_webhook(body.get("status_webhook")))


async def send_checked(service: MessagingService, message: OutboundMessage,
                       field: str = "caller_no") -> dict[str, Any]:
    try:
        return await service.send(message)
    except MessageRefused as exc:
        name = field if exc.field == "caller_no" else exc.field
        raise ApiError.validation(name, exc.message) from None


@routes.route("POST", "/Messages", summary="Send an SMS message (as a SIP MESSAGE)",
              body=SEND_SCHEMA, body_required=True, responses={200: MESSAGE_SCHEMA})
async def send_message(request: web.Request) -> web.Response:
    """Answers at once with the message accepted; status webhooks follow (queued,
    sending, then delivered, sent, undelivered, failed or opt-out)."""
    service = messaging_of(request)
    message = replace(parse_send(await json_body(request)), subaccount_id=subaccount(request))
    record = await send_checked(service, message)
    keys = ("api_no", "caller_no", "text_message", "external_id", "external_group_id",
            "time_to_live", "message_id", "status", "uri", "status_webhook")
    return web.json_response({k: record[k] for k in keys})


@routes.route("GET", "/Messages", summary="List messages (at most 1,000)",
              params=LIST_PARAMS, responses={200: LIST_SCHEMA})
async def list_messages(request: web.Request) -> web.Response:
    """Messages created in [begin_date, end_date), oldest first."""
    service = messaging_of(request)
    begin, end = date_range(request)
    numbers = {}
    for name in ("caller_no", "api_no"):
        raw = request.query.get(name)
        numbers[name] = destination(raw, name) if raw else None
    texts = {name: request.query.get(name) or None
             for name in ("external_id", "external_group_id")}
    flt = MessageFilter(
        begin, end, direction=choice_param(request, "direction", ("inbound", "outbound"),
                                           None),
        status=choice_param(request, "status", STATUSES, None), **numbers, **texts,
        subaccount_id=subaccount(request))
    records, truncated = await service.store.list(flt, MAX_MESSAGES)
    for record in records:
        record.pop("sip_forwarded_for", None)
    return web.json_response({"messages": records, "begin_date": iso(begin),
                              "end_date": iso(end), "is_truncated": truncated})


@routes.route("GET", "/Messages/{message_id}", summary="View a message",
              responses={200: MESSAGE_SCHEMA})
async def get_message(request: web.Request) -> web.Response:
    """Inbound messages carry the number's configuration; outbound ones their webhook."""
    message_id = request.match_info["message_id"]
    record = await messaging_of(request).get(message_id)
    if record is None or (record.get("subaccount_id") or 0) != subaccount(request):
        raise ApiError.from_preset(MESSAGE_NOT_FOUND, help=f"No message {message_id!r}.")
    return web.json_response(record)
