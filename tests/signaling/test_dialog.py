"""RFC 3261 §12 dialogs."""

from __future__ import annotations

import pytest

from signaling.dialog import Dialog, DialogId, DialogState
from signaling.headers import Via
from signaling.message import Request, make_response, parse_message

VIA = Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK-ours", "rport": None})


def invite(*record_route: str, cseq: int = 7) -> Request:
    rr = "".join(f"Record-Route: {r}\r\n" for r in record_route)
    text = (
        "INVITE sip:bob@192.0.2.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-1\r\n"
        f"{rr}"
        "Max-Forwards: 70\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: dlg-1@192.0.2.10\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        "Contact: <sip:alice@192.0.2.10:5070>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def in_dialog(method: str, cseq: int) -> Request:
    text = (
        f"{method} sip:bob@192.0.2.1:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-x\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>;tag=b1\r\n"
        "Call-ID: dlg-1@192.0.2.10\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@192.0.2.99:5080>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def uas_dialog(*record_route: str, status: int = 200) -> Dialog:
    req = invite(*record_route)
    return Dialog.uas(req, make_response(req, status, to_tag="b1"))


def test_uas_dialog_from_invite_and_2xx() -> None:
    dialog = uas_dialog("<sip:p1.example;lr>", "<sip:p2.example;lr>")
    assert dialog.id == DialogId("dlg-1@192.0.2.10", "b1", "a1")
    assert str(dialog.remote_target) == "sip:alice@192.0.2.10:5070"
    # §12.1.1: the UAS keeps the Record-Route order.
    assert dialog.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert dialog.remote_seq == 7 and dialog.local_seq is None
    assert dialog.state is DialogState.CONFIRMED


def test_uas_dialog_from_1xx_is_early() -> None:
    dialog = uas_dialog(status=180)
    assert dialog.state is DialogState.EARLY
    dialog.confirm()
    assert dialog.state is DialogState.CONFIRMED


def test_uas_dialog_without_contact_targets_the_from_uri() -> None:
    # RFC 2543 peers may omit Contact (RFC 4475 inv2543 is valid).
    req = invite()
    req.headers.remove("Contact")
    dialog = Dialog.uas(req, make_response(req, 200, to_tag="b1"))
    assert str(dialog.remote_target) == str(req.from_.uri)


def test_uas_dialog_needs_a_to_tag() -> None:
    with pytest.raises(ValueError, match="no To tag"):
        Dialog.uas(invite(), make_response(invite(), 100))


def test_dialog_id_of_incoming_request() -> None:
    assert DialogId.of_incoming(in_dialog("BYE", 8)) == DialogId("dlg-1@192.0.2.10", "b1", "a1")


def test_create_bye_without_routes() -> None:
    dialog = uas_dialog()
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.method == "BYE"
    assert bye.uri == "sip:alice@192.0.2.10:5070"
    assert bye.from_.tag == "b1" and str(bye.from_.uri) == "sip:bob@example.com"
    assert bye.to.tag == "a1" and bye.to.display == "Alice"
    assert bye.call_id == "dlg-1@192.0.2.10"
    assert str(bye.cseq) == "1 BYE"
    assert bye.branch == "z9hG4bK-ours"
    assert "Route" not in bye.headers
    assert str(dialog.next_hop()) == "sip:alice@192.0.2.10:5070"
    # The local sequence number grows with each request (§12.2.1.1).
    assert dialog.create_request("INFO", via=VIA).cseq.seq == 2


def test_create_request_with_loose_routes() -> None:
    dialog = uas_dialog("<sip:p1.example;lr>", "<sip:p2.example;lr>")
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:alice@192.0.2.10:5070"
    assert bye.headers.getall("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert str(dialog.next_hop()) == "sip:p1.example;lr"


def test_create_request_with_strict_route() -> None:
    dialog = uas_dialog("<sip:strict.example>", "<sip:p2.example;lr>")
    bye = dialog.create_request("BYE", via=VIA)
    # §12.2.1.1: the first route becomes the Request-URI, the remote target goes last.
    assert bye.uri == "sip:strict.example"
    assert bye.headers.getall("Route") == [
        "<sip:p2.example;lr>",
        "<sip:alice@192.0.2.10:5070>",
    ]


def test_create_request_with_body_and_extra_headers() -> None:
    dialog = uas_dialog()
    info = dialog.create_request(
        "INFO",
        via=VIA,
        body=b"Signal=5\r\nDuration=160\r\n",
        content_type="application/dtmf-relay",
        headers=[("User-Agent", "voxswitch")],
        contact="<sip:192.0.2.1:5060>",
    )
    encoded = parse_message(info.encode())
    assert encoded.content_type == "application/dtmf-relay"
    assert encoded.body == b"Signal=5\r\nDuration=160\r\n"
    assert encoded.headers.get("Contact") == "<sip:192.0.2.1:5060>"


def test_comma_joined_record_route_is_split() -> None:
    dialog = uas_dialog("<sip:p1.example;lr>, <sip:p2.example;lr>")
    assert dialog.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]


@pytest.mark.parametrize(
    ("method", "cseq", "expected"),
    [
        ("BYE", 8, None),
        ("INFO", 7, None),  # equal is not "lower" (§12.2.2)
        ("BYE", 6, 500),
        ("ACK", 1, None),  # ACK and CANCEL carry the INVITE's number
        ("CANCEL", 1, None),
    ],
)
def test_remote_cseq_ordering(method: str, cseq: int, expected: int | None) -> None:
    dialog = uas_dialog()
    assert dialog.check_remote_request(in_dialog(method, cseq)) == expected


def test_remote_seq_advances() -> None:
    dialog = uas_dialog()
    assert dialog.check_remote_request(in_dialog("INFO", 10)) is None
    assert dialog.remote_seq == 10
    assert dialog.check_remote_request(in_dialog("INFO", 9)) == 500
    assert dialog.remote_seq == 10


def test_target_refresh_replaces_remote_target() -> None:
    dialog = uas_dialog()
    dialog.refresh_target(in_dialog("INVITE", 8))
    assert str(dialog.remote_target) == "sip:alice@192.0.2.99:5080"


def test_terminated_dialog_creates_no_requests() -> None:
    dialog = uas_dialog()
    dialog.terminate()
    with pytest.raises(ValueError, match="can't create BYE in state TERMINATED"):
        dialog.create_request("BYE", via=VIA)


def test_uac_dialog_reverses_record_route() -> None:
    req = invite()
    response = make_response(req, 200, to_tag="b1")
    response.headers.add("Record-Route", "<sip:p1.example;lr>, <sip:p2.example;lr>")
    response.headers.add("Contact", "<sip:bob@192.0.2.1:5062>")
    dialog = Dialog.uac(req, response)
    assert dialog.id == DialogId("dlg-1@192.0.2.10", "a1", "b1")
    assert dialog.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.1:5062"
    assert dialog.create_request("BYE", via=VIA).cseq.seq == 8
