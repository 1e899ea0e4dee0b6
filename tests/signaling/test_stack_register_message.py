"""SipStack with a registrar, an authenticator and a MESSAGE handler, on real sockets
(127.0.0.1) against a raw UDP peer written here: the REGISTER challenge and its answer,
refusals, the Allow of OPTIONS, inbound MESSAGE, and outbound MESSAGE with its digest
retry, its refusal and its timeout."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from signaling.auth import Credentials, authorize, parse_challenges
from signaling.authserver import DigestAuthenticator
from signaling.events import Destination
from signaling.message import Request, Response, make_response, parse_message
from signaling.registrar import Registrar
from signaling.stack import SipStack

WAIT = 5.0
USERS = {"alice": "secret"}


class Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def open(self) -> Peer:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(parse_message(data))

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    async def final(self) -> Response:
        while True:
            message = await asyncio.wait_for(self.inbox.get(), WAIT)
            if isinstance(message, Response) and message.status >= 200:
                return message

    async def request(self) -> Request:
        while True:
            message = await asyncio.wait_for(self.inbox.get(), WAIT)
            if isinstance(message, Request):
                return message

    def respond(self, request: Request, status: int,
                headers: list[tuple[str, str]] | None = None) -> None:
        via = request.top_via
        self.send(make_response(request, status, headers=headers).encode(), via.port or 5060)


def register(port: int, *, cseq: int = 1, user: str = "alice", auth: str | None = None,
             contact: str | None = None, expires: int = 120) -> bytes:
    contact = contact or f"<sip:{user}@127.0.0.1:{port}>"
    extra = f"Authorization: {auth}\r\n" if auth else ""
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=f1\r\n"
            f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}@test\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\n"
            f"{extra}Content-Length: 0\r\n\r\n").encode()


def message(port: int, body: bytes, ctype: str = "text/plain") -> bytes:
    return (f"MESSAGE sip:+17145551212@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:+19495551212@127.0.0.1>;tag=m1\r\n"
            f"To: <sip:+17145551212@127.0.0.1>\r\nCall-ID: {secrets.token_hex(6)}@test\r\n"
            f"CSeq: 1 MESSAGE\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def answer(challenge: Response, user: str, password: str) -> str:
    values = challenge.headers.getall("WWW-Authenticate")
    chosen = parse_challenges(", ".join(values))[0]
    return str(authorize(chosen, Credentials(user, password), method="REGISTER",
                         uri="sip:127.0.0.1"))


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Request] = []

    def __call__(self, request: Request, source: Destination) -> Response:
        self.messages.append(request)
        return make_response(request, 200)


@pytest.fixture
async def stack() -> AsyncIterator[tuple[SipStack, Inbox]]:
    inbox = Inbox()
    sip = SipStack("127.0.0.1", 0, on_invite=lambda s: s.reject(486), t1=0.05,
                   registrar=Registrar(),
                   authenticator=DigestAuthenticator("voxswitch", USERS.get),
                   on_message=inbox)
    await sip.start()
    yield sip, inbox
    await sip.stop()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = await Peer().open()
    yield p
    assert p.transport is not None
    p.transport.close()


async def test_register_is_challenged_then_bound(stack: tuple[SipStack, Inbox],
                                                 peer: Peer) -> None:
    sip, _ = stack
    peer.send(register(peer.port), sip.udp_port)
    challenge = await peer.final()
    assert challenge.status == 401
    peer.send(register(peer.port, cseq=2, auth=answer(challenge, "alice", "secret")),
              sip.udp_port)
    ok = await peer.final()
    assert ok.status == 200
    assert ok.headers.getall("Contact") == [f"<sip:alice@127.0.0.1:{peer.port}>;expires=120"]
    assert (ok.headers.get("Date") or "").endswith("GMT")
    assert sip.registrar is not None
    [binding] = sip.registrar.lookup("alice", sip.now())
    assert binding.source.port == peer.port


async def test_register_for_someone_else_is_403(stack: tuple[SipStack, Inbox],
                                                peer: Peer) -> None:
    sip, _ = stack
    peer.send(register(peer.port, user="bob"), sip.udp_port)
    challenge = await peer.final()
    peer.send(register(peer.port, user="bob", cseq=2,
                       auth=answer(challenge, "alice", "secret")), sip.udp_port)
    assert (await peer.final()).status == 403  # alice's credentials, bob's AOR


async def test_wrong_password_is_403_and_malformed_contact_400(
        stack: tuple[SipStack, Inbox], peer: Peer) -> None:
    sip, _ = stack
    peer.send(register(peer.port), sip.udp_port)
    challenge = await peer.final()
    peer.send(register(peer.port, cseq=2, auth=answer(challenge, "alice", "nope")),
              sip.udp_port)
    assert (await peer.final()).status == 403
    peer.send(register(peer.port, cseq=3, contact="<sip:alice@127.0.0.1"), sip.udp_port)
    assert (await peer.final()).status == 400


async def test_options_allows_register_and_message(stack: tuple[SipStack, Inbox],
                                                   peer: Peer) -> None:
    sip, _ = stack
    options = register(peer.port).replace(b"REGISTER", b"OPTIONS")
    peer.send(options, sip.udp_port)
    ok = await peer.final()
    allow = [m.strip() for m in ok.headers.getall("Allow")]
    assert allow[-2:] == ["REGISTER", "MESSAGE"] and "INVITE" in allow
    assert ok.headers.getall("Accept") == ["application/sdp", "text/plain"]


async def test_inbound_message_reaches_the_handler(stack: tuple[SipStack, Inbox],
                                                   peer: Peer) -> None:
    sip, inbox = stack
    peer.send(message(peer.port, b"hello"), sip.udp_port)
    assert (await peer.final()).status == 200
    assert [m.body for m in inbox.messages] == [b"hello"]
    peer.send(message(peer.port, b"<b>hi</b>", "text/html"), sip.udp_port)
    refused = await peer.final()
    assert refused.status == 415 and refused.headers.get("Accept") == "text/plain"


async def test_outbound_message_answers_a_challenge(stack: tuple[SipStack, Inbox],
                                                    peer: Peer) -> None:
    sip, _ = stack
    target = f"sip:bob@127.0.0.1:{peer.port}"
    task = asyncio.create_task(sip.message(
        target, b"hi bob", from_user="+17145551212",
        credentials=Credentials("alice", "secret")))
    first = await peer.request()
    assert first.method == "MESSAGE" and first.body == b"hi bob"
    assert first.headers.get("Content-Type") == "text/plain;charset=UTF-8"
    peer.respond(first, 401, [("WWW-Authenticate",
                               'Digest realm="far", nonce="abc", algorithm=SHA-256, '
                               'qop="auth"')])
    second = await peer.request()
    assert second.cseq.seq == 2 and "Authorization" in second.headers
    assert "algorithm=SHA-256" in (second.headers.get("Authorization") or "")
    peer.respond(second, 202)
    assert await asyncio.wait_for(task, WAIT) == (202, "Accepted")


async def test_outbound_message_refused_and_unanswered(stack: tuple[SipStack, Inbox],
                                                       peer: Peer) -> None:
    sip, _ = stack
    target = f"sip:bob@127.0.0.1:{peer.port}"
    task = asyncio.create_task(sip.message(target, b"x", from_user="me"))
    peer.respond(await peer.request(), 486)
    assert await asyncio.wait_for(task, WAIT) == (486, "Busy Here")
    status, reason = await sip.message(target, b"x", from_user="me", timeout=0.5)
    assert status == 408 and "no" in reason  # the peer keeps quiet
