"""The SIP message model, parser, serializer and stream framer."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.headers import CSeq, new_branch, new_call_id, new_tag
from signaling.message import (
    Headers,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    make_response,
    parse_message,
)

TORTURE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def _invite(extra: str = "", body: bytes = SDP) -> bytes:
    return (
        "INVITE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\r\n'
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: 3848276298220188511@example.com\r\n"
        "CSeq: 2 INVITE\r\n"
        "Contact: <sip:alice@192.0.2.1:5060>\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def test_parse_invite_properties() -> None:
    req = parse_message(_invite())
    assert isinstance(req, Request)
    assert (req.method, req.uri, req.version) == ("INVITE", "sip:bob@example.com", "SIP/2.0")
    assert req.ruri.user == "bob"
    assert req.call_id == "3848276298220188511@example.com"
    assert req.cseq == CSeq(2, "INVITE")
    assert req.from_.display == "Alice"
    assert req.from_.tag == "9fxced76sl"
    assert req.to.tag is None
    assert req.top_via.host == "192.0.2.1"
    assert req.top_via.port == 5060
    assert req.top_via.has_rport
    assert req.branch == "z9hG4bK74bf9"
    assert req.max_forwards == 70
    assert req.content_type == "application/sdp"
    assert req.media_type == "application/sdp"
    assert req.body == SDP


def test_parse_response() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    resp = parse_message(data)
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.to.tag == "2"
    assert resp.encode() == data


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("e", "Content-Encoding"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("a", "Accept-Contact"),
        ("j", "Reject-Contact"),
        ("d", "Request-Disposition"),
        ("n", "Identity-Info"),
    ],
)
def test_compact_forms_are_canonicalised(compact: str, full: str) -> None:
    h = Headers([(compact.upper(), "value")])
    assert h.items() == [(full, "value")]
    assert h.get(full.lower()) == "value"
    assert h.get(compact) == "value"
    assert full.upper() in h


def test_compact_message_parses_like_the_long_one() -> None:
    compact = (
        b"BYE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bKa\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>;tag=2\r\ni: cid\r\nCSeq: 3 BYE\r\nl: 0\r\n\r\n"
    )
    long = (
        b"BYE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKa\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: cid\r\nCSeq: 3 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert parse_message(compact) == parse_message(long)
    assert parse_message(compact).encode() == long


def test_wsinv_folding_and_odd_whitespace() -> None:
    req = parse_message((TORTURE / "wsinv.sip").read_bytes())
    assert isinstance(req, Request)
    assert req.headers.get("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    assert req.to.tag == "1918181833n"
    assert req.from_.display == 'J Rosenberg \\"'
    assert req.from_.tag == "98asjd8"
    assert req.cseq == CSeq(9, "INVITE")
    assert req.max_forwards == 68
    assert [(v.transport, v.host, v.branch) for v in req.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert req.headers.get("Subject") == ""
    (contact,) = req.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert req.headers.getall("Route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    assert len(req.body) == 150


@pytest.mark.parametrize(
    ("header", "values"),
    [
        ("Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2", 2),
        ('Contact: "Doe, John" <sip:j@h>;q=0.5, <sip:k@h;a=b,c>', 2),
        ("Allow: INVITE, ACK,BYE ,  CANCEL", 4),
        ("Supported: timer, replaces", 2),
        ("Require: 100rel", 1),
        ('Contact: "a \\" , b" <sip:x@h>', 1),
        ("Route: <sip:p1;lr>,<sip:p2;lr>", 2),
        ("Record-Route: <sip:p1;lr>, <sip:p2;lr>, <sip:p3;lr>", 3),
        ("Accept: application/sdp, multipart/mixed,", 2),
    ],
)
def test_list_headers_split_respecting_quotes_and_brackets(header: str, values: int) -> None:
    name, _, value = header.partition(": ")
    h = Headers([(name, value)])
    assert len(h.getall(name)) == values
    assert h.get(name) == value


def test_getall_collects_across_lines_and_keeps_non_list_headers_whole() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("v", "SIP/2.0/UDP c")])
    assert h.getall("via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    d = Headers([("Date", "Sat, 13 Nov 2010 23:29:00 GMT")])
    assert d.getall("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_headers_api() -> None:
    h = Headers([("X-Foo", "1"), ("Via", "a"), ("x-foo", "2"), ("Via", "b")])
    assert h.get("X-FOO") == "1"
    assert h.getall("x-foo") == ["1", "2"]
    assert h.get("missing") is None
    assert h.get("missing", "d") == "d"
    h.set("x-Foo", "3")
    assert h.items() == [("x-Foo", "3"), ("Via", "a"), ("Via", "b")]
    h.add("Route", "<sip:r>")
    h.prepend("Via", "z")
    assert h.getall("Via") == ["z", "a", "b"]
    copy = h.copy()
    h.remove("via")
    assert "Via" not in h
    assert "Via" in copy
    assert 1 not in h  # type: ignore[operator]
    assert h.items() == [("x-Foo", "3"), ("Route", "<sip:r>")]
    h.set("New", "v")
    assert h.items()[-1] == ("New", "v")
    assert len(h) == 3
    assert Headers([("i", "x")]) == Headers([("Call-ID", "x")])


def test_unknown_headers_keep_name_order_and_value() -> None:
    req = parse_message(_invite("X-Custom-Thing:  a, b ;c\r\nP-Odd.Name~: q\r\n"))
    names = [n for n, _ in req.headers.items()]
    assert names.index("X-Custom-Thing") == names.index("Contact") + 1
    assert req.headers.get("x-custom-thing") == "a, b ;c"
    assert req.headers.getall("X-Custom-Thing") == ["a, b ;c"]
    assert b"\r\nX-Custom-Thing: a, b ;c\r\nP-Odd.Name~: q\r\n" in req.encode()


def _strip_length(msg: Request | Response) -> Request | Response:
    msg.headers.remove("Content-Length")
    return msg


ROUND_TRIP_FILES = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "inv2543",
    "bcast",
    "unkscm",
]


@pytest.mark.parametrize("name", ROUND_TRIP_FILES)
def test_round_trip_torture(name: str) -> None:
    first = parse_message((TORTURE / f"{name}.sip").read_bytes())
    wire = first.encode()
    second = parse_message(wire)
    assert second.encode() == wire
    assert _strip_length(second) == _strip_length(first)


@pytest.mark.parametrize(
    "data",
    [
        _invite(),
        _invite("Subject: caf\u00e9 \u2603\r\n"),
        _invite('Contact: "a,b" <sip:x@[2001:db8::1]:5070;transport=tcp>\r\n'),
        _invite(body=b""),
        _invite(body=bytes(range(256))),
    ],
)
def test_round_trip_built(data: bytes) -> None:
    msg = parse_message(data)
    assert msg.encode() == data
    assert bytes(msg) == data
    assert parse_message(msg.encode()) == msg


def test_encode_sets_content_length_from_body() -> None:
    req = parse_message(_invite())
    req.body = b"xyz"
    wire = req.encode()
    assert b"\r\nContent-Length: 3\r\n" in wire
    assert wire.endswith(b"\r\n\r\nxyz")
    req.headers.remove("Content-Length")
    assert req.encode().endswith(b"Content-Length: 3\r\n\r\nxyz")


def test_build_request_from_scratch() -> None:
    req = Request(
        "OPTIONS",
        "sip:bob@example.com",
        Headers(
            [
                ("Via", f"SIP/2.0/UDP 192.0.2.1;branch={new_branch()}"),
                ("From", f"<sip:a@example.com>;tag={new_tag()}"),
                ("To", "<sip:bob@example.com>"),
                ("Call-ID", new_call_id("192.0.2.1")),
                ("CSeq", "1 OPTIONS"),
                ("Max-Forwards", "70"),
            ]
        ),
    )
    back = parse_message(req.encode())
    assert back == parse_message(back.encode())
    assert back.headers.get("Content-Length") == "0"


def test_leading_crlf_and_missing_blank_line_are_tolerated() -> None:
    data = _invite(body=b"")
    assert parse_message(b"\r\n\r\n" + data) == parse_message(data)
    assert parse_message(data[:-2]).body == b""


def test_datagram_body_longer_than_content_length_is_cut() -> None:
    req = parse_message(_invite() + b"trailing junk")
    assert req.body == SDP


def test_datagram_without_content_length_takes_the_rest() -> None:
    data = _invite().replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"")
    assert parse_message(data).body == SDP


@pytest.mark.parametrize(
    ("data", "reason", "answerable"),
    [
        (b"", "Incomplete header section", False),
        (b"INVITE sip:a@b SIP/2.0", "Incomplete header section", False),
        (b"INVITE sip:a@b SIP/2.0\nVia: x\n\n", "Incomplete header section", False),
        (
            b"INVITE sip:a@b SIP/2.0\r\nVia: x\nTo: y\r\n\r\n",
            "Bare LF or CR in header section",
            False,
        ),
        (b"SIP/2.0 99 Odd\r\n\r\n", "Invalid status code '99'", False),
        (b"SIP/2.0 700 Odd\r\n\r\n", "Invalid status code '700'", False),
        (b"SIP/2.0 2OO OK\r\n\r\n", "Invalid status code '2OO'", False),
        (b"SIP/3.0 200 OK\r\n\r\n", "Malformed Status-Line", False),
        (b"SIP/2.0\r\n\r\n", "Malformed Status-Line", False),
        (b"INV\xc3\x89TE sip:a@b SIP/2.0\r\n\r\n", "Invalid method in Request-Line", False),
        (b" INVITE sip:a@b SIP/2.0\r\n\r\n", "Malformed Request-Line", False),
        (
            b"INVITE sip:a@b SIP/2.0\r\n x: y\r\n\r\n",
            "Continuation line before the first header",
            False,
        ),
        (b"INVITE sip:a@b SIP/2.0\r\n: y\r\n\r\n", "Malformed header line ': y'", False),
        (b"INVITE sip:a@b SIP/2.0\r\nBad Name: y\r\n\r\n", "Invalid header name 'Bad Name'", False),
    ],
)
def test_parse_errors(data: bytes, reason: str, answerable: bool) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.reason == reason
    assert str(info.value) == reason
    assert info.value.status_code == 400
    assert (info.value.partial is not None) == answerable


def _bad(replace: str, by: str) -> bytes:
    data = _invite(body=b"").decode()
    assert replace in data
    return data.replace(replace, by).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_bad("SIP/2.0\r\nVia", "HTTP/1.1\r\nVia"), "Invalid SIP-Version"),
        (
            _bad("INVITE sip:bob@example.com", "INVITE bob@example.com"),
            "Invalid Request-URI: Invalid URI scheme in 'bob@example.com'",
        ),
        (_bad("Max-Forwards: 70", "Max-Forwards: 256"), "Invalid Max-Forwards"),
        (_bad("Max-Forwards: 70", "Max-Forwards: -1"), "Invalid Max-Forwards"),
        (_bad("CSeq: 2 INVITE", "CSeq: INVITE"), "Malformed CSeq header 'INVITE'"),
        (_bad("CSeq: 2 INVITE", "CSeq: 4294967296 INVITE"), "CSeq number out of range"),
        (
            _bad("To: <sip:bob@example.com>", "To: <sip:bob@example.com"),
            "Malformed To header: Missing '>' in name-addr",
        ),
        (
            _bad('From: "Alice" ', 'From: "Alice '),
            "Malformed From header: Unterminated quoted string in display name",
        ),
        (_bad("Content-Length: 0", "Content-Length: 0x0"), "Invalid Content-Length"),
        (_bad("Content-Length: 0", "Content-Length: 5"), "Content-Length larger than message"),
        (_bad("Content-Length: 0", "Content-Length: 0\r\nl: 1"), "Multiple Content-Length values"),
        (
            _bad("Content-Type: application/sdp", "c: a/b\r\nc: a/c"),
            "Multiple Content-Type headers",
        ),
    ],
)
def test_request_header_errors_are_answerable(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.reason == reason
    partial = info.value.partial
    assert partial is not None
    assert partial.method == "INVITE"
    assert [n for n, _ in partial.headers.items()] == ["Via", "From", "To", "Call-ID", "CSeq"]
    response = make_response(partial, 400, info.value.reason)
    assert response.encode().startswith(f"SIP/2.0 400 {reason}\r\n".encode())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_bad("Via: ", "X-Via: "), "Missing Via header"),
        (_bad("Call-ID: ", "X-Call-ID: "), "Missing Call-ID header"),
        (
            _bad("Via: SIP/2.0/UDP 192.0.2.1:5060", "Via: SIP/2.0/UDP 192.0.2.1:99999"),
            "Invalid port 99999 in Via header",
        ),
        (
            _bad("Via: SIP/2.0/UDP", "Via: SIP/2.0 UDP"),
            "Malformed Via header 'SIP/2.0 UDP 192.0.2.1:5060;branch=z9hG4b'",
        ),
    ],
)
def test_unroutable_or_incomplete_requests_are_not_answerable(data: bytes, reason: str) -> None:
    """Without a usable top Via (or a Call-ID to copy) no response can be sent."""
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert (info.value.reason, info.value.partial) == (reason, None)


def test_response_errors_are_not_answerable() -> None:
    data = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert (info.value.reason, info.value.partial) == ("Missing Call-ID header", None)


# --- make_response ----------------------------------------------------------------


def test_make_response_copies_per_rfc3261_8_2_6_2() -> None:
    req = parse_message(
        _invite("Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp\r\n", body=b"")
    )
    assert isinstance(req, Request)
    resp = make_response(req, 486, to_tag="abc", headers=[("Retry-After", "30")])
    assert resp.reason == "Busy Here"
    assert resp.headers.items() == [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport"),
        ("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp"),
        ("From", '"Alice" <sip:alice@example.com>;tag=9fxced76sl'),
        ("To", "<sip:bob@example.com>;tag=abc"),
        ("Call-ID", "3848276298220188511@example.com"),
        ("CSeq", "2 INVITE"),
        ("Retry-After", "30"),
        ("Content-Length", "0"),
    ]
    assert parse_message(resp.encode()) == resp


def test_make_response_tags() -> None:
    req = parse_message(_invite(body=b""))
    assert isinstance(req, Request)
    assert make_response(req, 100).to.tag is None
    generated = make_response(req, 180).to.tag
    assert generated is not None and len(generated) == 16
    req.headers.set("To", "sip:bob@example.com ; tag = old")
    assert make_response(req, 200, to_tag="new").headers.get("To") == (
        "sip:bob@example.com ; tag = old"
    )


def test_make_response_body_and_reason() -> None:
    req = parse_message(_invite(body=b""))
    assert isinstance(req, Request)
    resp = make_response(req, 200, "Fine", to_tag="t", body=SDP, content_type="application/sdp")
    assert (resp.status, resp.reason) == (200, "Fine")
    assert resp.content_type == "application/sdp"
    assert resp.headers.get("Content-Length") == str(len(SDP))
    assert parse_message(resp.encode()).body == SDP
    assert make_response(req, 499).reason == "Unknown"


def test_new_identifiers() -> None:
    assert new_branch().startswith("z9hG4bK")
    assert len({new_branch() for _ in range(100)}) == 100
    assert len({new_tag() for _ in range(100)}) == 100
    call_id = new_call_id("10.0.0.1")
    assert call_id.endswith("@10.0.0.1")
    assert call_id != new_call_id("10.0.0.1")


# --- StreamFramer -----------------------------------------------------------------


def test_framer_splits_messages_in_one_chunk() -> None:
    one, two = _invite(), _invite(body=b"")
    framer = StreamFramer()
    assert framer.feed(one + two) == [one, two]
    assert framer.buffered == 0


def test_framer_byte_by_byte_and_keepalives() -> None:
    stream = b"\r\n\r\n" + _invite() + b"\r\n\r\n\r\n" + _invite(body=b"")
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert out == [_invite(), _invite(body=b"")]
    assert framer.keepalives >= 1


def test_framer_waits_for_the_body() -> None:
    data = _invite()
    framer = StreamFramer()
    assert framer.feed(data[:-5]) == []
    assert framer.feed(data[-5:]) == [data]


@pytest.mark.parametrize(
    ("data", "reason", "status"),
    [
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "Missing Content-Length header", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n", "Invalid Content-Length", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\n", "Multiple Content-Length values", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 70000\r\n\r\n", "Message too large", 513),
        (b"X" * 70000, "Message too large", 513),
    ],
)
def test_framer_errors(data: bytes, reason: str, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(data)
    assert (info.value.reason, info.value.status_code) == (reason, status)


def test_framer_returns_good_messages_before_an_error() -> None:
    framer = StreamFramer()
    bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"
    assert framer.feed(_invite() + bad) == [_invite()]
    assert framer.error is not None
    with pytest.raises(SipParseError, match="Missing Content-Length header"):
        framer.feed(b"more")
