"""RFC 4475 torture messages through parse_message and check_request.

Every file in the shared conformance set is checked twice: once against the index's
own verdict (`validity`, `expected`, `liberal_accept_ok`), and once against the exact
outcome this implementation gives, so that a change in behaviour shows up by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signaling.message import (
    Request,
    Response,
    SipParseError,
    StreamFramer,
    make_response,
    parse_message,
)
from signaling.validate import check_request

TORTURE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"
INDEX: list[dict[str, Any]] = json.loads((TORTURE / "index.json").read_text())["messages"]
ALLOWED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"})
KNOWN = ALLOWED | frozenset(
    {"REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "PRACK", "UPDATE"}
)


def _data(entry: dict[str, Any]) -> bytes:
    return (TORTURE / entry["file"]).read_bytes()


def _outcome(data: bytes) -> tuple[str, Any]:
    """('parse', SipParseError) | ('response', Response) | ('checked', Response | None)."""
    try:
        msg = parse_message(data)
    except SipParseError as e:
        return "parse", e
    if isinstance(msg, Response):
        return "response", msg
    return "checked", check_request(msg, allowed=ALLOWED, known=KNOWN)


def test_index_is_complete() -> None:
    files = {p.name for p in TORTURE.glob("*.sip")}
    assert files == {e["file"] for e in INDEX}
    assert len(INDEX) == 50


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_index_verdict(entry: dict[str, Any]) -> None:
    kind, result = _outcome(_data(entry))
    codes = [c for c in entry["expected"] if isinstance(c, int)]
    if entry["validity"] == "valid":
        assert kind != "parse", result
        if kind == "checked" and result is not None:
            # A valid request may still be refused for what it asks, never for its form.
            assert result.status in (405, 501)
            assert entry["method"] not in ALLOWED
        return
    if kind == "parse":
        if result.partial is not None:
            assert 400 <= result.status_code < 500
            assert result.status_code in codes
        return
    if kind == "response":
        # A response that parses is absorbed: it matches no client transaction.
        assert "drop" in entry["expected"]
        return
    if result is None:
        assert entry["liberal_accept_ok"], "invalid request accepted"
    else:
        assert result.status in codes


# The exact outcome for each message: the check_request status (None: accepted),
# "response" for a response that parses, or (reason, answerable) for a SipParseError.
EXACT: dict[str, Any] = {
    "wsinv": None,
    "intmeth": 501,
    "esc01": None,
    "escnull": 405,
    "esc02": 501,
    "lwsdisp": None,
    "longreq": None,
    "dblreq": 405,
    "semiuri": None,
    "transports": None,
    "mpart01": 405,
    "unreason": "response",
    "noreason": "response",
    "badinv01": ("Malformed Via header: Malformed parameter at ';;'", False),
    "clerr": ("Content-Length larger than message", True),
    "ncl": ("Invalid Content-Length", True),
    "scalar02": ("CSeq number out of range", True),
    "scalarlg": ("CSeq number out of range", False),
    "quotbal": ("Malformed To header: Unterminated quoted string in display name", True),
    "ltgtruri": (
        "Invalid Request-URI: Invalid URI scheme in '<sip:user@example.com>'",
        True,
    ),
    "lwsruri": ("Malformed Request-Line", True),
    "lwsstart": ("Malformed Request-Line", True),
    "trws": ("Malformed Request-Line", True),
    "escruri": 400,
    "baddate": None,  # lenient: the Date header is not used
    "regbadct": 400,
    "badaspec": (
        "Malformed To header: Invalid URI scheme in ' sip:t.watson@example.org '",
        True,
    ),
    "baddn": ("Malformed From header: Invalid display name 'Bell, Alexander'", True),
    "badvers": 505,
    "mismatch01": 400,
    "mismatch02": 400,
    "bigcode": ("Invalid status code '4294967301'", False),
    "badbranch": ("Via branch is only the magic cookie", True),
    "insuf": ("Missing From header", False),
    "unkscm": 416,
    "novelsc": 416,
    "unksm2": 400,
    "bext01": 420,
    "invut": 415,
    "regaut01": 405,
    "multi01": ("Multiple CSeq headers", True),
    "mcl01": ("Multiple Content-Length values", True),
    "bcast": "response",
    "zeromf": None,
    "cparam01": 405,
    "cparam02": 405,
    "regescrt": 405,
    "sdp01": 406,
    "inv2543": None,
    "test": ("Malformed header line 'Foobar roobar'", False),
}


def test_exact_table_covers_index() -> None:
    assert set(EXACT) == {e["name"] for e in INDEX}


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_exact_outcome(entry: dict[str, Any]) -> None:
    kind, result = _outcome(_data(entry))
    want = EXACT[entry["name"]]
    if isinstance(want, tuple):
        assert kind == "parse"
        assert (result.reason, result.partial is not None) == want
        assert result.status_code == 400
    elif want == "response":
        assert kind == "response"
    else:
        assert kind == "checked"
        assert (None if result is None else result.status) == want


@pytest.mark.parametrize(
    "entry", [e for e in INDEX if e["kind"] == "request"], ids=lambda e: e["name"]
)
def test_answers_are_valid_sip(entry: dict[str, Any]) -> None:
    """Whatever we answer parses back and copies the transaction identifiers."""
    kind, result = _outcome(_data(entry))
    if kind == "parse":
        if result.partial is None:
            return
        # The 400 copies the peer's headers as they came, malformed ones included, so
        # check its text rather than parse it back.
        wire = make_response(result.partial, result.status_code, result.reason).encode()
        assert wire.startswith(f"SIP/2.0 400 {result.reason}\r\n".encode())
        for via in result.partial.headers.getall_raw("Via"):
            assert f"\r\nVia: {via}\r\n".encode() in wire
        assert f"\r\nCall-ID: {result.partial.call_id}\r\n".encode() in wire
        assert wire.endswith(b"\r\nContent-Length: 0\r\n\r\n")
        return
    if result is None:
        return
    request = parse_message(_data(entry))
    assert isinstance(request, Request)
    back = parse_message(result.encode())
    assert isinstance(back, Response)
    assert back.status == result.status
    assert back.headers.getall("Via") == request.headers.getall("Via")
    assert back.call_id == request.call_id
    assert back.cseq == request.cseq
    assert back.to.tag is not None


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("wsinv", lambda r: r.cseq.seq == 9 and r.max_forwards == 68),
        ("intmeth", lambda r: r.method == "!interesting-Method0123456789_*+`.%indeed'~"),
        ("esc01", lambda r: r.ruri.user == "sips:user@example.com"),
        ("escnull", lambda r: [c.uri.user for c in r.contacts] == ["\x00", "\x00\x00"]),
        ("esc02", lambda r: r.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"),
        ("lwsdisp", lambda r: r.from_.display == "caller"),
        ("longreq", lambda r: len(r.vias) == 34),
        ("dblreq", lambda r: r.method == "REGISTER" and r.body == b""),
        ("semiuri", lambda r: r.ruri.user == "user;par=u@example.net"),
        ("transports", lambda r: [v.transport for v in r.vias][3] == "UNKNOWN"),
        ("mpart01", lambda r: len(r.body) == 553 and b"\x00" in r.body),
        ("unreason", lambda r: r.reason.endswith("простое")),
        ("noreason", lambda r: r.status == 100 and r.reason == ""),
        ("cparam01", lambda r: r.contacts[0].params == {"unknownparam": None}),
        ("cparam02", lambda r: r.contacts[0].uri.params == {"unknownparam": None}),
        (
            "regescrt",
            lambda r: r.contacts[0].uri.headers == {"Route": "<sip:sip.example.com>"},
        ),
        ("inv2543", lambda r: r.body.startswith(b"v=0") and r.body.endswith(b"0\r\n")),
    ],
)
def test_valid_message_details(name: str, check: Any) -> None:
    msg = parse_message((TORTURE / f"{name}.sip").read_bytes())
    assert check(msg)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("clerr", None),  # Content-Length 9999: wait for more bytes
        ("ncl", "Invalid Content-Length"),
        ("mcl01", "Multiple Content-Length values"),
        ("inv2543", "Missing Content-Length header"),
    ],
)
def test_stream_framing_errors(name: str, error: str | None) -> None:
    framer = StreamFramer()
    data = (TORTURE / f"{name}.sip").read_bytes()
    if error is None:
        assert framer.feed(data) == []
        assert framer.buffered == len(data)
    else:
        with pytest.raises(SipParseError) as info:
            framer.feed(data)
        assert info.value.reason == error


def test_dblreq_over_stream_frames_both_then_fails_on_the_leftover() -> None:
    """Over TCP, dblreq's INVITE body overruns its Content-Length: the rest is garbage."""
    framer = StreamFramer()
    out = framer.feed((TORTURE / "dblreq.sip").read_bytes())
    assert [parse_message(m).method for m in out] == ["REGISTER", "INVITE"]  # type: ignore[union-attr]
    assert framer.error is not None
    assert framer.error.reason == "Missing Content-Length header"
    with pytest.raises(SipParseError, match="Missing Content-Length header"):
        framer.feed(b"")
