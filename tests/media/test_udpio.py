"""The engine's RTP receive set (`media.udpio`), both the compiled kernel and the Python
reference, on real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from media import g711, jitter, rtcp, udpio
from media.engine import MediaEngine
from media.rtp import RtpPacket, pack_header
from tests.media import _streams
from tests.support.udp import UdpPeer, until


@pytest.fixture
def kernel(rtp_kernel: str) -> str:
    """The receive path under test (see `rtp_kernel` in conftest)."""
    return rtp_kernel


Bound = Callable[..., socket.socket]


@pytest.fixture
def bound() -> Iterator[Bound]:
    """Make non-blocking UDP sockets on loopback; every one is closed after the test."""
    made: list[socket.socket] = []

    def make(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        made.append(sock)
        sock.bind((host, 0))
        sock.setblocking(False)
        return sock

    yield make
    for sock in made:
        sock.close()


class Sink:
    """A receive callback that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []

    def __call__(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))


def wait_readable(rx: Any, timeout: float = 2.0) -> None:
    import select

    ready, _, _ = select.select([rx.fileno()], [], [], timeout)
    assert ready, "the receive set never became readable"


def test_each_datagram_reaches_its_sockets_callback_with_its_source(
    kernel: str, bound: Bound
) -> None:
    rx = udpio.RtpSockets()
    a, b, peer = bound(), bound(), bound()
    sink_a, sink_b = Sink(), Sink()
    rx.add(a, sink_a)
    rx.add(b, sink_b)
    peer.sendto(b"one", a.getsockname())
    peer.sendto(b"two", b.getsockname())
    peer.sendto(b"three", a.getsockname())
    wait_readable(rx)
    assert rx.drain() == 3
    source = peer.getsockname()
    assert sink_a.got == [(b"one", source), (b"three", source)]
    assert sink_b.got == [(b"two", source)]
    assert rx.datagrams == 3 and len(rx) == 2
    assert rx.drain() == 0  # nothing left: the set is not readable any more


def test_the_address_follows_a_new_source(kernel: str, bound: Bound) -> None:
    rx = udpio.RtpSockets()
    a, p1, p2 = bound(), bound(), bound()
    sink = Sink()
    rx.add(a, sink)
    for peer in (p1, p2, p1):
        peer.sendto(b"x", a.getsockname())
    wait_readable(rx)
    rx.drain()
    assert [addr for _, addr in sink.got] == [p1.getsockname(), p2.getsockname(), p1.getsockname()]


def test_one_flooded_socket_gets_at_most_its_share_per_drain(kernel: str, bound: Bound) -> None:
    rx = udpio.RtpSockets()
    a, b, peer = bound(), bound(), bound()
    sink_a, sink_b = Sink(), Sink()
    rx.add(a, sink_a)
    rx.add(b, sink_b)
    for i in range(40):
        peer.sendto(bytes([i]), a.getsockname())
    peer.sendto(b"b", b.getsockname())
    wait_readable(rx)
    assert rx.drain(max_per_socket=32) == 33
    assert len(sink_a.got) == 32 and len(sink_b.got) == 1
    assert rx.drain(max_per_socket=32) == 8
    assert [d for d, _ in sink_a.got] == [bytes([i]) for i in range(40)]  # in order, none lost


def test_a_large_datagram_arrives_whole(kernel: str, bound: Bound) -> None:
    rx = udpio.RtpSockets()
    a, peer = bound(), bound()
    sink = Sink()
    rx.add(a, sink)
    big = bytes(range(256)) * 36  # 9216 bytes: a jumbo frame's worth
    peer.sendto(big, a.getsockname())
    wait_readable(rx)
    rx.drain()
    assert sink.got == [(big, peer.getsockname())] and rx.truncated == 0


def test_a_callback_that_removes_its_socket_gets_nothing_more(kernel: str, bound: Bound) -> None:
    rx = udpio.RtpSockets()
    a, peer = bound(), bound()
    got: list[bytes] = []

    def once(data: bytes, addr: Any) -> None:
        got.append(data)
        rx.remove(a)

    rx.add(a, once)
    for _ in range(5):
        peer.sendto(b"p", a.getsockname())
    wait_readable(rx)
    rx.drain()
    assert got == [b"p"] and len(rx) == 0


def test_a_reused_descriptor_is_not_delivered_to_the_old_callback(
    kernel: str, bound: Bound
) -> None:
    rx = udpio.RtpSockets()
    old, peer = bound(), bound()
    old_sink, new_sink = Sink(), Sink()
    rx.add(old, old_sink)
    fd = old.fileno()
    rx.remove(old)
    old.close()
    new = bound()
    assert new.fileno() == fd  # the lowest free descriptor comes straight back
    rx.add(new, new_sink)
    peer.sendto(b"new", new.getsockname())
    wait_readable(rx)
    rx.drain()
    assert old_sink.got == [] and new_sink.got == [(b"new", peer.getsockname())]


def test_a_failing_callback_is_logged_and_the_others_still_get_theirs(
    kernel: str, bound: Bound, caplog: pytest.LogCaptureFixture
) -> None:
    rx = udpio.RtpSockets()
    a, b, peer = bound(), bound(), bound()
    sink = Sink()

    def broken(data: bytes, addr: Any) -> None:
        raise RuntimeError("channel bug")

    rx.add(a, broken)
    rx.add(b, sink)
    peer.sendto(b"1", a.getsockname())
    peer.sendto(b"2", a.getsockname())
    peer.sendto(b"3", b.getsockname())
    wait_readable(rx)
    with caplog.at_level(logging.ERROR):
        assert rx.drain() == 3
    assert sink.got == [(b"3", peer.getsockname())]
    assert sum("receive callback failed" in r.getMessage() for r in caplog.records) == 2


def test_adding_a_socket_twice_is_refused(kernel: str, bound: Bound) -> None:
    rx = udpio.RtpSockets()
    a = bound()
    rx.add(a, Sink())
    with pytest.raises(ValueError, match="already in the receive set"):
        rx.add(a, Sink())
    rx.remove(a)
    rx.remove(a)  # idempotent


def test_ipv6_sources_have_the_shape_recvfrom_gives(kernel: str, bound: Bound) -> None:
    a, peer = bound(socket.AF_INET6, "::1"), bound(socket.AF_INET6, "::1")
    rx = udpio.RtpSockets()
    sink = Sink()
    rx.add(a, sink)
    peer.sendto(b"v6", a.getsockname())
    wait_readable(rx)
    rx.drain()
    assert sink.got == [(b"v6", peer.getsockname())]  # (host, port, flowinfo, scope_id)


# --- through the engine ---


async def test_engine_receives_without_its_clock_and_stops_reading_closed_channels(
    kernel: str, peer: UdpPeer
) -> None:
    engine = MediaEngine(port_range=(0, 0))
    a, b = await engine.open_channel(), await engine.open_channel()
    for ch in (a, b):
        ch.configure(remote=peer.addr, payload_type=g711.PCMU, latch=False)
    frame = g711.encode(g711.PCMU, np.full(160, 1000, np.int16))
    for seq in range(3):
        peer.send(pack_header(g711.PCMU, False, seq, 160 * seq, 0x1234) + frame, a.local_port)
    await until(lambda: a.stats.packets_in == 3)  # delivered by the loop, no tick ran
    assert len(engine._receiver) == 2
    a.close()
    assert len(engine._receiver) == 1
    b.close()
    assert len(engine._receiver) == 0 and engine._reader_loop is None


async def test_engine_sends_to_a_named_destination_through_the_resolver(
    kernel: str, peer: UdpPeer
) -> None:
    engine = MediaEngine(port_range=(0, 0))
    ch = await engine.open_channel()
    ch.configure(remote=("localhost", peer.addr[1]), payload_type=g711.PCMU, latch=False)
    for i in range(3):
        engine.tick(i * 0.02)
    packets: list[RtpPacket] = []
    await until(lambda: bool(packets.extend(peer.drain())) or len(packets) == 3)
    assert [p.header.payload_type for p in packets] == [g711.PCMU] * 3
    assert engine.stats.send_errors == 0
    ch.close()


# --- the compiled fast path against the Python path ---


async def engine_on(kernel: str, monkeypatch: pytest.MonkeyPatch) -> MediaEngine:
    # An engine made while the chosen receive path is in place keeps it.
    with monkeypatch.context() as patch:
        if kernel == "python":
            patch.setattr(udpio, "RtpSockets", udpio.PyRtpSockets)
            patch.setattr(udpio, "RtpStream", None)
            patch.setattr(udpio, "JitterBuffer", jitter.JitterBuffer)
            patch.setattr(udpio, "ReceptionStats", rtcp.ReceptionStats)
            patch.setattr(udpio, "gather", udpio.py_gather)
        engine = MediaEngine(port_range=(0, 0))
        channel = await engine.open_channel()
        channel.configure(remote=("127.0.0.1", 9), payload_type=g711.PCMU,
                          telephone_event_pt=101)
        return engine


def extras(rng: random.Random, seq: int, ts: int, ssrc: int) -> list[bytes]:
    # What the fast path must leave to the channel: RFC 4733 events, RTCP on the RTP
    # port, unknown payload types, garbage, and now and then a packet of another length
    # (from then on the channel repacketises everything).
    out = []
    roll = rng.random()
    if roll < 0.03:
        out.append(pack_header(101, True, seq, ts, ssrc) + bytes([5, 10, 0, 160]))
    elif roll < 0.04:
        out.append(bytes([0x81, 201, 0, 7]) + ssrc.to_bytes(4, "big") + bytes(24))
    elif roll < 0.05:
        out.append(pack_header(18, False, seq, ts, ssrc) + bytes(20))
    elif roll < 0.06:
        out.append(b"\x80")
    elif roll < 0.062:
        out.append(pack_header(g711.PCMU, False, seq, ts, ssrc) + bytes(80))
    return out


def channel_view(engine: MediaEngine) -> tuple[Any, ...]:
    ch = engine.channels[0]
    s, rx = ch.stats, ch._rx_stats
    rx_fields = None if rx is None else (
        rx.ssrc, rx.base_seq, rx.max_seq, rx.cycles, rx.received, rx.jitter, rx.transit)
    return (s.packets_in, s.bytes_in, s.bad_packets, s.rtcp_packets, s.telephone_events,
            s.latched_addr, s.remote_ssrc, ch._jb.state, len(ch._jb), ch._jb.stats, rx_fields,
            ch._repack is not None)


@pytest.mark.parametrize("seed", range(12))
async def test_the_compiled_fast_path_receives_as_the_python_path_does(
    seed: int, peer: UdpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One far end sends the same datagrams to a channel on each path, tick by tick (the
    # streams of tests/media/_streams.py plus what the fast path must leave alone); both
    # channels must hear the same audio and end each tick in the same state. Arrival
    # times differ by microseconds, so the jitter estimates are compared loosely.
    if udpio.KERNEL != "c":
        pytest.fail(f"the compiled RTP I/O is not built ({udpio._compiled_error}): run make")
    engines = [await engine_on("c", monkeypatch), await engine_on("python", monkeypatch)]
    assert engines[0].channels[0]._fast is not None and engines[1].channels[0]._fast is None
    assert engines[0]._pop_frames is not udpio.py_gather
    assert engines[1]._pop_frames is udpio.py_gather
    rng = random.Random(seed)
    try:
        for tick, step in enumerate(_streams.plan(seed, ticks=250)):
            datagrams = []
            for seq, ts, ssrc, marker, n in step:
                datagrams.append(pack_header(g711.PCMU, marker, seq, ts, ssrc)
                                 + _streams.payload(n))
                datagrams.extend(extras(rng, seq, ts, ssrc))
            for data in datagrams:
                for engine in engines:
                    peer.send(data, engine.channels[0].local_port)
            views = []
            for engine in engines:
                engine._drain()
                engine.render(tick * 0.02)
                views.append((engine._pcm_in[0].tobytes(), channel_view(engine)))
            (pcm_c, view_c), (pcm_py, view_py) = views
            assert pcm_c == pcm_py, f"tick {tick}"
            assert view_c[:-2] == view_py[:-2] and view_c[-1] == view_py[-1], f"tick {tick}"
            if view_c[-2] is not None:
                assert view_c[-2][:-2] == view_py[-2][:-2]
                assert view_c[-2][-2] == pytest.approx(view_py[-2][-2], abs=80)
    finally:
        for engine in engines:
            await engine.stop()


class FakeChannel:
    """What the tick's pops read of a channel."""

    def __init__(self, slot: int, detect: bool) -> None:
        self._slot = slot
        self._silence_in = bytes([slot]) * 160
        self._detect_inband = detect


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_pops_match_the_python_ones(seed: int) -> None:
    # Buffers in every state (buffering, playing, lost, idle), of both kinds in one dict
    # (the compiled pops take either), with and without in-band detection.
    if udpio.KERNEL != "c":
        pytest.fail(f"the compiled RTP I/O is not built ({udpio._compiled_error}): run make")
    from media import _udpio

    rng = random.Random(seed)
    n = 12
    plans = [_streams.plan(seed * 100 + i, ticks=120) for i in range(n)]
    kinds = [rng.choice([_udpio.JitterBuffer, jitter.JitterBuffer]) for _ in range(n)]
    detects = [rng.random() < 0.5 for _ in range(n)]
    sides = []
    for _ in range(2):
        channels = [FakeChannel(i, detect) for i, detect in enumerate(detects)]
        sides.append((channels, [kind() for kind in kinds], {}, [b""] * n))
    for tick in range(120):
        detecting = tick % 3 != 0
        out = []
        for (channels, jbs, rx, frames), pops in zip(sides, (_udpio.gather, udpio.py_gather),
                                                     strict=True):
            for i, (channel, jb) in enumerate(zip(channels, jbs, strict=True)):
                for seq, ts, ssrc, _, k in plans[i][tick]:
                    jb.push(seq, ts, ssrc, _streams.payload(k))
                    rx[channel] = jb
            idle, rows = pops(rx, frames, detecting)
            for channel in idle or ():
                del rx[channel]
            out.append(([c._slot for c in idle or ()], rows, list(frames),
                        [c._slot for c in rx]))
        assert out[0] == out[1], f"tick {tick}"
