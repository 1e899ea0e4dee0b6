"""URIs and the structured header values: Via, NameAddr, CSeq."""

from __future__ import annotations

import pytest

from signaling.headers import CSeq, NameAddr, Via, split_list
from signaling.uri import URI, SipParseError


@pytest.mark.parametrize(
    ("text", "fields", "printed"),
    [
        (
            "sip:alice@example.com",
            {"scheme": "sip", "user": "alice", "host": "example.com", "port": None},
            "sip:alice@example.com",
        ),
        ("sip:%61lice@example.com", {"user": "alice"}, "sip:alice@example.com"),
        ("SIPS:bob:secret@h:5061", {"scheme": "sips", "password": "secret", "port": 5061}, None),
        (
            "sip:sips%3Auser%40example.com@example.net",
            {"user": "sips:user@example.com"},
            "sip:sips%3Auser%40example.com@example.net",
        ),
        (
            "sip:user;par=u%40example.net@example.com",
            {"user": "user;par=u@example.net", "host": "example.com"},
            "sip:user;par=u%40example.net@example.com",
        ),
        ("sip:null-%00-null@example.com", {"user": "null-\x00-null"}, None),
        ("sip:I%20have%20spaces@example.net", {"user": "I have spaces"}, None),
        (
            "sip:cal%6Cer@h;%6C%72;n%61me=v%61lue%25%34%31",
            {"user": "caller", "params": {"lr": None, "name": "value%41"}},
            "sip:caller@h;lr;name=value%2541",
        ),
        (
            "sip:[2001:db8::1]:5070;transport=TCP",
            {"host": "[2001:db8::1]", "port": 5070, "params": {"transport": "TCP"}},
            None,
        ),
        ("sip:alice@[::1]", {"user": "alice", "host": "[::1]", "port": None}, None),
        (
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            {"headers": {"Route": "<sip:sip.example.com>"}},
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        ),
        (
            "sip:h;Maddr=239.255.255.1;ttl=15;lr",
            {"user": None, "params": {"maddr": "239.255.255.1", "ttl": "15", "lr": None}},
            None,
        ),
        (
            "tel:+1-201-555-0123;phone-context=example.com",
            {"scheme": "tel", "user": "+1-201-555-0123"},
            None,
        ),
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            {"scheme": "nobodyknowsthisscheme", "opaque": "totallyopaquecontent"},
            "nobodyknowsthisscheme:totallyopaquecontent",
        ),
        ("soap.beep://192.0.2.103:3002", {"scheme": "soap.beep", "host": ""}, None),
        (
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
            "(doesn't-it)@example.com",
            {
                "user": "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
                "password": "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
            },
            None,
        ),
    ],
)
def test_uri_parse_and_print(text: str, fields: dict[str, object], printed: str | None) -> None:
    uri = URI.parse(text)
    for name, value in fields.items():
        assert getattr(uri, name) == value, name
    expected = printed if printed is not None else text
    if uri.scheme in ("sip", "sips", "tel") and printed is None:
        expected = text.replace("SIPS", "sips").replace("Maddr", "maddr")
    assert str(uri) == expected
    assert URI.parse(str(uri)) == uri


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<sip:a@b>", "Invalid URI scheme in '<sip:a@b>'"),
        ("alice@example.com", "Invalid URI scheme in 'alice@example.com'"),
        ("1sip:a@b", "Invalid URI scheme in '1sip:a@b'"),
        ("sip:", "Invalid characters in URI 'sip:'"),
        ("sip:a b@c", "Invalid characters in URI 'sip:a b@c'"),
        (" sip:a@b", "Invalid URI scheme in ' sip:a@b'"),
        ("sip:@h", "Empty user part in SIP URI"),
        ("sip:a@", "Invalid host '' in URI"),
        ("sip:a@-h", "Invalid host '-h' in URI"),
        ("sip:a@h:99999", "Invalid port '99999' in URI"),
        ("sip:a@h:5x", "Invalid port '5x' in URI"),
        ("sip:a@[::1", "Unterminated IPv6 reference in URI"),
        ("sip:a@[zz]", "Invalid IPv6 reference '[zz]' in URI"),
        ("sip:a@h;;lr", "Empty URI parameter"),
        ("sip:a@h?x", "Malformed URI header"),
        ("tel:;x=1", "Empty telephone number in 'tel:;x=1'"),
    ],
)
def test_uri_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        URI.parse(text)
    assert info.value.reason == reason


def test_uri_helpers() -> None:
    uri = URI.parse("sip:a@h:5080;transport=TCP")
    assert (uri.transport, uri.hostport) == ("tcp", "h:5080")
    built = URI("sip", user="a b", host="h", params={"lr": None})
    assert str(built) == "sip:a%20b@h;lr"


@pytest.mark.parametrize(
    ("text", "transport", "host", "port", "params"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport", "UDP", "192.0.2.1", 5060,
         {"branch": "z9hG4bK1", "rport": None}),
        ("SIP / 2.0 / tcp h.example.com ; branch = z9hG4bK2", "TCP", "h.example.com", None,
         {"branch": "z9hG4bK2"}),
        ("SIP/2.0/UDP [2001:db8::9]:5070;received=2001:db8::1;rport=4000", "UDP",
         "[2001:db8::9]", 5070, {"received": "2001:db8::1", "rport": "4000"}),
        ("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en", "UNKNOWN", "t4.example.com",
         None, {"branch": "z9hG4bKasd0f3en"}),
        ('SIP/2.0/TLS h:5061;x="a;b"', "TLS", "h", 5061, {"x": '"a;b"'}),
    ],
)
def test_via(
    text: str, transport: str, host: str, port: int | None, params: dict[str, str | None]
) -> None:
    via = Via.parse(text)
    assert (via.transport, via.host, via.port, via.params) == (transport, host, port, params)
    assert Via.parse(str(via)) == via


def test_via_properties() -> None:
    via = Via.parse("SIP/2.0/UDP h:5060;branch=z9hG4bKa;received=10.0.0.1;rport=999")
    assert (via.branch, via.received, via.rport, via.has_rport) == (
        "z9hG4bKa", "10.0.0.1", 999, True,
    )
    assert via.sent_by == "h:5060"
    assert str(Via("TCP", "h", None, {"branch": "z9hG4bKb"})) == "SIP/2.0/TCP h;branch=z9hG4bKb"
    bare = Via.parse("SIP/2.0/UDP h;rport")
    assert (bare.rport, bare.has_rport, bare.branch) == (None, True, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("SIP/2.0 UDP h", "Malformed Via header 'SIP/2.0 UDP h'"),
        ("SIP/2.0/UDP", "Malformed Via header 'SIP/2.0/UDP'"),
        ("SIP/2.0/UDP h;;", "Malformed parameter at ';;'"),
        ("SIP/2.0/UDP h:70000", "Invalid port 70000 in Via header"),
        ("SIP/2.0/UDP h junk", "Malformed parameter at 'junk'"),
    ],
)
def test_via_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        Via.parse(text)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("text", "display", "uri", "params", "printed"),
    [
        ('"Alice" <sip:alice@h>;tag=1', "Alice", "sip:alice@h", {"tag": "1"}, None),
        ("<sip:alice@h>", None, "sip:alice@h", {}, None),
        ("sip:alice@h;tag=2", None, "sip:alice@h", {"tag": "2"}, "<sip:alice@h>;tag=2"),
        ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com",
         {"tag": "323"}, '"caller" <sip:caller@example.com>;tag=323'),
        ("Bob  Smith <sip:b@h>", "Bob Smith", "sip:b@h", {}, '"Bob Smith" <sip:b@h>'),
        ('"J Rosenberg \\\\\\"" <sip:j@h>', 'J Rosenberg \\"', "sip:j@h", {}, None),
        ('"Doe, John" <sip:j@h;lr>;q=0.5;expires=60', "Doe, John", "sip:j@h;lr",
         {"q": "0.5", "expires": "60"}, None),
        ("sip:+19725552222@gw1.example.net;unknownparam", None, "sip:+19725552222@gw1.example.net",
         {"unknownparam": None}, "<sip:+19725552222@gw1.example.net>;unknownparam"),
        ("<sip:a@h?Route=%3Csip:x%3E>", None, "sip:a@h?Route=%3Csip:x%3E", {}, None),
        ("isbn:2983792873", None, "isbn:2983792873", {}, "<isbn:2983792873>"),
        ("<sip:a@[::1]:5060>;+sip.instance=\"<urn:uuid:1>\"", None, "sip:a@[::1]:5060",
         {"+sip.instance": '"<urn:uuid:1>"'}, None),
    ],
)
def test_name_addr(
    text: str, display: str | None, uri: str, params: dict[str, str | None], printed: str | None
) -> None:
    na = NameAddr.parse(text)
    assert (na.display, str(na.uri), na.params) == (display, uri, params)
    assert str(na) == (printed or text)
    assert NameAddr.parse(str(na)) == na


def test_name_addr_tag_setter() -> None:
    na = NameAddr.parse("<sip:a@h>")
    na.tag = "x"
    assert str(na) == "<sip:a@h>;tag=x"
    na.tag = None
    assert na.tag is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"Mr. J. User <sip:j.user@example.com>',
         "Unterminated quoted string in display name"),
        ('"A" sip:a@h', "Expected '<' after display name"),
        ("Bell, Alexander <sip:a@h>", "Invalid display name 'Bell, Alexander'"),
        ("< sip:t.watson@example.org >",
         "Invalid URI scheme in ' sip:t.watson@example.org '"),
        ("<sip:a@h", "Missing '>' in name-addr"),
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E",
         "URI with headers or commas must be enclosed in <>"),
        ('"Joe" <sip:joe@example.org>;;;;', "Malformed parameter at ';;;;'"),
        ("<sip:a@h>x", "Malformed parameter at 'x'"),
    ],
)
def test_name_addr_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        NameAddr.parse(text)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("text", "seq", "method"),
    [
        ("1 INVITE", 1, "INVITE"),
        ("0009\t INVITE", 9, "INVITE"),
        ("4294967295 BYE", 4294967295, "BYE"),
    ],
)
def test_cseq(text: str, seq: int, method: str) -> None:
    assert CSeq.parse(text) == CSeq(seq, method)
    assert str(CSeq(seq, method)) == f"{seq} {method}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("INVITE", "Malformed CSeq header 'INVITE'"),
        ("-1 INVITE", "Malformed CSeq header '-1 INVITE'"),
        ("1 INVITE x", "Malformed CSeq header '1 INVITE x'"),
        ("36893488147419103232 REGISTER", "CSeq number out of range"),
    ],
)
def test_cseq_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        CSeq.parse(text)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b", ["a", "b"]),
        ('"x, y" <sip:a>, <sip:b,c>', ['"x, y" <sip:a>', "<sip:b,c>"]),
        ('"q\\", r" <sip:a>', ['"q\\", r" <sip:a>']),
        (",,a,,", ["a"]),
        ("", []),
    ],
)
def test_split_list(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts
