"""The asyncio SIP stack on real sockets (127.0.0.1, ephemeral ports), driven by a small
raw UDP/TCP peer written here with hand-written requests."""

from __future__ import annotations

import abc
import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from signaling.events import (
    AckTimedOut,
    ByeReceived,
    CallAcked,
    CallCancelled,
    Destination,
    InfoReceived,
    ReinviteReceived,
    SessionTerminated,
)
from signaling.headers import Via
from signaling.message import Request, Response, StreamFramer, parse_message
from signaling.sdp import NotAcceptable, SessionDescription, answer
from signaling.session import ServerSession, SessionError, SessionState
from signaling.stack import SipStack

WAIT = 5.0  # bound on every wait; tests finish far sooner

OFFER = (
    "v=0\r\n"
    "o=alice 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a={direction}\r\n"
)


def our_answer(offer: SessionDescription, version: int = 1) -> SessionDescription:
    sd, _ = answer(
        offer, local_host="127.0.0.1", local_port=30000, session_id=42, session_version=version
    )
    return sd


# ---- the test peer --------------------------------------------------------------------------


@dataclass
class Call:
    """The UAC side of one call, as written by hand."""

    transport: str
    port: int
    call_id: str = field(default_factory=lambda: secrets.token_hex(6) + "@test")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_tag: str | None = None
    cseq: int = 1
    invite_branch: str = ""

    def request(
        self,
        method: str,
        *,
        cseq: int | None = None,
        branch: str | None = None,
        body: str = "",
        via_host: str | None = None,
        extra: str = "",
        ruri: str = "sip:ivr@127.0.0.1",
        to_tag: bool = True,
    ) -> bytes:
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        if method == "INVITE" and not self.to_tag:
            self.invite_branch = branch
        to = "<sip:ivr@127.0.0.1>" + (f";tag={self.to_tag}" if self.to_tag and to_tag else "")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        via = via_host or f"127.0.0.1:{self.port}"
        tp = self.transport.upper()
        transport_param = ";transport=tcp" if self.transport == "tcp" else ""
        return (
            f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/{tp} {via};branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:caller@127.0.0.1>;tag={self.from_tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {cseq if cseq is not None else self.cseq} {method}\r\n"
            f"Contact: <sip:caller@127.0.0.1:{self.port}{transport_param}>\r\n"
            f"{extra}{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    def invite(self, direction: str = "sendrecv", **kw: object) -> bytes:
        return self.request("INVITE", body=OFFER.format(direction=direction), **kw)  # type: ignore[arg-type]

    def ack(self, *, branch: str | None = None, cseq: int | None = None) -> bytes:
        return self.request("ACK", branch=branch, cseq=cseq if cseq is not None else 1)


class Peer(abc.ABC):
    """A raw SIP peer: sends bytes, returns parsed messages."""

    transport = "udp"

    def __init__(self, stack: SipStack) -> None:
        self.stack = stack
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.port = 0

    def new_call(self) -> Call:
        return Call(self.transport, self.port)

    async def recv(self) -> Request | Response:
        return await asyncio.wait_for(self.inbox.get(), WAIT)

    async def expect(self, predicate: Callable[[Request | Response], bool]) -> Request | Response:
        """The next message matching `predicate`, skipping retransmissions of others."""
        while True:
            message = await self.recv()
            if predicate(message):
                return message

    async def response(self, status: int, method: str = "") -> Response:
        message = await self.expect(
            lambda m: isinstance(m, Response)
            and m.status == status
            and (not method or m.cseq.method == method)
        )
        assert isinstance(message, Response)
        return message

    async def quiet(self, seconds: float) -> list[Request | Response]:
        """Whatever arrives within `seconds` (used to check that nothing more comes)."""
        got = []
        try:
            while True:
                got.append(await asyncio.wait_for(self.inbox.get(), seconds))
        except TimeoutError:
            return got

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Put raw bytes on the wire (UDP datagram or TCP stream)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the socket."""


class UdpPeer(Peer, asyncio.DatagramProtocol):
    async def open(self) -> UdpPeer:
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = self.udp.get_extra_info("sockname")[1]
        return self

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(parse_message(data))

    def send(self, data: bytes) -> None:
        self.udp.sendto(data, ("127.0.0.1", self.stack.udp_port))

    def close(self) -> None:
        self.udp.close()


class TcpPeer(Peer):
    transport = "tcp"

    async def open(self) -> TcpPeer:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.stack.tcp_port)
        self.port = self.writer.get_extra_info("sockname")[1]
        self.task = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        framer = StreamFramer()
        while data := await self.reader.read(65536):
            for message in framer.feed(data):
                self.inbox.put_nowait(parse_message(message))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def send_in_pieces(self, data: bytes, cuts: list[int]) -> None:
        start = 0
        for cut in [*cuts, len(data)]:
            self.writer.write(data[start:cut])
            await self.writer.drain()
            await asyncio.sleep(0.02)  # separate segments
            start = cut

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


# ---- the application stand-in ---------------------------------------------------------------


class App:
    def __init__(self) -> None:
        self.sessions: asyncio.Queue[ServerSession] = asyncio.Queue()
        self.events: dict[ServerSession, asyncio.Queue[object]] = {}
        self.reoffer: Callable[[SessionDescription], SessionDescription] | None = None

    def on_invite(self, session: ServerSession) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        self.events[session] = queue
        session.on_event = queue.put_nowait
        session.on_reoffer = self.reoffer
        self.sessions.put_nowait(session)

    async def session(self) -> ServerSession:
        return await asyncio.wait_for(self.sessions.get(), WAIT)

    async def event(self, session: ServerSession) -> object:
        return await asyncio.wait_for(self.events[session].get(), WAIT)


@pytest.fixture
async def app() -> App:
    return App()


@pytest.fixture
async def stack(app: App) -> AsyncIterator[SipStack]:
    stack = SipStack("127.0.0.1", 0, on_invite=app.on_invite, t1=0.05)
    await stack.start()
    yield stack
    await stack.stop()


@pytest.fixture
async def udp(stack: SipStack) -> AsyncIterator[UdpPeer]:
    peer = await UdpPeer(stack).open()
    yield peer
    peer.close()


@pytest.fixture
async def tcp(stack: SipStack) -> AsyncIterator[TcpPeer]:
    peer = await TcpPeer(stack).open()
    yield peer
    peer.close()


async def answered_call(peer: Peer, app: App) -> tuple[Call, ServerSession]:
    """INVITE → 100 → 200, ACK: a confirmed call."""
    call = peer.new_call()
    peer.send(call.invite())
    await peer.response(100)
    session = await app.session()
    assert session.offer is not None
    session.answer(str(our_answer(session.offer)).encode())
    ok = await peer.response(200, "INVITE")
    call.to_tag = ok.to.tag
    peer.send(call.ack())
    assert await app.event(session) == CallAcked()
    assert session.state is SessionState.CONFIRMED
    return call, session


# ---- tests ----------------------------------------------------------------------------------


def test_ports_are_ephemeral_and_shared(stack: SipStack) -> None:
    assert stack.udp_port > 0 and stack.tcp_port > 0
    assert stack.udp_port == stack.tcp_port


async def test_full_call_over_udp(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call = udp.new_call()
    udp.send(call.invite())
    trying = await udp.response(100)
    assert trying.to.tag is None
    assert trying.top_via.received is None  # the Via host is the packet's source already
    session = await app.session()
    assert session.transport == "udp" and session.remote_addr == ("127.0.0.1", udp.port)
    assert session.state is SessionState.EARLY
    assert session.offer is not None and session.offer.media[0].port == 40000
    session.ring()
    ringing = await udp.response(180)
    tag = ringing.to.tag
    assert tag and ringing.headers.get("Contact") == f"<sip:127.0.0.1:{stack.udp_port}>"
    session.answer(str(our_answer(session.offer)).encode())
    ok = await udp.response(200, "INVITE")
    assert ok.to.tag == tag
    assert ok.media_type == "application/sdp"
    assert SessionDescription.parse(ok.body).media[0].port == 30000
    assert ok.headers.get("Server") == "voxswitch/0.1"
    call.to_tag = tag
    udp.send(call.ack())
    assert await app.event(session) == CallAcked()
    call.cseq = 2
    udp.send(call.request("BYE"))
    bye_ok = await udp.response(200, "BYE")
    assert bye_ok.to.tag == tag
    event = await app.event(session)
    assert isinstance(event, ByeReceived) and event.request.method == "BYE"
    assert await app.event(session) == SessionTerminated("remote bye")
    await asyncio.wait_for(session.wait_terminated(), WAIT)
    assert session.state is SessionState.TERMINATED


async def test_local_hangup_sends_bye(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call, session = await answered_call(udp, app)
    session.hangup()
    session.hangup()  # idempotent
    bye = await udp.expect(lambda m: isinstance(m, Request) and m.method == "BYE")
    assert isinstance(bye, Request)
    assert bye.uri == f"sip:caller@127.0.0.1:{udp.port}"
    assert bye.from_.tag == call.to_tag and bye.to.tag == call.from_tag
    assert bye.call_id == call.call_id
    assert session.state is SessionState.TERMINATING
    text = (
        "SIP/2.0 200 OK\r\n"
        + "".join(f"{n}: {v}\r\n" for n, v in bye.headers.items() if n != "Content-Length")
        + "Content-Length: 0\r\n\r\n"
    )
    udp.udp.sendto(text.encode(), ("127.0.0.1", stack.udp_port))
    assert await app.event(session) == SessionTerminated("local bye")


async def test_bye_crossing_our_bye(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call, session = await answered_call(udp, app)
    session.hangup()
    await udp.expect(lambda m: isinstance(m, Request) and m.method == "BYE")
    call.cseq = 2
    udp.send(call.request("BYE"))
    await udp.response(200, "BYE")
    assert await app.event(session) == SessionTerminated("local bye")


async def test_2xx_retransmitted_until_ack(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call = udp.new_call()
    udp.send(call.invite())
    session = await app.session()
    assert session.offer is not None
    session.answer(str(our_answer(session.offer)).encode())
    # §13.3.1.4: the UAS core resends the 2xx (T1 = 50 ms here) until the ACK.
    oks = [await udp.response(200, "INVITE") for _ in range(4)]
    assert len({ok.to.tag for ok in oks}) == 1
    call.to_tag = oks[0].to.tag
    udp.send(call.ack())
    assert await app.event(session) == CallAcked()
    await udp.quiet(0.1)  # retransmissions already in flight
    assert [m for m in await udp.quiet(0.4) if isinstance(m, Response)] == []


async def test_ack_timeout_sends_bye(app: App) -> None:
    stack = SipStack("127.0.0.1", 0, on_invite=app.on_invite, t1=0.01)
    await stack.start()
    peer = await UdpPeer(stack).open()
    try:
        call = peer.new_call()
        peer.send(call.invite())
        session = await app.session()
        assert session.offer is not None
        session.answer(str(our_answer(session.offer)).encode())
        assert await app.event(session) == AckTimedOut()
        assert await app.event(session) == SessionTerminated("ack timeout")
        bye = await peer.expect(lambda m: isinstance(m, Request) and m.method == "BYE")
        assert bye.call_id == call.call_id
    finally:
        peer.close()
        await stack.stop()


async def test_cancel_before_answer(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call = udp.new_call()
    udp.send(call.invite())
    await udp.response(100)
    session = await app.session()
    session.ring()
    ringing = await udp.response(180)
    udp.send(call.request("CANCEL", branch=call.invite_branch))
    cancel_ok = await udp.response(200, "CANCEL")
    terminated = await udp.response(487, "INVITE")
    assert cancel_ok.to.tag == terminated.to.tag == ringing.to.tag  # §9.2
    assert await app.event(session) == CallCancelled()
    assert await app.event(session) == SessionTerminated("cancelled")
    call.to_tag = terminated.to.tag
    udp.send(call.ack(branch=call.invite_branch))  # absorbed by the INVITE transaction
    await udp.quiet(0.1)
    assert await udp.quiet(0.4) == []  # no more 487s: the ACK stopped Timer G
    session.answer(b"")  # too late: ignored, not an error
    assert session.state is SessionState.TERMINATED


async def test_cancel_matching_nothing_is_481(stack: SipStack, udp: UdpPeer) -> None:
    udp.send(udp.new_call().request("CANCEL"))
    assert (await udp.response(481)).cseq.method == "CANCEL"


async def test_options_capabilities(stack: SipStack, udp: UdpPeer) -> None:
    udp.send(udp.new_call().request("OPTIONS"))
    ok = await udp.response(200)
    allow = {m.strip() for m in ok.headers.getall("Allow")}
    assert allow == {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"}
    assert ok.headers.getall("Accept") == ["application/sdp"]
    assert "Accept-Encoding" in ok.headers and "Supported" in ok.headers


@pytest.mark.parametrize(("method", "status"), [("FOO", 501), ("REGISTER", 405), ("PRACK", 405)])
async def test_method_not_handled(stack: SipStack, udp: UdpPeer, method: str, status: int) -> None:
    udp.send(udp.new_call().request(method))
    response = await udp.response(status)
    assert "INVITE" in response.headers.getall("Allow")


@pytest.mark.parametrize("method", ["BYE", "INFO"])
async def test_in_dialog_method_outside_dialog_is_481(
    stack: SipStack, udp: UdpPeer, method: str
) -> None:
    udp.send(udp.new_call().request(method))
    await udp.response(481)


async def test_reinvite_for_unknown_dialog_is_481(stack: SipStack, udp: UdpPeer) -> None:
    call = udp.new_call()
    call.to_tag = "nosuchtag"
    udp.send(call.invite())
    await udp.response(481)


async def test_garbage_is_dropped_and_stack_survives(stack: SipStack, udp: UdpPeer) -> None:
    udp.send(b"\x00\xff this is not SIP at all")
    udp.send(b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n")
    udp.send(b"\r\n\r\n")  # a keep-alive
    udp.send(udp.new_call().request("OPTIONS"))
    assert (await udp.response(200)).cseq.method == "OPTIONS"


async def test_malformed_request_gets_400_naming_the_fault(
    stack: SipStack, udp: UdpPeer
) -> None:
    data = udp.new_call().request("OPTIONS").replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    udp.send(data)
    bad = await udp.response(400)
    assert bad.reason == "Invalid Max-Forwards"


async def test_too_many_hops(stack: SipStack, udp: UdpPeer) -> None:
    data = udp.new_call().invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    udp.send(data)
    await udp.response(483)


async def test_via_received_and_rport(stack: SipStack, udp: UdpPeer) -> None:
    call = udp.new_call()
    # A name in Via and no rport: answered to the source anyway, names are never resolved.
    udp.send(call.request("OPTIONS", via_host="caller.invalid:5999"))
    ok = await udp.response(200)
    assert ok.top_via.received == "127.0.0.1"
    udp.send(call.request("OPTIONS", via_host=f"127.0.0.1:{udp.port};rport"))
    ok = await udp.response(200)
    assert ok.top_via.rport == udp.port


async def test_info_in_dialog(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call, session = await answered_call(udp, app)
    call.cseq = 2
    body = "Signal=5\r\nDuration=160\r\n"
    data = call.request("INFO", body=body).replace(
        b"application/sdp", b"application/dtmf-relay"
    )
    udp.send(data)
    await udp.response(200, "INFO")
    event = await app.event(session)
    assert isinstance(event, InfoReceived) and event.request.body == body.encode()
    call.cseq = 1  # lower than the remote CSeq: §12.2.2
    udp.send(call.request("INFO"))
    await udp.response(500, "INFO")


async def test_reinvite_hold_answered_by_on_reoffer(
    stack: SipStack, app: App, udp: UdpPeer
) -> None:
    app.reoffer = lambda offer: our_answer(offer, version=2)
    call, session = await answered_call(udp, app)
    call.cseq = 2
    udp.send(call.invite("sendonly"))
    ok = await udp.response(200, "INVITE")
    sd = SessionDescription.parse(ok.body)
    assert sd.media[0].direction == "recvonly"
    event = await app.event(session)
    assert isinstance(event, ReinviteReceived)
    assert event.offer is not None and event.offer.media[0].direction == "sendonly"
    assert str(event.answer) == ok.body.decode()
    udp.send(call.ack(cseq=2))
    await udp.quiet(0.1)
    assert [m for m in await udp.quiet(0.3) if isinstance(m, Response)] == []
    assert session.state is SessionState.CONFIRMED


async def test_reinvite_not_acceptable_is_488(stack: SipStack, app: App, udp: UdpPeer) -> None:
    def refuse(offer: SessionDescription) -> SessionDescription:
        raise NotAcceptable("no")

    app.reoffer = refuse
    call, session = await answered_call(udp, app)
    call.cseq = 2
    udp.send(call.invite("sendonly"))
    await udp.response(488, "INVITE")
    assert session.state is SessionState.CONFIRMED
    call.cseq = 3
    udp.send(call.request("BYE"))
    await udp.response(200, "BYE")


async def test_reject_and_hangup_before_answer(stack: SipStack, app: App, udp: UdpPeer) -> None:
    udp.send(udp.new_call().invite())
    session = await app.session()
    session.reject(486)
    await udp.response(486)
    assert await app.event(session) == SessionTerminated("rejected")
    udp.send(udp.new_call().invite())
    session = await app.session()
    session.ring()
    session.hangup()
    await udp.response(603)


async def test_tcp_framing_and_call(stack: SipStack, app: App, tcp: TcpPeer) -> None:
    # Two requests in one segment.
    first, second = tcp.new_call(), tcp.new_call()
    tcp.send(first.request("OPTIONS") + second.request("OPTIONS"))
    got = {(await tcp.response(200)).call_id for _ in range(2)}
    assert got == {first.call_id, second.call_id}
    # One INVITE split across three segments, then a whole call on the connection.
    call = tcp.new_call()
    await tcp.send_in_pieces(call.invite(), [10, 200])
    await tcp.response(100)
    session = await app.session()
    assert session.transport == "tcp"
    assert session.offer is not None
    session.answer(str(our_answer(session.offer)).encode())
    ok = await tcp.response(200, "INVITE")
    assert ok.headers.get("Contact") == f"<sip:127.0.0.1:{stack.tcp_port};transport=tcp>"
    call.to_tag = ok.to.tag
    tcp.send(call.ack())
    assert await app.event(session) == CallAcked()
    # Our BYE comes back over the same connection: the peer's Contact port is not listening.
    session.hangup()
    bye = await tcp.expect(lambda m: isinstance(m, Request) and m.method == "BYE")
    assert bye.top_via.transport == "TCP"


async def test_stop_ends_live_sessions(app: App) -> None:
    stack = SipStack("127.0.0.1", 0, on_invite=app.on_invite, t1=0.05)
    await stack.start()
    peer = await UdpPeer(stack).open()
    try:
        peer.send(peer.new_call().invite())
        session = await app.session()
        await stack.stop()
        await asyncio.wait_for(session.wait_terminated(), WAIT)
        assert await app.event(session) == SessionTerminated("stack stopped")
        await peer.response(503)
    finally:
        peer.close()


async def test_offerless_invite_gets_answer_in_ack(
    stack: SipStack, app: App, udp: UdpPeer
) -> None:
    call = udp.new_call()
    udp.send(call.request("INVITE"))
    session = await app.session()
    assert session.offer is None
    our_offer = OFFER.format(direction="sendrecv").replace("alice", "voxswitch")
    session.answer(our_offer.encode())
    ok = await udp.response(200, "INVITE")
    call.to_tag = ok.to.tag
    udp.send(call.request("ACK", body=OFFER.format(direction="sendrecv")))
    event = await app.event(session)
    assert isinstance(event, CallAcked) and event.answer is not None
    assert event.answer.media[0].port == 40000
    assert session.remote_sdp is event.answer


async def test_events_before_subscription_are_kept(stack: SipStack, udp: UdpPeer) -> None:
    sessions: list[ServerSession] = []
    stack._on_invite = sessions.append  # an app that subscribes late
    call = udp.new_call()
    udp.send(call.invite())
    await udp.response(100)
    udp.send(call.request("CANCEL", branch=call.invite_branch))
    await udp.response(487)
    events: list[object] = []
    sessions[0].on_event = events.append
    assert events == [CallCancelled(), SessionTerminated("cancelled")]


async def test_early_media_progress(stack: SipStack, app: App, udp: UdpPeer) -> None:
    call = udp.new_call()
    udp.send(call.invite())
    session = await app.session()
    assert session.offer is not None
    sdp = str(our_answer(session.offer)).encode()
    session.progress(sdp)
    early = await udp.response(183)
    assert early.body == sdp and early.media_type == "application/sdp"
    assert early.to.tag
    session.answer(sdp)
    ok = await udp.response(200, "INVITE")
    assert ok.to.tag == early.to.tag


# ---- the session core with a fake host and a fake clock -------------------------------------


class FakeHost:
    """A SessionHost that records what the session sends; time is `clock`."""

    t1 = 0.5
    t2 = 4.0

    def __init__(self) -> None:
        self.clock = 0.0
        self.responses: list[tuple[float, Response]] = []
        self.requests: list[Request] = []
        self.ended: list[ServerSession] = []

    def now(self) -> float:
        return self.clock

    def respond(self, response: Response, destination: object,
                request: Request | None = None) -> None:
        self.responses.append((self.clock, response))

    def send_request(self, session: ServerSession, request: Request, destination: object) -> None:
        self.requests.append(request)

    def local_via(self, transport: str) -> Via:
        return Via(transport.upper(), "192.0.2.1", 5060, {"branch": "z9hG4bK-fake"})

    def local_contact(self, transport: str) -> str:
        return "<sip:192.0.2.1:5060>"

    def server_header(self) -> str:
        return "test"

    def dialog_created(self, session: ServerSession) -> None:
        pass

    def session_ended(self, session: ServerSession) -> None:
        self.ended.append(session)

    def pump(self) -> None:
        pass


def fake_session(transport: str = "udp") -> tuple[FakeHost, ServerSession, list[object]]:
    call = Call(transport, 5070)
    invite = parse_message(call.invite())
    assert isinstance(invite, Request)
    host = FakeHost()
    source = Destination(transport, "192.0.2.10", 5070)
    offer = SessionDescription.parse(invite.body)
    session = ServerSession(host, invite, source, source, offer, "b1")
    events: list[object] = []
    session.on_event = events.append
    return host, session, events


def run_session(host: FakeHost, session: ServerSession, end: float) -> None:
    while (deadline := session.get_timer()) is not None and deadline <= end:
        host.clock = deadline
        session.handle_timer(deadline)


def test_2xx_retransmission_schedule_and_ack_timeout() -> None:
    host, session, events = fake_session()
    session.answer(b"v=0\r\n")
    run_session(host, session, 31.9)
    times = [t for t, r in host.responses if r.status == 200]
    # §13.3.1.4: T1, then doubling up to T2.
    assert times[:7] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert events == []
    run_session(host, session, 32.0)
    assert events == [AckTimedOut(), SessionTerminated("ack timeout")]
    assert [r.method for r in host.requests] == ["BYE"]
    assert host.ended == [session]
    assert session.get_timer() is None


def test_2xx_not_retransmitted_over_tcp_but_ack_still_awaited() -> None:
    host, session, events = fake_session("tcp")
    session.answer(b"v=0\r\n")
    assert session.get_timer() == 32.0
    run_session(host, session, 40.0)
    assert len(host.responses) == 1
    assert AckTimedOut() in events


def test_hangup_while_waiting_for_ack_sends_bye_after_it() -> None:
    host, session, events = fake_session()
    session.answer(b"v=0\r\n")
    session.hangup()
    assert host.requests == []  # §15: no BYE before the ACK
    call = Call("udp", 5070)
    call.to_tag = "b1"
    ack = parse_message(call.ack())
    assert isinstance(ack, Request)
    session.receive_ack(ack)
    assert events == [CallAcked()]
    assert [r.method for r in host.requests] == ["BYE"]
    assert session.state is SessionState.TERMINATING
    session.bye_completed()
    assert events[-1] == SessionTerminated("local bye")


def test_illegal_session_moves_raise() -> None:
    _, session, _ = fake_session()
    session.answer(b"v=0\r\n")
    with pytest.raises(SessionError, match="can't ring in state ANSWERED"):
        session.ring()
    with pytest.raises(SessionError, match="can't reject with status 200"):
        session.reject(200)
