"""Our outgoing calls (`SipStack.invite`, the UAC) against SIPp UAS peers.

A SipStack on 127.0.0.1:0 runs in the test process; each test starts one SIPp UAS
scenario from tests/data/sipp/ and asserts on the session's events and on what SIPp
received (its message log and `<log>` lines).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from signaling.auth import Authorization, Credentials
from signaling.client import ClientSession, ClientState
from signaling.events import (
    ByeReceived,
    CallAnswered,
    CallFailed,
    CallProgressed,
    ReinviteReceived,
    SessionTerminated,
)
from signaling.sdp import SessionDescription, answer
from signaling.session import ServerSession
from signaling.stack import SipStack
from tests.support.sipp import Params, SippResult, SippRunner, SippUas

WAIT = 10.0
OFFER = (b"v=0\r\no=voxswitch 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
         b"t=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
         b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-16\r\na=sendrecv\r\n")


class Events:
    """A session's events, awaited one by one."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.seen: list[object] = []
        session.on_event = self._put

    def _put(self, event: object) -> None:
        self.seen.append(event)
        self.queue.put_nowait(event)

    async def next(self) -> object:
        return await asyncio.wait_for(self.queue.get(), WAIT)

    async def until(self, kind: type) -> object:
        while not isinstance(event := await self.next(), kind):
            pass
        return event

    async def ended(self) -> str:
        event = await self.until(SessionTerminated)
        assert isinstance(event, SessionTerminated)
        await asyncio.wait_for(self.session.wait_terminated(), WAIT)
        return event.reason


def refuse(session: ServerSession) -> None:
    session.reject(403)


@pytest.fixture
async def stack() -> AsyncIterator[SipStack]:
    stack = SipStack("127.0.0.1", 0, on_invite=refuse, t1=0.1)
    await stack.start()
    yield stack
    await stack.stop()


def call(stack: SipStack, uas: SippUas, **kw: object) -> Events:
    session = stack.invite(uas.uri(), from_user="alice", from_display="Alice", sdp=OFFER,
                           transport=uas.transport, **kw)  # type: ignore[arg-type]
    return Events(session)


async def finished(uas: SippUas) -> SippResult:
    result = await uas.finish()
    result.assert_ok()
    return result


def sent_by_us(result: SippResult, method: str) -> list[str]:
    """The requests of `method` SIPp received, as logged in its message trace."""
    blocks = result.messages.split("\n\n")
    return [b for b in blocks if f"\n{method} sip:" in "\n" + b.strip()]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_answered_call_then_our_bye(stack: SipStack, sipp_runner: SippRunner,
                                          transport: str) -> None:
    async with sipp_runner.uas("uas_answer.xml", calls=1, transport=transport) as uas:
        events = call(stack, uas)
        assert await events.next() == CallProgressed(180, "Ringing", None)
        answered = await events.next()
        assert isinstance(answered, CallAnswered) and answered.sdp_error is None
        assert answered.sdp is not None and answered.sdp.media[0].port == uas.media_port
        session = events.session
        assert session.state is ClientState.CONFIRMED and session.final_status == 200
        assert session.remote_sdp == answered.sdp
        session.hangup()
        assert await events.ended() == "local bye"
        result = await finished(uas)
    assert result.logged("invite-from")[0].startswith('"Alice" <sip:alice@127.0.0.1>;tag=')
    [ack] = sent_by_us(result, "ACK")
    assert "CSeq: 1 ACK" in ack
    [bye] = sent_by_us(result, "BYE")
    assert "CSeq: 2 BYE" in bye and f"Call-ID: {session.call_id}" in bye
    assert stack.clients == []


async def test_far_end_hangs_up(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_bye.xml", calls=1, params={"HOLD_MS": 200}) as uas:
        events = call(stack, uas)
        await events.until(CallAnswered)
        bye = await events.next()
        assert isinstance(bye, ByeReceived) and bye.request.method == "BYE"
        assert await events.ended() == "remote bye"
        await finished(uas)


async def test_busy(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_reject.xml", calls=1) as uas:
        events = call(stack, uas)
        assert await events.next() == CallFailed(486, "Busy Here")
        assert await events.ended() == "failed"
        assert events.session.final_status == 486
        result = await finished(uas)  # it had its ACK
    [ack] = sent_by_us(result, "ACK")
    assert "CSeq: 1 ACK" in ack


async def test_no_answer_then_cancel(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_ring_cancel.xml", calls=1) as uas:
        events = call(stack, uas)
        assert await events.next() == CallProgressed(180, "Ringing", None)
        events.session.cancel()
        assert await events.next() == CallFailed(487, "Request Terminated")
        assert await events.ended() == "cancelled"
        result = await finished(uas)
    [cancel] = sent_by_us(result, "CANCEL")
    assert "CSeq: 1 CANCEL" in cancel


async def test_early_media_then_answer(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_early_media.xml", calls=1) as uas:
        events = call(stack, uas)
        progressed = await events.next()
        assert isinstance(progressed, CallProgressed) and progressed.status == 183
        assert progressed.sdp is not None and progressed.sdp.media[0].port == uas.media_port
        assert events.session.remote_sdp == progressed.sdp
        answered = await events.next()
        assert isinstance(answered, CallAnswered) and answered.sdp == progressed.sdp
        events.session.hangup()
        assert await events.ended() == "local bye"
        await finished(uas)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


async def test_407_then_answer(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_auth.xml", calls=1) as uas:
        events = call(stack, uas, credentials=Credentials("alice", "secret"))
        await events.until(CallAnswered)
        events.session.hangup()
        assert await events.ended() == "local bye"
        result = await finished(uas)
    assert result.logged("cseq") == ["2 INVITE"]
    [logged] = result.logged("credentials")
    auth = Authorization.parse(logged)
    assert (auth.username, auth.realm, auth.nonce, auth.algorithm, auth.qop, auth.nc) == (
        "alice", "voxswitch.test", "4f1a9c2b7d0e", "MD5", "auth", "00000001")
    assert auth.uri == uas.uri()
    # SIPp 3.6's verifyauth reads only Authorization: RFC 7616 §3.4.1 computed here
    ha1, ha2 = md5("alice:voxswitch.test:secret"), md5(f"INVITE:{auth.uri}")
    assert auth.response == md5(f"{ha1}:{auth.nonce}:00000001:{auth.cnonce}:auth:{ha2}")
    acks = sent_by_us(result, "ACK")
    assert ["CSeq: 1 ACK" in a for a in acks] == [True, False]  # the 407's, then the 200's
    assert "Proxy-Authorization: Digest" in acks[1]  # §13.2.2.4: the INVITE's credentials


@pytest.mark.parametrize("password, qop, verified", [
    ("secret", ',qop="auth"', "true"),
    ("secret", "", "true"),  # RFC 2069 form: no qop, cnonce or nc
    ("wrong", ',qop="auth"', "false"),  # verifyauth does check
])
async def test_401_then_answer_verified_by_sipp(stack: SipStack, sipp_runner: SippRunner,
                                                password: str, qop: str,
                                                verified: str) -> None:
    params: Params = {"STATUS": 401, "REASON": "Unauthorized",
                      "CHALLENGE_HEADER": "WWW-Authenticate",
                      "CREDENTIALS_HEADER": "Authorization", "QOP": qop}
    async with sipp_runner.uas("uas_auth.xml", calls=1, params=params) as uas:
        events = call(stack, uas, credentials=Credentials("alice", password))
        await events.until(CallAnswered)
        events.session.hangup()
        assert await events.ended() == "local bye"
        result = await finished(uas)
    assert result.logged("verifyauth") == [verified]
    auth = Authorization.parse(result.logged("credentials")[0])
    assert (auth.qop is None) == (qop == "")


async def test_sha256_challenge(stack: SipStack, sipp_runner: SippRunner) -> None:
    params: Params = {"STATUS": 401, "REASON": "Unauthorized",
                      "CHALLENGE_HEADER": "WWW-Authenticate",
                      "CREDENTIALS_HEADER": "Authorization", "ALGORITHM": "SHA-256"}
    async with sipp_runner.uas("uas_auth.xml", calls=1, params=params) as uas:
        events = call(stack, uas, credentials=Credentials("alice", "secret"))
        await events.until(CallAnswered)
        events.session.hangup()
        await events.ended()
        result = await finished(uas)
    auth = Authorization.parse(result.logged("credentials")[0])
    assert auth.algorithm == "SHA-256"

    def sha256(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1, ha2 = sha256("alice:voxswitch.test:secret"), sha256(f"INVITE:{auth.uri}")
    assert auth.response == sha256(
        f"{ha1}:{auth.nonce}:{auth.nc}:{auth.cnonce}:{auth.qop}:{ha2}")


async def test_garbage_sdp_in_the_200(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_bad_sdp.xml", calls=1) as uas:
        events = call(stack, uas)
        answered = await events.until(CallAnswered)
        assert isinstance(answered, CallAnswered) and answered.sdp is None
        assert answered.sdp_error is not None
        assert answered.sdp_error.startswith("unparseable SDP in the 200: ")
        events.session.hangup()  # what the control plane does with an unusable answer
        assert await events.ended() == "local bye"
        result = await finished(uas)  # ACKed, then BYE
    assert len(sent_by_us(result, "ACK")) == 1 and len(sent_by_us(result, "BYE")) == 1


async def test_reinvite_from_the_far_end(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_reinvite.xml", calls=1) as uas:
        events = call(stack, uas)

        def reoffer(offer: SessionDescription) -> SessionDescription:
            sd, _ = answer(offer, local_host="127.0.0.1", local_port=40000, session_id=1,
                           session_version=2)
            return sd

        events.session.on_reoffer = reoffer
        await events.until(CallAnswered)
        reinvite = await events.next()
        assert isinstance(reinvite, ReinviteReceived)
        assert reinvite.offer is not None and reinvite.offer.media[0].direction == "sendonly"
        assert reinvite.answer is not None and reinvite.answer.media[0].direction == "recvonly"
        assert isinstance(await events.next(), ByeReceived)
        assert await events.ended() == "remote bye"
        result = await finished(uas)
    assert result.logged("reinvite-answer") == ["a=recvonly"]


async def test_target_by_host_name(stack: SipStack, sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_answer.xml", calls=1) as uas:
        session = stack.invite(f"sip:service@localhost:{uas.port}", from_user="alice",
                               sdp=OFFER)
        events = Events(session)
        await events.until(CallAnswered)
        assert session.remote_addr == ("127.0.0.1", uas.port)
        session.hangup()
        assert await events.ended() == "local bye"
        await finished(uas)
