"""`SipStack.invite` on real sockets (127.0.0.1) against a raw UDP peer written here: the
routing of responses, stray 2xx retransmissions and in-dialog requests to the client
session, targets the stack refuses, and transport failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from signaling.events import (
    ByeReceived,
    CallAnswered,
    CallFailed,
    SessionTerminated,
)
from signaling.message import Request, Response, make_response, parse_message
from signaling.session import ServerSession
from signaling.stack import InvalidTarget, SipStack

WAIT = 5.0
T1 = 0.02
OFFER = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
ANSWER = OFFER.replace(b"40000", b"6000")


class Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.source = addr
        self.inbox.put_nowait(parse_message(data))

    async def open(self) -> Peer:
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(lambda: self,
                                                          local_addr=("127.0.0.1", 0))
        self.port = int(self.udp.get_extra_info("sockname")[1])
        return self

    async def request(self, method: str) -> Request:
        while True:
            message = await asyncio.wait_for(self.inbox.get(), WAIT)
            if isinstance(message, Request) and message.method == method:
                return message

    def send(self, message: Request | Response) -> None:
        self.udp.sendto(message.encode(), self.source)

    def answer(self, invite: Request, status: int, tag: str = "peer1",
               body: bytes = b"") -> Response:
        contact = [("Contact", f"<sip:bob@127.0.0.1:{self.port}>")]
        response = make_response(invite, status, to_tag=tag, headers=contact, body=body,
                                 content_type="application/sdp" if body else None)
        self.send(response)
        return response


@pytest.fixture
async def stack() -> AsyncIterator[SipStack]:
    def refuse(session: ServerSession) -> None:
        session.reject(403)

    stack = SipStack("127.0.0.1", 0, on_invite=refuse, t1=T1)
    await stack.start()
    yield stack
    await stack.stop()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = await Peer().open()
    yield peer
    peer.udp.close()


class Collector:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def __call__(self, event: object) -> None:
        self.queue.put_nowait(event)

    async def next(self) -> object:
        return await asyncio.wait_for(self.queue.get(), WAIT)


async def test_responses_retransmissions_and_bye_reach_the_session(
        stack: SipStack, peer: Peer) -> None:
    session = stack.invite(f"sip:bob@127.0.0.1:{peer.port}", from_user="alice", sdp=OFFER)
    events = Collector()
    session.on_event = events
    invite = await peer.request("INVITE")
    assert invite.headers.get("Contact") == f"<sip:127.0.0.1:{stack.udp_port}>"
    ok = peer.answer(invite, 200, body=ANSWER)
    assert isinstance(await events.next(), CallAnswered)
    first = await peer.request("ACK")
    peer.send(ok)  # the transaction still holds it (Accepted)
    assert await peer.request("ACK") == first
    await asyncio.sleep(64 * T1 + 0.2)  # Timer M: the transaction is gone
    assert stack.layer.get(session._invite_key) is None  # type: ignore[arg-type]
    peer.send(ok)  # a stray 2xx: routed by Call-ID and From tag
    assert await peer.request("ACK") == first
    # 2xx from another fork: ACKed, then ended with BYE
    peer.answer(invite, 200, tag="fork2", body=ANSWER)
    fork_ack = await peer.request("ACK")
    fork_bye = await peer.request("BYE")
    assert fork_ack.to.tag == fork_bye.to.tag == "fork2"
    peer.send(make_response(fork_bye, 200))
    # the peer hangs up: its BYE finds the client dialog
    bye = Request("BYE", f"sip:127.0.0.1:{stack.udp_port}", first.headers.copy())
    bye.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bKpeerbye")
    bye.headers.set("From", ok.headers.get("To") or "")
    bye.headers.set("To", invite.headers.get("From") or "")
    bye.headers.set("CSeq", "1 BYE")
    peer.send(bye)
    assert isinstance(await events.next(), ByeReceived)
    assert await events.next() == SessionTerminated("remote bye")
    bye_ok = await asyncio.wait_for(peer.inbox.get(), WAIT)
    assert isinstance(bye_ok, Response) and bye_ok.status == 200
    assert stack.clients == []


async def test_2xx_after_timer_b_is_acked_and_ended(stack: SipStack, peer: Peer) -> None:
    session = stack.invite(f"sip:bob@127.0.0.1:{peer.port}", from_user="alice", sdp=OFFER)
    events = Collector()
    session.on_event = events
    invite = await peer.request("INVITE")
    failed = await events.next()
    assert failed == CallFailed(408, "Request Timeout (no response: Timer B)")
    assert await events.next() == SessionTerminated("failed")
    peer.answer(invite, 200, body=ANSWER)  # too late: not wanted, but never left unACKed
    ack = await peer.request("ACK")
    bye = await peer.request("BYE")
    assert ack.to.tag == bye.to.tag == "peer1" and bye.call_id == invite.call_id


@pytest.mark.parametrize("target, message", [
    ("bob@127.0.0.1", "malformed target 'bob@127.0.0.1'"),
    ("sip:bob@", "malformed target"),
    ("tel:+15551234", "is not a sip: URI with a host"),
    ("sips:bob@127.0.0.1", "sips needs TLS"),
    ("sip:bob@127.0.0.1;transport=sctp", "unsupported transport 'sctp'"),
])
async def test_invalid_targets_raise(stack: SipStack, target: str, message: str) -> None:
    with pytest.raises(InvalidTarget, match=message):
        stack.invite(target, from_user="alice", sdp=OFFER)
    assert stack.clients == []


async def test_invalid_proxy_raises(stack: SipStack) -> None:
    with pytest.raises(InvalidTarget, match="malformed proxy"):
        stack.invite("sip:bob@127.0.0.1", from_user="alice", sdp=OFFER, proxy="127.0.0.1:5060")


async def test_proxy_gets_the_invite_with_a_route(stack: SipStack, peer: Peer) -> None:
    session = stack.invite("sip:bob@192.0.2.55", from_user="alice", sdp=OFFER,
                           proxy=f"sip:127.0.0.1:{peer.port}")
    invite = await peer.request("INVITE")
    assert invite.uri == "sip:bob@192.0.2.55"
    assert invite.headers.get("Route") == f"<sip:127.0.0.1:{peer.port};lr>"
    session.cancel()
    peer.answer(invite, 180)
    cancel = await peer.request("CANCEL")
    assert cancel.headers.get("Route") == invite.headers.get("Route")


async def test_tcp_connect_refused_fails_at_once(stack: SipStack) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = stack.invite(f"sip:bob@127.0.0.1:{port};transport=tcp", from_user="alice",
                           sdp=OFFER)
    events = Collector()
    session.on_event = events
    failed = await events.next()
    assert isinstance(failed, CallFailed) and failed.status == 408
    assert failed.reason.startswith("Request Timeout (transport error: tcp connect failed")
    assert await events.next() == SessionTerminated("failed")


async def test_dns_failure_fails_the_call(stack: SipStack,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_such_host(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_host)
    session = stack.invite("sip:bob@nowhere.invalid", from_user="alice", sdp=OFFER)
    events = Collector()
    session.on_event = events
    assert await events.next() == CallFailed(
        408, "Request Timeout (DNS lookup of nowhere.invalid failed: "
             "[Errno -2] Name or service not known)")
    assert await events.next() == SessionTerminated("failed")


async def test_stop_ends_outgoing_calls(peer: Peer) -> None:
    stack = SipStack("127.0.0.1", 0, on_invite=lambda s: None, t1=T1)
    await stack.start()
    session = stack.invite(f"sip:bob@127.0.0.1:{peer.port}", from_user="alice", sdp=OFFER)
    invite = await peer.request("INVITE")
    peer.answer(invite, 180)
    await asyncio.sleep(0.05)
    await stack.stop()
    assert (await peer.request("CANCEL")).cseq.method == "CANCEL"
    assert session.final_status == 503
    await asyncio.wait_for(session.wait_terminated(), WAIT)
