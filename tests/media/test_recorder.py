"""The streaming recorder on an engine driven by `tick(now)`, with a real UDP peer."""

from __future__ import annotations

import os
import shutil
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from media.recorder import Recorder, RecordingState, recover, wav_header
from media.rtp import pack_header
from tests.support.audio import sine, tone_segments
from tests.support.udp import UdpPeer

PTIME = 0.02
CALLER_HZ = 697.0
SWITCH_HZ = 1209.0
HEARD = 0.04  # the jitter buffer's playout delay: the caller is heard from then on


class Caller:
    """The peer's side of the call: sends one 20 ms µ-law frame per tick to `ch`."""

    def __init__(self, peer: UdpPeer, ch: Channel) -> None:
        self.peer, self.ch, self.seq = peer, ch, 0

    def send(self, pcm: npt.NDArray[np.int16]) -> None:
        payload = g711.encode(g711.PCMU, pcm)
        header = pack_header(0, self.seq == 0, self.seq, 160 * self.seq, 4242)
        self.peer.send(header + payload, self.ch.local_port)
        self.seq += 1


def run(engine: MediaEngine, caller: Caller, pcm: npt.NDArray[np.int16], tick0: int) -> int:
    """Send `pcm` from the caller a frame per tick, ticking the engine; the next tick."""
    for i in range(len(pcm) // 160):
        caller.send(pcm[160 * i : 160 * (i + 1)])
        engine.tick((tick0 + i) * PTIME)
    return tick0 + len(pcm) // 160


def run_both(engine: MediaEngine, a: Caller, b: Caller, seconds: float = 1.0) -> None:
    """`a` sends the caller's tone and `b` the other's, a frame each per tick."""
    tone_a, tone_b = sine(CALLER_HZ, seconds), sine(SWITCH_HZ, seconds)
    for i in range(len(tone_a) // 160):
        a.send(tone_a[160 * i : 160 * (i + 1)])
        b.send(tone_b[160 * i : 160 * (i + 1)])
        engine.tick(i * PTIME)


def read_stereo(path: Path) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    return pcm[:, 0].astype(np.int16), pcm[:, 1].astype(np.int16)


@pytest.fixture
def recorder(engine: MediaEngine) -> Iterator[Recorder]:
    rec = Recorder(engine)
    yield rec
    rec.close()


async def call(engine: MediaEngine, peer: UdpPeer) -> tuple[Channel, Caller]:
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=g711.PCMU, latch=False)
    return ch, Caller(peer, ch)


def spans(pcm: npt.NDArray[np.int16], hz: float) -> list[tuple[float, float]]:
    return tone_segments(pcm, hz, min_db=-30, min_duration=0.1)


async def test_stereo_left_is_the_caller_right_what_the_switch_plays(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    ch, caller = await call(engine, peer)
    rec = recorder.start(ch, tmp_path / "r.wav")
    ch.play(sine(SWITCH_HZ, 1.0))
    run(engine, caller, sine(CALLER_HZ, 2.0), 0)
    assert engine.output_hooks
    result = rec.stop().result(timeout=5)
    assert not engine.output_hooks  # nobody records: no hook left on the tick
    assert result.channels == 2 and result.samples == 100 * 160 and result.error is None
    assert not (tmp_path / "r.wav.part").exists()
    left, right = read_stereo(result.path)
    assert len(left) == 16000
    # The caller's tone after the jitter buffer's delay, to the end; the switch's for 1 s.
    assert spans(left, CALLER_HZ) == [(HEARD, 2.0)]
    assert spans(left, SWITCH_HZ) == []
    assert spans(right, SWITCH_HZ) == [(0.0, 1.0)]
    assert spans(right, CALLER_HZ) == []
    peer.drain()


def connect(engine: MediaEngine, a: Channel, b: Channel, how: str) -> None:
    if how == "bridge":
        engine.bridge(a, b)
    else:
        group = engine.create_mix_group()
        group.add(a)
        group.add(b)


@pytest.mark.parametrize("how", ["bridge", "conference"])
async def test_the_other_side_is_on_the_right(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path, how: str
) -> None:
    """A bridged leg's partner, or a conference member's mix (the others, not itself)."""
    a, caller = await call(engine, peer)
    other = UdpPeer()
    try:
        b, far = await call(engine, other)
        connect(engine, a, b, how)
        rec = recorder.start(a, tmp_path / "b.wav")
        run_both(engine, caller, far)
        left, right = read_stereo(rec.stop().result(timeout=5).path)
    finally:
        other.close()
    assert spans(left, CALLER_HZ) == [(HEARD, 1.0)] and spans(left, SWITCH_HZ) == []
    assert spans(right, SWITCH_HZ) == [(HEARD, 1.0)] and spans(right, CALLER_HZ) == []


async def test_mono_holds_the_caller_only(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    ch, caller = await call(engine, peer)
    rec = recorder.start(ch, tmp_path / "m.wav", channels=1)
    ch.play(sine(SWITCH_HZ, 1.0))
    run(engine, caller, sine(CALLER_HZ, 1.0), 0)
    result = rec.stop().result(timeout=5)
    with wave.open(str(result.path), "rb") as w:
        assert w.getnchannels() == 1 and w.getnframes() == 8000
        pcm = np.frombuffer(w.readframes(8000), "<i2").astype(np.int16)
    assert spans(pcm, CALLER_HZ) == [(HEARD, 1.0)] and spans(pcm, SWITCH_HZ) == []


async def test_pause_writes_nothing_for_the_paused_time(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    ch, caller = await call(engine, peer)
    rec = recorder.start(ch, tmp_path / "p.wav")
    t = run(engine, caller, sine(CALLER_HZ, 1.0), 0)
    rec.pause()
    rec.pause()  # idempotent
    assert rec.state is RecordingState.PAUSED
    t = run(engine, caller, sine(941.0, 0.6), t)  # heard while paused: not recorded
    rec.resume()
    run(engine, caller, sine(CALLER_HZ, 1.0), t)
    result = rec.stop().result(timeout=5)
    assert result.samples == (50 + 50) * 160  # 2.6 s of call, 0.6 s of it paused
    left, _ = read_stereo(result.path)
    # The paused 941 Hz is absent except its last 40 ms, still in the jitter buffer when
    # the pause ended (the recording takes what the caller is heard saying then).
    assert spans(left, 941.0) == []
    assert tone_segments(left, 941.0, min_db=-30) == [(1.0, 1.0 + HEARD)]
    assert spans(left, CALLER_HZ) == [(HEARD, 1.0), (1.0 + HEARD, 2.0)]


async def test_channel_closed_ends_its_recording(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    ch, caller = await call(engine, peer)
    await call(engine, peer)  # another call keeps the engine ticking
    rec = recorder.start(ch, tmp_path / "c.wav")
    t = run(engine, caller, sine(CALLER_HZ, 0.4), 0)
    ch.close()
    engine.tick(t * PTIME)
    assert rec.state is RecordingState.STOPPED
    assert rec.done.result(timeout=5).samples == 20 * 160
    with pytest.raises(ValueError, match="closed"):
        recorder.start(ch, tmp_path / "d.wav")


async def test_several_recordings_of_several_channels(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    a, caller_a = await call(engine, peer)
    b, _ = await call(engine, peer)
    ra = recorder.start(a, tmp_path / "a.wav")
    rb = recorder.start(b, tmp_path / "b.wav")
    ra2 = recorder.start(a, tmp_path / "a2.wav", channels=1)
    b.play(sine(SWITCH_HZ, 0.5))
    run(engine, caller_a, sine(CALLER_HZ, 0.5), 0)
    results = [r.stop().result(timeout=5) for r in (ra, rb, ra2)]
    assert [r.samples for r in results] == [4000] * 3
    a_left, a_right = read_stereo(results[0].path)
    b_left, b_right = read_stereo(results[1].path)
    assert spans(a_left, CALLER_HZ) == [(HEARD, 0.5)] and spans(a_right, SWITCH_HZ) == []
    assert spans(b_left, CALLER_HZ) == [] and spans(b_right, SWITCH_HZ) == [(0.0, 0.5)]


async def test_a_crash_loses_at_most_the_last_second(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    ch, caller = await call(engine, peer)
    path = tmp_path / "live" / "k.wav"
    rec = recorder.start(ch, path, meta={"id": "k"})
    ticks = run(engine, caller, sine(CALLER_HZ, 3.0), 0)
    # The writer has taken every tick; after more than a second it has synced the file.
    deadline = time.monotonic() + 5
    while recorder._ticks_written < ticks and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.1)
    crashed = tmp_path / "crashed"  # the files as a kill -9 now would leave them
    crashed.mkdir()
    shutil.copy(path, crashed / "k.wav")
    shutil.copy(path.with_name("k.wav.part"), crashed / "k.wav.part")
    found = recover(crashed)
    assert [(f.path.name, f.channels, f.meta) for f in found] == [("k.wav", 2, {"id": "k"})]
    assert 3.0 * 8000 - 8000 <= found[0].samples <= 3.0 * 8000
    assert not (crashed / "k.wav.part").exists()
    left, _ = read_stereo(crashed / "k.wav")
    assert len(left) == found[0].samples
    assert spans(left, CALLER_HZ)[0][0] == HEARD
    assert recover(crashed) == []  # nothing left open
    rec.stop().result(timeout=5)


async def test_a_scratch_recorder_never_syncs_yet_a_reader_sees_the_audio_so_far(
    engine: MediaEngine, peer: UdpPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd))[1])
    scratch = Recorder(engine, durable=False, sync_interval=0.2)
    try:
        ch, caller = await call(engine, peer)
        path = tmp_path / "tap.wav"
        rec = scratch.start(ch, path)
        ticks = run(engine, caller, sine(CALLER_HZ, 2.0), 0)
        deadline = time.monotonic() + 5
        while scratch._ticks_written < ticks and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # past sync_interval: flushed and the header rewritten
        assert not path.with_name("tap.wav.part").exists()  # nothing to recover
        with wave.open(str(path), "rb") as live:  # the header counts what is written
            assert live.getnframes() == 2 * 8000
        result = rec.stop().result(timeout=5)
        assert result.samples == 2 * 8000 and result.error is None
        left, _ = read_stereo(path)
        assert spans(left, CALLER_HZ) == [(HEARD, 2.0)]
    finally:
        scratch.close()
    assert syncs == []
    peer.drain()


async def test_delete_right_after_stop_leaves_no_file_and_runs_off_the_loop(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ch, caller = await call(engine, peer)
    path = tmp_path / "d" / "gone.wav"
    rec = recorder.start(ch, path)
    run(engine, caller, sine(CALLER_HZ, 0.5), 0)
    unlinked_on: list[str] = []
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        unlinked_on.append(threading.current_thread().name)
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    done = rec.stop()
    recorder.delete(path)  # queued behind the close: the writer may not have opened it
    assert done.result(timeout=5).samples == 4000
    deadline = time.monotonic() + 5
    while (path.exists() or not unlinked_on) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not path.exists() and not path.with_name("gone.wav.part").exists()
    assert unlinked_on and set(unlinked_on) == {"media-recorder"}
    peer.drain()


def test_recover_cuts_a_torn_frame_and_skips_a_missing_file(tmp_path: Path) -> None:
    wav = tmp_path / "t.wav"
    wav.write_bytes(wav_header(2, 0) + b"\x01\x00" * 801)  # 400 frames and half of one
    (tmp_path / "t.wav.part").write_text('{"channels": 2}')
    (tmp_path / "gone.wav.part").write_text('{"channels": 1}')
    found = recover(tmp_path)
    assert [(f.path.name, f.samples, f.duration_ms) for f in found] == [("t.wav", 400, 50)]
    with wave.open(str(wav), "rb") as w:
        assert w.getnframes() == 400 and w.getnchannels() == 2
    assert list(tmp_path.glob("*.part")) == []


async def test_unwritable_path_fails_the_recording_not_the_tick(
    engine: MediaEngine, peer: UdpPeer, recorder: Recorder, tmp_path: Path
) -> None:
    ch, caller = await call(engine, peer)
    (tmp_path / "file").write_text("")
    rec = recorder.start(ch, tmp_path / "file" / "x.wav")  # a file as directory
    run(engine, caller, sine(CALLER_HZ, 0.2), 0)
    result = rec.stop().result(timeout=5)
    assert result.error is not None and result.samples == 0
    assert recorder.stats.write_errors == 1
    assert len(peer.drain()) == 10  # the call went on
