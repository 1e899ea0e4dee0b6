"""Mix groups in the engine: peers on real UDP sockets send tones, we decode what each hears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
import pytest

from media import g711
from media.channel import Channel
from media.conference import MixGroup
from media.dsp.dtmf import detect_digits
from media.engine import MediaEngine
from media.rtp import TelephoneEvent, pack_header
from tests.support.udp import UdpPeer

PTIME = 0.02
AMP = 4000
TONES = (400, 700, 1000, 1300)  # whole cycles in a 0.2 s window: exact 5 Hz FFT bins
HOLD_HZ = 440
BEEP_HZ = 1700
WINDOW = 1600
TE_PT = 101


class Peer(UdpPeer):
    """A far end on a UDP socket that sends its own tone as PCMU, one packet per tick."""

    def __init__(self, freq: int) -> None:
        super().__init__()
        self.freq = freq
        self.sent = 0
        self.target: tuple[str, int] | None = None

    def send_frame(self) -> None:
        assert self.target is not None
        t = (self.sent * 160 + np.arange(160)) / 8000
        pcm = np.rint(AMP * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        header = pack_header(0, self.sent == 0, self.sent, self.sent * 160, 1000 + self.freq)
        self.sock.sendto(header + g711.encode(g711.PCMU, pcm), self.target)
        self.sent += 1

    def audio(self) -> npt.NDArray[np.int16]:
        payloads = [p.payload for p in self.drain() if p.header.payload_type == 0]
        return g711.decode(g711.PCMU, b"".join(payloads))


class Rig:
    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine
        self.peers: list[Peer] = []
        self.channels: list[Channel] = []
        self.now = 0.0

    async def add(self, freq: int, *, te_pt: int | None = None) -> Channel:
        peer = Peer(freq)
        ch = await self.engine.open_channel()
        ch.configure(
            remote=peer.addr, payload_type=g711.PCMU, telephone_event_pt=te_pt, latch=False
        )
        peer.target = (ch.local_host, ch.local_port)
        self.peers.append(peer)
        self.channels.append(ch)
        return ch

    async def run(self, ticks: int) -> None:
        for _ in range(ticks):
            for peer in self.peers:
                peer.send_frame()
            await asyncio.sleep(0.002)  # the loop reads the datagrams
            self.engine.tick(self.now)
            self.now += PTIME

    async def listen(self, ticks: int = 14) -> list[npt.NDArray[np.int16]]:
        """Settle (jitter buffer, flag changes), then what each peer hears for `ticks`."""
        await self.run(4)
        for peer in self.peers:
            peer.drain()
        await self.run(ticks)
        return [peer.audio() for peer in self.peers]

    def close(self) -> None:
        for peer in self.peers:
            peer.close()


def spectrum(audio: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    x = audio[-WINDOW:].astype(np.float64)
    assert len(x) == WINDOW
    return np.abs(np.fft.rfft(x)) / (WINDOW / 2)  # a sine's amplitude at its bin


def tones_in(audio: npt.NDArray[np.int16], freqs: tuple[int, ...] = TONES) -> set[int]:
    """Which of `freqs` are in `audio` (present at > half amplitude, absent below 2 %)."""
    spec = spectrum(audio)
    found = set()
    for f in freqs:
        level = spec[round(f * WINDOW / 8000)]
        assert level > AMP / 2 or level < AMP / 50, f"{f} Hz at ambiguous level {level:.0f}"
        if level > AMP / 2:
            found.add(f)
    return found


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    engine = MediaEngine(port_range=(0, 0))
    r = Rig(engine)
    yield r
    await engine.stop()
    r.close()


async def four(rig: Rig) -> tuple[MixGroup, list[Channel]]:
    chans = [await rig.add(f) for f in TONES]
    group = rig.engine.create_mix_group()
    for ch in chans:
        group.add(ch)
    return group, chans


def others(i: int) -> set[int]:
    return set(TONES) - {TONES[i]}


async def test_each_peer_hears_the_three_others(rig: Rig) -> None:
    group, chans = await four(rig)
    heard = await rig.listen()
    for i, audio in enumerate(heard):
        assert tones_in(audio) == others(i)
    assert set(group.members) == set(chans)
    assert all(ch.mix_group is group for ch in chans)


async def test_muted_member_is_heard_by_nobody(rig: Rig) -> None:
    group, chans = await four(rig)
    group.update(chans[1], talk=False)
    heard = await rig.listen()
    assert tones_in(heard[1]) == others(1)
    for i in (0, 2, 3):
        assert tones_in(heard[i]) == others(i) - {TONES[1]}
    group.update(chans[1], talk=True)
    heard = await rig.listen()
    assert tones_in(heard[0]) == others(0)


async def test_member_on_hold_hears_its_player_and_is_not_heard(rig: Rig) -> None:
    group, chans = await four(rig)
    group.update(chans[2], talk=False, listen=False)
    t = np.arange(8000 * 2) / 8000
    chans[2].play(np.rint(AMP * np.sin(2 * np.pi * HOLD_HZ * t)).astype(np.int16))
    heard = await rig.listen()
    assert tones_in(heard[2], (*TONES, HOLD_HZ)) == {HOLD_HZ}
    for i in (0, 1, 3):
        assert tones_in(heard[i], (*TONES, HOLD_HZ)) == others(i) - {TONES[2]}


async def test_member_hears_its_own_announcement_over_the_mix(rig: Rig) -> None:
    _group, chans = await four(rig)
    t = np.arange(8000 * 2) / 8000
    chans[0].play(np.rint(AMP * np.sin(2 * np.pi * HOLD_HZ * t)).astype(np.int16))
    heard = await rig.listen()
    assert tones_in(heard[0], (*TONES, HOLD_HZ)) == others(0) | {HOLD_HZ}
    assert tones_in(heard[1], (*TONES, HOLD_HZ)) == others(1)


async def test_members_playback_is_exact_to_its_last_frame(rig: Rig) -> None:
    group, chans = await four(rig)
    for ch in chans:
        group.update(ch, talk=False)  # a silent mix: the output is the playback alone
    await rig.run(4)
    rig.peers[0].drain()
    src = np.rint(AMP * np.sin(2 * np.pi * HOLD_HZ * np.arange(400) / 8000)).astype(np.int16)
    done = chans[0].play(src)  # 2.5 frames: the last one ends while nothing else plays
    await rig.run(5)
    audio = rig.peers[0].audio()
    assert done.result() is True
    np.testing.assert_array_equal(audio[:400], g711.decode(0, g711.encode(0, src)))
    assert not audio[400:].any()


async def test_whisper_reaches_only_its_target(rig: Rig) -> None:
    group, chans = await four(rig)
    group.update(chans[3], whisper_to=chans[0])
    heard = await rig.listen()
    assert tones_in(heard[0]) == others(0)
    assert tones_in(heard[1]) == others(1) - {TONES[3]}
    assert tones_in(heard[2]) == others(2) - {TONES[3]}
    assert tones_in(heard[3]) == others(3)  # the whisperer hears the whole group
    group.update(chans[3], whisper_to=None)
    heard = await rig.listen()
    assert tones_in(heard[1]) == others(1)


async def test_whisperer_is_muted_when_its_target_leaves(rig: Rig) -> None:
    group, chans = await four(rig)
    group.update(chans[3], whisper_to=chans[0])
    group.remove(chans[0])
    member = group.members[chans[3]]
    assert member.whisper_to is None and not member.talk
    heard = await rig.listen()
    assert tones_in(heard[1]) == {TONES[2]}
    with pytest.raises(ValueError, match="not another member"):
        group.update(chans[3], whisper_to=chans[0])


async def test_removed_member_is_gone(rig: Rig) -> None:
    group, chans = await four(rig)
    group.remove(chans[3])
    group.remove(chans[3])  # no-op
    heard = await rig.listen()
    assert not heard[3].any()  # out of the group: silence, as before it joined
    for i in range(3):
        assert tones_in(heard[i]) == others(i) - {TONES[3]}
    assert chans[3].mix_group is None and chans[3] not in group.members


async def test_closed_channel_leaves_its_group(rig: Rig) -> None:
    group, chans = await four(rig)
    await rig.run(3)
    chans[0].close()  # the last slot moves into slot 0
    rig.peers[0].target = None
    rig.peers.pop(0)
    heard = await rig.listen()
    assert chans[0] not in group.members
    for audio, i in zip(heard, (1, 2, 3), strict=True):
        assert tones_in(audio) == others(i) - {TONES[0]}


async def test_members_moved_to_other_slots_keep_their_mix(rig: Rig) -> None:
    outsider = await rig.add(1900)  # slot 0
    _group, chans = await four(rig)
    await rig.run(3)
    outsider.close()  # the last member moves into slot 0
    rig.peers.pop(0)
    heard = await rig.listen()
    assert chans[3]._slot == 0
    for i, audio in enumerate(heard):
        assert tones_in(audio, (*TONES, 1900)) == others(i)


async def test_two_groups_are_independent(rig: Rig) -> None:
    chans = [await rig.add(f) for f in TONES]
    a, b = rig.engine.create_mix_group(), rig.engine.create_mix_group()
    a.add(chans[0])
    a.add(chans[1])
    b.add(chans[2])
    b.add(chans[3])
    heard = await rig.listen()
    assert [tones_in(x) for x in heard] == [{700}, {400}, {1300}, {1000}]
    a.close()
    heard = await rig.listen()
    assert not heard[0].any() and not heard[1].any()
    assert [tones_in(x) for x in heard[2:]] == [{1300}, {1000}]
    assert a.closed and chans[0].mix_group is None
    assert list(rig.engine.mix_groups.values()) == [b]


async def test_channel_outside_groups_plays_exactly_as_before(rig: Rig) -> None:
    _group, _chans = await four(rig)
    outsider = await rig.add(1900)
    src = np.rint(AMP * np.sin(2 * np.pi * 250 * np.arange(8000) / 8000)).astype(np.int16)
    outsider.play(src)
    await rig.run(10)
    got = rig.peers[-1].audio()
    np.testing.assert_array_equal(got, g711.decode(0, g711.encode(0, src))[: len(got)])
    assert outsider.mix_group is None


async def test_play_to_all_reaches_listening_members(rig: Rig) -> None:
    group, chans = await four(rig)
    group.update(chans[1], talk=False, listen=False)
    t = np.arange(8000) / 8000
    done = group.play_to_all(np.rint(AMP * np.sin(2 * np.pi * BEEP_HZ * t)).astype(np.int16))
    heard = await rig.listen()
    freqs = (*TONES, BEEP_HZ)
    assert tones_in(heard[0], freqs) == others(0) - {TONES[1]} | {BEEP_HZ}
    assert tones_in(heard[1], freqs) == set()
    assert group.is_playing and not done.done()
    await rig.run(40)
    assert done.result() is True and not group.is_playing


async def test_membership_errors(rig: Rig) -> None:
    group, chans = await four(rig)
    other = rig.engine.create_mix_group()
    with pytest.raises(ValueError, match="already in"):
        other.add(chans[0])
    with pytest.raises(ValueError, match="not another member"):
        group.update(chans[0], whisper_to=chans[0])
    with pytest.raises(KeyError):
        other.update(chans[0], talk=False)
    extra = await rig.add(1900)
    extra.close()
    with pytest.raises(ValueError, match="closed"):
        other.add(extra)
    with pytest.raises(ValueError, match="not a DTMF digit"):
        group.relay_digit(chans[0], "55")


async def test_relay_digit_to_receive_dtmf_members_only(rig: Rig) -> None:
    sender = await rig.add(TONES[0], te_pt=TE_PT)
    rfc = await rig.add(TONES[1], te_pt=TE_PT)
    inband = await rig.add(TONES[2])
    deaf = await rig.add(TONES[3], te_pt=TE_PT)
    group = rig.engine.create_mix_group()
    group.add(sender, talk=False, receive_dtmf=True)
    group.add(rfc, talk=False, receive_dtmf=True)
    group.add(inband, talk=False)
    group.add(deaf, talk=False)
    group.update(inband, receive_dtmf=True)
    await rig.listen(2)
    futures = group.relay_digit(sender, "5")
    assert len(futures) == 2
    await rig.run(30)
    assert all(f.result() is True for f in futures)
    packets = [peer.drain() for peer in rig.peers]
    events = [
        TelephoneEvent.parse(p.payload).event for p in packets[1] if p.header.payload_type == TE_PT
    ]
    assert events and set(events) == {5}
    assert not any(p.header.payload_type == TE_PT for p in packets[0] + packets[3])
    inband_audio = g711.decode(0, b"".join(p.payload for p in packets[2]))
    assert detect_digits(inband_audio) == "5"
    assert detect_digits(g711.decode(0, b"".join(p.payload for p in packets[3]))) == ""
