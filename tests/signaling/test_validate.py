"""check_request: the UAS checks of RFC 3261 §8.2, in order."""

from __future__ import annotations

import pytest

from signaling.message import Request, parse_message
from signaling.validate import check_request

ALLOWED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"})
KNOWN = ALLOWED | frozenset({"REGISTER", "MESSAGE", "SUBSCRIBE", "NOTIFY", "REFER"})
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"


def _request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *,
    cseq_method: str | None = None,
    extra: str = "",
    body: bytes = b"",
    version: str = "SIP/2.0",
) -> Request:
    data = (
        f"{method} {uri} {version}\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: cid@192.0.2.1\r\n"
        f"CSeq: 1 {cseq_method or method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    req = parse_message(data)
    assert isinstance(req, Request)
    return req


Outcome = tuple[int, str, list[tuple[str, str]]] | None


def _check(req: Request, **kwargs: frozenset[str]) -> Outcome:
    resp = check_request(req, allowed=ALLOWED, known=KNOWN, **kwargs)
    if resp is None:
        return None
    extra = [(n, v) for n, v in resp.headers.items()[5:] if n != "Content-Length"]
    return resp.status, resp.reason, extra


SDP_TYPE = "Content-Type: application/sdp\r\n"


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (_request(), None),
        (_request("OPTIONS"), None),
        (_request("ACK"), None),
        (_request(version="SIP/3.0"), (505, "Version Not Supported", [])),
        (
            _request("OPTIONS", cseq_method="INVITE"),
            (400, "CSeq method does not match Request-Line", []),
        ),
        (_request("FOO"), (501, "Not Implemented", [("Allow", ALLOW)])),
        (_request("REGISTER"), (405, "Method Not Allowed", [("Allow", ALLOW)])),
        (_request(uri="mailto:bob@example.com"), (416, "Unsupported URI Scheme", [])),
        (_request(uri="tel:+15551234"), None),
        (_request(uri="sips:bob@example.com"), None),
        (
            _request(uri="sip:bob@example.com?Route=%3Csip:x%3E"),
            (400, "Headers not allowed in Request-URI", []),
        ),
        (
            _request(extra="Require: 100rel, foo\r\n"),
            (420, "Bad Extension", [("Unsupported", "100rel, foo")]),
        ),
        (_request("CANCEL", extra="Require: foo\r\n"), None),
        (_request(extra="Proxy-Require: foo\r\n"), None),
        (
            _request(extra="Content-Type: text/plain\r\n", body=b"hi"),
            (415, "Unsupported Media Type", [("Accept", "application/sdp")]),
        ),
        (
            _request(body=b"hi"),
            (415, "Unsupported Media Type", [("Accept", "application/sdp")]),
        ),
        (_request(extra="Content-Type: text/plain\r\n"), None),  # no body, nothing to read
        (_request(extra="Content-Type: Application/SDP; charset=x\r\n", body=b"v=0\r\n"), None),
        (
            _request(extra=SDP_TYPE + "Content-Encoding: gzip\r\n", body=b"v=0\r\n"),
            (415, "Unsupported Media Type", [("Accept-Encoding", "identity")]),
        ),
        (_request(extra=SDP_TYPE + "Content-Encoding: identity\r\n", body=b"v=0\r\n"), None),
        (
            _request(extra="Accept: text/nobodyKnowsThis\r\n"),
            (406, "Not Acceptable", [("Accept", "application/sdp")]),
        ),
        (_request(extra="Accept: application/*\r\n"), None),
        (_request(extra="Accept: text/plain, */*;q=0.1\r\n"), None),
        (_request("OPTIONS", extra="Accept: text/plain\r\n"), None),
        (
            _request(extra="Contact: sip:a@h?Route=x\r\n"),
            (
                400,
                "Malformed Contact header: URI with headers or commas must be enclosed in <>",
                [],
            ),
        ),
        (
            _request("REGISTER", extra="Contact: *\r\n"),
            (405, "Method Not Allowed", [("Allow", ALLOW)]),
        ),
    ],
)
def test_check_request(
    req: Request, expected: Outcome
) -> None:
    assert _check(req) == expected


def _with(req: Request, name: str, value: str) -> Request:
    req.headers.set(name, value)
    return req


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (_with(_request(), "Max-Forwards", "0"), (483, "Too Many Hops", [])),
        (_with(_request("OPTIONS"), "Max-Forwards", "0"), None),
        (
            _with(_request(), "To", "<isbn:2983792873>"),
            (400, "Unsupported URI scheme in To header", []),
        ),
        (
            _with(_request(), "From", "<http://www.example.com>;tag=1"),
            (400, "Unsupported URI scheme in From header", []),
        ),
        (_with(_request(), "To", "<tel:+15551234>"), None),
    ],
)
def test_check_request_edits(
    req: Request, expected: Outcome
) -> None:
    assert _check(req) == expected


def test_supported_option_tags_pass() -> None:
    req = _request(extra="Require: timer, 100rel\r\n")
    assert _check(req, supported=frozenset({"timer", "100rel"})) is None
    assert _check(req, supported=frozenset({"timer"})) == (
        420, "Bad Extension", [("Unsupported", "100rel")],
    )


def test_other_accept_sets() -> None:
    req = _request("INFO", extra="Content-Type: application/dtmf-relay\r\n", body=b"Signal=1")
    assert _check(req, accept=frozenset({"application/dtmf-relay", "application/sdp"})) is None
    assert _check(req) == (415, "Unsupported Media Type", [("Accept", "application/sdp")])


def test_order_version_before_everything() -> None:
    req = _request("FOO", version="SIP/3.0", cseq_method="BAR")
    assert _check(req) == (505, "Version Not Supported", [])


def test_response_copies_request_identifiers_and_adds_tag() -> None:
    req = _request("FOO")
    resp = check_request(req, allowed=ALLOWED, known=KNOWN)
    assert resp is not None
    assert resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    assert resp.headers.getall("Via") == req.headers.getall("Via")
    assert resp.to.tag is not None


def test_missing_max_forwards_is_accepted() -> None:
    req = _request()
    req.headers.remove("Max-Forwards")
    assert _check(req) is None
