"""Sans-I/O parsing of DTMF carried in SIP INFO bodies (RFC 6086 INFO, de-facto formats).

Two body formats are in use:

- ``application/dtmf-relay`` (Cisco, most phones): ``key=value`` lines, e.g.
  ``Signal=5`` and ``Duration=160`` (milliseconds); keys are case-insensitive, other
  keys are ignored, lines may end in CRLF or LF.
- ``application/dtmf``: the body is the digit itself, e.g. ``5`` or ``#``.

In both, a signal is a digit ("0"-"9", "*", "#", "A"-"D", case-insensitive) or an
RFC 4733 §3.2 event code 10-15 (10 = "*", 11 = "#", 12-15 = "A"-"D").

A body that can't be read raises `BadDtmfInfo` (answer 400); a content type other than
these raises `UnsupportedDtmfInfo` (answer 415 with an Accept header). Both are
`ValueError`s and carry their status as `status_code`.
"""

from __future__ import annotations

from typing import NamedTuple

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
CONTENT_TYPES = (DTMF_RELAY, DTMF)
"""The INFO content types understood, for an Accept header."""

_DIGITS = "0123456789*#ABCD"
_MAX_BODY = 1024


class DtmfInfoError(ValueError):
    """An INFO body with DTMF that can't be used."""

    status_code: int = 400


class BadDtmfInfo(DtmfInfoError):
    """The body is malformed or holds no DTMF digit."""

    status_code = 400


class UnsupportedDtmfInfo(DtmfInfoError):
    """The content type is not a DTMF format we read."""

    status_code = 415


class DtmfInfo(NamedTuple):
    digit: str
    duration_ms: int | None


def parse_dtmf_info(content_type: str, body: bytes | str) -> DtmfInfo:
    """Read the digit and duration (ms, or None when absent) of a DTMF INFO body."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        raise UnsupportedDtmfInfo(
            f"unsupported INFO content type {media_type or '(none)'!r}: "
            f"expected {DTMF_RELAY} or {DTMF}"
        )
    if len(body) > _MAX_BODY:
        raise BadDtmfInfo(f"{media_type} body is longer than {_MAX_BODY} bytes")
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadDtmfInfo(f"{media_type} body is not UTF-8 text") from None
    else:
        text = body
    if media_type == DTMF:
        return DtmfInfo(_signal(text.strip(), media_type), None)
    return _parse_relay(text)


def _parse_relay(text: str) -> DtmfInfo:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise BadDtmfInfo(f"{DTMF_RELAY} line {line.strip()!r} is not key=value")
        key = key.strip().lower()
        if key in fields:
            raise BadDtmfInfo(f"{DTMF_RELAY} body has {key.capitalize()} twice")
        fields[key] = value.strip()
    if "signal" not in fields:
        raise BadDtmfInfo(f"{DTMF_RELAY} body has no Signal= line")
    digit = _signal(fields["signal"], DTMF_RELAY)
    duration = fields.get("duration")
    if duration is None:
        return DtmfInfo(digit, None)
    if not duration.isascii() or not duration.isdigit():
        raise BadDtmfInfo(
            f"{DTMF_RELAY} Duration must be a whole number of milliseconds, got {duration!r}"
        )
    return DtmfInfo(digit, int(duration))


def _signal(value: str, media_type: str) -> str:
    upper = value.upper()
    if len(upper) == 1 and upper in _DIGITS:
        return upper
    if upper in ("10", "11", "12", "13", "14", "15"):
        return _DIGITS[int(upper)]
    shown = repr(value) if value else "empty"
    raise BadDtmfInfo(
        f"{media_type} signal {shown} is not a DTMF digit (0-9 * # A-D, or event 10-15)"
    )
