"""The callback request body: the spec's fields for one call, and its wire encodings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

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
        body["last_queue_poll_connect_call"] = None
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


def _xml_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "".join(f"<{k}>{_xml_value(v)}</{k}>" for k, v in value.items())
    if isinstance(value, list):
        return "".join(f"<item>{_xml_value(v)}</item>" for v in value)
    return escape(str(value))


def encode(body: dict[str, Any], content_type: str) -> bytes:
    """Encode a callback body for a POST with the configured content type."""
    if content_type == "application/x-www-form-urlencoded":
        return urlencode(flatten_for_query(body)).encode()
    if content_type == "application/xml":
        xml = f"<request>{_xml_value(body)}</request>"
        return ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()
    return json.dumps(body, separators=(",", ":")).encode()
