"""A registrar (RFC 3261 §10.3), sans-I/O.

Theory of operation
-------------------
`Registrar` keeps the bindings of one domain (ours): per address-of-record (the user of
the REGISTER's To) the contacts registered for it, each with its expiry, the Call-ID and
CSeq of the REGISTER that last set it (§10.3 step 7), its q and where the REGISTER came
from. `register(request, aor, now, source)` runs steps 6-8 on a request that is already
authenticated and authorised for `aor` (steps 1-5 are the caller's: `validate` and
`authserver`) and returns the response to send:

- 200 listing every contact now bound to the AOR with its remaining `expires` (a REGISTER
  without Contact is a query and changes nothing);
- 423 Interval Too Brief with Min-Expires when a contact asks for less than the minimum
  (0 excepted: that removes the binding);
- 400 naming the fault for a malformed Expires, expires or q, a `Contact: *` that is not
  alone or not sent with `Expires: 0`, a contact that is not a sip: URI, or a CSeq that
  is not above the one stored for the same Call-ID (step 7: the update is aborted);
- 403 when the AOR would hold more than `max_contacts` contacts.

The update is all or nothing: every contact is checked before any binding changes.
Expiry is taken from the contact's `expires` parameter, else the Expires header, else
`default_expires`, and is capped at `max_expires` (the 200 says what was granted).

Bindings expire by themselves: `get_timer()` is the next expiry and `handle_timer(now)`
removes what has expired and returns those bindings. `lookup(aor, now)` gives the live
bindings of an AOR, best first (highest q, then the most recently refreshed).
Time is always a parameter (the loop's monotonic clock in the glue).
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

from signaling.errors import SipParseError
from signaling.events import Destination
from signaling.headers import NameAddr
from signaling.message import Request, Response, make_response
from signaling.uri import URI

__all__ = ["Binding", "Registrar", "RegistrarConfig", "contact_key"]

MAX_EXPIRES_VALUE = 0xFFFFFFFF  # §20.19: delta-seconds up to 2**32-1


@dataclass(frozen=True)
class RegistrarConfig:
    """Expiry bounds in seconds (§10.2.1.1, §10.3 step 7) and contacts per AOR."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("expected 0 < min_expires <= default_expires <= max_expires, "
                             f"got {self.min_expires}, {self.default_expires}, "
                             f"{self.max_expires}")
        if self.max_contacts < 1:
            raise ValueError("max_contacts must be at least 1")


@dataclass
class Binding:
    """One contact bound to an address-of-record."""

    aor: str
    uri: URI
    contact: NameAddr  # as registered, without its expires parameter
    expires_at: float
    call_id: str
    cseq: int
    q: float
    source: Destination
    updated_at: float
    user_agent: str | None = None
    expires: int = 0  # the interval granted by the last REGISTER

    def remaining(self, now: float) -> int:
        """Whole seconds left (rounded up), never negative. A microsecond's slack first:
        `(now + 120) - now` can come out a hair above 120 in floating point, and the 200
        to a REGISTER must echo the 120 it granted, not 121."""
        return max(0, math.ceil(self.expires_at - now - 1e-6))


def contact_key(uri: URI) -> tuple[str, str, str, int, str]:
    """What makes two contact URIs the same binding (§10.3 step 7 compares them with the
    §19.1.4 rules; scheme, user, host, port and transport are what matter here)."""
    transport = (uri.params.get("transport") or "udp").lower()
    return (uri.scheme.lower(), uri.user or "", uri.host.lower(), uri.port or 5060, transport)


class RegisterRefused(Exception):
    """A REGISTER that must fail: the status, reason and headers of its response."""

    def __init__(self, status: int, reason: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


@dataclass
class _Change:
    uri: URI
    contact: NameAddr
    expires: int
    q: float


@dataclass
class Registrar:
    """The bindings of our domain, keyed by AOR (a user name)."""

    config: RegistrarConfig = field(default_factory=RegistrarConfig)
    _bindings: dict[str, dict[tuple[str, str, str, int, str], Binding]] = field(
        default_factory=dict)
    _heap: list[tuple[float, int, str, tuple[str, str, str, int, str]]] = field(
        default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)

    # ---- inputs ----------------------------------------------------------------------

    def register(self, request: Request, aor: str, now: float,
                 source: Destination) -> Response:
        """Steps 6-8 of §10.3 for an authorised REGISTER: the response to send."""
        try:
            self._apply(request, aor, now, source)
        except RegisterRefused as refused:
            return make_response(request, refused.status, refused.reason,
                                 headers=refused.headers)
        headers = [("Contact", str(self._with_expires(b, now))) for b in self.lookup(aor, now)]
        return make_response(request, 200, headers=headers)

    def handle_timer(self, now: float) -> list[Binding]:
        """Remove the bindings that have expired by `now`; returns them."""
        expired: list[Binding] = []
        while self._heap and self._heap[0][0] <= now:
            at, _, aor, key = heapq.heappop(self._heap)
            binding = self._bindings.get(aor, {}).get(key)
            if binding is None or binding.expires_at != at:
                continue  # refreshed or removed since: a stale heap entry
            self._remove(aor, key)
            expired.append(binding)
        return expired

    def remove(self, aor: str) -> list[Binding]:
        """Drop every binding of `aor` (its user was deleted)."""
        gone = list(self._bindings.pop(aor, {}).values())
        return gone

    # ---- outputs ---------------------------------------------------------------------

    def get_timer(self) -> float | None:
        while self._heap:
            at, _, aor, key = self._heap[0]
            binding = self._bindings.get(aor, {}).get(key)
            if binding is not None and binding.expires_at == at:
                return at
            heapq.heappop(self._heap)
        return None

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of `aor`, best first: highest q, then the latest refresh."""
        live = [b for b in self._bindings.get(aor, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: (-b.q, -b.updated_at))

    def bindings(self, now: float) -> list[Binding]:
        """Every live binding, by AOR then best first."""
        return [b for aor in sorted(self._bindings) for b in self.lookup(aor, now)]

    # ---- internals -------------------------------------------------------------------

    def _apply(self, request: Request, aor: str, now: float, source: Destination) -> None:
        raw = request.headers.getall("Contact")
        if not raw:
            return  # a query (§10.2.3)
        default = _expires_header(request)
        call_id, cseq = request.call_id, request.cseq.seq
        current = self._bindings.get(aor, {})
        if "*" in raw:
            self._check_wildcard(raw, default, current, call_id, cseq)
            for key in list(current):
                self._remove(aor, key)
            return
        changes = [self._change(text, default) for text in raw]
        brief = [c for c in changes if 0 < c.expires < self.config.min_expires]
        if brief:
            raise RegisterRefused(423, "Interval Too Brief",
                                  [("Min-Expires", str(self.config.min_expires))])
        for change in changes:
            existing = current.get(contact_key(change.uri))
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise RegisterRefused(400, "CSeq not above the one of the binding's last "
                                           "REGISTER")
        after = {**current}
        for change in changes:
            key = contact_key(change.uri)
            if change.expires == 0:
                after.pop(key, None)
            else:
                after[key] = current.get(key) or Binding(
                    aor, change.uri, change.contact, 0.0, call_id, cseq, change.q, source,
                    now)
        if len(after) > self.config.max_contacts:
            raise RegisterRefused(403, f"Too many contacts (at most "
                                       f"{self.config.max_contacts} per user)")
        agent = request.headers.get("User-Agent")
        for change in changes:
            key = contact_key(change.uri)
            if change.expires == 0:
                if key in current:
                    self._remove(aor, key)
                continue
            binding = after[key]
            binding.uri, binding.contact, binding.q = change.uri, change.contact, change.q
            binding.call_id, binding.cseq, binding.source = call_id, cseq, source
            binding.updated_at, binding.user_agent = now, agent
            binding.expires = change.expires
            binding.expires_at = now + change.expires
            self._bindings.setdefault(aor, {})[key] = binding
            heapq.heappush(self._heap, (binding.expires_at, next(self._sequence), aor, key))

    def _check_wildcard(self, raw: list[str], default: int | None,
                        current: dict[tuple[str, str, str, int, str], Binding],
                        call_id: str, cseq: int) -> None:
        # §10.3 step 6: '*' only alone and with Expires: 0
        if len(raw) != 1:
            raise RegisterRefused(400, "Contact: * must be the only Contact")
        if default != 0:
            raise RegisterRefused(400, "Contact: * needs Expires: 0")
        for binding in current.values():
            if binding.call_id == call_id and cseq <= binding.cseq:
                raise RegisterRefused(400, "CSeq not above the one of the binding's last "
                                           "REGISTER")

    def _change(self, text: str, default: int | None) -> _Change:
        try:
            contact = NameAddr.parse(text)
        except SipParseError as exc:
            raise RegisterRefused(400, f"Malformed Contact header: {exc.reason}"[:100]) from None
        uri = contact.uri
        if uri.scheme.lower() != "sip" or not uri.host:
            raise RegisterRefused(400, f"Unsupported Contact URI {str(uri)[:60]!r} (sip: only)")
        params = dict(contact.params)
        raw_expires = params.pop("expires", None)
        if raw_expires is not None:
            expires = _delta_seconds(raw_expires.strip('"'), "expires parameter")
        else:
            expires = default if default is not None else self.config.default_expires
        expires = min(expires, self.config.max_expires)
        q = _q_value(params.get("q"))
        return _Change(uri, NameAddr(contact.display, uri, params), expires, q)

    def _remove(self, aor: str, key: tuple[str, str, str, int, str]) -> None:
        bound = self._bindings.get(aor)
        if bound is None:
            return
        bound.pop(key, None)
        if not bound:
            del self._bindings[aor]

    @staticmethod
    def _with_expires(binding: Binding, now: float) -> NameAddr:
        params = {**binding.contact.params, "expires": str(binding.remaining(now))}
        return NameAddr(None, binding.uri, params)


def _delta_seconds(text: str, what: str) -> int:
    if not (text.isdigit() and text.isascii()):
        raise RegisterRefused(400, f"Malformed {what} {text[:20]!r}")
    return min(int(text), MAX_EXPIRES_VALUE)


def _expires_header(request: Request) -> int | None:
    value = request.headers.get("Expires")
    return None if value is None else _delta_seconds(value.strip(), "Expires header")


def _q_value(text: str | None) -> float:
    """§20.10 qvalue: 0 to 1 with at most three decimals; absent means 1.0 here."""
    if text is None:
        return 1.0
    try:
        q = float(text)
    except ValueError:
        raise RegisterRefused(400, f"Malformed q parameter {text[:20]!r}") from None
    if not 0.0 <= q <= 1.0:
        raise RegisterRefused(400, f"q parameter {text[:20]!r} is not between 0 and 1")
    return q
