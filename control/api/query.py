"""Typed access to query parameters and JSON bodies; every failure is a 400 ApiError.

Query strings are form-decoded, so an unencoded `+` arrives as a space: `?caller_no=+1714…`
reads " 1714…" and `begin_date=…T18:00:00+02:00` reads "…T18:00:00 02:00". Numbers and
dates repair that before parsing, because clients routinely forget to encode the `+`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from control.api.errors import ApiError
from control.flowconfig import normalize_number

_SPACED_OFFSET = re.compile(r" (\d{2}(:?\d{2})?)$")


def _raw(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return None if value is None or value == "" else value


def int_param(
    request: web.Request, name: str, default: int | None, lo: int = 0, hi: int | None = None
) -> int | None:
    raw = _raw(request, name)
    if raw is None:
        return default
    upper = f" and at most {hi}" if hi is not None else ""
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.validation(name, f"must be an integer of at least {lo}{upper}") from None
    if value < lo or (hi is not None and value > hi):
        raise ApiError.validation(name, f"must be an integer of at least {lo}{upper}")
    return value


def number_param(request: web.Request, name: str) -> float | None:
    """A non-negative number (int or decimal)."""
    raw = _raw(request, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError.validation(name, "must be a non-negative number") from None
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise ApiError.validation(name, "must be a non-negative number")
    return value


def choice_param(
    request: web.Request, name: str, choices: Sequence[str], default: str | None
) -> str | None:
    """One of `choices`, matched without regard to case, returned as spelled in `choices`."""
    raw = _raw(request, name)
    if raw is None:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise ApiError.validation(name, f"must be one of {', '.join(choices)}")


def list_param(request: web.Request, name: str, separators: str = ",") -> list[str] | None:
    """A comma-separated list (blank items dropped); None when absent."""
    raw = request.query.get(name)
    if raw is None:
        return None
    items = re.split(f"[{re.escape(separators)}]", raw)
    return [item for item in items if item.strip()]


def fix_plus(value: str) -> str:
    """Restore a leading `+` that form decoding turned into a space."""
    if value.startswith(" ") and value.lstrip()[:1].isdigit():
        return "+" + value.lstrip()
    return value


def phone_param(request: web.Request, name: str) -> str | None:
    raw = _raw(request, name)
    return None if raw is None else normalize_number(fix_plus(raw), name)


def phone_list_param(request: web.Request, name: str) -> list[str] | None:
    items = list_param(request, name)
    if items is None:
        return None
    return [normalize_number(fix_plus(item), name) for item in items]


def datetime_param(request: web.Request, name: str, default: datetime) -> datetime:
    """An ISO 8601 date or date-time; naive values are taken as UTC."""
    raw = _raw(request, name)
    if raw is None:
        return default
    text = raw.strip()
    if "T" in text:  # a space can only stand for "+" in an offset after the time
        text = _SPACED_OFFSET.sub(r"+\1", text)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError.validation(
            name, "must be an ISO 8601 date-time, e.g. 2016-09-19T18:00:00.000Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def json_body(request: web.Request, required: bool = True) -> Any:
    """The parsed JSON body; 400010 when it is not JSON, None when absent and optional."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError.parsing("The request body is empty; a JSON object is required.")
        return None
    try:
        # bytes, not request.text(): json detects UTF-8/16/32 and bad bytes are a ValueError
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError.parsing(f"The request body is not valid JSON: {exc}") from None
