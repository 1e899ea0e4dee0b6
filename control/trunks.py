"""SIP Trunks (spec: Trunks): the Trunk object, its validation, and who may use it.

A trunk is stored as its API object (JSON). `build_trunk` validates a POST body, or a PUT
body merged over the stored trunk, and returns the object to store; every failure is the
spec's 400001 naming the field. Pure functions: storage is control.inventorystore, calls
are control.trunkcalls.

- inbound trunks: numbers assigned to `Trunks/{trunk_id}` are forwarded to
  `inbound.destination` (`host`, `host:port` or `sip:[user@]host[:port]`; the called
  number is the user unless the destination names one), with `inbound.failover` when the
  destination cannot be reached;
- outbound trunks: INVITEs for `outbound.domain` (or, for a trunk without a domain, from
  an address on its list) are accepted only from `outbound.authentication`: `other` is an
  IP address or CIDR block, `twilio` an Account SID carried in `X-Twilio-AccountSid`.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any

from control.api.errors import ApiError

DIRECTIONS = ("inbound", "outbound")
STATUSES = ("active", "inactive")
RECORDING_SETTINGS = ("pre_connect", "do_not_record")
FAILOVER_SOURCES = ("trunk_id", "phone_number", "sip_uri", "api")
FAILOVER_APIS = ("CallFlows", "ParkingLot")
AUTH_SOURCES = ("twilio", "other")
FAX_SUPPORT = ("enabled", "disabled")
POST_DIAL_DELAY_S = (7, 30)
DOMAIN_SUFFIX = "trunk.voxolo.gy"
TWILIO_HEADER = "X-Twilio-AccountSid"
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")
_USER = re.compile(r"^[A-Za-z0-9+*#._!~'()-]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_EARLY_MEDIA = re.compile(r"^(?:to_country|from_country|[A-Za-z]{2})$")


def new_trunk_id() -> str:
    return str(uuid.uuid4())


def _fail(field: str, problem: str) -> ApiError:
    return ApiError.validation(field, problem)


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...], field: str) -> Any:
    value = body.get(name)
    if value is not None and value not in choices:
        raise _fail(field, f"must be one of {', '.join(choices)}")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(field, "must be an object")
    return value


# ---- addresses ---------------------------------------------------------------------------


def split_destination(text: str) -> tuple[str | None, str]:
    """(user, host[:port]) of an inbound destination; ValueError when malformed."""
    rest = text.strip()
    if rest.lower().startswith("sip:"):
        rest = rest[4:]
    rest = rest.split(";", 1)[0]
    user = None
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if not _USER.match(user):
            raise ValueError(f"{user!r} is not a SIP user")
    host, port = rest, None
    if rest.startswith("["):
        host, _, tail = rest.partition("]")
        host += "]"
        port = tail[1:] if tail.startswith(":") else (None if not tail else "x")
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    if not _HOST.match(host):
        raise ValueError(f"{host!r} is not a DNS name or IP address")
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"port {port!r} is not a port number")
    return user, rest


def destination_uri(destination: str, called: str) -> str:
    """The Request-URI a call to `called` takes towards `destination`."""
    user, hostport = split_destination(destination)
    return f"sip:{user or called}@{hostport}"


def check_cidr(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(field, "must be an IP address or CIDR block (e.g. 203.0.113.0/24)")
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _fail(field, f"{value!r} is not an IP address or CIDR block") from None
    return value.strip()


def address_allowed(trunk: dict[str, Any], source_ip: str,
                    headers: dict[str, str] | None = None) -> bool:
    """Whether a request from `source_ip` (with `headers`) may use the outbound trunk."""
    try:
        addr = ipaddress.ip_address(source_ip)
    except ValueError:
        addr = None
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    for entry in (trunk.get("outbound") or {}).get("authentication") or []:
        if entry.get("source") == "other" and addr is not None:
            net = ipaddress.ip_network(entry["value"], strict=False)
            if addr.version == net.version and addr in net:
                return True
        elif entry.get("source") == "twilio" \
                and lowered.get(TWILIO_HEADER.lower()) == entry.get("value"):
            return True
    return False


def lists_address(trunk: dict[str, Any], source_ip: str) -> bool:
    """Whether an IP/CIDR entry of the trunk holds `source_ip` (domain-less matching)."""
    only_ips = dict(trunk, outbound={"authentication": [
        e for e in (trunk.get("outbound") or {}).get("authentication") or []
        if e.get("source") == "other"]})
    return address_allowed(only_ips, source_ip)


# ---- validation --------------------------------------------------------------------------


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if key in ("inbound", "outbound", "recording") and isinstance(value, dict) \
                and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _recording(body: dict[str, Any]) -> dict[str, Any]:
    rec = _object(body.get("recording"), "recording")
    setting = _choice(rec, "setting", RECORDING_SETTINGS, "recording.setting")
    return {"setting": setting} if setting else {}


def _failover(raw: Any, trunk_id: str) -> dict[str, Any]:
    fo = _object(raw, "inbound.failover")
    source, value = fo.get("source"), fo.get("value")
    if source is None:
        if value is not None:
            raise _fail("inbound.failover.source", f"is required with a value; one of "
                        f"{', '.join(FAILOVER_SOURCES)}")
        return {"source": None, "value": None}
    if source not in FAILOVER_SOURCES:
        raise _fail("inbound.failover.source", f"must be one of {', '.join(FAILOVER_SOURCES)}")
    if not isinstance(value, str) or not value.strip():
        raise _fail("inbound.failover.value", f"is required when the source is {source}")
    value = value.strip()
    if source == "trunk_id" and value == trunk_id:
        raise _fail("inbound.failover.value", "a trunk cannot fail over to itself")
    if source == "phone_number" and not _E164.match(value):
        raise _fail("inbound.failover.value", "must be an E.164 number such as +19495551212")
    if source == "sip_uri":
        if not value.lower().startswith("sip:") or "@" not in value:
            raise _fail("inbound.failover.value", "must be a SIP URI such as sip:bob@host:5060")
        try:
            split_destination(value)
        except ValueError as exc:
            raise _fail("inbound.failover.value", str(exc)) from None
    if source == "api" and value not in FAILOVER_APIS:
        raise _fail("inbound.failover.value", f"must be one of {', '.join(FAILOVER_APIS)}")
    return {"source": source, "value": value}


def _inbound(body: dict[str, Any], trunk_id: str) -> dict[str, Any]:
    if not isinstance(body.get("inbound"), dict):
        raise _fail("inbound", "is required for an inbound trunk (an object with destination)")
    inbound = body["inbound"]
    dest = inbound.get("destination")
    if not isinstance(dest, str) or not dest.strip():
        raise _fail("inbound.destination", "is required: a DNS name or IP address")
    try:
        split_destination(dest)
    except ValueError as exc:
        raise _fail("inbound.destination", str(exc)) from None
    return {"destination": dest.strip(), "failover": _failover(inbound.get("failover"), trunk_id),
            "phone_numbers_uri": f"/v1/PhoneNumbers/Trunks/{trunk_id}"}


def _authentication(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise _fail("outbound.authentication", "is required: a list of {source, value} "
                    "(source other: an IP address or CIDR block; twilio: an Account SID)")
    out = []
    for i, entry in enumerate(raw):
        field = f"outbound.authentication[{i}]"
        if not isinstance(entry, dict):
            raise _fail(field, "must be an object with source and value")
        source = entry.get("source")
        if source not in AUTH_SOURCES:
            raise _fail(field + ".source", f"must be one of {', '.join(AUTH_SOURCES)}")
        value = entry.get("value")
        if source == "other":
            value = check_cidr(value, field + ".value")
        elif not isinstance(value, str) or not value.strip():
            raise _fail(field + ".value", "is required: the Twilio Account SID")
        out.append({"source": source, "value": value.strip()})
    return out


def _outbound(body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body.get("outbound"), dict):
        raise _fail("outbound", "is required for an outbound trunk (an object with "
                    "authentication)")
    ob = body["outbound"]
    domain = ob.get("domain")
    if domain is not None:
        if not isinstance(domain, str):
            raise _fail("outbound.domain", "must be a string or null")
        domain = domain.strip().lower()
        if not domain.endswith("." + DOMAIN_SUFFIX) or not _DOMAIN.match(domain):
            raise _fail("outbound.domain", "must be alphanumeric (a-z, 0-9) with hyphens and "
                        f"end with {DOMAIN_SUFFIX} (e.g. acme.{DOMAIN_SUFFIX})")
    early = ob.get("override_early_media")
    if early is not None and (not isinstance(early, str) or not _EARLY_MEDIA.match(early)):
        raise _fail("outbound.override_early_media",
                    "must be to_country, from_country or an ISO Alpha-2 country code")
    fax = _choice(ob, "fax_support", FAX_SUPPORT, "outbound.fax_support")
    pdd = ob.get("max_post_dial_delay")
    low, high = POST_DIAL_DELAY_S
    if pdd is not None and (isinstance(pdd, bool) or not isinstance(pdd, int)
                            or not low <= pdd <= high):
        raise _fail("outbound.max_post_dial_delay", f"must be an integer of {low} to {high} "
                    "seconds")
    return {"domain": domain, "authentication": _authentication(ob.get("authentication")),
            "override_early_media": early, "fax_support": fax or "disabled",
            "max_post_dial_delay": pdd}


def build_trunk(body: Any, existing: dict[str, Any] | None, *, trunk_id: str, now: str,
                app_id: str, subaccount_id: int = 0) -> dict[str, Any]:
    """The Trunk object for a POST body (`existing` None) or a PUT over `existing`."""
    if not isinstance(body, dict):
        raise _fail("body", "must be a JSON object")
    if existing is not None:
        direction = existing["direction"]
        if body.get("direction", direction) != direction:
            raise _fail("direction", f"cannot change: this trunk is {direction}")
        body = _merge(existing, body)
    direction = body.get("direction")
    if direction not in DIRECTIONS:
        raise _fail("direction", "is required: inbound or outbound")
    status = _choice(body, "status", STATUSES, "status") or "active"
    limit = body.get("simultaneous_call_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise _fail("simultaneous_call_limit", "must be a positive integer (or null: no limit)")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail("description", "must be a string")
    trunk: dict[str, Any] = {
        "trunk_id": trunk_id, "status": status,
        "created_on": existing["created_on"] if existing else now,
        "modified_on": now, "updated_on": now, "app_id": app_id,
        "subaccount_id": subaccount_id or None, "direction": direction,
        "simultaneous_call_limit": limit, "description": description,
        "recording": _recording(body),
    }
    if direction == "inbound":
        trunk["inbound"] = _inbound(body, trunk_id)
    else:
        trunk["outbound"] = _outbound(body)
    return trunk


def recorded(trunk: dict[str, Any]) -> bool:
    return (trunk.get("recording") or {}).get("setting") == "pre_connect"
