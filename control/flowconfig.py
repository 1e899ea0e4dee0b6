"""Call flow configurations (spec: Call Flows (Callback Configuration)).

A configuration tells voxswitch where to send Callback Requests for calls to one number,
or for every number without its own configuration (the Default, keyed by `None`).

Numbers. The spec keys configurations by E.164 numbers (`+17145551212`). voxswitch also
routes calls by the Request-URI user, which for a lab softphone is often `bob` or `1000`,
so a "number" here is either:
- E.164: a `+` then 2–15 digits, the first not 0. Spaces, dashes, dots and parentheses
  are stripped (`+1 714-555-1212` → `+17145551212`), or
- a SIP user: the RFC 3261 `user` characters, kept exactly as given (case included).
`normalize_number` applies these rules; the API calls it on every path and query number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from control.api.errors import ApiError
from control.calls import iso, utcnow

METHODS = ("POST", "GET")
CONTENT_TYPES = ("application/json", "application/xml", "application/x-www-form-urlencoded")
TIMEOUT_RANGE = (1.0, 15.0)
ANSWER_ON_RING_RANGE = (1, 10)
CALLBACK_FIELDS = ("callback", "callback_failover", "callback_sms", "callback_sms_failover")

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_E164_SEPARATORS = re.compile(r"[\s\-.()]")
# RFC 3261 §25.1 `user`: unreserved / escaped / user-unreserved
_SIP_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]{1,64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token

# Longest prefix wins; +1 is the NANP, which the spec reports as "US".
# fmt: off
_COUNTRY_PREFIXES = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE",
    "33": "FR", "34": "ES", "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT",
    "44": "GB", "45": "DK", "46": "SE", "47": "NO", "48": "PL", "49": "DE", "52": "MX",
    "54": "AR", "55": "BR", "56": "CL", "57": "CO", "60": "MY", "61": "AU", "62": "ID",
    "63": "PH", "64": "NZ", "65": "SG", "66": "TH", "81": "JP", "82": "KR", "84": "VN",
    "86": "CN", "90": "TR", "91": "IN", "92": "PK", "234": "NG", "254": "KE", "351": "PT",
    "353": "IE", "358": "FI", "420": "CZ", "852": "HK", "886": "TW", "971": "AE",
    "972": "IL", "966": "SA",
}
# fmt: on


def normalize_number(raw: str, field_name: str = "phone_number") -> str:
    """An E.164 number without separators, or a SIP user as given; else 400001."""
    text = raw.strip()
    if text.startswith("+"):
        compact = _E164_SEPARATORS.sub("", text)
        if _E164.fullmatch(compact):
            return compact
        raise ApiError.validation(
            field_name, "must be an E.164 number (+ then 2-15 digits) or a SIP user name"
        )
    if _SIP_USER.fullmatch(text):
        return text
    raise ApiError.validation(
        field_name, "must be an E.164 number (e.g. +17145551212) or a SIP user name"
    )


def is_e164(number: str) -> bool:
    return _E164.fullmatch(number) is not None


def country_of(number: str) -> str:
    """Two-letter country of an E.164 number from a small prefix table, else UNKNOWN."""
    if not is_e164(number):
        return "UNKNOWN"
    digits = number[1:]
    for length in (3, 2, 1):
        country = _COUNTRY_PREFIXES.get(digits[:length])
        if country:
            return country
    return "UNKNOWN"


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ApiError.validation(name, f"must be between {lo:g} and {hi:g}")


def _is_number(value: Any) -> bool:
    # bool is an int in Python but not a number in JSON
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class CallbackTarget:
    """Where and how one kind of Callback Request is sent."""

    url: str
    method: str = "POST"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0

    @classmethod
    def from_request(cls, body: Any, name: str) -> CallbackTarget:
        """Validate a callback object; `name` prefixes field names in errors."""
        if not isinstance(body, dict):
            raise ApiError.validation(name, "must be an object with at least a url")
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise ApiError.validation(f"{name}.url", "is required and must be a string")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError.validation(f"{name}.url", "must be an absolute http(s) URL")
        method = body.get("method", "POST")
        if method not in METHODS:
            raise ApiError.validation(f"{name}.method", f"must be one of {', '.join(METHODS)}")
        content_type = body.get("content_type", "application/json")
        if content_type not in CONTENT_TYPES:
            raise ApiError.validation(
                f"{name}.content_type", f"must be one of {', '.join(CONTENT_TYPES)}"
            )
        headers = cls._headers(body.get("headers"), f"{name}.headers")
        timeout = body.get("timeout", 5)
        if not _is_number(timeout):
            raise ApiError.validation(f"{name}.timeout", "must be a number between 1 and 15")
        _check_range(f"{name}.timeout", timeout, TIMEOUT_RANGE)
        return cls(url, method, content_type, headers, float(timeout))

    @staticmethod
    def _headers(value: Any, name: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ApiError.validation(name, "must be an object of header names to strings")
        for key, item in value.items():
            if not _HEADER_NAME.fullmatch(key):
                raise ApiError.validation(f"{name}.{key}", "is not a valid header name")
            # CR/LF in a value would let a config inject headers into our requests
            if not isinstance(item, str) or "\r" in item or "\n" in item:
                raise ApiError.validation(f"{name}.{key}", "must be a string without line breaks")
        return dict(value)

    def to_api(self) -> dict[str, Any]:
        timeout = self.timeout
        return {
            "url": self.url,
            "method": self.method,
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "timeout": int(timeout) if timeout.is_integer() else timeout,
        }

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CallbackTarget:
        """Rebuild from `to_api()` output (already validated when it was stored)."""
        return cls(
            data["url"],
            data.get("method", "POST"),
            data.get("content_type", "application/json"),
            dict(data.get("headers") or {}),
            float(data.get("timeout", 5.0)),
        )


@dataclass
class CallFlowConfig:
    """One number's call flow configuration, or the Default when `number` is None."""

    number: str | None
    callback: CallbackTarget
    callback_failover: CallbackTarget | None = None
    callback_sms: CallbackTarget | None = None
    callback_sms_failover: CallbackTarget | None = None
    answer_on_ring: int = 1
    custom_data: Any = None
    # Template Mapping: replace {{property|default}} in callback responses (the spec's
    # is_template; off unless the configuration turns it on)
    is_template: bool = False
    created_on: datetime = field(default_factory=utcnow)
    updated_on: datetime = field(default_factory=utcnow)

    @classmethod
    def from_request(
        cls,
        body: Any,
        number: str | None,
        existing: CallFlowConfig | None,
        now: datetime | None = None,
    ) -> CallFlowConfig:
        """Validate a PUT body.

        PUT replaces the whole configuration: omitted fields take their defaults, and
        only `created_on` carries over from `existing`. Unknown fields
        are ignored, so a GET response can be sent back as a PUT body.
        """
        if not isinstance(body, dict):
            raise ApiError.validation("body", "must be a JSON object")
        if body.get("callback") is None:
            raise ApiError.validation("callback", "is required and must be an object")
        targets = {
            name: None if body.get(name) is None else CallbackTarget.from_request(body[name], name)
            for name in CALLBACK_FIELDS
        }
        rings = body.get("answer_on_ring", 1)
        if not isinstance(rings, int) or isinstance(rings, bool):
            raise ApiError.validation("answer_on_ring", "must be an integer between 1 and 10")
        _check_range("answer_on_ring", rings, ANSWER_ON_RING_RANGE)
        custom_data = body.get("custom_data")
        if custom_data is not None and not isinstance(custom_data, dict):
            raise ApiError.validation("custom_data", "must be a JSON object or null")
        template = body.get("is_template", False)
        if not isinstance(template, bool):
            raise ApiError.validation("is_template", "must be true or false")
        now = now or utcnow()
        callback = targets["callback"]
        assert callback is not None  # checked above
        return cls(
            number=number,
            callback=callback,
            callback_failover=targets["callback_failover"],
            callback_sms=targets["callback_sms"],
            callback_sms_failover=targets["callback_sms_failover"],
            answer_on_ring=rings,
            custom_data=custom_data,
            is_template=template,
            created_on=existing.created_on if existing else now,
            updated_on=now,
        )

    def to_api(self) -> dict[str, Any]:
        """The spec's response shape for Update/View/List Call Flow Configuration."""
        if self.number is None:
            no = {"value": "application", "type": "DEFAULT"}
        else:
            no = {"value": self.number, "type": country_of(self.number)}
        out: dict[str, Any] = {"no": no}
        for name in CALLBACK_FIELDS:
            target: CallbackTarget | None = getattr(self, name)
            if target is not None:
                out[name] = target.to_api()
        out.update(
            answer_on_ring=self.answer_on_ring,
            custom_data=self.custom_data,
            is_template=self.is_template,
            created_on=iso(self.created_on),
            last_set_on=iso(self.updated_on),
            updated_on=iso(self.updated_on),
        )
        return out

    def to_row(self) -> dict[str, Any]:
        """Storage columns: `number` ('' for Default), `data` (JSON), ISO times."""
        data: dict[str, Any] = {
            name: (t.to_api() if (t := getattr(self, name)) else None) for name in CALLBACK_FIELDS
        }
        data.update(
            answer_on_ring=self.answer_on_ring,
            custom_data=self.custom_data,
            is_template=self.is_template,
        )
        return {
            "number": self.number or "",
            "data": json.dumps(data, separators=(",", ":")),
            "created_on": self.created_on.isoformat(),
            "updated_on": self.updated_on.isoformat(),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CallFlowConfig:
        data = json.loads(row["data"])
        targets = {
            name: CallbackTarget.from_api(data[name]) if data.get(name) else None
            for name in CALLBACK_FIELDS
        }
        callback = targets["callback"]
        assert callback is not None  # every stored config has one
        return cls(
            number=row["number"] or None,
            callback=callback,
            callback_failover=targets["callback_failover"],
            callback_sms=targets["callback_sms"],
            callback_sms_failover=targets["callback_sms_failover"],
            answer_on_ring=int(data.get("answer_on_ring", 1)),
            custom_data=data.get("custom_data"),
            is_template=bool(data.get("is_template", False)),
            created_on=_parse_stored_time(row["created_on"]),
            updated_on=_parse_stored_time(row["updated_on"]),
        )


def _parse_stored_time(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
