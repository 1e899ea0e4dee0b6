"""Channel receive path over real UDP on 127.0.0.1: latching, garbage, RTCP, RFC 4733."""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Sequence

import numpy as np
import pytest

from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from media.events import TelephoneEventReceived
from media.rtp import (
    RTCP_BYE,
    RTCP_RR,
    RTCP_SDES,
    RTCP_SR,
    RtcpPacket,
    RtpHeader,
    pack_header,
    pack_telephone_event,
    parse_rtcp,
)
from tests.support.udp import UdpPeer, until

# Every test runs on the compiled receive path and on the Python one (conftest).
pytestmark = pytest.mark.usefixtures("rtp_kernel")


def media(i: int, payload: bytes = b"\xff" * 160, pt: int = 0, ssrc: int = 0xABC) -> bytes:
    return pack_header(pt, i == 0, (65530 + i) & 0xFFFF, 1000 + 160 * i, ssrc) + payload


async def test_the_channel_is_on_the_receive_path_under_test(
    engine: MediaEngine, rtp_kernel: str
) -> None:
    ch = await engine.open_channel()
    assert (ch._fast is not None) == (rtp_kernel == "c")
    assert type(ch._jb).__module__ == ("media._udpio" if rtp_kernel == "c" else "media.jitter")


async def test_latches_to_source_of_first_valid_packet(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await engine.open_channel()
    sdp_addr = ("127.0.0.1", 9)  # what SDP said; the peer is really elsewhere (NAT)
    ch.configure(remote=sdp_addr, payload_type=0)
    assert ch.destination == sdp_addr and ch.stats.latched_addr is None
    peer.send(b"garbage", ch.local_port)  # invalid packets never latch
    peer.send(media(0, pt=18), ch.local_port)  # nor do unexpected payload types
    await until(lambda: ch.stats.bad_packets == 2)
    assert ch.stats.latched_addr is None
    peer.send(media(0), ch.local_port)
    await until(lambda: ch.stats.latched_addr is not None)
    assert ch.stats.latched_addr == peer.addr == ch.destination
    assert ch.stats.remote_ssrc == 0xABC
    engine.tick(0.0)
    assert len(peer.drain()) == 1
    # Re-INVITE with the same address keeps the latch; a new address restarts it.
    ch.configure(remote=sdp_addr, payload_type=0)
    assert ch.destination == peer.addr
    ch.configure(remote=("127.0.0.1", 11), payload_type=0)
    assert ch.destination == ("127.0.0.1", 11) and ch.stats.latched_addr is None


async def test_latching_can_be_disabled(engine: MediaEngine, peer: UdpPeer) -> None:
    other = UdpPeer()
    try:
        ch = await engine.open_channel()
        ch.configure(remote=other.addr, payload_type=0, latch=False)
        peer.send(media(0), ch.local_port)
        await until(lambda: ch.stats.packets_in == 1)
        engine.tick(0.0)
        assert len(other.drain()) == 1 and peer.drain() == []
        assert ch.stats.latched_addr is None
    finally:
        other.close()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",
        b"\x80\x00\x00\x01",
        bytes(20),  # version 0
        b"\x40" + bytes(30),  # version 1
        b"\x8f" + bytes(20),  # 15 CSRCs announced, not present
        b"\x90" + bytes(11) + b"\x00\x00\x00\x09",  # extension longer than the packet
        b"\xa0" + bytes(11) + b"\xff",  # padding longer than the packet
        pack_header(101, False, 1, 1, 1) + b"\x01",  # telephone-event too short
        pack_header(96, False, 1, 1, 1) + bytes(160),  # PT not negotiated
    ],
)
async def test_garbage_is_counted_and_dropped(
    engine: MediaEngine, peer: UdpPeer, data: bytes
) -> None:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=101)
    peer.send(data, ch.local_port)
    peer.send(media(0), ch.local_port)
    await until(lambda: ch.stats.remote_ssrc is not None)
    assert ch.stats.bad_packets == 1
    engine.tick(0.0)
    assert len(peer.drain()) == 1


async def test_packets_before_configure_are_dropped(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await engine.open_channel()
    peer.send(media(0), ch.local_port)
    await until(lambda: ch.stats.packets_in == 1)
    assert ch.stats.bad_packets == 1 and ch.stats.latched_addr is None


def rtcp_compound(ssrc: int) -> bytes:
    sr_body = struct.pack("!IIIIII", ssrc, 1, 2, 3, 4, 5)
    sr = struct.pack("!BBH", 0x80, 200, len(sr_body) // 4) + sr_body
    chunk = struct.pack("!IBB", ssrc, 1, 5) + b"peer@" + b"\x00"
    chunk += bytes(-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    rr = struct.pack("!BBHI", 0x80, 201, 1, ssrc)
    bye = struct.pack("!BBHI", 0x81, 203, 1, ssrc)
    return sr + sdes + rr + bye


async def test_rtcp_received_and_counted(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await engine.open_channel()
    assert ch.rtcp_port is not None
    ch.configure(remote=peer.addr, payload_type=0)
    peer.send(rtcp_compound(5), ch.rtcp_port)
    peer.send(b"\x80\xc8\x00\x09junk", ch.rtcp_port)  # truncated: counted as bad
    peer.send(rtcp_compound(5), ch.local_port)  # rtcp-mux on the RTP port
    await until(lambda: ch.stats.rtcp_packets == 2 and ch.stats.bad_packets == 1)
    assert ch.stats.packets_in == 0 and ch.stats.latched_addr is None


async def test_telephone_events_reach_the_hook(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=101)
    got: list[TelephoneEventReceived] = []
    ch.on_telephone_event = got.append
    for i, (dur, end) in enumerate([(160, False), (320, False), (480, True), (480, True)]):
        payload = pack_telephone_event(11, end, 10, dur)
        peer.send(pack_header(101, i == 0, 200 + i, 8000, 0x42) + payload, ch.local_port)
    await until(lambda: len(got) == 4)
    assert got[0] == TelephoneEventReceived(
        event=11,
        end=False,
        volume=10,
        duration=160,
        timestamp=8000,
        sequence_number=200,
        marker=True,
        ssrc=0x42,
    )
    assert got[0].digit == "#" and [e.end for e in got] == [False, False, True, True]
    assert ch.stats.latched_addr == peer.addr and ch.stats.telephone_events == 4


async def test_failing_telephone_event_hook_is_contained(
    engine: MediaEngine, peer: UdpPeer
) -> None:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=101)

    def bad(event: TelephoneEventReceived) -> None:
        raise RuntimeError("boom")

    ch.on_telephone_event = bad
    peer.send(
        pack_header(101, True, 1, 1, 1) + pack_telephone_event(1, False, 10, 0), ch.local_port
    )
    peer.send(media(0), ch.local_port)
    await until(lambda: ch.stats.packets_in == 2)


async def test_receive_false_ignores_inbound_audio(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0, receive=False)
    peer.send(media(0, b"\x00" * 160), ch.local_port)
    await until(lambda: ch.stats.packets_in == 1)
    assert not engine._rx_active


async def test_inbound_audio_through_jitter_buffer(engine: MediaEngine, peer: UdpPeer) -> None:
    """A peer streams PCMU with reordering and a wrap at 65535; the hook hears it in order."""
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0)
    src = (6000 * np.sin(2 * np.pi * 500 * np.arange(1600) / 8000)).astype(np.int16)
    payload = g711.encode(0, src)
    heard: list[np.ndarray] = []

    def hook(channels: Sequence[Channel], pcm_in: np.ndarray) -> None:
        heard.append(pcm_in[ch._slot].copy())

    engine.add_detect_hook(hook)
    order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8]  # seq 65530..65539 wraps between 5 and 6
    for step in range(0, 10, 2):
        for i in order[step : step + 2]:
            peer.send(media(i, payload[160 * i : 160 * (i + 1)]), ch.local_port)
        await until(lambda n=step: ch.stats.packets_in == n + 2)
        engine.tick(step * 0.01)
    for _ in range(8):
        engine.tick(0.0)
    audio = np.concatenate(heard)
    start = int(np.flatnonzero(audio)[0]) // 160 * 160
    np.testing.assert_array_equal(audio[start : start + 1600], g711.decode(0, payload))
    assert ch._jb.stats.lost == 0 and ch._jb.stats.late == 0


async def test_real_clock_end_to_end(peer: UdpPeer) -> None:
    """Engine clock running: the peer hears exactly the played audio, seq/ts continuous."""
    engine = MediaEngine(port_range=(0, 0))
    await engine.start()
    try:
        ch = await engine.open_channel()
        ch.configure(remote=peer.addr, payload_type=0)
        # Latch first, so the stream and the audio both reach this peer.
        peer.send(media(0), ch.local_port)
        await until(lambda: ch.stats.latched_addr == peer.addr)
        src = (7000 * np.sin(2 * np.pi * 1000 * np.arange(2400) / 8000)).astype(np.int16)
        peer.drain()
        done = await asyncio.wait_for(ch.play(src), timeout=5)
        assert done is True
        await asyncio.sleep(0.05)
        packets = peer.drain()
        seqs = [p.header.sequence_number for p in packets]
        tss = [p.header.timestamp for p in packets]
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
        assert all((b - a) % 2**32 == 160 for a, b in itertools.pairwise(tss))
        audio = g711.decode(0, b"".join(p.payload for p in packets))
        start = int(np.flatnonzero(audio)[0]) // 160 * 160
        np.testing.assert_array_equal(
            audio[start : start + 2400], g711.decode(0, g711.encode(0, src))
        )
        assert engine.stats.ticks > 0 and engine.stats.tick_cost_us > 0
    finally:
        await engine.stop()
    assert ch.closed


def test_rtp_header_of_channel_packets_round_trips() -> None:
    raw = media(3)
    assert bytes(RtpHeader.parse(raw)) == raw[:12]


@pytest.mark.parametrize("ptime_ms", [10, 30, 40, 60])
async def test_a_peer_at_another_ptime_is_heard_sample_exact(
    engine: MediaEngine, peer: UdpPeer, ptime_ms: int
) -> None:
    """Packets of 10-60 ms are re-cut into the engine's 20 ms frames by timestamp: what the
    engine decodes is the peer's audio, every sample, in order (after the playout delay)."""
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0)
    heard: list[np.ndarray] = []
    engine.add_detect_hook(lambda channels, pcm: heard.append(pcm[ch._slot].copy()))
    t = np.arange(8000 * 1.2) / 8000
    signal = (8000 * np.cos(2 * np.pi * (300 * t + 700 * t * t))).astype(np.int16)  # a sweep
    codes = g711.ulaw_encode(signal).tobytes()
    size, ts0 = 8 * ptime_ms, 0xFFFFFF00  # the timestamps wrap early on
    sent = 0
    for tick in range(len(codes) // 160 + 10):
        while sent < min(len(codes), (tick + 1) * 160):  # packets due by this tick's end
            payload = codes[sent : sent + size]
            header = pack_header(0, sent == 0, sent // size, (ts0 + sent) & 0xFFFFFFFF, 0x51)
            peer.send(header + payload, ch.local_port)
            sent += len(payload)
        count = -(-sent // size)
        await until(lambda count=count: ch.stats.packets_in == count)
        engine.tick(tick * 0.02)
    got = np.concatenate(heard)
    start = int(np.flatnonzero(got)[0])  # the jitter buffer's playout delay
    assert start % 160 == 0 and start <= 160 * 5
    expected = g711.ulaw_decode(np.frombuffer(codes, np.uint8))
    whole = len(codes) // 160 * 160  # the last part-frame waits for samples that never come
    assert np.array_equal(got[start : start + whole], expected[:whole])


def rtcp_pair() -> tuple[UdpPeer, UdpPeer]:
    """Two peer sockets on consecutive ports (RTP, RTCP = RTP + 1)."""
    for _ in range(50):
        rtp = UdpPeer()
        try:
            return rtp, UdpPeer(rtp.addr[1] + 1)
        except OSError:
            rtp.close()
    raise AssertionError("no two consecutive free ports")


async def rtcp_received(peer: UdpPeer, timeout: float = 3.0) -> list[RtcpPacket]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            return parse_rtcp(peer.sock.recvfrom(2048)[0])
        except BlockingIOError:
            assert loop.time() < end, "no RTCP report in time"
            await asyncio.sleep(0.01)


async def test_rtcp_reports_both_streams_and_ends_with_bye(
    engine: MediaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("media.channel.report_interval", lambda first: 0.05)
    rtp, rtcp = rtcp_pair()
    try:
        ch = await engine.open_channel()
        ch.configure(remote=rtp.addr, payload_type=0)
        sent = [i for i in range(60) if i % 12 != 5]  # 5 of 60 lost
        for i in sent:
            rtp.send(media(i, ssrc=0x5151), ch.local_port)
        await until(lambda: ch.stats.packets_in == len(sent))
        for k in range(10):
            engine.tick(k * 0.02)
        first = await rtcp_received(rtcp)  # to RTP port + 1: the peer sent no RTCP yet
        report = next(p for p in first if p.packet_type == RTCP_SR)
        assert report.ssrc == ch.stats.ssrc
        packets, octets = struct.unpack_from("!II", report.body, 16)
        assert (packets, octets) == (ch.stats.packets_out, 160 * ch.stats.packets_out) == (
            10, 1600)
        ssrc, word, ext_max = struct.unpack_from("!III", report.body, 24)
        assert ssrc == 0x5151 and word & 0xFFFFFF == 5
        assert ext_max == 65530 + 59  # media() numbers from 65530: no wrap counted yet
        assert any(p.packet_type == RTCP_SDES for p in first)
        # RFC 3550 §6.4: still an SR, as RTP went out since the report before last
        second = await rtcp_received(rtcp)
        assert second[0].packet_type == RTCP_SR
        # The peer's SR: our next block carries its LSR, and reports now go where it sent.
        other = UdpPeer()
        sr = struct.pack("!BBHIIIIII", 0x80, RTCP_SR, 6, 0x5151, 0xE1234567, 0x89ABCDEF, 0,
                         0, 0)
        other.send(sr, ch.rtcp_port)
        await until(lambda: ch.stats.rtcp_packets == 1)
        later = await rtcp_received(other)
        rr = next(p for p in later if p.packet_type in (RTCP_SR, RTCP_RR))
        assert rr.packet_type == RTCP_RR  # nothing sent for two reports
        assert struct.unpack_from("!I", rr.body, 20)[0] == 0x456789AB  # LSR
        ch.close()
        bye = await rtcp_received(other)
        assert [p.packet_type for p in bye][-1] == RTCP_BYE
        other.close()
    finally:
        rtp.close()
        rtcp.close()


@pytest.mark.parametrize("how", ["sdp-address", "mux"])
async def test_rtcp_goes_where_the_sdp_said(
    engine: MediaEngine, peer: UdpPeer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setattr("media.channel.report_interval", lambda first: 0.05)
    elsewhere = UdpPeer()  # not RTP port + 1: only a=rtcp can send reports here
    try:
        ch = await engine.open_channel()
        if how == "mux":
            ch.configure(remote=peer.addr, payload_type=0, rtcp_mux=True)
            target, source_port = peer, ch.local_port  # RTCP on the RTP ports, both ends
        else:
            ch.configure(remote=peer.addr, payload_type=0, rtcp=elsewhere.addr)
            target, source_port = elsewhere, ch.rtcp_port
        loop = asyncio.get_running_loop()
        end = loop.time() + 3
        while True:
            try:
                data, src = target.sock.recvfrom(2048)
            except BlockingIOError:
                assert loop.time() < end, "no RTCP report in time"
                await asyncio.sleep(0.01)
                continue
            break
        assert src[1] == source_port
        assert parse_rtcp(data)[0].packet_type in (RTCP_SR, RTCP_RR)
    finally:
        elsewhere.close()


async def test_bad_rtcp_from_the_peer_is_counted_and_reports_go_on(
    engine: MediaEngine, peer: UdpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("media.channel.report_interval", lambda first: 0.05)
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0)
    peer.send(media(0, ssrc=0x77), ch.local_port)
    await until(lambda: ch.stats.packets_in == 1)
    short_sr = struct.pack("!BBHI", 0x80, RTCP_SR, 1, 0x77)  # framing fine, no sender info
    for bad in (b"\x80\xc8", b"\x00" * 8, short_sr):
        peer.send(bad, ch.rtcp_port)
    await until(lambda: ch.stats.bad_packets == 3)
    report = await rtcp_received(peer)  # the peer's RTCP source: symmetric RTCP
    assert report[0].packet_type in (RTCP_SR, RTCP_RR) and report[0].ssrc == ch.stats.ssrc
