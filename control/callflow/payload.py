"""The callback request body: the spec's fields for one call, and its wire encodings."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from control.calls import Call, iso

_GEO = ("latitude", "longitude", "postal_code", "city", "rate_center", "lata", "region",
        "country", "timezone")


def callback_fields(call: Call, kind: str) -> dict[str, Any]:
    """The Callback Request // Voice properties that apply to a callback of `kind`.

    `kind` is init_call, live_call, end_call or failed_call. Number-geography fields are
    present and null: voxswitch has no numbering database to fill them from.
    """
    body: dict[str, Any] = {
        "service": "programmable_voice",
        "type": kind,
        "is_webhook": False,
        "app_id": call.app_id,
        "subaccount_id": call.subaccount_id,
        "call_id": call.id,
        "start_time": iso(call.start_time),
        "direction": call.direction.value,
        "duration": call.duration_ms(),
        "status": call.status.value,
        "detection": call.detection,
        "caller_no": call.caller_no,
    }
    body.update({f"caller_no_{g}": None for g in _GEO})
    body["api_no"] = call.api_no
    body.update({f"api_no_{g}": None for g in _GEO})
    if kind != "init_call":
        body["parent_call_id"] = call.parent_call_id
        body["connect_time_sec"] = call.connected_ms() // 1000
        body["key_presses"] = [k.as_dict() for k in call.key_presses]
        body["recordings"] = list(call.recordings)
        last = call.last_queue_poll_connect_call
        body["last_queue_poll_connect_call"] = dict(last) if last is not None else None
    if kind == "end_call":
        body["end_time"] = iso(call.end_time)
    body["custom_data"] = call.custom_data
    body["session_data"] = call.session_data
    body["sip_domain"] = call.sip_domain
    body["sip_forwarded_for"] = call.sip_forwarded_for
    body["error_code"] = call.error_code
    body["error"] = call.error
    return body


def flatten_for_query(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Query-string / form fields: key_presses.{name}={digits}, recordings.{name}={id}.

    The spec leaves `history` out of query strings; objects become JSON text.
    """
    out: list[tuple[str, str]] = []
    for key, value in body.items():
        if key == "key_presses":
            out += [(f"key_presses.{k['name']}", k["digits"]) for k in value]
        elif key == "recordings":
            out += [(f"recordings.{r['name']}", r["id"]) for r in value]
        elif value is None:
            out.append((key, ""))
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, dict | list):
            out.append((key, json.dumps(value, separators=(",", ":"))))
        else:
            out.append((key, str(value)))
    return out


_XML_NAME = re.compile(r"[A-Za-z_][\w.-]*\Z")
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
XML_TYPES = ("application/xml", "text/xml")


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # characters XML 1.0 cannot carry become U+FFFD; \r is escaped so that it survives
    return escape(_XML_BAD.sub("\ufffd", str(value)), {"\r": "&#13;"})


def _xml_element(tag: str, value: Any) -> str:
    """One field as an element: objects nest, arrays repeat <item>, null is nil="true".

    A key that is not an XML name (custom data may hold any) is written
    <entry key="…">.
    """
    if _XML_NAME.match(tag) and not tag.lower().startswith("xml"):
        open_, close = tag, tag
    else:
        open_, close = f"entry key={quoteattr(_XML_BAD.sub(chr(0xFFFD), tag))}", "entry"
    if value is None:
        return f'<{open_} nil="true"/>'
    if isinstance(value, dict):
        inner = "".join(_xml_element(str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        inner = "".join(_xml_element("item", v) for v in value)
    else:
        inner = _xml_text(value)
    return f"<{open_}>{inner}</{close}>" if inner else f"<{open_}/>"


def encode_xml(body: dict[str, Any]) -> bytes:
    """The callback body as `<Request>` with one element per field (README: CCML)."""
    fields = "".join(_xml_element(k, v) for k, v in body.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Request>{fields}</Request>'.encode()


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def encode(body: dict[str, Any], content_type: str) -> bytes:
    """Encode a callback body for a POST with the configured content type."""
    media = media_type(content_type)
    if media == "application/x-www-form-urlencoded":
        return urlencode(flatten_for_query(body)).encode()
    if media in XML_TYPES or media.endswith("+xml"):
        return encode_xml(body)
    return json.dumps(body, separators=(",", ":")).encode()


def webhook_fields(
    call: Call, event_name: str, webhook_data: Any, kind: str = "live_call"
) -> dict[str, Any]:
    """A WEBHOOK action's request: the callback fields plus is_webhook, event_name and
    webhook_data (spec: Callback Request // Voice, "webhook" rows)."""
    body = callback_fields(call, kind)
    body["is_webhook"] = True
    body["event_name"] = event_name
    body["webhook_data"] = webhook_data
    return body
