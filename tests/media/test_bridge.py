"""Two-party bridges in the engine: far ends on real UDP sockets, audio judged by ear.

Each far end (a `Peer`) sends its own tone into its leg, one packet per tick; the test
ticks the engine with `tick(now)` once the packets are in and decodes what each far end
received.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import numpy as np
import numpy.typing as npt
import pytest

from media import g711
from media.channel import Channel
from media.dsp.dtmf import detect_digits
from media.engine import MediaEngine
from media.errors import BridgeError, MediaError
from media.events import DigitReceived, DigitSource
from media.rtp import RtpPacket, TelephoneEvent, pack_header, pack_telephone_event
from media.telephone_event import TelephoneEventRelay
from media.tones import dtmf_tone, tone
from tests.support import g711 as ref
from tests.support.udp import UdpPeer, until

PTIME = 0.02
AMP = 4000
A_HZ, B_HZ, X_HZ, Y_HZ = 697, 1209, 1477, 852
PROMPT_HZ = 1000
TE_A, TE_B = 101, 96  # each leg's own telephone-event payload type
WINDOW = 1600  # 0.2 s


class Peer(UdpPeer):
    """A far end: sends `freq` (or the frames it is given) in its codec, one packet per
    tick, and keeps every packet it receives."""

    def __init__(self, freq: float | None, pt: int, te_pt: int | None) -> None:
        super().__init__()
        self.freq = freq
        self.pt = pt
        self.te_pt = te_pt
        self.port = 0  # the engine channel's RTP port
        self.seq = itertools.count(1000)
        self.frames = 0
        self.sent = 0  # packets of any kind
        self.ssrc = 0x1000 + (freq or 0)
        self.got: list[RtpPacket] = []

    def frame(self) -> npt.NDArray[np.int16]:
        t = (self.frames * 160 + np.arange(160)) / 8000
        assert self.freq is not None
        return np.rint(AMP * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)

    def send_audio(self, pcm: npt.NDArray[np.int16] | None = None) -> None:
        pcm = self.frame() if pcm is None else pcm
        self.send_codes(g711.encode(self.pt, pcm))

    def send_codes(self, payload: bytes) -> None:
        header = pack_header(self.pt, self.frames == 0, next(self.seq) & 0xFFFF,
                             160 * self.frames, self.ssrc)
        self.send(header + payload, self.port)
        self.frames += 1
        self.sent += 1

    def send_event(self, payload: bytes, marker: bool, ts: int) -> None:
        assert self.te_pt is not None
        self.send(pack_header(self.te_pt, marker, next(self.seq) & 0xFFFF, ts, self.ssrc)
                  + payload, self.port)
        self.sent += 1

    def collect(self) -> None:
        self.got += self.drain()

    def media(self) -> list[RtpPacket]:
        return [p for p in self.got if p.header.payload_type == self.pt]

    def audio(self) -> npt.NDArray[np.int16]:
        return g711.decode(self.pt, b"".join(p.payload for p in self.media()))

    def events(self) -> list[tuple[RtpPacket, TelephoneEvent]]:
        return [(p, TelephoneEvent.parse(p.payload)) for p in self.got
                if p.header.payload_type != self.pt]


Step = Callable[[int], None]


class Rig:
    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine
        self.legs: dict[Channel, Peer] = {}
        self.now = 0.0

    async def leg(
        self,
        freq: float | None,
        *,
        pt: int = g711.PCMU,
        te_pt: int | None = None,
        send: bool = True,
        receive: bool = True,
    ) -> Channel:
        peer = Peer(freq, pt, te_pt)
        ch = await self.engine.open_channel()
        ch.configure(remote=peer.addr, payload_type=pt, telephone_event_pt=te_pt,
                     send=send, receive=receive, latch=False)
        peer.port = ch.local_port
        self.legs[ch] = peer
        return ch

    def peer(self, ch: Channel) -> Peer:
        return self.legs[ch]

    async def run(self, ticks: int, step: Step | None = None) -> None:
        """Per tick: every open leg's peer with a tone sends a frame (and `step(i)` what
        else it wants), the packets are awaited, the engine ticks, the peers collect."""
        for i in range(ticks):
            for ch, peer in self.legs.items():
                if not ch.closed and peer.freq is not None:
                    peer.send_audio()
            if step is not None:
                step(i)
            await until(lambda: all(
                ch.closed or ch.stats.packets_in >= peer.sent for ch, peer in self.legs.items()))
            self.engine.tick(self.now)
            self.now += PTIME
            for peer in self.legs.values():
                peer.collect()

    async def listen(self, ticks: int = 14) -> dict[Channel, npt.NDArray[np.int16]]:
        """Settle (jitter buffers fill), then what each far end hears for `ticks`."""
        await self.run(5)
        for peer in self.legs.values():
            peer.got.clear()
        await self.run(ticks)
        return {ch: peer.audio() for ch, peer in self.legs.items()}

    def close(self) -> None:
        for peer in self.legs.values():
            peer.close()


def level(audio: npt.NDArray[np.int16], freq: float) -> float:
    """Amplitude of `freq` in the last WINDOW samples (Hann-windowed projection)."""
    x = audio[-WINDOW:].astype(np.float64)
    assert len(x) == WINDOW
    w = np.hanning(WINDOW)
    n = np.arange(WINDOW)
    return float(abs(np.sum(w * x * np.exp(-2j * np.pi * freq * n / 8000))) / (w.sum() / 2))


def heard(audio: npt.NDArray[np.int16], freqs: tuple[float, ...] = (A_HZ, B_HZ, X_HZ, Y_HZ)
          ) -> set[float]:
    """Which of `freqs` are in `audio`: present above half of AMP, absent below 2 %."""
    found = set()
    for f in freqs:
        amp = level(audio, f)
        assert amp > AMP / 2 or amp < AMP / 50, f"{f} Hz at ambiguous level {amp:.0f}"
        if amp > AMP / 2:
            found.add(f)
    return found


@pytest.fixture
async def rig(engine: MediaEngine) -> AsyncIterator[Rig]:
    r = Rig(engine)
    yield r
    r.close()


async def pair(rig: Rig, **b_kwargs: object) -> tuple[Channel, Channel]:
    a = await rig.leg(A_HZ)
    b = await rig.leg(B_HZ, **b_kwargs)  # type: ignore[arg-type]
    rig.engine.bridge(a, b)
    return a, b


# --- audio ---


async def test_each_side_hears_the_other_and_not_itself(rig: Rig) -> None:
    a, b = await pair(rig)
    assert a.bridged_to is b and b.bridged_to is a and rig.engine.bridge_count == 1
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ}
    assert heard(out[b]) == {A_HZ}


@pytest.mark.parametrize(("pt_a", "pt_b"), [(g711.PCMU, g711.PCMA), (g711.PCMA, g711.PCMU),
                                            (g711.PCMU, g711.PCMU)])
async def test_transcoding_is_sample_exact(rig: Rig, pt_a: int, pt_b: int) -> None:
    """What A sends comes out on B re-quantised in B's codec, code for code; no drift,
    no frame lost or repeated. Checked against the engine's G.191 tables and, within
    G.711's quantisation step, against the harness's independent codec."""
    a = await rig.leg(None, pt=pt_a)
    b = await rig.leg(None, pt=pt_b)
    rig.engine.bridge(a, b)
    rng = np.random.default_rng(8)
    pcm = np.clip(rng.normal(0, 6000, 160 * 20), -32768, 32767).astype(np.int16)
    sent = g711.encode(pt_a, pcm)
    frames = [sent[160 * i : 160 * (i + 1)] for i in range(20)]
    await rig.run(len(frames) + 6, lambda i: i < len(frames) and rig.peer(a).send_codes(frames[i]))
    got = b"".join(p.payload for p in rig.peer(b).media())
    expected = g711.encode(pt_b, g711.decode(pt_a, sent))
    start = got.find(expected[:160])
    assert start > 0 and start % 160 == 0
    assert got[start : start + len(expected)] == expected
    # Before: the jitter buffer's delay, A's silence in B's codec.
    assert len(set(got[:start])) == 1 and abs(int(g711.decode(pt_b, got[:1])[0])) <= 8
    # Independently: B's audio is A's audio within one G.711 step of B's codec.
    ref_a = ref.decode(sent, pt_a).astype(np.int32)
    ref_b = ref.decode(got[start : start + len(expected)], pt_b).astype(np.int32)
    assert np.all(np.abs(ref_b - ref_a) <= np.maximum(16, np.abs(ref_a) // 16))


async def test_playback_is_added_to_the_partner(rig: Rig) -> None:
    a, b = await pair(rig)
    b.play(tone(PROMPT_HZ, 2.0, level_dbm0=-16.0))  # a prompt to B's side only
    out = await rig.listen()
    freqs = (A_HZ, B_HZ, PROMPT_HZ)
    assert heard(out[b], freqs) == {A_HZ, PROMPT_HZ}
    assert heard(out[a], freqs) == {B_HZ}
    b.stop_audio()
    out = await rig.listen()
    assert heard(out[b], freqs) == {A_HZ}


async def test_partner_plus_playback_saturates(rig: Rig) -> None:
    a = await rig.leg(None)
    b = await rig.leg(None)
    rig.engine.bridge(a, b)
    loud = np.full(160, 24000, np.int16)
    b.play(np.full(8000, 24000, np.int16))
    await rig.run(12, lambda i: rig.peer(a).send_audio(loud))
    tail = rig.peer(b).audio()[-800:]
    assert tail.min() > 30000  # 48000 clipped at full scale, not wrapped to -17536


# --- bridge life ---


async def test_unbridge_and_bridge_again(rig: Rig) -> None:
    a, b = await pair(rig)
    rig.engine.unbridge(b)
    assert a.bridged_to is None and b.bridged_to is None and rig.engine.bridge_count == 0
    rig.engine.unbridge(a)  # no bridge: no-op
    out = await rig.listen()
    assert heard(out[a]) == set() and heard(out[b]) == set()
    rig.engine.bridge(b, a)
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ} and heard(out[b]) == {A_HZ}


async def test_closing_one_side_unbridges_the_other(rig: Rig) -> None:
    a, b = await pair(rig)
    await rig.listen()
    b.close()
    assert a.bridged_to is None and rig.engine.bridge_count == 0
    a.play(tone(PROMPT_HZ, 2.0, level_dbm0=-16.0))
    out = await rig.listen()
    assert heard(out[a], (A_HZ, B_HZ, PROMPT_HZ)) == {PROMPT_HZ}
    a.stop_audio()
    out = await rig.listen()
    assert heard(out[a]) == set()


async def test_slots_move_under_live_bridges(rig: Rig) -> None:
    """Slots [x, a, b, c, d]: closing x moves d into slot 0 mid-call; then closing c
    (bridged) leaves d alone. Everyone still hears the right partner."""
    x = await rig.leg(X_HZ)
    a, b = await pair(rig)
    c = await rig.leg(X_HZ)
    d = await rig.leg(Y_HZ)
    rig.engine.bridge(c, d)
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ} and heard(out[b]) == {A_HZ}
    assert heard(out[c]) == {Y_HZ} and heard(out[d]) == {X_HZ}
    x.close()
    assert d._slot == 0
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ} and heard(out[b]) == {A_HZ}
    assert heard(out[c]) == {Y_HZ} and heard(out[d]) == {X_HZ}
    c.close()
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ} and heard(out[b]) == {A_HZ}
    assert heard(out[d]) == set() and d.bridged_to is None


async def test_early_media_one_way_then_both(rig: Rig) -> None:
    """The far leg is bridged while it only sends to us (we send it nothing, as before
    its 200 OK), then answers; a leg that does not receive is heard as silence."""
    a, b = await pair(rig, send=False)
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ}
    assert rig.peer(b).got == []
    b.configure(remote=rig.peer(b).addr, payload_type=g711.PCMU, latch=False)
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ} and heard(out[b]) == {A_HZ}
    a.configure(remote=rig.peer(a).addr, payload_type=g711.PCMU, receive=False, latch=False)
    out = await rig.listen()
    assert heard(out[a]) == {B_HZ} and heard(out[b]) == set()


# --- errors ---


async def test_bridge_errors(rig: Rig) -> None:
    engine = rig.engine
    a, b = await pair(rig)
    c = await rig.leg(X_HZ)
    engine.bridge(a, b)  # already so: no-op
    engine.bridge(b, a)
    assert engine.bridge_count == 1
    with pytest.raises(BridgeError, match=r"can't bridge <Channel .*> to itself"):
        engine.bridge(c, c)
    with pytest.raises(BridgeError, match=r"is already bridged to <Channel .*>: unbridge it"):
        engine.bridge(c, a)
    with pytest.raises(BridgeError, match="is already bridged"):
        engine.bridge(b, c)
    group = engine.create_mix_group()
    with pytest.raises(BridgeError, match=r"is bridged to .*: unbridge it before adding it"):
        group.add(a)
    group.add(c)
    engine.unbridge(a)
    with pytest.raises(BridgeError, match=r"is in <MixGroup 0 .*>: take it out of the conf"):
        engine.bridge(a, c)
    group.remove(c)
    c.close()
    with pytest.raises(BridgeError, match=r"can't bridge closed <Channel"):
        engine.bridge(a, c)
    other = MediaEngine(port_range=(0, 0))
    foreign = await other.open_channel()
    try:
        with pytest.raises(BridgeError, match="belongs to another media engine"):
            engine.bridge(a, foreign)
    finally:
        await other.stop()
    assert issubclass(BridgeError, MediaError) and issubclass(BridgeError, ValueError)
    assert a.bridged_to is None and engine.bridge_count == 0


# --- digits ---


def te_plan(code: int, steps: int) -> list[tuple[bytes, bool]]:
    """A compliant sender's (payload, marker) for one event, one per tick: `steps`
    packets with the duration growing by 160, the last of them the end, sent three times."""
    return [
        (pack_telephone_event(code, i >= steps - 1, 13, 160 * min(i + 1, steps)), i == 0)
        for i in range(steps + 2)
    ]


def event_sender(rig: Rig, ch: Channel, plans: dict[int, list[tuple[bytes, bool]]]) -> Step:
    """A step that sends plan k's packets from tick k on, one per tick (timestamp k*160)."""
    peer = rig.peer(ch)

    def step(i: int) -> None:
        for start, plan in plans.items():
            if start <= i < start + len(plan):
                payload, marker = plan[i - start]
                peer.send_event(payload, marker, 90000 + 160 * start)

    return step


async def test_rfc4733_digit_passes_through_with_its_duration(rig: Rig) -> None:
    a = await rig.leg(A_HZ, te_pt=TE_A)
    b = await rig.leg(B_HZ, te_pt=TE_B)
    rig.engine.bridge(a, b)
    got_a: list[DigitReceived] = []
    got_b: list[DigitReceived] = []
    a.on_digit = got_a.append
    b.on_digit = got_b.append
    await rig.run(5)
    rig.peer(b).got.clear()
    await rig.run(16, event_sender(rig, a, {2: te_plan(5, 7)}))
    events = rig.peer(b).events()
    assert {p.header.payload_type for p, _ in events} == {TE_B}
    assert {e.event for _, e in events} == {5} and {e.volume for _, e in events} == {13}
    assert len({p.header.timestamp for p, _ in events}) == 1
    assert [p.header.marker for p, _ in events] == [True] + [False] * (len(events) - 1)
    ends = [e for _, e in events if e.end]
    assert [e.duration for e in ends] == [7 * 160] * 3 and not events[-4][1].end
    durations = [e.duration for _, e in events]
    assert durations == sorted(durations) and durations[-1] == 7 * 160
    # The events took the audio's place in B's one sequence space.
    seqs = [p.header.sequence_number for p in rig.peer(b).got]
    assert all((y - x) % 65536 == 1 for x, y in itertools.pairwise(seqs))
    assert [(d.digit, d.source) for d in got_a] == [("5", DigitSource.RFC4733)]
    assert got_b == []  # B's own far end pressed nothing
    assert rig.peer(a).events() == []  # nothing echoed back


async def test_rfc4733_digits_to_a_leg_without_telephone_event_become_tones(rig: Rig) -> None:
    a = await rig.leg(None, te_pt=TE_A)
    b = await rig.leg(None)
    rig.engine.bridge(a, b)
    got_a: list[DigitReceived] = []
    a.on_digit = got_a.append
    plans = {2: te_plan(1, 6), 14: te_plan(11, 8), 28: te_plan(1, 5)}
    await rig.run(50, event_sender(rig, a, plans))
    peer_b = rig.peer(b)
    assert peer_b.events() == []
    audio = peer_b.audio()
    assert detect_digits(audio) == "1#1"
    assert [d.digit for d in got_a] == ["1", "#", "1"]
    # Each tone lasts as long as its event (6, 8, 5 ticks of 160 samples).
    loud = np.abs(audio.astype(np.int32)) > 500
    edges = np.flatnonzero(np.diff(loud.reshape(-1, 160).any(axis=1).astype(np.int8)))
    assert np.diff(edges)[::2].tolist() == [6, 8, 5]


@pytest.mark.parametrize("te_b", [TE_B, None])
async def test_non_dtmf_events_pass_only_as_events(rig: Rig, te_b: int | None) -> None:
    """Event 16 (flash) on A: relayed to a B with telephone-event, not played as tones."""
    a = await rig.leg(None, te_pt=TE_A)
    b = await rig.leg(None, te_pt=te_b)
    rig.engine.bridge(a, b)
    await rig.run(14, event_sender(rig, a, {2: te_plan(16, 4)}))
    events = rig.peer(b).events()
    assert [e.event for _, e in events] == ([16] * (3 + 3) if te_b else [])
    assert not np.any(rig.peer(b).audio())


async def test_inband_tones_pass_as_audio_and_are_not_regenerated(rig: Rig) -> None:
    """A's far end keys "7" in its audio: A's detector reports it, B hears the tones as
    they were, and no telephone-event is made of them, though B negotiated one."""
    a = await rig.leg(None, te_pt=TE_A)
    b = await rig.leg(None, te_pt=TE_B)
    rig.engine.bridge(a, b)
    got_a: list[DigitReceived] = []
    a.on_digit = got_a.append
    quiet = np.zeros(480, np.int16)
    keyed = np.concatenate([quiet, dtmf_tone("7", 0.12), quiet, quiet, quiet, quiet[:160]])
    frames = keyed.reshape(-1, 160)
    await rig.run(len(frames) + 6,
                  lambda i: i < len(frames) and rig.peer(a).send_audio(frames[i]))
    assert [(d.digit, d.source) for d in got_a] == [("7", DigitSource.INBAND)]
    assert rig.peer(b).events() == []
    assert detect_digits(rig.peer(b).audio()) == "7"


async def test_unbridge_mid_event_ends_the_relayed_key(rig: Rig) -> None:
    a = await rig.leg(A_HZ, te_pt=TE_A)
    b = await rig.leg(B_HZ, te_pt=TE_B)
    rig.engine.bridge(a, b)
    plan = te_plan(9, 30)
    await rig.run(8, event_sender(rig, a, {2: plan}))
    rig.engine.unbridge(a)
    await rig.run(8, event_sender(rig, a, {2: plan[6:]}))
    events = [e for _, e in rig.peer(b).events()]
    assert [e.end for e in events[-3:]] == [True] * 3 and not events[-4].end
    assert all(e.event == 9 for e in events) and events[-1].duration < 30 * 160


async def test_lost_end_packets_do_not_leave_the_key_down(rig: Rig) -> None:
    a = await rig.leg(A_HZ, te_pt=TE_A)
    b = await rig.leg(B_HZ, te_pt=TE_B)
    rig.engine.bridge(a, b)
    plan = te_plan(3, 10)[:4]  # start and three continuations; the rest lost
    await rig.run(40, event_sender(rig, a, {2: plan}))
    events = [e for _, e in rig.peer(b).events()]
    assert [e.end for e in events[-3:]] == [True] * 3 and not events[-4].end
    assert events[-1].duration == 4 * 160
    # One packet a tick until 25 ticks (0.5 s) after the last source packet, then ends.
    assert sum(not e.end for e in events) == 4 + 24


# --- the relay alone (sans-I/O) ---


def pulled(relay: TelephoneEventRelay, ticks: int) -> list[TelephoneEvent | None]:
    out: list[TelephoneEvent | None] = []
    for _ in range(ticks):
        packet = relay.tick()
        out.append(None if packet is None else TelephoneEvent.parse(packet.payload))
    return out


def test_relay_mirrors_the_source() -> None:
    relay = TelephoneEventRelay(4, volume=7)
    relay.update(0)
    first = relay.tick()
    assert first is not None and first.marker and first.start
    relay.update(320)
    relay.update(160)  # reordered: never shrinks
    relay.end(480)
    sent = pulled(relay, 4)
    assert [(e.duration, e.end) for e in sent if e] == [(480, True)] * 3 and sent[3] is None
    assert relay.done and not relay.in_event
    assert TelephoneEvent.parse(first.payload) == TelephoneEvent(4, False, 7, 0)


def test_relay_stopped_before_its_first_packet_sends_nothing() -> None:
    relay = TelephoneEventRelay(4)
    relay.stop()
    assert relay.done and relay.tick() is None


def test_relay_caps_a_long_press() -> None:
    relay = TelephoneEventRelay(0)
    relay.update(70000)
    relay.end(80000)
    assert [e.duration for e in pulled(relay, 3) if e] == [0xFFFF] * 3
