"""The UAS request checks of RFC 3261 §8.2, sans-I/O.

`check_request` runs on a request that `parse_message` accepted (so Via, From, To,
Call-ID and CSeq are known to parse) and returns the error response the UAS must send,
or None when the request may go on to its method's handler. The checks run in the
RFC's order, with the semantic 400s of RFC 4475 §3.3 ahead of the method checks.
A UAS never answers an ACK: the caller drops an ACK that this rejects.
"""

from __future__ import annotations

from signaling.errors import SipParseError
from signaling.headers import NameAddr
from signaling.message import Request, Response, make_response

__all__ = ["STANDARD_METHODS", "check_request"]

# The order methods are listed in Allow; anything else follows alphabetically.
STANDARD_METHODS = (
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
    "UPDATE", "INFO", "MESSAGE", "SUBSCRIBE", "NOTIFY", "REFER", "PUBLISH",
)
_ORDER = {m: i for i, m in enumerate(STANDARD_METHODS)}
_REQUEST_URI_SCHEMES = frozenset({"sip", "sips", "tel"})
_ADDRESS_SCHEMES = frozenset({"sip", "sips", "tel"})
# Methods whose answer carries a session description, so Accept must allow one.
_ANSWERS_WITH_SDP = frozenset({"INVITE", "UPDATE"})


def _allow(allowed: frozenset[str]) -> list[tuple[str, str]]:
    methods = sorted(allowed, key=lambda m: (_ORDER.get(m, len(_ORDER)), m))
    return [("Allow", ", ".join(methods))]


def check_request(
    req: Request,
    *,
    allowed: frozenset[str],
    known: frozenset[str],
    supported: frozenset[str] = frozenset(),
    accept: frozenset[str] = frozenset({"application/sdp"}),
) -> Response | None:
    """The error response RFC 3261 §8.2 requires for `req`, or None if it passes.

    `allowed` are the methods this UAS handles; `known` those it recognises (a known
    method outside `allowed` gets 405, an unknown one 501); `supported` are the option
    tags it implements; `accept` the body types it takes.
    """
    if req.version != "SIP/2.0":
        return make_response(req, 505, "Version Not Supported")
    if req.cseq.method != req.method:
        return make_response(req, 400, "CSeq method does not match Request-Line")
    fault = _semantic_fault(req)
    if fault is not None:
        return make_response(req, 400, fault)
    # §8.2.1 method inspection
    if req.method not in known and req.method not in allowed:
        return make_response(req, 501, "Not Implemented", headers=_allow(allowed))
    if req.method not in allowed:
        return make_response(req, 405, "Method Not Allowed", headers=_allow(allowed))
    # §8.2.2 header inspection
    if req.ruri.scheme not in _REQUEST_URI_SCHEMES:
        return make_response(req, 416, "Unsupported URI Scheme")
    if req.method not in ("CANCEL", "ACK"):
        unknown = [t for t in req.headers.getall("Require") if t not in supported]
        if unknown:
            return make_response(
                req, 420, "Bad Extension", headers=[("Unsupported", ", ".join(unknown))]
            )
    # §8.2.3 content processing
    response = _check_body(req, accept)
    if response is not None:
        return response
    mf = req.max_forwards
    if mf == 0 and req.method != "OPTIONS":
        return make_response(req, 483, "Too Many Hops")
    return None


def _semantic_fault(req: Request) -> str | None:
    """Well-formed but unusable requests that RFC 4475 §3.1.2 and §3.3 reject with 400."""
    ruri = req.ruri
    # Headers in a Request-URI are forbidden (RFC 3261 §19.1.5, RFC 4475 escruri).
    if ruri.scheme in ("sip", "sips") and ruri.headers:
        return "Headers not allowed in Request-URI"
    for name, header in (("From", req.from_), ("To", req.to)):
        if header.uri.scheme not in _ADDRESS_SCHEMES:
            return f"Unsupported URI scheme in {name} header"
    try:
        for value in req.headers.getall("Contact"):
            if value != "*":
                NameAddr.parse(value)
    except SipParseError as e:
        return f"Malformed Contact header: {e.reason}"
    return None


def _check_body(req: Request, accept: frozenset[str]) -> Response | None:
    accept_header = [("Accept", ", ".join(sorted(accept)))]
    if req.body:
        media_type = req.media_type
        if media_type is None or media_type not in accept:
            return make_response(req, 415, "Unsupported Media Type", headers=accept_header)
        encodings = [e.lower() for e in req.headers.getall("Content-Encoding")]
        if any(e != "identity" for e in encodings):
            return make_response(
                req,
                415,
                "Unsupported Media Type",
                headers=[("Accept-Encoding", "identity")],
            )
    if req.method in _ANSWERS_WITH_SDP and "Accept" in req.headers:
        offered = req.headers.getall("Accept")
        if offered and not any(_accepts(a, "application/sdp") for a in offered):
            return make_response(req, 406, "Not Acceptable", headers=accept_header)
    return None


def _accepts(range_: str, media_type: str) -> bool:
    """Whether an Accept media-range (RFC 3261 §20.1) covers `media_type`."""
    pattern = range_.split(";", 1)[0].strip().lower()
    if pattern in ("*/*", media_type):
        return True
    return pattern.endswith("/*") and media_type.startswith(pattern[:-1])

