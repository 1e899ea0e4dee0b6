"""Jitter buffer: reorder, duplicates, loss, late packets, wrap-around and resync."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from media import jitter, udpio
from media.jitter import JitterBuffer, JitterState
from tests.media import _streams

try:
    from media import _udpio
except ImportError:  # the compiled kernel is not built: its tests fail, saying so
    _udpio = None  # type: ignore[assignment]

SSRC = 0x1234


@pytest.fixture(autouse=True, params=["c", "python"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test here runs on the compiled buffer (`media._udpio.JitterBuffer`) and on
    the Python reference."""
    if request.param == "c":
        if _udpio is None:
            pytest.fail(f"the compiled RTP I/O is not built ({udpio._compiled_error}): run make")
        monkeypatch.setattr(sys.modules[__name__], "JitterBuffer", _udpio.JitterBuffer)
    yield request.param


def frame(n: int) -> bytes:
    return n.to_bytes(4, "big") * 40


def drain(jb: JitterBuffer, ticks: int) -> list[bytes | None]:
    return [jb.pop() for _ in range(ticks)]


def push_seq(jb: JitterBuffer, seqs: list[int], ts0: int = 1000, ssrc: int = SSRC) -> None:
    for s in seqs:
        jb.push(s & 0xFFFF, (ts0 + 160 * s) & 0xFFFFFFFF, ssrc, frame(s))


def test_idle_pop_returns_none() -> None:
    jb = JitterBuffer()
    assert jb.idle
    assert drain(jb, 3) == [None, None, None]


@pytest.mark.parametrize(("depth_ms", "delay"), [(40, 2), (60, 3)])
def test_fixed_playout_delay(depth_ms: int, delay: int) -> None:
    jb = JitterBuffer(depth_ms=depth_ms)
    out = []
    for s in range(10):
        push_seq(jb, [s])
        out.append(jb.pop())
    assert out[: delay - 1] == [None] * (delay - 1)
    assert out[delay - 1 :] == [frame(s) for s in range(10 - delay + 1)]


def test_reorder_within_depth_is_played_in_order() -> None:
    jb = JitterBuffer(depth_ms=60)
    push_seq(jb, [1, 0, 3, 2, 5, 4])
    assert drain(jb, 3 + 5) == [None, None] + [frame(s) for s in range(6)]
    assert jb.stats.lost == 0 and jb.stats.late == 0


def test_duplicate_dropped() -> None:
    jb = JitterBuffer()
    push_seq(jb, [0, 1, 1, 2])
    assert jb.stats.duplicates == 1
    assert drain(jb, 5) == [None, None, frame(0), frame(1), frame(2)]


def test_loss_is_concealed_as_none_and_counted() -> None:
    jb = JitterBuffer(depth_ms=40)
    push_seq(jb, [0, 1, 3, 4])
    assert drain(jb, 6) == [None, frame(0), frame(1), None, frame(3), frame(4)]
    assert jb.stats.lost == 1


def test_too_late_packet_dropped() -> None:
    jb = JitterBuffer(depth_ms=40)
    push_seq(jb, [0, 1, 3])
    assert drain(jb, 4) == [None, frame(0), frame(1), None]  # 2 concealed
    assert not jb.push(2, 1000 + 320, SSRC, frame(2))
    assert jb.stats.late == 1
    assert jb.pop() == frame(3)


def test_sequence_wrap_at_65535() -> None:
    jb = JitterBuffer(depth_ms=40)
    seqs = [65533, 65534, 65535, 65536, 65537, 65538]
    out = []
    for s in seqs:
        push_seq(jb, [s])
        out.append(jb.pop())
    out += drain(jb, 2)
    assert out[1:7] == [frame(s) for s in seqs]
    assert jb.stats.resyncs == 0 and jb.stats.lost == 0


def test_reorder_across_wrap() -> None:
    jb = JitterBuffer(depth_ms=60)
    push_seq(jb, [65534, 0x10000, 65535, 0x10001])
    assert drain(jb, 6)[2:] == [frame(65534), frame(65535), frame(0x10000), frame(0x10001)]


def test_timestamp_wrap_does_not_resync() -> None:
    jb = JitterBuffer(depth_ms=40)
    ts0 = 0xFFFFFFFF - 160 * 2 + 1
    for i in range(6):
        jb.push(100 + i, (ts0 + 160 * i) & 0xFFFFFFFF, SSRC, frame(i))
        jb.pop()
    assert jb.stats.resyncs == 0 and jb.stats.played == 5


def test_ssrc_change_resyncs() -> None:
    jb = JitterBuffer(depth_ms=40)
    push_seq(jb, [0, 1, 2])
    drain(jb, 3)
    jb.push(5000, 99, 0x9999, b"new")
    assert jb.stats.resyncs == 1
    assert drain(jb, 2) == [None, b"new"]


@pytest.mark.parametrize("jump", [500, -500])
def test_big_sequence_jump_resyncs(jump: int) -> None:
    jb = JitterBuffer(depth_ms=40)
    push_seq(jb, [1000, 1001])
    drain(jb, 3)
    jb.push(1001 + jump, 1000 + 160 * (1001 + jump), SSRC, b"jumped")
    assert jb.stats.resyncs == 1
    assert drain(jb, 2) == [None, b"jumped"]


def test_big_timestamp_jump_resyncs() -> None:
    jb = JitterBuffer(depth_ms=40)
    push_seq(jb, [0, 1])
    jb.push(2, 1000 + 8000 * 3600, SSRC, b"later")
    assert jb.stats.resyncs == 1


def test_pause_goes_idle_and_rebuffers() -> None:
    jb = JitterBuffer(depth_ms=40)
    push_seq(jb, [0, 1])
    assert drain(jb, 4) == [None, frame(0), frame(1), None]
    assert jb.idle and jb.state is JitterState.IDLE
    push_seq(jb, [2])  # resumes after a pause: a new playout delay, no loss counted
    assert drain(jb, 3) == [None, frame(2), None]
    assert jb.stats.lost == 0


def test_overflow_drops_oldest() -> None:
    jb = JitterBuffer(depth_ms=40, capacity_ms=100)
    push_seq(jb, list(range(8)))
    assert len(jb) == 5 and jb.stats.overflow == 3
    assert drain(jb, 3) == [None, frame(3), frame(4)]


def test_reset() -> None:
    jb = JitterBuffer()
    push_seq(jb, [0, 1])
    jb.reset()
    assert jb.idle and len(jb) == 0


def test_the_compiled_buffer_takes_the_same_arguments() -> None:
    for kwargs in ({}, {"depth_ms": 0}, {"depth_ms": 100, "capacity_ms": 60}, {"ptime_ms": 30}):
        py, c = jitter.JitterBuffer(**kwargs), _udpio.JitterBuffer(**kwargs)
        assert (py.depth, py.capacity) == (c.depth, c.capacity)
    with pytest.raises(ValueError, match="must be positive"):
        _udpio.JitterBuffer(ptime_ms=0)


def observe(jb: Any) -> tuple[Any, ...]:
    return (jb.state, jb.idle, len(jb), jb.stats)


@pytest.mark.parametrize("seed", range(150))
def test_both_kernels_play_a_bad_network_alike(seed: int) -> None:
    # Reordering, loss, duplicates, late packets, bursts, pauses, SSRC changes, jumps,
    # and wraps of seq and timestamp (tests/media/_streams.py): the same pushes and pops
    # give the same results, counters and states, step by step.
    py = jitter.JitterBuffer(depth_ms=60)
    c = _udpio.JitterBuffer(depth_ms=60)
    for step in _streams.plan(seed):
        for seq, ts, ssrc, _, n in step:
            data = _streams.payload(n)
            assert py.push(seq, ts, ssrc, data) == c.push(seq, ts, ssrc, data)
        assert py.pop() == c.pop()
        assert observe(py) == observe(c)
        if seed % 7 == 0 and len(step) > 1:
            py.reset()
            c.reset()
