"""Repacketiser: packets of any size in, sample-exact 20 ms frames out, keyed by timestamp."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from media.repacketise import LAG, Repacketiser

FRAME = 160
SILENCE = b"\xff" * FRAME


def stream(seconds: float = 1.0, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 255, round(8000 * seconds), np.uint8).tobytes()


def packets(data: bytes, size: int, ts0: int = 1000) -> list[tuple[int, bytes]]:
    """(timestamp, payload) of `data` cut into `size`-byte packets."""
    return [((ts0 + i) & 0xFFFFFFFF, data[i : i + size]) for i in range(0, len(data), size)]


def run(
    pkts: list[tuple[int, bytes]], ssrc: int = 7, repack: Repacketiser | None = None
) -> list[tuple[int, int, bytes]]:
    repack = repack or Repacketiser(FRAME, SILENCE)
    return [out for ts, payload in pkts for out in repack.push(ts, ssrc, payload)]


@pytest.mark.parametrize("size", [80, 160, 240, 320, 480, 100, 333])
def test_any_packet_size_gives_the_same_samples_in_frames(size: int) -> None:
    data = stream()
    frames = run(packets(data, size))
    whole = len(data) // FRAME
    assert [seq for seq, _, _ in frames] == list(range(whole))
    assert [ts for _, ts, _ in frames] == [1000 + FRAME * i for i in range(whole)]
    assert b"".join(f for _, _, f in frames) == data[: whole * FRAME]


def test_frames_go_out_as_soon_as_they_are_full() -> None:
    repack = Repacketiser(FRAME, SILENCE)
    data = stream(0.09)
    got = [len(repack.push(ts, 1, p)) for ts, p in packets(data, 240)]
    assert got == [1, 2, 1]  # 0-240: frame 0; 240-480: frames 1, 2; 480-720: frame 3


def test_packet_sizes_may_change_midstream() -> None:
    data = stream()
    cuts = [0, 240, 400, 480, 800, 880, 1200, 1440, 8000]
    pkts = [(1000 + a, data[a:b]) for a, b in itertools.pairwise(cuts)]
    assert b"".join(f for _, _, f in run(pkts)) == data


def test_reordered_packets_still_fill_their_frames() -> None:
    data = stream(0.6)
    pkts = packets(data, 240)
    for i in range(2, len(pkts) - 1, 4):
        pkts[i], pkts[i + 1] = pkts[i + 1], pkts[i]
    frames = sorted(run(pkts))
    assert b"".join(f for _, _, f in frames) == data


def test_a_packet_from_before_the_first_one_still_lands() -> None:
    data = stream(0.3)
    pkts = packets(data, 240)
    pkts[0], pkts[1] = pkts[1], pkts[0]  # the grid starts at the second packet's samples
    frames = {seq: f for seq, _, f in run(pkts)}
    assert frames[0xFFFF] == data[80:240]  # frame -1
    assert b"".join(frames[i] for i in range(10)) == data[240 : 240 + 1600]


def test_a_lost_packet_leaves_padded_and_missing_frames() -> None:
    data = stream(0.3)
    pkts = packets(data, 240)
    del pkts[3]  # samples 720-960: frame 4 (640-800) half gone, frame 5 (800-960) all gone
    repack = Repacketiser(FRAME, SILENCE)
    frames = {seq: f for seq, _, f in run(pkts, repack=repack)}
    assert 5 not in frames  # the jitter buffer sees a lost frame and conceals it
    assert frames[4] == data[640:720] + SILENCE[:80]  # the half that came, then silence
    assert all(frames[i] == data[i * FRAME : (i + 1) * FRAME] for i in frames if i != 4)
    assert repack.stats.padded == 1


def test_bytes_for_a_frame_already_handed_on_are_dropped() -> None:
    data = stream(0.3)
    pkts = packets(data, 240)
    late = pkts.pop(2)
    repack = Repacketiser(FRAME, SILENCE)
    first = run(pkts[:2 + LAG], repack=repack)
    assert run([late], repack=repack) == []  # too late: frame 4 went out padded already
    assert repack.stats.dropped_bytes == 240
    sent = {seq: f for seq, _, f in first}
    assert 3 not in sent and sent[4] == SILENCE[:80] + data[720:800]


def test_duplicates_are_dropped() -> None:
    data = stream(0.1)
    pkts = packets(data, 240)
    repack = Repacketiser(FRAME, SILENCE)
    frames = run(pkts + pkts[:2], repack=repack)
    assert len(frames) == len({seq for seq, _, _ in frames}) == 5
    assert repack.stats.dropped_bytes > 0


def test_timestamp_and_sequence_wrap() -> None:
    data = stream(2.0)
    ts0 = 0xFFFFFFFF - 3000
    frames = run(packets(data, 240, ts0))
    assert b"".join(f for _, _, f in frames) == data
    assert [ts for _, ts, _ in frames][:3] == [ts0, ts0 + 160, ts0 + 320]
    assert frames[20][1] == (ts0 + 20 * FRAME) & 0xFFFFFFFF  # past the wrap


def test_sequence_numbers_wrap_at_65536_frames() -> None:
    repack = Repacketiser(FRAME, SILENCE, max_jump_samples=1 << 30)
    repack.push(0, 1, b"\x00" * 160)
    (seq, ts, _), = repack.push(65536 * FRAME, 1, b"\x00" * 160)
    assert (seq, ts) == (0, 65536 * FRAME)


@pytest.mark.parametrize("change", ["ssrc", "jump"])
def test_new_ssrc_or_timestamp_jump_starts_a_new_grid(change: str) -> None:
    repack = Repacketiser(FRAME, SILENCE)
    data = stream(0.12)
    run(packets(data, 240), repack=repack)
    ssrc, ts0 = (8, 1000 + 50) if change == "ssrc" else (7, 1000 + 8000 * 60)
    frames = run(packets(data, 240, ts0), ssrc=ssrc, repack=repack)
    assert [seq for seq, _, _ in frames][:2] == [0, 1]  # a new grid at the new stream's start
    assert frames[0][1] == ts0
    assert b"".join(f for _, _, f in frames) == data[: len(frames) * FRAME]
    assert repack.stats.restarts == 1


def test_reset_forgets_the_stream() -> None:
    repack = Repacketiser(FRAME, SILENCE)
    run(packets(stream(0.1), 240), repack=repack)
    repack.reset()
    (seq, ts, _), = repack.push(5000, 7, b"\x01" * 160)
    assert (seq, ts) == (0, 5000)


def test_empty_payload_is_harmless() -> None:
    repack = Repacketiser(FRAME, SILENCE)
    assert repack.push(1000, 7, b"") == []
    assert run(packets(stream(0.04), 240), repack=repack)


@pytest.mark.parametrize("frame,silence", [(0, b""), (160, b"\xff" * 80)])
def test_bad_arguments_are_refused(frame: int, silence: bytes) -> None:
    with pytest.raises(ValueError, match="silence"):
        Repacketiser(frame, silence)


def jumbled(pkts: list[tuple[int, bytes]], rng: np.random.Generator, loss: float
            ) -> list[tuple[int, bytes]]:
    """`pkts` with neighbours swapped, some duplicated a little later, some lost."""
    out = list(pkts)
    i = 0
    while i < len(out) - 1:  # disjoint pairs: no packet moves by more than one place
        if rng.random() < 0.2:
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 1
        i += 1
    for i in sorted(rng.choice(len(out), len(out) // 20, replace=False), reverse=True):
        out.insert(min(len(out), i + int(rng.integers(1, 3))), out[i])
    return [p for p in out if rng.random() >= loss]


@pytest.mark.parametrize("seed", range(12))
def test_jumbled_streams_keep_every_sample_in_place(seed: int) -> None:
    """Random packet sizes, reordering, duplicates and (for odd seeds) loss: each frame
    goes out once, and each of its bytes is the stream's own or silence; without loss,
    every whole frame goes out exactly. (Packets of up to 1.5 frames, swapped with a
    neighbour: never later than the LAG that gives a part-filled frame up.)"""
    rng = np.random.default_rng(seed)
    data = stream(2.0, seed)
    sizes = [80, 160, 240, 100, 200, 37]
    cuts = [0]
    while cuts[-1] < len(data):
        cuts.append(min(len(data), cuts[-1] + int(rng.choice(sizes))))
    pkts = [(1000 + a, data[a:b]) for a, b in itertools.pairwise(cuts)]
    loss = 0.05 if seed % 2 else 0.0
    frames = run(pkts[:1] + jumbled(pkts[1:], rng, loss))  # the first one sets the grid
    seqs = [seq for seq, _, _ in frames]
    assert len(seqs) == len(set(seqs))
    for seq, ts, f in frames:
        assert ts == 1000 + FRAME * seq
        want = np.frombuffer(data[seq * FRAME : (seq + 1) * FRAME], np.uint8)
        got = np.frombuffer(f, np.uint8)
        assert np.all((got == want) | (got == 0xFF)), seq
    if not loss:
        assert {seq: f for seq, _, f in frames} == {
            i: data[i * FRAME : (i + 1) * FRAME] for i in range(len(data) // FRAME)
        }
