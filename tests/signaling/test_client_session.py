"""The INVITE client session (UAC), sans-I/O: a fake host around a real transaction layer,
a fake clock (plain numbers), responses and requests written from what the session sent."""

from __future__ import annotations

import hashlib

import pytest

from signaling.auth import Authorization, Credentials
from signaling.client import ClientSession, ClientState
from signaling.events import (
    ByeReceived,
    CallAnswered,
    CallFailed,
    CallProgressed,
    Destination,
    InfoReceived,
    ReinviteReceived,
    RequestReceived,
    ResponseReceived,
    SessionTerminated,
    TransactionKey,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from signaling.headers import NameAddr, Via, new_branch
from signaling.message import Headers, Request, Response, make_response
from signaling.sdp import NotAcceptable, SessionDescription
from signaling.session import SessionError
from signaling.transaction import TimerConfig, TransactionLayer
from signaling.uri import URI

T1 = 0.5
PEER = Destination("udp", "192.0.2.20", 5070)
CONTACT = "<sip:bob@192.0.2.20:5070>"
TARGET = "sip:bob@192.0.2.20:5070"
FROM = NameAddr("Alice", URI("sip", user="alice", host="192.0.2.1"), {"tag": "ourtag"})


def sdp(port: int, host: str = "192.0.2.20", extra: str = "") -> bytes:
    return (f"v=0\r\no=peer 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\n{extra}").encode()


OFFER = sdp(40000, "192.0.2.1")
ANSWER = sdp(6000)


class FakeHost:
    """The stack as the session sees it: a transaction layer with a clock we move."""

    t1 = T1
    t2 = 4.0

    def __init__(self) -> None:
        self.clock = 100.0
        self.layer = TransactionLayer(TimerConfig(t1=T1))
        self.session: ClientSession | None = None
        self.owners: dict[TransactionKey, ClientSession] = {}
        self.wire: list[tuple[Request | Response, Destination]] = []
        self.dialogs = 0
        self.ended: list[ClientSession] = []
        self._pumping = False

    # -- ClientHost
    def now(self) -> float:
        return self.clock

    def send_request(self, session: ClientSession, request: Request,
                     destination: Destination) -> TransactionKey:
        key = self.layer.send_request(request, destination, self.clock)
        self.owners[key] = session
        return key

    def send_stateless(self, message: Request, destination: Destination) -> None:
        self.layer.send_stateless(message, destination)

    def abandon(self, key: TransactionKey) -> None:
        self.layer.abandon(key)

    def respond(self, response: Response, destination: Destination,
                request: Request | None = None) -> None:
        if not self.layer.send_response(response, self.clock, request):
            self.layer.send_stateless(response, destination)

    def local_via(self, transport: str) -> Via:
        return Via(transport.upper(), "192.0.2.1", 5060, {"branch": new_branch(), "rport": None})

    def local_contact(self, transport: str) -> str:
        return "<sip:192.0.2.1:5060>"

    def server_header(self) -> str:
        return "voxswitch/test"

    def dialog_created(self, session: ClientSession) -> None:
        self.dialogs += 1

    def session_ended(self, session: ClientSession) -> None:
        self.ended.append(session)

    def pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                self.wire += self.layer.messages_to_send()
                event = self.layer.next_event()
                if event is None:
                    break
                self._dispatch(event)
        finally:
            self._pumping = False

    def _dispatch(self, event: object) -> None:
        session = self.session
        assert session is not None
        if isinstance(event, ResponseReceived):
            if event.key is None or event.key in self.owners:
                session.receive_response(event.response, event.key)
        elif isinstance(event, TransactionTimedOut):
            session.transaction_failed(event.key, f"no response: Timer {event.timer}")
        elif isinstance(event, TransportErrorOccurred):
            session.transaction_failed(event.key, f"transport error: {event.error}")
        elif isinstance(event, RequestReceived):
            if event.request.method == "ACK":
                session.receive_ack(event.request)
            else:
                session.receive_request(event.request)

    # -- the test's hands
    def deliver(self, message: Request | Response) -> None:
        self.layer.receive(message, PEER, self.clock)
        self.pump()

    def advance(self, seconds: float) -> None:
        self.clock += seconds
        self.layer.handle_timer(self.clock)
        session = self.session
        assert session is not None
        deadline = session.get_timer()
        if deadline is not None and deadline <= self.clock:
            session.handle_timer(self.clock)
        self.pump()

    def take(self) -> list[Request | Response]:
        out = [message for message, _ in self.wire]
        self.wire.clear()
        return out

    def requests(self, method: str) -> list[Request]:
        return [m for m, _ in self.wire if isinstance(m, Request) and m.method == method]


class Call:
    """A session under test, its host, and the events it emitted."""

    def __init__(self, *, sdp: bytes | None = OFFER, credentials: Credentials | None = None,
                 route: tuple[str, ...] = (), headers: tuple[tuple[str, str], ...] = (),
                 start: bool = True) -> None:
        self.host = FakeHost()
        self.session = ClientSession(
            self.host, URI.parse(TARGET), local=FROM, call_id="call-1@192.0.2.1",
            transport="udp", sdp=sdp, route=route, credentials=credentials, headers=headers)
        self.host.session = self.session
        self.events: list[object] = []
        self.session.on_event = self.events.append
        if start:
            self.session.start(PEER)

    @property
    def invite(self) -> Request:
        assert self.session.invite is not None
        return self.session.invite

    def respond(self, status: int, *, tag: str | None = "peer1", body: bytes = b"",
                headers: list[tuple[str, str]] | None = None,
                invite: Request | None = None) -> Response:
        """Deliver a response to the latest INVITE (or `invite`)."""
        extra = list(headers or [])
        if 100 < status < 300:
            extra.append(("Contact", CONTACT))
        response = make_response(invite or self.invite, status,
                                 to_tag=tag if status > 100 else None, headers=extra,
                                 body=body, content_type="application/sdp" if body else None)
        self.host.deliver(response)
        return response

    def answer(self, body: bytes = ANSWER) -> Response:
        self.respond(180)
        return self.respond(200, body=body)

    def request(self, method: str, cseq: int, *, body: bytes = b"",
                content_type: str = "application/sdp") -> Request:
        """Deliver an in-dialog request from the peer."""
        headers = Headers()
        headers.add("Via", f"SIP/2.0/UDP 192.0.2.20:5070;branch={new_branch()}")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{TARGET}>;tag=peer1")
        headers.add("To", f"{FROM}")
        headers.add("Call-ID", "call-1@192.0.2.1")
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("Contact", CONTACT)
        if body:
            headers.add("Content-Type", content_type)
        headers.add("Content-Length", str(len(body)))
        request = Request(method, "sip:192.0.2.1:5060", headers, body)
        self.host.deliver(request)
        return request

    def reply_to(self, request: Request, status: int) -> None:
        """Deliver the peer's response to a request the session sent (BYE, CANCEL)."""
        self.host.deliver(make_response(request, status))

    def sent(self, *, status: int | None = None) -> list[Response]:
        return [m for m, _ in self.host.wire
                if isinstance(m, Response) and (status is None or m.status == status)]

    def of(self, kind: type) -> list[object]:
        return [e for e in self.events if isinstance(e, kind)]


def answered() -> Call:
    call = Call()
    call.answer()
    assert call.session.state is ClientState.CONFIRMED
    call.host.take()
    return call


# ---- the INVITE ---------------------------------------------------------------------------


def test_invite_as_sent() -> None:
    call = Call(route=("<sip:192.0.2.99:5060;lr>",), headers=(("X-Tenant", "acme"),))
    [invite] = call.host.requests("INVITE")
    assert invite.uri == TARGET
    assert invite.from_.tag == "ourtag" and invite.from_.display == "Alice"
    assert invite.to.tag is None and str(invite.to.uri) == TARGET
    assert invite.call_id == "call-1@192.0.2.1"
    assert str(invite.cseq) == "1 INVITE"
    assert invite.top_via.branch and invite.top_via.branch.startswith("z9hG4bK")
    assert invite.headers.get("Contact") == "<sip:192.0.2.1:5060>"
    assert invite.headers.get("Route") == "<sip:192.0.2.99:5060;lr>"
    assert invite.headers.get("X-Tenant") == "acme"
    assert invite.headers.get("Max-Forwards") == "70"
    assert invite.media_type == "application/sdp" and invite.body == OFFER
    assert call.host.wire[0][1] == PEER
    assert call.session.state is ClientState.CALLING
    assert call.events == []


def test_invite_waits_for_start() -> None:
    call = Call(start=False)
    assert call.host.wire == [] and call.session.invite is None
    call.session.start(PEER)
    assert len(call.host.requests("INVITE")) == 1


def test_timer_a_retransmits_then_timer_b_fails() -> None:
    call = Call()
    call.host.advance(T1)
    call.host.advance(2 * T1)
    assert len(call.host.requests("INVITE")) == 3
    call.host.advance(64 * T1)
    assert call.events == [CallFailed(408, "Request Timeout (no response: Timer B)"),
                           SessionTerminated("failed")]
    assert call.session.state is ClientState.TERMINATED
    assert call.session.final_status == 408
    assert call.host.ended == [call.session]


def test_transport_error_fails_with_408() -> None:
    call = Call()
    call.host.layer.transport_failed(PEER, "tcp connect failed: refused")
    call.host.pump()
    assert call.events == [
        CallFailed(408, "Request Timeout (transport error: tcp connect failed: refused)"),
        SessionTerminated("failed")]


def test_start_failed_is_408() -> None:
    call = Call(start=False)
    call.session.start_failed("DNS lookup of nowhere.invalid failed: no such host")
    assert call.events == [
        CallFailed(408, "Request Timeout (DNS lookup of nowhere.invalid failed: no such host)"),
        SessionTerminated("failed")]


# ---- provisional and final responses ---------------------------------------------------------


def test_ringing_then_answer() -> None:
    call = Call()
    call.respond(100, tag=None)
    assert call.session.state is ClientState.PROCEEDING and call.events == []
    call.respond(180)
    assert call.events == [CallProgressed(180, "Ringing", None)]
    call.host.take()
    call.respond(200, body=ANSWER)
    [ack] = call.host.requests("ACK")
    assert ack.uri == "sip:bob@192.0.2.20:5070"  # the 2xx's Contact
    assert str(ack.cseq) == "1 ACK"
    assert ack.to.tag == "peer1" and ack.from_.tag == "ourtag"
    assert ack.top_via.branch != call.invite.top_via.branch  # a new transaction (§13.2.2.4)
    assert ack.body == b""
    assert call.host.wire[-1][1] == PEER
    answered_event = call.events[-1]
    assert isinstance(answered_event, CallAnswered) and answered_event.sdp_error is None
    assert answered_event.sdp == SessionDescription.parse(ANSWER)
    assert call.session.remote_sdp == SessionDescription.parse(ANSWER)
    assert call.session.state is ClientState.CONFIRMED
    assert call.session.final_status == 200
    assert call.host.dialogs == 1
    assert call.session.dialog is not None
    assert call.session.dialog.id.remote_tag == "peer1"


def test_early_media_then_answer_without_sdp() -> None:
    call = Call()
    call.respond(183, body=ANSWER)
    early = SessionDescription.parse(ANSWER)
    assert call.events == [CallProgressed(183, "Session Progress", early)]
    assert call.session.remote_sdp == early
    call.respond(200)  # no SDP again: the early one stands
    assert call.events[-1] == CallAnswered(early)


def test_provisional_with_garbage_sdp_reports_none() -> None:
    call = Call()
    call.respond(183, body=b"this is not sdp")
    assert call.events == [CallProgressed(183, "Session Progress", None)]


@pytest.mark.parametrize("body, error", [
    (b"v=0\r\nnonsense\r\n", "unparseable SDP in the 200: Malformed SDP line 'nonsense'"),
    (b"", "no SDP answer in the 200"),
])
def test_unusable_sdp_in_the_2xx_is_acked_and_reported(body: bytes, error: str) -> None:
    call = Call()
    call.respond(180)
    call.host.take()
    call.respond(200, body=body)
    assert len(call.host.requests("ACK")) == 1
    assert call.events[-1] == CallAnswered(None, error)
    assert call.session.state is ClientState.CONFIRMED
    call.session.hangup()  # what the application then does
    assert len(call.host.requests("BYE")) == 1


def test_2xx_retransmissions_are_acked_again() -> None:
    call = Call()
    ok = call.answer()
    first = call.host.requests("ACK")
    call.host.deliver(ok)  # the transaction is in Accepted: it passes the 2xx up
    call.host.advance(64 * T1 + 1)  # Timer M: the transaction is gone
    call.host.deliver(ok)  # a stray 2xx, matched by the session itself
    acks = call.host.requests("ACK")
    assert len(acks) == 3 and acks[1] == acks[0] == first[0]
    assert acks[2] == acks[0]
    assert len(call.of(CallAnswered)) == 1


def test_2xx_from_another_fork_is_acked_and_ended() -> None:
    call = answered()
    call.respond(200, tag="fork2", body=ANSWER)
    [ack] = call.host.requests("ACK")
    [bye] = call.host.requests("BYE")
    assert ack.to.tag == bye.to.tag == "fork2"
    assert call.session.state is ClientState.CONFIRMED
    assert len(call.of(CallAnswered)) == 1


@pytest.mark.parametrize("status, reason", [
    (486, "Busy Here"), (404, "Not Found"), (603, "Decline"), (302, "Moved Temporarily"),
    (401, "Unauthorized"), (407, "Proxy Authentication Required"),
])
def test_final_non_2xx_fails_and_transaction_acks(status: int, reason: str) -> None:
    call = Call()
    call.respond(100, tag=None)
    call.host.take()
    call.respond(status, headers=[("Contact", "<sip:elsewhere@192.0.2.30>")])
    [ack] = call.host.requests("ACK")
    assert ack.top_via.branch == call.invite.top_via.branch  # §17.1.1.3: the INVITE's
    assert call.host.requests("INVITE") == []  # no redirect followed, no retry
    assert call.events == [CallFailed(status, reason), SessionTerminated("failed")]
    assert call.session.final_status == status and call.session.final_reason == reason


def test_late_offer_is_answered_in_the_ack() -> None:
    call = Call(sdp=None)
    assert call.invite.body == b"" and call.invite.content_type is None
    ours = SessionDescription.parse(OFFER)
    offers: list[SessionDescription] = []

    def reoffer(offer: SessionDescription) -> SessionDescription:
        offers.append(offer)
        return ours

    call.session.on_reoffer = reoffer
    call.respond(200, body=ANSWER)
    [ack] = call.host.requests("ACK")
    assert ack.body == bytes(ours) and ack.media_type == "application/sdp"
    assert offers == [SessionDescription.parse(ANSWER)]
    assert call.events[-1] == CallAnswered(SessionDescription.parse(ANSWER))
    assert call.session.local_sdp == bytes(ours)


def test_late_offer_without_on_reoffer_is_reported() -> None:
    call = Call(sdp=None)
    call.respond(200, body=ANSWER)
    assert call.events[-1] == CallAnswered(SessionDescription.parse(ANSWER),
                                           "no on_reoffer to answer the offer in the 2xx")


def test_events_before_subscription_are_delivered_on_subscribe() -> None:
    call = Call()
    call.session.on_event = None
    call.respond(180)
    later: list[object] = []
    call.session.on_event = later.append
    assert later == [CallProgressed(180, "Ringing", None)]


# ---- CANCEL ------------------------------------------------------------------------------------


def test_cancel_after_ringing() -> None:
    call = Call()
    call.respond(180)
    call.host.take()
    call.session.cancel()
    assert call.session.state is ClientState.CANCELLING
    [cancel] = call.host.requests("CANCEL")
    invite = call.invite
    assert cancel.uri == invite.uri and str(cancel.cseq) == "1 CANCEL"
    assert cancel.headers.getall("Via") == [str(invite.top_via)]
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert cancel.headers.get("To") == invite.headers.get("To")
    call.reply_to(cancel, 200)
    assert call.session.state is ClientState.CANCELLING
    call.respond(487)
    assert len(call.host.requests("ACK")) == 1  # the transaction's
    assert call.events[-2:] == [CallFailed(487, "Request Terminated"),
                                SessionTerminated("cancelled")]
    call.session.cancel()  # idempotent
    call.session.hangup()


def test_cancel_before_any_provisional_waits_for_one() -> None:
    call = Call()
    call.host.take()
    call.session.cancel()
    assert call.host.requests("CANCEL") == []  # §9.1: not before a provisional
    call.respond(100, tag=None)
    assert len(call.host.requests("CANCEL")) == 1
    call.respond(487)
    assert call.events == [CallFailed(487, "Request Terminated"),
                           SessionTerminated("cancelled")]


def test_cancel_pending_then_final_first() -> None:
    call = Call()
    call.session.cancel()
    call.respond(486)
    assert call.host.requests("CANCEL") == []
    assert call.events == [CallFailed(486, "Busy Here"), SessionTerminated("cancelled")]


@pytest.mark.parametrize("provisional", [True, False])
def test_200_after_cancel_is_acked_then_byed(provisional: bool) -> None:
    call = Call()
    if provisional:
        call.respond(180)
    call.session.cancel()
    assert len(call.host.requests("CANCEL")) == int(provisional)
    call.host.take()
    ok = call.respond(200, body=ANSWER)
    [ack] = call.host.requests("ACK")
    [bye] = call.host.requests("BYE")
    assert ack.to.tag == bye.to.tag == "peer1" and str(bye.cseq) == "2 BYE"
    assert call.of(CallAnswered) == []
    reason = "Request Terminated (answered after CANCEL)"
    assert call.of(CallFailed) == [CallFailed(487, reason)]
    assert call.session.state is ClientState.TERMINATING
    call.host.deliver(ok)  # retransmitted: still ACKed
    assert len(call.host.requests("ACK")) == 2
    call.reply_to(bye, 200)
    assert call.events[-1] == SessionTerminated("cancelled")
    assert call.session.final_status == 487


def test_no_final_response_after_cancel() -> None:
    call = Call()
    call.respond(180)
    call.session.cancel()
    call.host.advance(64 * T1)
    assert call.events[-2:] == [
        CallFailed(408, "Request Timeout (no final response after CANCEL)"),
        SessionTerminated("cancelled")]
    branch = call.invite.top_via.branch or ""
    assert call.host.layer.get(TransactionKey(branch, "INVITE")) is None  # abandoned (§9.1)


def test_cancel_before_start_sends_nothing() -> None:
    call = Call(start=False)
    call.session.cancel()
    call.session.start(PEER)
    assert call.host.wire == []
    assert call.events == [
        CallFailed(487, "Request Terminated (cancelled before the INVITE was sent)"),
        SessionTerminated("cancelled")]


def test_hangup_before_answer_cancels() -> None:
    call = Call()
    call.respond(180)
    call.session.hangup()
    assert len(call.host.requests("CANCEL")) == 1


def test_cancel_after_answer_is_refused() -> None:
    call = answered()
    with pytest.raises(SessionError, match="can't cancel in state CONFIRMED"):
        call.session.cancel()


# ---- BYE -----------------------------------------------------------------------------------------


def test_local_hangup_sends_bye() -> None:
    call = answered()
    call.session.hangup()
    call.session.hangup()  # idempotent
    [bye] = call.host.requests("BYE")
    assert bye.uri == "sip:bob@192.0.2.20:5070" and str(bye.cseq) == "2 BYE"
    assert bye.from_.tag == "ourtag" and bye.to.tag == "peer1"
    assert call.session.state is ClientState.TERMINATING
    call.reply_to(bye, 200)
    assert call.events[-1] == SessionTerminated("local bye")
    assert call.session.state is ClientState.TERMINATED


def test_unanswered_bye_still_ends_the_call() -> None:
    call = answered()
    call.session.hangup()
    call.host.advance(64 * T1)
    assert call.events[-1] == SessionTerminated("local bye")


def test_bye_from_the_peer() -> None:
    call = answered()
    bye = call.request("BYE", 1)
    [ok] = call.sent(status=200)
    assert ok.cseq.method == "BYE" and ok.to.tag == "ourtag"
    assert call.events[-2:] == [ByeReceived(bye), SessionTerminated("remote bye")]
    assert call.session.state is ClientState.TERMINATED


def test_bye_crossing_ours() -> None:
    call = answered()
    call.session.hangup()
    call.request("BYE", 1)
    assert call.events[-1] == SessionTerminated("local bye")
    assert call.of(ByeReceived) == []


def test_challenged_bye_is_sent_again_with_credentials() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.answer()
    call.host.take()
    call.session.hangup()
    [bye] = call.host.requests("BYE")
    challenge = 'Digest realm="proxy.test", nonce="n1", qop="auth"'
    call.host.deliver(make_response(bye, 407, headers=[("Proxy-Authenticate", challenge)]))
    [_, again] = call.host.requests("BYE")
    assert str(again.cseq) == "3 BYE"
    credentials = Authorization.parse(again.headers.get("Proxy-Authorization") or "")
    assert credentials.uri == bye.uri and credentials.realm == "proxy.test"
    call.reply_to(again, 200)
    assert call.events[-1] == SessionTerminated("local bye")


# ---- requests from the peer ------------------------------------------------------------------


def test_reinvite_is_answered_through_on_reoffer() -> None:
    call = answered()
    hold = SessionDescription.parse(sdp(6000, extra="a=sendonly\r\n"))
    ours = SessionDescription.parse(sdp(40000, "192.0.2.1", "a=recvonly\r\n"))
    call.session.on_reoffer = lambda offer: ours
    call.request("INVITE", 2, body=bytes(hold))
    [ok] = call.sent(status=200)
    assert ok.body == bytes(ours) and ok.headers.get("Contact") == "<sip:192.0.2.1:5060>"
    assert call.events[-1] == ReinviteReceived(hold, ours)
    assert call.session.remote_sdp == hold and call.session.local_sdp == bytes(ours)
    call.host.advance(T1)
    call.host.advance(2 * T1)
    assert len(call.sent(status=200)) == 3  # §13.3.1.4: until the ACK
    call.request("ACK", 2)
    call.host.advance(10)
    assert len(call.sent(status=200)) == 3
    assert call.session.get_timer() is None


def test_reinvite_without_ack_ends_the_call() -> None:
    call = answered()
    call.session.on_reoffer = lambda offer: offer
    call.request("INVITE", 2, body=ANSWER)
    for _ in range(8):
        call.host.advance(4.0)
    [bye] = call.host.requests("BYE")
    call.reply_to(bye, 200)
    assert call.events[-1] == SessionTerminated("ack timeout")


@pytest.mark.parametrize("body, reoffer", [
    (ANSWER, None),  # nobody to answer it
    (b"v=0\r\ngarbage\r\n", lambda offer: offer),
])
def test_reinvite_refused_with_488(body: bytes, reoffer: object) -> None:
    call = answered()
    call.session.on_reoffer = reoffer  # type: ignore[assignment]
    call.request("INVITE", 2, body=body)
    assert [r.status for r in call.sent()] == [488]
    assert call.session.state is ClientState.CONFIRMED


def test_reinvite_not_acceptable_is_488() -> None:
    call = answered()

    def refuse(offer: SessionDescription) -> SessionDescription:
        raise NotAcceptable("no codec in common")

    call.session.on_reoffer = refuse
    call.request("INVITE", 2, body=ANSWER)
    assert [r.status for r in call.sent()] == [488]


def test_offerless_reinvite_gets_our_sdp() -> None:
    call = answered()
    call.request("INVITE", 2)
    [ok] = call.sent(status=200)
    assert SessionDescription.parse(ok.body) == SessionDescription.parse(OFFER)
    call.request("ACK", 2, body=ANSWER)
    assert call.session.remote_sdp == SessionDescription.parse(ANSWER)


def test_reinvite_while_one_is_pending_is_500() -> None:
    call = answered()
    call.session.on_reoffer = lambda offer: offer
    call.request("INVITE", 2, body=ANSWER)
    call.request("INVITE", 3, body=ANSWER)
    refused = call.sent(status=500)
    assert len(refused) == 1 and refused[0].headers.get("Retry-After") == "1"


def test_info_from_the_peer() -> None:
    call = answered()
    info = call.request("INFO", 2, body=b"Signal=5\r\nDuration=160\r\n",
                        content_type="application/dtmf-relay")
    assert [r.status for r in call.sent()] == [200]
    assert call.events[-1] == InfoReceived(info)


def test_unreadable_info_is_400() -> None:
    call = answered()
    call.request("INFO", 2, body=b"Signal=\r\n", content_type="application/dtmf-relay")
    assert [r.status for r in call.sent()] == [400]


def test_other_methods_are_405() -> None:
    call = answered()
    call.request("UPDATE", 2)
    [refused] = call.sent()
    assert refused.status == 405 and refused.headers.get("Allow")


def test_out_of_order_cseq_is_500() -> None:
    call = answered()
    call.request("INFO", 5)
    call.request("INFO", 4)
    assert [r.status for r in call.sent()] == [200, 500]


def test_send_info() -> None:
    call = answered()
    call.session.send_info(b"Signal=1\r\nDuration=160\r\n")
    [info] = call.host.requests("INFO")
    assert str(info.cseq) == "2 INFO" and info.media_type == "application/dtmf-relay"
    with pytest.raises(SessionError, match="can't send INFO in state CALLING"):
        Call().session.send_info(b"Signal=1")


# ---- digest authentication ---------------------------------------------------------------


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def expected_md5(auth: Authorization, password: str, method: str = "INVITE") -> str:
    """RFC 7616 §3.4.1 written out again, independently of signaling.auth."""
    ha1 = md5(f"{auth.username}:{auth.realm}:{password}")
    ha2 = md5(f"{method}:{auth.uri}")
    if auth.qop is None:
        return md5(f"{ha1}:{auth.nonce}:{ha2}")
    return md5(f"{ha1}:{auth.nonce}:{auth.nc}:{auth.cnonce}:{auth.qop}:{ha2}")


def test_407_then_200() -> None:
    call = Call(credentials=Credentials("alice", "secret"), headers=(("X-Tenant", "acme"),))
    first = call.invite
    challenge = 'Digest realm="proxy.test", nonce="abc123", opaque="op", qop="auth,auth-int"'
    call.respond(407, headers=[("Proxy-Authenticate", challenge)])
    acks = call.host.requests("ACK")
    assert len(acks) == 1 and acks[0].top_via.branch == first.top_via.branch
    retry = call.invite
    assert retry is not first and str(retry.cseq) == "2 INVITE"
    assert retry.call_id == first.call_id and retry.from_.tag == first.from_.tag
    assert retry.to.tag is None and retry.top_via.branch != first.top_via.branch
    assert retry.body == OFFER and retry.headers.get("X-Tenant") == "acme"
    auth = Authorization.parse(retry.headers.get("Proxy-Authorization") or "")
    assert (auth.username, auth.realm, auth.nonce, auth.uri) == (
        "alice", "proxy.test", "abc123", TARGET)
    assert (auth.algorithm, auth.qop, auth.nc, auth.opaque) == ("MD5", "auth", "00000001", "op")
    assert auth.cnonce and auth.response == expected_md5(auth, "secret")
    assert call.session.state is ClientState.CALLING
    call.host.take()
    call.answer()
    [ack] = call.host.requests("ACK")
    assert str(ack.cseq) == "2 ACK"
    assert ack.headers.get("Proxy-Authorization") == retry.headers.get("Proxy-Authorization")
    assert [type(e) for e in call.events] == [CallProgressed, CallAnswered]


def test_401_twice_fails() -> None:
    call = Call(credentials=Credentials("alice", "wrong"))
    challenge = [("WWW-Authenticate", 'Digest realm="uas.test", nonce="n1"')]
    call.respond(401, headers=challenge)
    assert len(call.host.requests("INVITE")) == 2
    call.respond(401, headers=[("WWW-Authenticate", 'Digest realm="uas.test", nonce="n2"')])
    assert len(call.host.requests("INVITE")) == 2
    assert call.events == [CallFailed(401, "Unauthorized"), SessionTerminated("failed")]


def test_no_qop_challenge_gets_rfc2069_response() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.respond(401, headers=[("WWW-Authenticate", 'Digest realm="uas.test", nonce="n1"')])
    auth = Authorization.parse(call.invite.headers.get("Authorization") or "")
    assert auth.qop is None and auth.cnonce is None and auth.nc is None
    assert auth.response == expected_md5(auth, "secret")


def test_proxy_then_uas_challenge_carries_both() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.respond(407, headers=[("Proxy-Authenticate",
                                'Digest realm="proxy.test", nonce="p1", qop="auth"')])
    call.respond(401, headers=[("WWW-Authenticate",
                                'Digest realm="uas.test", nonce="u1", qop="auth"')])
    third = call.invite
    assert str(third.cseq) == "3 INVITE"
    proxy = Authorization.parse(third.headers.get("Proxy-Authorization") or "")
    uas = Authorization.parse(third.headers.get("Authorization") or "")
    assert (proxy.realm, proxy.nc) == ("proxy.test", "00000002")  # its nonce's second use
    assert (uas.realm, uas.nc) == ("uas.test", "00000001")
    assert proxy.response == expected_md5(proxy, "secret")
    assert uas.response == expected_md5(uas, "secret")


def test_algorithm_chosen_from_the_challenge() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.respond(401, headers=[
        ("WWW-Authenticate", 'Digest realm="uas.test", nonce="n1", algorithm=SHA-999'),
        ("WWW-Authenticate", 'Digest realm="uas.test", nonce="n1", algorithm=SHA-256, qop=auth'),
        ("WWW-Authenticate", 'Digest realm="uas.test", nonce="n1", algorithm=MD5, qop=auth'),
    ])
    auth = Authorization.parse(call.invite.headers.get("Authorization") or "")
    assert auth.algorithm == "SHA-256" and len(auth.response) == 64


def test_stale_nonce_is_answered_again_once() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.respond(401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n1"')])
    call.respond(401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n2", stale=TRUE')])
    assert len(call.host.requests("INVITE")) == 3
    call.respond(401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n3", stale=TRUE')])
    assert call.events == [CallFailed(401, "Unauthorized"), SessionTerminated("failed")]


def test_challenge_while_cancelling_is_not_answered() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.session.cancel()
    call.respond(407, headers=[("Proxy-Authenticate", 'Digest realm="r", nonce="n1"')])
    assert len(call.host.requests("INVITE")) == 1
    assert call.events == [CallFailed(407, "Proxy Authentication Required"),
                           SessionTerminated("cancelled")]


def test_cancel_after_a_retry_targets_the_new_invite() -> None:
    call = Call(credentials=Credentials("alice", "secret"))
    call.respond(100, tag=None)
    call.respond(401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n1"')])
    call.session.cancel()
    assert call.host.requests("CANCEL") == []  # no provisional for the retry yet
    call.respond(180)
    [cancel] = call.host.requests("CANCEL")
    assert str(cancel.cseq) == "2 CANCEL"
    assert cancel.top_via.branch == call.invite.top_via.branch


# ---- stop ----------------------------------------------------------------------------------------


def test_stop_while_ringing_cancels() -> None:
    call = Call()
    call.respond(180)
    call.session.stop()
    call.host.pump()  # the stack pumps once every session has stopped
    assert len(call.host.requests("CANCEL")) == 1
    assert call.events[-2:] == [CallFailed(503, "Service Unavailable (stack stopped)"),
                                SessionTerminated("stack stopped")]


def test_stop_when_answered_sends_bye() -> None:
    call = answered()
    call.session.stop()
    call.host.pump()
    assert len(call.host.requests("BYE")) == 1
    assert call.events[-1] == SessionTerminated("stack stopped")
