"""What a dial asks for (`DialRequest`, `parse_dial`) and where it goes (`route_for`).

Where a call goes (the spec's `no`):
- a user registered with our registrar (`alice`, or `sip:alice@<our domain>`) rings its
  softphone's contact; a user of ours that is not registered fails at once (NoRoute);
- a SIP destination, `sip:user@host[:port]` or `user@host[:port]`, is dialled directly;
- a number (E.164 `+19495551212`, or digits) goes to the outbound proxy of the settings
  (`[outbound] proxy = "sip:host:port"`) as `sip:NUMBER@proxy`, with the settings'
  digest credentials when the proxy challenges; with no proxy configured there is no
  route, and the dial fails at once with a message saying what to set;
- a number of the PSTN simulator's range (`[simulator] numbers`, control.pstnsim) goes
  to the running simulator (the `simulate` hook), before any proxy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signaling.auth import Credentials

if TYPE_CHECKING:
    from control.settings import Settings

TIMEOUT_S = (20, 240, 50)  # min, max, default ring time
MAX_CALL_TIME_S = (60, 172800, 86400)
DETECTION = ("preconnect", "full", "none")
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
_SIP_USER_HOST = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9.\-\[\]:]+(;[^\s]*)?$")


class DialError(ValueError):
    """A dial that cannot be placed: `field` names the bad parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NoRoute(DialError):
    """A number with no outbound proxy to send it to."""


@dataclass(frozen=True)
class Route:
    target: str  # the Request-URI
    proxy: str | None  # where the INVITE is sent, when not to the target itself
    credentials: Credentials | None


# A registered destination's route, None when `no` is not one (see route_for).
Locator = Callable[[str], Route | None]


@dataclass(frozen=True)
class DialRequest:
    """A validated dial (Dials/Connect body, DIAL or TRANSFER params)."""

    no: str
    caller_id_no: str
    timeout: float = TIMEOUT_S[2]
    max_call_time: float = MAX_CALL_TIME_S[2]
    session_data: Any = None
    override_callback_config: str | None = None
    inbound_api: str = "CallFlows"
    detection: str = "none"
    parent_call_id: str | None = None
    subaccount_id: int = 0


def route_for(no: str, settings: Settings, locate: Locator | None = None,
              simulate: Locator | None = None) -> Route:
    """Where a dial to `no` goes; DialError for a malformed one, NoRoute without a proxy.

    `locate` first: a registered softphone's user (`alice`, `sip:alice@<our domain>`)
    goes to its contact, and one that is not registered is NoRoute (control.softphones).
    """
    if locate is not None:
        found = locate(no)
        if found is not None:
            return found
    text = no.strip()
    if text.lower().startswith("sips:"):
        raise DialError("no", f"{no!r}: sips: (TLS) is not supported; use sip:")
    if text.lower().startswith("sip:"):
        text = text[4:]
    if "@" in text:
        if not _SIP_USER_HOST.match(text):
            raise DialError("no", f"{no!r} is not a SIP destination (user@host[:port])")
        return Route(f"sip:{text}", None, None)
    if _NUMBER.match(text):
        simulated = simulate(text) if simulate is not None else None
        if simulated is not None:
            return simulated
        proxy = settings.outbound_proxy
        if proxy is None:
            raise NoRoute("no", f"no outbound route for the number {no!r}: set [outbound] "
                                "proxy = \"sip:HOST:PORT\" (or --outbound-proxy), or dial a "
                                "SIP URI such as sip:user@host:port")
        creds = None
        if settings.outbound_username:
            creds = Credentials(settings.outbound_username, settings.outbound_password or "")
        host = proxy[4:]
        return Route(f"sip:{text}@{host}", proxy, creds)
    raise DialError("no", f"{no!r} is neither a phone number (E.164) nor a SIP destination")


def _number(raw: dict[str, Any], name: str, bounds: tuple[int, int, int]) -> float:
    value = raw.get(name)
    low, high, default = bounds
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DialError(name, f"must be a number of seconds, got {type(value).__name__}")
    if not low <= value <= high:
        raise DialError(name, f"{value} is outside the valid {low} to {high} seconds")
    return float(value)


def _text(raw: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise DialError(name, "is required")
        return None
    if not isinstance(value, str):
        raise DialError(name, f"must be a string, got {type(value).__name__}")
    return value.strip()


def parse_dial(raw: dict[str, Any], *, default_caller_id: str | None,
               prefix: str = "") -> DialRequest:
    """Validate dial parameters: `no`, `caller_id_no` (else `default_caller_id`),
    `timeout`, `max_call_time`, `session_data`, `override_callback_config`,
    `inbound_api`, `detection`. `prefix` goes before field names in errors ("call.")."""
    try:
        no = _text(raw, "no", required=True)
        caller = _text(raw, "caller_id_no", required=default_caller_id is None) \
            or default_caller_id
        inbound_api = _text(raw, "inbound_api") or "CallFlows"
        if inbound_api != "CallFlows":
            raise DialError("inbound_api", f"{inbound_api!r}; accepted: CallFlows")
        detection = (_text(raw, "detection") or "none").lower()
        if detection not in DETECTION:
            raise DialError("detection", f"{detection!r}; accepted: {', '.join(DETECTION)}")
        session_data = raw.get("session_data")
        if session_data is not None and not isinstance(session_data, dict | str):
            raise DialError("session_data", "must be an object")
        assert no is not None and caller is not None
        return DialRequest(
            no=no, caller_id_no=caller,
            timeout=_number(raw, "timeout", TIMEOUT_S),
            max_call_time=_number(raw, "max_call_time", MAX_CALL_TIME_S),
            session_data=session_data,
            override_callback_config=_text(raw, "override_callback_config"),
            inbound_api=inbound_api, detection=detection)
    except DialError as exc:
        if prefix and exc.field in ("no", "caller_id_no"):
            raise DialError(prefix + exc.field, exc.message) from None
        raise
