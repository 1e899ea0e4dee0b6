"""RFC 3261 §17 transactions, driven with a fake clock (plain numbers)."""

from __future__ import annotations

import pytest

from signaling.events import (
    CancelReceived,
    Destination,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from signaling.message import Request, Response, make_response, parse_message
from signaling.transaction import (
    Event,
    LocalProtocolError,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    response_destination,
)

UDP_PEER = Destination("udp", "192.0.2.10", 5070)
TCP_PEER = Destination("tcp", "192.0.2.10", 40001)
BRANCH = "z9hG4bK-client-1"


def request(
    method: str = "OPTIONS",
    *,
    branch: str = BRANCH,
    via_host: str = "192.0.2.10:5070",
    cseq_method: str | None = None,
    to_tag: str | None = None,
    transport: str = "UDP",
) -> Request:
    to = "<sip:bob@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bob@192.0.2.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@192.0.2.10>;tag=a1\r\n"
        f"To: {to}\r\n"
        "Call-ID: call-1@192.0.2.10\r\n"
        f"CSeq: 1 {cseq_method or method}\r\n"
        "Contact: <sip:alice@192.0.2.10:5070>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def drain(layer: TransactionLayer) -> list[Event]:
    events: list[Event] = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    return events


def received_key(layer: TransactionLayer) -> TransactionKey:
    """The key of the one new server transaction the layer just reported."""
    (event,) = drain(layer)
    assert isinstance(event, RequestReceived) and event.key is not None
    return event.key


def sent(layer: TransactionLayer) -> list[Request | Response]:
    return [message for message, _ in layer.messages_to_send()]


def run_until(layer: TransactionLayer, end: float) -> list[float]:
    """Fire every timer up to `end`; return the times at which something was sent."""
    times = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        layer.handle_timer(deadline)
        if sent(layer):
            times.append(deadline)
    return times


# ---- client non-INVITE (§17.1.2) ------------------------------------------------------------


def test_client_non_invite_retransmits_with_timer_e_capped_at_t2() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(), UDP_PEER, now=0.0)
    assert [m.method for m in sent(layer)] == ["OPTIONS"]  # type: ignore[union-attr]
    times = run_until(layer, 31.9)
    # Intervals 0.5, 1, 2, 4, 4, 4 ... (Timer E doubles up to T2).
    assert times[:7] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
    assert drain(layer) == []
    # Timer F = 64*T1 = 32 s.
    assert layer.get_timer() == 32.0
    layer.handle_timer(32.0)
    assert drain(layer) == [TransactionTimedOut(key, "F"), TransactionTerminated(key)]
    assert len(layer) == 0


def test_client_non_invite_in_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    req = request()
    layer.send_request(req, UDP_PEER, now=0.0)
    sent(layer)
    layer.receive(make_response(req, 100), UDP_PEER, now=0.1)
    assert layer.get(next(iter(layer._transactions))).state is TransactionState.PROCEEDING  # type: ignore[union-attr]
    assert run_until(layer, 10.0) == [0.5, 4.5, 8.5]


def test_client_non_invite_final_response_then_timer_k() -> None:
    layer = TransactionLayer()
    req = request()
    key = layer.send_request(req, UDP_PEER, now=0.0)
    sent(layer)
    ok = make_response(req, 200)
    layer.receive(ok, UDP_PEER, now=0.2)
    assert drain(layer) == [ResponseReceived(ok, key)]
    layer.receive(ok, UDP_PEER, now=0.3)  # a retransmission is absorbed
    assert drain(layer) == []
    assert layer.get_timer() == pytest.approx(5.2)  # Timer K = T4
    layer.handle_timer(5.2)
    assert drain(layer) == [TransactionTerminated(key)]


def test_client_non_invite_over_tcp_never_retransmits() -> None:
    layer = TransactionLayer()
    req = request(transport="TCP")
    key = layer.send_request(req, TCP_PEER, now=0.0)
    assert len(sent(layer)) == 1
    assert layer.get_timer() == 32.0  # only Timer F
    ok = make_response(req, 200)
    layer.receive(ok, TCP_PEER, now=1.0)
    layer.handle_timer(1.0)  # Timer K is zero over TCP
    assert drain(layer) == [ResponseReceived(ok, key), TransactionTerminated(key)]
    assert sent(layer) == []


# ---- client INVITE (§17.1.1) ----------------------------------------------------------------


def test_client_invite_timer_a_doubles_and_timer_b_times_out() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request("INVITE"), UDP_PEER, now=0.0)
    sent(layer)
    # Timer A: 0.5, 1, 2, 4, 8, 16 — no T2 cap for INVITE.
    assert run_until(layer, 31.9) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    layer.handle_timer(32.0)
    assert drain(layer) == [TransactionTimedOut(key, "B"), TransactionTerminated(key)]


def test_client_invite_provisional_stops_retransmissions_and_timer_b() -> None:
    layer = TransactionLayer()
    req = request("INVITE")
    layer.send_request(req, UDP_PEER, now=0.0)
    sent(layer)
    layer.receive(make_response(req, 180, to_tag="b1"), UDP_PEER, now=0.1)
    assert layer.get_timer() is None
    assert len(drain(layer)) == 1


def test_client_invite_acks_non_2xx_itself() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    invite.headers.add("Route", "<sip:proxy.example;lr>")
    key = layer.send_request(invite, UDP_PEER, now=0.0)
    sent(layer)
    busy = make_response(invite, 486, to_tag="b1")
    layer.receive(busy, UDP_PEER, now=0.3)
    assert drain(layer) == [ResponseReceived(busy, key)]
    (ack,) = sent(layer)
    assert isinstance(ack, Request)
    # §17.1.1.3: same Request-URI, Call-ID, From, CSeq number, top Via, Route; To of the
    # response.
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.branch == invite.branch
    assert str(ack.cseq) == "1 ACK"
    assert ack.to.tag == "b1"
    assert ack.from_ == invite.from_
    assert ack.headers.getall("Route") == ["<sip:proxy.example;lr>"]
    # A retransmitted 486 is ACKed again but not passed up.
    layer.receive(busy, UDP_PEER, now=0.8)
    assert [m.method for m in sent(layer)] == ["ACK"]  # type: ignore[union-attr]
    assert drain(layer) == []
    assert layer.get_timer() == pytest.approx(32.3)  # Timer D
    layer.handle_timer(32.3)
    assert drain(layer) == [TransactionTerminated(key)]


def test_client_invite_2xx_enters_accepted_and_passes_retransmissions_up() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    key = layer.send_request(invite, UDP_PEER, now=0.0)
    sent(layer)
    ok = make_response(invite, 200, to_tag="b1")
    layer.receive(ok, UDP_PEER, now=0.2)
    layer.receive(ok, UDP_PEER, now=0.7)
    assert drain(layer) == [ResponseReceived(ok, key), ResponseReceived(ok, key)]
    assert sent(layer) == []  # the TU, not the transaction, ACKs a 2xx
    layer.handle_timer(0.2 + 32)  # RFC 6026 Timer M
    assert drain(layer) == [TransactionTerminated(key)]
    layer.receive(ok, UDP_PEER, now=40.0)
    assert drain(layer) == [ResponseReceived(ok, None)]


def test_stray_non_2xx_response_is_discarded() -> None:
    layer = TransactionLayer()
    layer.receive(make_response(request(), 200), UDP_PEER, now=0.0)
    assert drain(layer) == []


# ---- server non-INVITE (§17.2.2) ------------------------------------------------------------


def test_server_non_invite_absorbs_retransmissions_with_last_response() -> None:
    layer = TransactionLayer()
    bye = request("BYE", to_tag="b1")
    layer.receive(bye, UDP_PEER, now=0.0)
    (event,) = drain(layer)
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.receive(bye, UDP_PEER, now=0.1)  # Trying: discarded
    assert sent(layer) == [] and drain(layer) == []
    ok = make_response(bye, 200)
    assert layer.send_response(ok, now=0.2)
    assert sent(layer) == [ok]
    layer.receive(bye, UDP_PEER, now=0.5)
    assert sent(layer) == [ok] and drain(layer) == []
    assert layer.get_timer() == pytest.approx(32.2)  # Timer J = 64*T1
    layer.handle_timer(32.2)
    assert drain(layer) == [TransactionTerminated(event.key)]


def test_server_non_invite_timer_j_is_zero_over_tcp() -> None:
    layer = TransactionLayer()
    bye = request("BYE", to_tag="b1", transport="TCP")
    layer.receive(bye, TCP_PEER, now=0.0)
    key = received_key(layer)
    layer.send_response(make_response(bye, 200), now=0.1)
    layer.handle_timer(0.1)
    assert drain(layer) == [TransactionTerminated(key)]


def test_send_in_wrong_state_raises_local_protocol_error() -> None:
    layer = TransactionLayer()
    bye = request("BYE", to_tag="b1", transport="TCP")
    layer.receive(bye, TCP_PEER, now=0.0)
    layer.send_response(make_response(bye, 200), now=0.1)
    tx = next(iter(layer._transactions.values()))
    with pytest.raises(LocalProtocolError, match="can't handle sending 200 in state COMPLETED"):
        tx.send(make_response(bye, 200), 0.2)  # type: ignore[attr-defined]


# ---- server INVITE (§17.2.1) ----------------------------------------------------------------


def test_server_invite_sends_100_trying_when_tu_is_slow() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive(invite, UDP_PEER, now=0.0)
    assert layer.get_timer() == pytest.approx(0.2)
    layer.handle_timer(0.2)
    (trying,) = sent(layer)
    assert isinstance(trying, Response) and trying.status == 100
    layer.receive(invite, UDP_PEER, now=0.6)  # retransmission → the latest provisional
    assert sent(layer) == [trying]


def test_server_invite_no_100_when_tu_answers_quickly() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive(invite, UDP_PEER, now=0.0)
    ringing = make_response(invite, 180, to_tag="b1")
    layer.send_response(ringing, now=0.05)
    layer.handle_timer(0.3)
    assert sent(layer) == [ringing]


def test_server_invite_non_2xx_timer_g_then_ack_then_timer_i() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive(invite, UDP_PEER, now=0.0)
    key = received_key(layer)
    busy = make_response(invite, 486, to_tag="b1")
    layer.send_response(busy, now=0.0)
    sent(layer)
    # Timer G: 0.5, 1, 2, 4, 4 ... capped at T2.
    assert run_until(layer, 12.0) == [0.5, 1.5, 3.5, 7.5, 11.5]
    ack = request("ACK", to_tag="b1")
    layer.receive(ack, UDP_PEER, now=12.0)
    assert drain(layer) == []  # the ACK for a non-2xx stays in the transaction
    assert layer.get(key).state is TransactionState.CONFIRMED  # type: ignore[union-attr]
    layer.receive(ack, UDP_PEER, now=12.5)  # absorbed in Confirmed
    assert sent(layer) == []
    assert layer.get_timer() == pytest.approx(17.0)  # Timer I = T4
    layer.handle_timer(17.0)
    assert drain(layer) == [TransactionTerminated(key)]


def test_server_invite_timer_h_fires_without_ack() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive(invite, UDP_PEER, now=0.0)
    key = received_key(layer)
    layer.send_response(make_response(invite, 603, to_tag="b1"), now=0.0)
    layer.receive(invite, UDP_PEER, now=0.1)  # retransmitted INVITE: final again
    assert [m.status for m in sent(layer)] == [603, 603]  # type: ignore[union-attr]
    run_until(layer, 31.9)
    layer.handle_timer(32.0)
    assert drain(layer) == [TransactionTimedOut(key, "H"), TransactionTerminated(key)]


def test_server_invite_2xx_accepted_absorbs_invite_retransmissions() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive(invite, UDP_PEER, now=0.0)
    key = received_key(layer)
    ok = make_response(invite, 200, to_tag="b1")
    layer.send_response(ok, now=0.0)
    assert sent(layer) == [ok]
    layer.receive(invite, UDP_PEER, now=0.3)
    assert sent(layer) == [] and drain(layer) == []
    assert layer.send_response(ok, now=0.5)  # the UAS core's 2xx retransmission
    assert sent(layer) == [ok]
    layer.handle_timer(32.0)  # Timer L
    assert drain(layer) == [TransactionTerminated(key)]
    assert not layer.send_response(ok, now=33.0)


def test_server_invite_over_tcp_has_no_timer_g() -> None:
    layer = TransactionLayer()
    invite = request("INVITE", transport="TCP")
    layer.receive(invite, TCP_PEER, now=0.0)
    drain(layer)
    layer.send_response(make_response(invite, 486, to_tag="b1"), now=0.0)
    sent(layer)
    assert layer.get_timer() == 32.0  # Timer H only
    layer.receive(request("ACK", to_tag="b1", transport="TCP"), TCP_PEER, now=1.0)
    layer.handle_timer(1.0)  # Timer I is zero
    assert isinstance(drain(layer)[-1], TransactionTerminated)


def test_ack_for_2xx_with_new_branch_goes_to_tu_without_transaction() -> None:
    layer = TransactionLayer()
    ack = request("ACK", branch="z9hG4bK-ack-2", to_tag="b1")
    layer.receive(ack, UDP_PEER, now=0.0)
    assert drain(layer) == [RequestReceived(ack, UDP_PEER, None)]


def test_cancel_matches_its_invite_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(request("INVITE"), UDP_PEER, now=0.0)
    (invite_event,) = drain(layer)
    cancel = request("CANCEL")
    layer.receive(cancel, UDP_PEER, now=1.0)
    (event,) = drain(layer)
    assert isinstance(event, CancelReceived)
    assert event.invite_key == invite_event.key
    assert event.key != invite_event.key
    other = request("CANCEL", branch="z9hG4bK-nothing")
    layer.receive(other, UDP_PEER, now=1.0)
    (event,) = drain(layer)
    assert isinstance(event, CancelReceived) and event.invite_key is None


def test_same_branch_from_another_sent_by_is_a_new_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(request("OPTIONS"), UDP_PEER, now=0.0)
    layer.receive(request("OPTIONS", via_host="192.0.2.99"), UDP_PEER, now=0.0)
    assert len(drain(layer)) == 2
    assert len(layer) == 2


def test_rfc2543_requests_without_magic_cookie_still_match() -> None:
    layer = TransactionLayer()
    invite = request("INVITE", branch="old1")
    layer.receive(invite, UDP_PEER, now=0.0)
    drain(layer)
    layer.send_response(make_response(invite, 486, to_tag="b1"), now=0.0)
    sent(layer)
    layer.receive(request("ACK", branch="old1", to_tag="b1"), UDP_PEER, now=0.1)
    assert drain(layer) == []  # absorbed by the INVITE transaction


def test_transport_error_terminates_and_reports() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(), UDP_PEER, now=0.0)
    layer.transport_error(key, "connection refused")
    assert drain(layer) == [
        TransportErrorOccurred(key, "connection refused"),
        TransactionTerminated(key),
    ]


def test_timer_values_are_configurable() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.05, t2=0.4))
    key = layer.send_request(request(), UDP_PEER, now=0.0)
    sent(layer)
    times = run_until(layer, 3.19)
    assert times[:5] == pytest.approx([0.05, 0.15, 0.35, 0.75, 1.15])
    layer.handle_timer(3.2)
    assert TransactionTimedOut(key, "F") in drain(layer)


def test_ack_and_duplicate_branch_are_refused() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(request("ACK"), UDP_PEER, now=0.0)
    layer.send_request(request(), UDP_PEER, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request(), UDP_PEER, now=0.0)


def test_keys_are_client_or_server() -> None:
    layer = TransactionLayer()
    client = layer.send_request(request(), UDP_PEER, now=0.0)
    assert client == TransactionKey(BRANCH, "OPTIONS")


# ---- §18.2.2 response routing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("via_host", "source", "expected"),
    [
        # rport asked for: the packet's source address and port (RFC 3581).
        ("192.0.2.10:5070;rport", UDP_PEER, UDP_PEER),
        # IP literal sent-by, no rport: source IP, Via port.
        ("192.0.2.10:5070", Destination("udp", "192.0.2.10", 6000), UDP_PEER),
        ("192.0.2.10", UDP_PEER, Destination("udp", "192.0.2.10", 5060)),
        # A name is never resolved: the packet's source.
        ("alice.example.com:5070", Destination("udp", "192.0.2.7", 6000),
         Destination("udp", "192.0.2.7", 6000)),
        # TCP: the connection it came on.
        ("192.0.2.10:5070", TCP_PEER, TCP_PEER),
    ],
)
def test_response_destination(via_host: str, source: Destination, expected: Destination) -> None:
    req = request(via_host=via_host.split(";")[0])
    if via_host.endswith(";rport"):
        req = request(via_host=via_host.split(";")[0], branch=BRANCH + ";rport")
    assert response_destination(req, source) == expected
