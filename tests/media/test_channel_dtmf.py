"""DTMF in and out of a channel over real UDP on 127.0.0.1: RFC 4733, in-band, SIP INFO."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
from collections.abc import AsyncIterator, Iterator

import numpy as np
import numpy.typing as npt
import pytest

from media import g711
from media.channel import Channel
from media.digits import dtmf_audio
from media.engine import DtmfDetectorLike, MediaEngine
from media.events import DigitReceived, DigitSource
from media.rtp import RtpPacket, TelephoneEvent, pack_header, pack_telephone_event
from media.tones import DTMF_FREQS
from tests.support.udp import UdpPeer, until

TE = 101
PTIME = 0.02
_FREQS = (697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0)
_KEYS = {pair: digit for digit, pair in DTMF_FREQS.items()}


class FakeDetector:
    """Stands in for `media.dsp.dtmf.DtmfDetector` (same interface): per-row Goertzel
    powers of the 8 DTMF frequencies over each 20 ms block, a digit once per press."""

    def __init__(self, capacity: int = 64) -> None:
        t = np.arange(160) / 8000
        w = 2 * np.pi * np.array(_FREQS)[None, :] * t[:, None]
        self.basis = np.hstack([np.cos(w), np.sin(w)])
        self.prev: list[str | None] = [None] * capacity
        self.calls: list[list[int]] = []
        self.resets: list[int] = []
        self.moves: list[tuple[int, int]] = []

    def ensure_capacity(self, n: int) -> None:
        self.prev += [None] * (n - len(self.prev))

    def reset(self, row: int) -> None:
        self.prev[row] = None
        self.resets.append(row)

    def move(self, src: int, dst: int) -> None:
        self.prev[dst] = self.prev[src]
        self.moves.append((src, dst))

    def process(
        self, pcm: npt.NDArray[np.int16], rows: npt.NDArray[np.intp] | None
    ) -> list[tuple[int, str]]:
        idx = np.arange(len(pcm)) if rows is None else rows
        self.calls.append(idx.tolist())
        y = pcm[idx].astype(np.float64) @ self.basis
        power = y[:, :8] ** 2 + y[:, 8:] ** 2
        out = []
        for row, p in zip(idx.tolist(), power, strict=True):
            lo, hi = int(np.argmax(p[:4])), 4 + int(np.argmax(p[4:]))
            strong = p[lo] > 1e10 and p[hi] > 1e10
            digit = _KEYS.get((int(_FREQS[lo]), int(_FREQS[hi]))) if strong else None
            if digit is not None and digit != self.prev[row]:
                out.append((row, digit))
            self.prev[row] = digit
        return out


def _real_detector() -> DtmfDetectorLike | None:
    try:
        module = importlib.import_module("media.dsp.dtmf")
    except ImportError:
        return None
    detector: DtmfDetectorLike = module.DtmfDetector(capacity=64)
    return detector


class Peer(UdpPeer):
    """The far end, numbering the RFC 4733 packets it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = itertools.count(40000)


@pytest.fixture
def fake() -> FakeDetector:
    return FakeDetector()


@pytest.fixture
async def engine(fake: FakeDetector) -> AsyncIterator[MediaEngine]:
    eng = MediaEngine(port_range=(0, 0), dtmf_detector=fake)
    yield eng
    await eng.stop()


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


async def until_received(count: int, *channels: Channel) -> None:
    await until(lambda: all(c.stats.packets_in >= count for c in channels))


async def open_te_channel(engine: MediaEngine, peer: Peer, te: int | None = TE) -> Channel:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=te)
    return ch


def te_packets(code: int, seq: int, ts: int, steps: int = 5) -> list[bytes]:
    """A compliant sender's packets for one event (ends sent three times)."""
    out = []
    for i in range(steps + 2):
        end = i >= steps - 1
        payload = pack_telephone_event(code, end, 10, 160 * min(i + 1, steps))
        out.append(pack_header(TE, i == 0, seq + i, ts, 0x55) + payload)
    return out


# --- RFC 4733 in ---


async def test_rfc4733_digits_reported_once_each(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer)
    got: list[DigitReceived] = []
    ch.on_digit = got.append
    packets = te_packets(1, 100, 8000) + te_packets(11, 110, 16000) + te_packets(1, 120, 24000)
    lossy = te_packets(10, 130, 32000)
    packets += [lossy[0], lossy[4], lossy[6]]  # continuations and one end lost
    for data in packets:
        peer.send(data, ch.local_port)
    await until(lambda: ch.stats.telephone_events == len(packets))
    assert [d.digit for d in got] == ["1", "#", "1", "*"]
    assert {d.source for d in got} == {DigitSource.RFC4733}
    assert all(d.at > 0 for d in got)


async def test_failing_digit_hook_is_logged(
    engine: MediaEngine, peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    ch = await open_te_channel(engine, peer)
    calls = []

    def bad(digit: DigitReceived) -> None:
        calls.append(digit)
        raise RuntimeError("boom")

    ch.on_digit = bad
    with caplog.at_level(logging.ERROR, logger="media.channel"):
        for data in te_packets(5, 1, 1) + te_packets(6, 10, 2000):
            peer.send(data, ch.local_port)
        await until(lambda: len(calls) == 2)
    assert "on_digit hook failed" in caplog.text


# --- SIP INFO in ---


async def test_info_digits_and_merge_with_rfc4733(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer)
    got: list[DigitReceived] = []
    assert ch.receive_info_digit("5", 100) is None  # nobody listening
    ch.on_digit = got.append
    first = ch.receive_info_digit("7", 160)
    assert first is not None and first.source is DigitSource.INFO and got == [first]
    # The same press as RFC 4733 right after: reported once.
    for data in te_packets(7, 1, 1):
        peer.send(data, ch.local_port)
    await until(lambda: ch.stats.telephone_events == 7)
    assert [d.digit for d in got] == ["7"]
    ch.receive_info_digit("b", None)
    assert got[-1].digit == "B"
    for bad in ("x", "55", "", "E"):
        with pytest.raises(ValueError, match="not a DTMF digit"):
            ch.receive_info_digit(bad, None)
    ch.close()
    assert ch.receive_info_digit("1", None) is None


# --- in-band in ---


async def stream(
    engine: MediaEngine,
    ch: Channel,
    peer: Peer,
    pcm: np.ndarray,
    *,
    events: dict[int, list[bytes]] | None = None,
    tail: int = 8,
) -> None:
    """Send `pcm` as µ-law RTP frames, one per tick, ticking the engine at loop time;
    `events[i]` are telephone-event packets sent just before frame i."""
    loop = asyncio.get_running_loop()
    frames = g711.encode(0, pcm)
    count = len(pcm) // 160
    events = events or {}
    for i in range(count + tail):
        sent = 0
        for data in events.get(i, []):
            peer.send(data, ch.local_port)
            sent += 1
        if i < count:
            seq = next(peer.seq) & 0xFFFF
            data = pack_header(0, i == 0, seq, 160 * i, 0x55) + frames[160 * i : 160 * (i + 1)]
            peer.send(data, ch.local_port)
            sent += 1
        if sent:
            await until_received(ch.stats.packets_in + sent, ch)
        engine.tick(loop.time())
        await asyncio.sleep(0)


def detectors() -> list[object]:
    params: list[object] = [pytest.param("fake", id="fake-detector")]
    real = pytest.mark.skipif(_real_detector() is None, reason="media.dsp.dtmf not there yet")
    params.append(pytest.param("real", id="real-detector", marks=real))
    return params


@pytest.fixture(params=detectors())
async def any_engine(request: pytest.FixtureRequest) -> AsyncIterator[MediaEngine]:
    detector = FakeDetector() if request.param == "fake" else _real_detector()
    eng = MediaEngine(port_range=(0, 0), dtmf_detector=detector)
    yield eng
    await eng.stop()


async def test_inband_digits_reported_once_each(any_engine: MediaEngine, peer: Peer) -> None:
    engine = any_engine
    ch = await open_te_channel(engine, peer, te=None)
    got: list[DigitReceived] = []
    ch.on_digit = got.append
    pcm = np.concatenate([np.zeros(800, np.int16), dtmf_audio("159#", gap_ms=100)])
    await stream(engine, ch, peer, pcm)
    assert [d.digit for d in got] == ["1", "5", "9", "#"]
    assert {d.source for d in got} == {DigitSource.INBAND}


async def test_rfc4733_and_inband_together_are_one_press(
    any_engine: MediaEngine, peer: Peer
) -> None:
    engine = any_engine
    ch = await open_te_channel(engine, peer)
    got: list[DigitReceived] = []
    ch.on_digit = got.append
    # The phone sends "28" both ways: events at each tone's onset, and the tones in audio.
    lead = 10
    pcm = np.concatenate([np.zeros(160 * lead, np.int16), dtmf_audio("28", gap_ms=100)])
    second = lead + (100 + 100) // 20
    events = {
        lead: te_packets(2, 1000, 5000)[:1],
        lead + 2: te_packets(2, 1000, 5000)[1:],
        second: te_packets(8, 2000, 9000),
    }
    await stream(engine, ch, peer, pcm, events=events)
    assert [(d.digit, d.source) for d in got] == [
        ("2", DigitSource.RFC4733),
        ("8", DigitSource.RFC4733),
    ]
    assert ch._digits.suppressed == 2  # both tones were heard, and merged


async def test_inband_detection_only_where_wanted(
    engine: MediaEngine, fake: FakeDetector, peer: Peer
) -> None:
    listening = await open_te_channel(engine, peer, te=None)
    deaf = await open_te_channel(engine, peer, te=None)  # no on_digit: not detected
    off = await open_te_channel(engine, peer, te=None)
    got: list[DigitReceived] = []
    listening.on_digit = got.append
    off.on_digit = got.append
    off.inband_dtmf = False
    assert listening.inband_dtmf and not off.inband_dtmf
    pcm = dtmf_audio("3", tone_ms=200)
    frames = g711.encode(0, pcm)
    for i in range(len(pcm) // 160):
        for ch in (listening, deaf, off):
            data = pack_header(0, False, i, 160 * i, 7) + frames[160 * i : 160 * (i + 1)]
            peer.send(data, ch.local_port)
        await until_received(i + 1, listening, deaf, off)
        engine.tick(asyncio.get_running_loop().time())
    for _ in range(5):
        engine.tick(asyncio.get_running_loop().time())
    assert [d.digit for d in got] == ["3"]
    assert fake.calls and all(rows == [listening._slot] for rows in fake.calls)
    # Silence in, no packets: the detector is not called at all.
    fake.calls.clear()
    for _ in range(10):
        engine.tick(0.0)
    assert fake.calls == []
    listening.on_digit = None
    assert not engine._inband


async def test_hook_closing_channels_mid_tick_and_slot_moves(
    engine: MediaEngine, fake: FakeDetector, peer: Peer
) -> None:
    """A digit hook that closes its own and another channel during the detect stage:
    the tick completes, slots move afterwards, and the moved channel's detector state
    moves with it, so its key held across the move is not reported twice."""
    a, b, c = [await open_te_channel(engine, peer, te=None) for _ in range(3)]
    got: list[str] = []

    def closer(digit: DigitReceived) -> None:
        got.append(digit.digit)
        a.close()
        b.close()

    a.on_digit = closer
    c.on_digit = lambda d: got.append("c" + d.digit)
    assert fake.resets == [a._slot, c._slot]  # rows start clean when detection starts
    pcm = dtmf_audio("6", tone_ms=100)
    frames = g711.encode(0, pcm)
    loop = asyncio.get_running_loop()
    for i in range(len(pcm) // 160):
        chans = [ch for ch in (a, c) if not ch.closed]
        for ch in chans:
            peer.send(
                pack_header(0, False, i, 160 * i, 7) + frames[160 * i : 160 * (i + 1)],
                ch.local_port,
            )
        await until_received(i + 1, *chans)
        engine.tick(loop.time())
    for _ in range(5):
        engine.tick(loop.time())
    assert got == ["6", "c6"]
    assert engine.channels == [c] and c._slot == 0
    assert fake.moves == [(2, 0)] and fake.resets == [0, 2]


# --- RFC 4733 out ---


def tick_collect(engine: MediaEngine, peer: Peer, ticks: int) -> list[RtpPacket]:
    out = []
    for i in range(ticks):
        engine.tick(i * PTIME)
        out += peer.drain()
    return out


async def wait_packets(peer: Peer, engine: MediaEngine, ticks: int) -> list[RtpPacket]:
    """Tick `ticks` times; each tick the channel sends the peer one packet."""
    loop = asyncio.get_running_loop()
    packets: list[RtpPacket] = []
    for i in range(ticks):
        engine.tick(i * PTIME)
        end = loop.time() + 2
        while len(packets) <= i:
            assert loop.time() < end, "packet not received"
            await asyncio.sleep(0.001)
            packets += peer.drain()
    return packets


async def test_send_dtmf_as_rfc4733_events(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer)
    await wait_packets(peer, engine, 2)  # the audio stream is running
    done = ch.send_dtmf("1-#", tone_ms=60, gap_ms=100, dash_ms=40)
    packets = await wait_packets(peer, engine, 30)
    assert done.done() and done.result() is True
    seqs = [p.header.sequence_number for p in packets]
    tss = [p.header.timestamp for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert {p.header.ssrc for p in packets} == {ch.stats.ssrc}
    layout = ""
    for p in packets:
        if p.header.payload_type == 0:
            layout += "."
            assert len(p.payload) == 160
        else:
            assert p.header.payload_type == TE and len(p.payload) == 4
            layout += "E" if TelephoneEvent.parse(p.payload).end else "x"
    # 60 ms tone = 3 packets (2 + end), 2 more ends, gap 100 ms = 5 ticks (2 of them the
    # redundant ends), dash 2 ticks.
    assert layout.startswith("xxEEE.....xxEEE.")
    events = [(p, TelephoneEvent.parse(p.payload)) for p in packets if p.header.payload_type == TE]
    first, second = events[:5], events[5:]
    for group, code, start in ((first, 1, 0), (second, 11, 10)):
        assert [e.event for _, e in group] == [code] * 5
        assert [e.duration for _, e in group] == [160, 320, 480, 480, 480]
        assert [e.volume for _, e in group] == [10] * 5
        assert [p.header.marker for p, _ in group] == [True] + [False] * 4
        # The event's timestamp is that of its first tick, for all its packets.
        assert {p.header.timestamp for p, _ in group} == {tss[start]}
    # Audio timestamps run on as if the events had been audio.
    audio_ts = [(i, p.header.timestamp) for i, p in enumerate(packets) if layout[i] == "."]
    assert all(t == tss[0] + 160 * i for i, t in audio_ts)
    assert not engine._te_tx


async def test_send_dtmf_waits_while_on_hold(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer)
    ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=TE, send=False)
    done = ch.send_dtmf("4", tone_ms=40)
    tick_collect(engine, peer, 10)
    assert not done.done()
    ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=TE)
    packets = await wait_packets(peer, engine, 4)
    assert [p.header.payload_type for p in packets] == [TE] * 4
    assert done.result() is True


async def test_stop_audio_interrupts_rfc4733_with_end_packets(
    engine: MediaEngine, peer: Peer
) -> None:
    ch = await open_te_channel(engine, peer)
    done = ch.send_dtmf("123")
    queued = ch.send_dtmf("4")
    packets = await wait_packets(peer, engine, 2)
    ch.stop_audio()
    await asyncio.sleep(0)
    assert done.result() is False and queued.result() is False
    packets += await wait_packets(peer, engine, 6)
    events = [TelephoneEvent.parse(p.payload) for p in packets if p.header.payload_type == TE]
    # The digit under way is closed with three end packets, nothing else is sent.
    assert [(e.event, e.end) for e in events] == [(1, False)] * 2 + [(1, True)] * 3
    assert [p.header.payload_type for p in packets[5:]] == [0, 0, 0]
    assert not engine._te_tx and not ch._dtmf_out


async def test_cancelled_and_closed(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer)
    waiting = ch.send_dtmf("1")
    later = ch.send_dtmf("2")
    later.cancel()
    await asyncio.sleep(0)
    assert list(ch._dtmf_out) and len(ch._dtmf_out) == 1
    ch.close()
    assert waiting.result() is False
    assert not engine._te_tx
    closed = ch.send_dtmf("3")
    assert closed.result() is False


async def test_renegotiation_without_te_drops_pending_events(
    engine: MediaEngine, peer: Peer
) -> None:
    ch = await open_te_channel(engine, peer)
    done = ch.send_dtmf("99")
    ch.configure(remote=peer.addr, payload_type=0)
    assert done.result() is False and not engine._te_tx


async def test_send_dtmf_rejects_bad_strings(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer)
    for te in (TE, None):
        ch.configure(remote=peer.addr, payload_type=0, telephone_event_pt=te)
        with pytest.raises(ValueError, match=r"DTMF string '12x' has 'x'"):
            ch.send_dtmf("12x")
        with pytest.raises(ValueError, match="tone_ms"):
            ch.send_dtmf("1", tone_ms=0)
    assert (await ch.send_dtmf(" ")) is True


# --- in-band out ---


def tone_powers(pcm: np.ndarray) -> dict[float, float]:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    return {f: float(spectrum[np.argmin(np.abs(freqs - f))]) for f in _FREQS}


async def test_send_dtmf_inband_without_te(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer, te=None)
    done = ch.send_dtmf("5#", tone_ms=100, gap_ms=100)
    packets = await wait_packets(peer, engine, 18)
    assert done.result() is True
    assert {p.header.payload_type for p in packets} == {0}
    audio = g711.decode(0, b"".join(p.payload for p in packets))
    loud = np.flatnonzero(np.abs(audio) > 1000)
    tones = [audio[loud[0] : loud[0] + 800], audio[loud[-1] - 799 : loud[-1] + 1]]
    for pcm, digit in zip(tones, "5#", strict=True):
        powers = tone_powers(pcm)
        low, high = DTMF_FREQS[digit]
        others = [p for f, p in powers.items() if f not in (low, high)]
        assert min(powers[low], powers[high]) > 100 * max(others)
    # 100 ms gap of silence between the tones.
    quiet = np.abs(audio[loud[0] + 800 : loud[-1] - 799]) < 100
    assert quiet.mean() > 0.95 and 700 <= quiet.size <= 900


async def test_stop_audio_interrupts_inband(engine: MediaEngine, peer: Peer) -> None:
    ch = await open_te_channel(engine, peer, te=None)
    done = ch.send_dtmf("123456")
    tick_collect(engine, peer, 3)
    ch.stop_audio()
    assert done.result() is False and not ch.is_playing


# --- the real clock, end to end ---


async def test_real_clock_dtmf_out_and_in(any_engine: MediaEngine) -> None:
    """Two channels on a running engine talk to each other: one sends DTMF, the other
    hears it, as RFC 4733 events and then as tones."""
    engine = any_engine
    await engine.start()
    try:
        a = await engine.open_channel()
        b = await engine.open_channel()
        a.configure(remote=("127.0.0.1", b.local_port), payload_type=0, telephone_event_pt=TE)
        b.configure(remote=("127.0.0.1", a.local_port), payload_type=0, telephone_event_pt=TE)
        got: list[DigitReceived] = []
        b.on_digit = got.append
        assert await asyncio.wait_for(a.send_dtmf("12*#", gap_ms=60), timeout=5) is True
        await until(lambda: len(got) == 4)
        assert [d.digit for d in got] == ["1", "2", "*", "#"]
        a.configure(remote=("127.0.0.1", b.local_port), payload_type=0)  # no te: in-band
        assert await asyncio.wait_for(a.send_dtmf("90"), timeout=5) is True
        await until(lambda: len(got) == 6)
        assert [(d.digit, d.source) for d in got[4:]] == [
            ("9", DigitSource.INBAND),
            ("0", DigitSource.INBAND),
        ]
    finally:
        await engine.stop()
