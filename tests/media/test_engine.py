"""MediaEngine driven by `tick(now)` (no timer task), sending to a real UDP peer."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Sequence

import numpy as np
import pytest

from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from media.rtp import RtpPacket
from tests.support.udp import UdpPeer

PTIME = 0.02


def run_ticks(engine: MediaEngine, count: int, start: float = 0.0) -> None:
    for i in range(count):
        engine.tick(start + i * PTIME)


def tone(seconds: float, freq: float = 440.0, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def quantised(pcm: np.ndarray, pt: int = g711.PCMU) -> np.ndarray:
    return g711.decode(pt, g711.encode(pt, pcm))


def decode_stream(packets: Sequence[RtpPacket], pt: int = g711.PCMU) -> np.ndarray:
    return g711.decode(pt, b"".join(p.payload for p in packets))


async def configured(engine: MediaEngine, peer: UdpPeer, pt: int = g711.PCMU) -> Channel:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=pt, latch=False)
    return ch


async def test_silence_stream_with_continuous_seq_and_ts(
    engine: MediaEngine, peer: UdpPeer
) -> None:
    ch = await configured(engine, peer)
    run_ticks(engine, 10)
    packets = peer.drain()
    assert len(packets) == 10
    seqs = [p.header.sequence_number for p in packets]
    tss = [p.header.timestamp for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert all((b - a) % 2**32 == 160 for a, b in itertools.pairwise(tss))
    assert [p.header.marker for p in packets] == [True] + [False] * 9
    assert {p.header.ssrc for p in packets} == {ch.stats.ssrc}
    assert all(p.payload == b"\xff" * 160 and p.header.payload_type == 0 for p in packets)
    assert ch.stats.packets_out == 10 and ch.stats.bytes_out == 10 * 172
    assert engine.stats.ticks == 10 and engine.stats.channels == 1


async def test_unconfigured_channel_sends_nothing(engine: MediaEngine, peer: UdpPeer) -> None:
    await engine.open_channel()
    run_ticks(engine, 3)
    assert peer.drain() == []


@pytest.mark.parametrize("pt", [g711.PCMU, g711.PCMA])
async def test_play_sends_the_audio_exactly(engine: MediaEngine, peer: UdpPeer, pt: int) -> None:
    ch = await configured(engine, peer, pt)
    src = tone(0.31)  # not a whole number of frames: the last one is padded
    fut = ch.play(src)
    assert ch.is_playing
    run_ticks(engine, 15)
    assert not fut.done()
    run_ticks(engine, 2)
    assert fut.done() and fut.result() is True
    assert not ch.is_playing
    run_ticks(engine, 2)
    packets = peer.drain()
    assert len(packets) == 19 and {p.header.payload_type for p in packets} == {pt}
    audio = decode_stream(packets, pt)
    frames = -(-len(src) // 160)
    np.testing.assert_array_equal(audio[: len(src)], quantised(src, pt))
    silence = quantised(np.zeros(1, np.int16), pt)[0]
    assert (audio[len(src) :] == silence).all()
    assert frames == 16 and len(audio) == 19 * 160


async def test_queued_plays_follow_each_other(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await configured(engine, peer)
    a, b = tone(0.1, 300), tone(0.06, 1000)
    fa, fb = ch.play(a), ch.play(b)
    run_ticks(engine, 9)
    assert fa.result() is True and fb.result() is True
    audio = decode_stream(peer.drain())
    np.testing.assert_array_equal(audio[:800], quantised(a))
    np.testing.assert_array_equal(audio[800:1280], quantised(b))


async def test_stop_audio_and_close_resolve_false(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await configured(engine, peer)
    f1, f2 = ch.play(tone(1)), ch.play(tone(1))
    run_ticks(engine, 3)
    ch.stop_audio()
    assert f1.result() is False and f2.result() is False
    run_ticks(engine, 2)
    assert decode_stream(peer.drain()[3:]).tolist() == [0] * 320
    f3 = ch.play(tone(1))
    ch.close()
    ch.close()  # idempotent
    assert f3.result() is False and ch.closed
    assert ch.play(tone(1)).result() is False
    assert engine.stats.channels == 0
    run_ticks(engine, 2)
    assert peer.drain() == []


async def test_cancelled_play_is_skipped(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await configured(engine, peer)
    f1 = ch.play(tone(1, 300))
    f2 = ch.play(tone(0.04, 1000))
    f1.cancel()
    await asyncio.sleep(0)  # the done callback runs on the loop
    run_ticks(engine, 3)
    assert f2.result() is True
    np.testing.assert_array_equal(decode_stream(peer.drain())[:320], quantised(tone(0.04, 1000)))


async def test_play_rejects_bad_audio(engine: MediaEngine) -> None:
    ch = await engine.open_channel()
    with pytest.raises(TypeError):
        ch.play(np.zeros(160, np.float32))
    with pytest.raises(ValueError):
        ch.play(np.zeros((2, 2, 2), np.int16))
    assert ch.play(np.zeros(0, np.int16)).result() is True


async def test_hold_and_resume(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await configured(engine, peer)
    fut = ch.play(tone(0.2))
    run_ticks(engine, 3)
    before = peer.drain()
    ch.configure(remote=peer.addr, payload_type=0, send=False, latch=False)
    run_ticks(engine, 5)
    assert peer.drain() == [] and not fut.done()  # playback pauses while on hold
    ch.configure(remote=peer.addr, payload_type=0, latch=False)
    run_ticks(engine, 3)
    after = peer.drain()
    assert after[0].header.marker and not any(p.header.marker for p in after[1:])
    last, first = before[-1].header, after[0].header
    assert (first.sequence_number - last.sequence_number) % 65536 == 1
    assert (first.timestamp - last.timestamp) % 2**32 == 160 * 6  # time ran on during hold
    run_ticks(engine, 10)
    assert fut.result() is True
    audio = decode_stream(before + after + peer.drain())
    np.testing.assert_array_equal(audio[:1600], quantised(tone(0.2)))


async def test_zero_address_means_hold(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await configured(engine, peer)
    ch.configure(remote=("0.0.0.0", peer.addr[1]), payload_type=0)
    assert not ch.sending
    run_ticks(engine, 2)
    assert peer.drain() == []


async def test_unsupported_payload_type(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await engine.open_channel()
    with pytest.raises(ValueError, match="unsupported payload type 18"):
        ch.configure(remote=peer.addr, payload_type=18)


async def test_mixed_codecs_and_slot_moves(engine: MediaEngine) -> None:
    peers = [UdpPeer() for _ in range(5)]
    try:
        chans = [
            await configured(engine, p, g711.PCMA if i % 2 else g711.PCMU)
            for i, p in enumerate(peers)
        ]
        srcs = [tone(0.2, 200 + 150 * i) for i in range(5)]
        for ch, src in zip(chans, srcs, strict=True):
            ch.play(src)
        run_ticks(engine, 4)
        chans[1].close()  # the last channel moves into slot 1
        run_ticks(engine, 7)
        for i in (0, 2, 3, 4):
            packets = peers[i].drain()
            pt = g711.PCMA if i % 2 else g711.PCMU
            assert len(packets) == 11 and {p.header.ssrc for p in packets} == {chans[i].stats.ssrc}
            seqs = [p.header.sequence_number for p in packets]
            assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
            audio = decode_stream(packets, pt)
            np.testing.assert_array_equal(audio[:1600], quantised(srcs[i], pt))
            assert len(set(audio[1600:].tolist())) == 1  # then silence
        assert len(peers[1].drain()) == 4
    finally:
        for p in peers:
            p.close()


async def test_many_channels_grow_capacity(engine: MediaEngine, peer: UdpPeer) -> None:
    chans = [await configured(engine, peer) for _ in range(70)]
    run_ticks(engine, 2)
    assert len(peer.drain()) == 140
    for ch in chans[::2]:
        ch.close()
    run_ticks(engine, 1)
    assert len(peer.drain()) == 35
    assert engine.stats.channels == 35


async def test_detect_hook_sees_decoded_input(engine: MediaEngine, peer: UdpPeer) -> None:
    ch = await configured(engine, peer)
    seen: list[np.ndarray] = []

    def hook(channels: Sequence[Channel], pcm_in: np.ndarray) -> None:
        assert list(channels) == [ch] and pcm_in.shape == (1, 160)
        seen.append(pcm_in[0].copy())

    engine.add_detect_hook(hook)
    src = tone(0.1, 700)
    payload = g711.encode(0, src)
    for i in range(5):
        ch._on_rtp(bytes(RtpPacket.parse(_pkt(i, payload[i * 160 : (i + 1) * 160]))), peer.addr)
    run_ticks(engine, 8)
    assert len(seen) == 8
    got = np.concatenate(seen[2:7])  # 60 ms playout delay: frames start on the third tick
    np.testing.assert_array_equal(got, quantised(src))
    assert not seen[0].any() and not seen[7].any()
    engine.remove_detect_hook(hook)
    run_ticks(engine, 1)
    assert len(seen) == 8


def _pkt(i: int, payload: bytes, pt: int = 0, ssrc: int = 77) -> bytes:
    from media.rtp import pack_header

    return pack_header(pt, i == 0, 1000 + i, 5000 + 160 * i, ssrc) + payload


async def test_failing_hook_and_hook_closing_a_channel(engine: MediaEngine, peer: UdpPeer) -> None:
    a = await configured(engine, peer)
    b = await configured(engine, peer)

    def bad(channels: Sequence[Channel], pcm_in: np.ndarray) -> None:
        raise RuntimeError("boom")

    def closer(channels: Sequence[Channel], pcm_in: np.ndarray) -> None:
        if engine.stats.ticks == 2:
            a.close()

    engine.add_detect_hook(bad)
    engine.add_detect_hook(closer)
    run_ticks(engine, 4)
    assert a.closed and engine.stats.channels == 1
    packets = peer.drain()
    assert sum(p.header.ssrc == b.stats.ssrc for p in packets) == 4
    assert sum(p.header.ssrc == a.stats.ssrc for p in packets) == 1


async def test_clock_task_ticks_and_skips_when_blocked() -> None:
    engine = MediaEngine(port_range=(0, 0))
    await engine.start()
    try:
        await asyncio.sleep(0.1)
        assert engine.stats.ticks > 0
        time.sleep(0.2)  # block the loop for ten ptimes: the clock must skip, not burst
        ticks = engine.stats.ticks
        await asyncio.sleep(0.05)
        assert engine.stats.skipped_ticks >= 5
        assert engine.stats.ticks - ticks < 5
    finally:
        await engine.stop()


async def test_port_range_even_rtp_and_rtcp_next() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    base = probe.getsockname()[1] & ~1
    probe.close()
    base = min(max(base, 30000), 60000)
    engine = MediaEngine(port_range=(base, base + 99))
    try:
        chans = [await engine.open_channel() for _ in range(3)]
        ports = [c.local_port for c in chans]
        assert all(p % 2 == 0 and base <= p <= base + 99 for p in ports)
        assert len(set(ports)) == 3
        assert all(c.rtcp_port == c.local_port + 1 for c in chans)
    finally:
        await engine.stop()


async def test_ephemeral_ports() -> None:
    engine = MediaEngine(port_range=(0, 0))
    try:
        ch = await engine.open_channel()
        assert ch.local_port > 0 and ch.local_host == "127.0.0.1"
    finally:
        await engine.stop()
    assert ch.closed


def test_bad_port_range() -> None:
    with pytest.raises(ValueError):
        MediaEngine(port_range=(5, 2))
