"""The running switch against hostile SIP: the RFC 4475 torture messages over UDP and TCP,
garbage datagrams, garbage RTP into a live call, and an offer with no codec in common.

The torture INVITEs that the switch accepts start calls; the Default callback rejects them
(486), so no call is ever answered and nothing is sent towards the example hosts the
messages name. Several messages share a transaction key (same top Via branch and sent-by,
same method): sent to one switch, the second would rightly be taken as a retransmission
of the first. They are split into waves, each sent to a switch of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch

TORTURE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"
INDEX: list[dict[str, Any]] = json.loads((TORTURE / "index.json").read_text())["messages"]
HOST = "127.0.0.1"
REPLY_WAIT_S = 3.0  # how long a message is given to draw a final response
REJECT_BUSY = Reply.actions([{"type": "REJECT", "params": {"reason": "busy"}}])
STATUS_RE = re.compile(rb"^SIP/2\.0 (\d{3})[ \r]", re.M)
VIA_RE = re.compile(rb"^(?:via|v)[ \t]*:", re.I | re.M)


# ---- the torture messages --------------------------------------------------------------------

def _header_end(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")
    return end if end >= 0 else len(data)


def top_via(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the first Via header's value, continuation lines included."""
    head = data[:_header_end(data)]
    m = VIA_RE.search(head)
    if m is None:
        return None
    end = m.end()
    while True:
        nl = head.find(b"\n", end)
        if nl < 0:
            return m.end(), len(head)
        if head[nl + 1:nl + 2] not in (b" ", b"\t"):
            return m.end(), nl
        end = nl + 1


def with_rport(data: bytes) -> bytes:
    """`data` with `;rport` after the top Via's sent-by (RFC 3581), so that UDP responses
    come back to the sending socket instead of the Via port."""
    span = top_via(data)
    if span is None:
        return data
    start, end = span
    value = data[start:end]
    if b"rport" in value.lower():
        return data
    cuts = [i for i in (value.find(b";"), value.find(b",")) if i >= 0]
    at = start + (min(cuts) if cuts else len(value.rstrip(b"\r \t")))
    return data[:at] + b";rport" + data[at:]


def transaction_key(data: bytes) -> bytes:
    """A coarse stand-in for the RFC 3261 §17.2.3 key: the raw top Via (branch and sent-by).

    The method is left out on purpose: the switch matches its responses by CSeq method,
    so a request whose CSeq names another method reaches that method's transaction (see
    test_cseq_mismatch_does_not_answer_another_transaction).
    """
    span = top_via(data)
    return b" ".join(data[span[0]:span[1]].split()) if span else b""


def waves(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split `entries` so that no two in one wave share a transaction key."""
    out: list[tuple[set[bytes], list[dict[str, Any]]]] = []
    for entry in entries:
        key = transaction_key((TORTURE / entry["file"]).read_bytes())
        for keys, members in out:
            if key not in keys:
                keys.add(key)
                members.append(entry)
                break
        else:
            out.append(({key}, [entry]))
    return [members for _, members in out]


# ---- sending them ----------------------------------------------------------------------------

@dataclass
class Outcome:
    name: str
    statuses: list[int] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    @property
    def final(self) -> int | None:
        return next((s for s in self.statuses if s >= 200), None)


class UdpPeer(asyncio.DatagramProtocol):
    """A loopback UDP socket whose datagrams land in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a peer that went away

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def recv(self, timeout: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


@asynccontextmanager
async def udp_peer(port: int = 0) -> AsyncIterator[UdpPeer]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(UdpPeer, local_addr=(HOST, port))
    try:
        yield peer
    finally:
        transport.close()


async def send_udp(name: str, data: bytes, target: tuple[str, int]) -> Outcome:
    out = Outcome(name)
    loop = asyncio.get_running_loop()
    async with udp_peer() as peer:
        peer.send(data, target)
        deadline = loop.time() + REPLY_WAIT_S
        while out.final is None and (left := deadline - loop.time()) > 0:
            got = await peer.recv(left)
            if got is None:
                break
            out.raw.append(got)
            out.statuses += [int(m) for m in STATUS_RE.findall(got)[:1]]
    return out


async def send_tcp(name: str, data: bytes, target: tuple[str, int]) -> Outcome:
    out = Outcome(name)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(*target)
    try:
        writer.write(data)
        await writer.drain()
        deadline = loop.time() + REPLY_WAIT_S
        buf = b""
        while out.final is None and (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            if not chunk:
                break  # the switch closed the connection (a framing error)
            buf += chunk
            out.statuses = [int(m) for m in STATUS_RE.findall(buf)]
        # Over a stream, bytes after the message's own end form further messages (dblreq's
        # trailing INVITE is one): only the answers up to the first final one are its own.
        finals = [i for i, code in enumerate(out.statuses) if code >= 200]
        if finals:
            out.statuses = out.statuses[:finals[0] + 1]
        out.raw.append(buf)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return out


def judge(entry: dict[str, Any], outcome: Outcome) -> str | None:
    """Why `outcome` breaks the index's verdict for `entry`, or None when it is fine."""
    got = outcome.statuses
    if entry["validity"] == "valid":
        if 400 in got:
            return f"valid message answered 400: {got}"
        if entry["kind"] == "response" and got:
            return f"a response was answered: {got}"
        return None
    if entry["liberal_accept_ok"] or not got:
        return None  # dropped, or (where the RFC allows it) accepted leniently
    allowed = {c for c in entry["expected"] if isinstance(c, int)}
    if entry["kind"] == "response":
        return f"a response was answered: {got}"
    wrong = [s for s in got if s not in allowed]
    return f"invalid message answered {wrong}, allowed {sorted(allowed)}" if wrong else None


async def options_ok(target: tuple[str, int], tag: str) -> int | None:
    """Send a plain OPTIONS over UDP and return the final status."""
    branch = f"z9hG4bK{tag}{random.getrandbits(32):x}"
    msg = (f"OPTIONS sip:{HOST}:{target[1]} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP {HOST}:9;branch={branch};rport\r\n"
           f"From: <sip:probe@{HOST}>;tag={tag}\r\nTo: <sip:{HOST}:{target[1]}>\r\n"
           f"Call-ID: {tag}-{random.getrandbits(32):x}@{HOST}\r\nCSeq: 1 OPTIONS\r\n"
           "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    return (await send_udp(tag, msg, target)).final


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_rfc4475_torture_messages(transport: str, switch: SwitchFactory,
                                        callback_app: CallbackApp, sipp_runner: SippRunner,
                                        ) -> None:
    callback_app.set_script({"init_call": REJECT_BUSY, "end_call": Reply(json={})})
    problems: dict[str, str] = {}
    outcomes: dict[str, Outcome] = {}
    started: list[RunningSwitch] = []
    for wave in waves(INDEX):
        sw = await switch(default_callback=callback_app.url)
        started.append(sw)
        if transport == "udp":
            sends = [send_udp(e["name"], with_rport((TORTURE / e["file"]).read_bytes()),
                              sw.sip_udp) for e in wave]
        else:
            sends = [send_tcp(e["name"], (TORTURE / e["file"]).read_bytes(), sw.sip_tcp)
                     for e in wave]
        for entry, outcome in zip(wave, await asyncio.gather(*sends), strict=True):
            outcomes[entry["name"]] = outcome
            why = judge(entry, outcome)
            if why:
                problems[entry["name"]] = why
    assert len(outcomes) == len(INDEX)
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())

    # every switch survived: it answers OPTIONS and logged no traceback
    for n, sw in enumerate(started):
        assert await options_ok(sw.sip_udp, f"after{n}") == 200, sw.logs()
    # and the last one still runs a normal call
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    result = await sipp_runner.run("uac_wait_bye.xml", started[-1].sip_udp, service="1000")
    result.assert_ok()
    for sw in started:
        assert "Traceback" not in sw.logs(), sw.logs()


async def test_valid_requests_are_answered_over_udp(switch: SwitchFactory,
                                                    callback_app: CallbackApp) -> None:
    """Processed like any other message of its kind: each valid request draws a final
    response (the INVITEs the callback's 486)."""
    callback_app.set_script({"init_call": REJECT_BUSY, "end_call": Reply(json={})})
    entries = [e for e in INDEX if e["validity"] == "valid" and e["kind"] == "request"]
    unanswered = {}
    for wave in waves(entries):
        sw = await switch(default_callback=callback_app.url)
        sends = [send_udp(e["name"], with_rport((TORTURE / e["file"]).read_bytes()),
                          sw.sip_udp) for e in wave]
        for entry, outcome in zip(wave, await asyncio.gather(*sends), strict=True):
            if outcome.final is None or outcome.final == 400:
                unanswered[entry["name"]] = outcome.statuses
    assert unanswered == {}


def test_with_rport_edits_only_the_top_via() -> None:
    for entry in INDEX:
        data = (TORTURE / entry["file"]).read_bytes()
        edited = with_rport(data)
        if top_via(data) is None:
            assert edited == data
            continue
        assert len(edited) - len(data) in (0, len(b";rport")), entry["name"]
        assert edited.replace(b";rport", b"", 1) == data or b"rport" in data
        start, end = top_via(edited) or (0, 0)
        assert b"rport" in edited[start:end].lower(), entry["name"]


# ---- garbage -----------------------------------------------------------------------------------

def garbage_datagrams() -> list[bytes]:
    rng = random.Random(4475)
    out = [rng.randbytes(rng.randrange(1, 1500)) for _ in range(40)]
    out += [b"", b"\x00", b"\r\n", b"\r\n\r\n", b" ", rng.randbytes(60_000),
            b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n",
            b"INVITE sip:1000@127.0.0.1 SIP/2.0",
            b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",
            b"SIP/2.0 999999999999999999999 Big\r\nVia: SIP/2.0/UDP 127.0.0.1:9\r\n\r\n",
            b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport\r\n"
            b"Content-Length: 99999999999999999999\r\n\r\n",
            b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n" + b"X: " + b"a" * 60_000 + b"\r\n\r\n",
            b"INVITE \xff\xfe SIP/2.0\r\nVia: \xff\r\n\r\n",
            bytes(range(256)) * 4]
    return out


async def test_garbage_datagrams_and_streams_do_not_hurt(switch: SwitchFactory,
                                                         callback_app: CallbackApp,
                                                         sipp_runner: SippRunner) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for _ in range(3):
            for data in garbage_datagrams():
                sock.sendto(data, sw.sip_udp)
            await asyncio.sleep(0.05)
    finally:
        sock.close()
    for data in garbage_datagrams()[-12:]:
        with contextlib.suppress(ConnectionError):
            await send_tcp("garbage", data, sw.sip_tcp)
    assert await options_ok(sw.sip_udp, "afterjunk") == 200
    assert await send_udp_options_over_tcp(sw) == 200
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
    result.assert_ok()
    assert sw.process.returncode is None
    assert "Traceback" not in sw.logs(), sw.logs()


async def send_udp_options_over_tcp(sw: RunningSwitch) -> int | None:
    msg = (f"OPTIONS sip:{HOST}:{sw.sip_tcp[1]} SIP/2.0\r\n"
           f"Via: SIP/2.0/TCP {HOST}:9;branch=z9hG4bKtcpafter{os.getpid()}\r\n"
           f"From: <sip:probe@{HOST}>;tag=t1\r\nTo: <sip:{HOST}>\r\n"
           f"Call-ID: tcpafter-{os.getpid()}@{HOST}\r\nCSeq: 1 OPTIONS\r\n"
           "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    return (await send_tcp("tcp-options", msg, sw.sip_tcp)).final


# ---- a raw UAC: one call by hand, to reach the switch's RTP port -------------------------------

SDP_PCMU = ("v=0\r\no=raw 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            "m=audio {port} RTP/AVP {pts}\r\n{rtpmaps}a=ptime:20\r\na=sendrecv\r\n")


@dataclass
class RawCall:
    """State of one hand-made INVITE dialog from a UdpPeer."""

    peer: UdpPeer
    target: tuple[str, int]
    call_id: str = field(default_factory=lambda: f"raw-{random.getrandbits(48):x}@{HOST}")
    from_tag: str = field(default_factory=lambda: f"{random.getrandbits(32):x}")
    to_tag: str = ""
    remote_target: str = ""
    responses: list[bytes] = field(default_factory=list)  # to the INVITE
    received: list[bytes] = field(default_factory=list)  # everything

    def _request(self, method: str, cseq: int, uri: str, body: str = "",
                 branch: str | None = None, extra: str = "") -> bytes:
        branch = branch or f"z9hG4bK{random.getrandbits(48):x}"
        to_tag = f";tag={self.to_tag}" if self.to_tag else ""
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{self.peer.port};branch={branch};rport\r\n"
                f"From: <sip:raw@{HOST}>;tag={self.from_tag}\r\n"
                f"To: <sip:1000@{HOST}:{self.target[1]}>{to_tag}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:raw@{HOST}:{self.peer.port}>\r\nMax-Forwards: 70\r\n"
                f"{extra}{ctype}Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()

    async def invite(self, sdp: str, timeout: float = 15.0,
                     branch: str | None = None) -> tuple[int, bytes]:
        """Send the INVITE and return the final (status, message); ACK a non-2xx."""
        branch = branch or f"z9hG4bK{random.getrandbits(48):x}"
        uri = f"sip:1000@{HOST}:{self.target[1]}"
        self.peer.send(self._request("INVITE", 1, uri, sdp, branch), self.target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            got = await self.peer.recv(left)
            if got is None:
                break
            self.received.append(got)
            m = STATUS_RE.match(got)
            if m is None or b"CSeq: 1 INVITE" not in got:
                continue
            self.responses.append(got)
            status = int(m[1])
            if status < 200:
                continue
            self.to_tag = _header_param(got, b"To", b"tag")
            if status >= 300:  # §17.1.1.3: the ACK of a non-2xx reuses the INVITE's branch
                self.peer.send(self._request("ACK", 1, uri, branch=branch), self.target)
            else:
                contact = _header(got, b"Contact") or b""
                found = re.search(rb"<([^>]+)>", contact)
                self.remote_target = found[1].decode() if found else uri
                self.peer.send(self._request("ACK", 1, self.remote_target), self.target)
            return status, got
        raise AssertionError(f"no final response to INVITE; got {self.responses}")

    async def bye(self, timeout: float = 10.0) -> int:
        self.peer.send(self._request("BYE", 2, self.remote_target), self.target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            got = await self.peer.recv(left)
            if got is None:
                break
            m = STATUS_RE.match(got)
            if m and b"CSeq: 2 BYE" in got and int(m[1]) >= 200:
                return int(m[1])
        raise AssertionError("no final response to BYE")


def _header(msg: bytes, name: bytes) -> bytes | None:
    m = re.search(rb"^" + name + rb"[ \t]*:[ \t]*(.*?)\r$", msg, re.I | re.M)
    return m[1] if m else None


def _header_param(msg: bytes, name: bytes, param: bytes) -> str:
    value = _header(msg, name) or b""
    m = re.search(rb";\s*" + param + rb"=([^;>\s,]+)", value)
    return m[1].decode() if m else ""


def sdp_media(msg: bytes) -> tuple[str, int, list[int]]:
    """(connection host, audio port, payload types) of the SDP in `msg`."""
    body = msg.split(b"\r\n\r\n", 1)[1].decode()
    host = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    media = re.search(r"^m=audio (\d+) RTP/AVP ([\d ]+)", body, re.M)
    assert host and media, body
    return host[1], int(media[1]), [int(p) for p in media[2].split()]


def garbage_rtp(rng: random.Random) -> list[bytes]:
    def header(first: int, pt: int, seq: int) -> bytes:
        return struct.pack("!BBHII", first, pt, seq, seq * 160, 0x1234)

    out = [b"", b"\x80", b"\x80\x00\x00", rng.randbytes(11),
           header(0x8F, 0, 1),  # CC=15, no CSRCs
           header(0x90, 0, 2) + b"\xbe\xde\x00\xff",  # extension longer than the packet
           header(0xA0, 0, 3) + b"\xff" * 10 + b"\xff",  # padding count beyond the payload
           header(0xA0, 0, 4),  # padding bit, no payload at all
           header(0x80, 0, 5) + b"\xff" * 1400,  # oversized frame
           header(0x80, 0, 6),  # empty payload
           header(0x80, 101, 7) + b"\x01",  # truncated telephone-event
           header(0x80, 101, 8) + b"\x10\x80\x00\xa0",  # event code 16 (not a digit)
           header(0x80, 127, 9) + b"\x00" * 160,  # unnegotiated payload type
           header(0x80, 0, 65535) + b"\xff" * 160,
           header(0x80, 0, 0) + b"\xff" * 160,  # sequence wrap, then far jumps
           header(0x80, 0, 30000) + b"\xff" * 160,
           header(0x40, 0, 10) + b"\xff" * 160,  # RTP version 1
           header(0xC0, 0, 11) + b"\xff" * 160,  # version 3
           rng.randbytes(60_000)]
    out += [rng.randbytes(rng.randrange(12, 400)) for _ in range(100)]
    out += [header(0x80, rng.randrange(128), rng.randrange(65536)) +
            rng.randbytes(rng.randrange(0, 300)) for _ in range(100)]
    return out


async def test_garbage_rtp_into_a_live_call(switch: SwitchFactory, callback_app: CallbackApp,
                                            sipp_runner: SippRunner) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "PAUSE",
                                                          "params": {"seconds": 30}}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    async with udp_peer() as sip, udp_peer() as media:
        call = RawCall(sip, sw.sip_udp)
        sdp = SDP_PCMU.format(host=HOST, port=media.port, pts="0 101",
                              rtpmaps="a=rtpmap:0 PCMU/8000\r\n"
                                      "a=rtpmap:101 telephone-event/8000\r\n")
        status, ok = await call.invite(sdp)
        assert status == 200, ok
        rtp_host, rtp_port, pts = sdp_media(ok)
        assert rtp_host == HOST and pts[0] == 0
        assert sw.rtp_ports[0] <= rtp_port <= sw.rtp_ports[1]
        assert await media.recv(5.0) is not None  # the switch sends media to us
        # latch the switch's symmetric RTP onto our media socket first: a peer's own
        # packets come before anyone else's, and the garbage then comes from elsewhere
        for seq in range(5):
            media.send(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xCAFE) + b"\xff" * 160,
                       (rtp_host, rtp_port))
            await asyncio.sleep(0.02)

        rng = random.Random(3550)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for rounds in range(3):
                for data in garbage_rtp(rng):
                    sock.sendto(data, (rtp_host, rtp_port))
                    sock.sendto(data, (rtp_host, rtp_port + 1))  # RTCP too
                await asyncio.sleep(0.1 * rounds)
        finally:
            sock.close()
        # the call lives on: media still flows to us, and our BYE ends it cleanly
        while not media.queue.empty():
            media.queue.get_nowait()
        await asyncio.sleep(0.5)
        assert await media.recv(2.0) is not None, sw.logs()
        assert await call.bye() == 200
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["status"] == "completed"
    assert await options_ok(sw.sip_udp, "afterrtp") == 200
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
    result.assert_ok()
    assert "Traceback" not in sw.logs(), sw.logs()


async def test_offer_with_only_g729_gets_488(switch: SwitchFactory,
                                             callback_app: CallbackApp) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    async with udp_peer() as sip, udp_peer() as media:
        call = RawCall(sip, sw.sip_udp)
        sdp = SDP_PCMU.format(host=HOST, port=media.port, pts="18",
                              rtpmaps="a=rtpmap:18 G729/8000\r\n")
        status, final = await call.invite(sdp)
        assert status == 488, final
        assert call.to_tag, final
        assert await media.recv(1.0) is None  # no media for a refused call
    assert await options_ok(sw.sip_udp, "after488") == 200
    assert "Traceback" not in sw.logs()


async def test_cseq_mismatch_does_not_answer_another_transaction(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    """RFC 4475 mismatch01 next to a ringing INVITE with the same branch and sent-by: the
    OPTIONS whose CSeq says INVITE is a request of its own (§17.2.3 keys by the request's
    method), so its 400 must not land on the INVITE, whose caller still gets the 486."""
    callback_app.set_script({"init_call": Reply.actions(
        [{"type": "REJECT", "params": {"reason": "busy"}}], delay=1.5),
        "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    branch = f"z9hG4bKmismatch{random.getrandbits(32):x}"
    async with udp_peer() as sip, udp_peer() as media, udp_peer() as other:
        call = RawCall(sip, sw.sip_udp)
        sdp = SDP_PCMU.format(host=HOST, port=media.port, pts="0",
                              rtpmaps="a=rtpmap:0 PCMU/8000\r\n")
        inviting = asyncio.create_task(call.invite(sdp, branch=branch))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not any(r.startswith(b"SIP/2.0 180") for r in call.responses):
            assert loop.time() < deadline and not inviting.done(), call.responses
            await asyncio.sleep(0.02)
        options = (f"OPTIONS sip:1000@{HOST}:{sw.sip_udp[1]} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{sip.port};branch={branch};rport\r\n"
                   f"From: <sip:other@{HOST}>;tag=mm1\r\nTo: <sip:1000@{HOST}>\r\n"
                   f"Call-ID: mismatch-{branch}@{HOST}\r\nCSeq: 8 INVITE\r\n"
                   "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        other.send(options, sw.sip_udp)
        try:
            status, final = await inviting
        except AssertionError:
            status, final = 0, b"(no final response)"
        stray = [r for r in call.received if r.startswith(b"SIP/2.0 400")]
        assert stray == [], "the OPTIONS' 400 was sent on the INVITE's transaction"
        assert status == 486, final
    assert await options_ok(sw.sip_udp, "aftermismatch") == 200
    assert "Traceback" not in sw.logs(), sw.logs()
