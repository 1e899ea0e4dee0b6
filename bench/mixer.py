"""Conference mixing tick cost: one conference of 10-1000 members, 100 conferences of 10.

Every channel is configured for PCMU and receives one inbound packet per tick (fed
straight into its receive path, no socket; members take turns among 8 different
tones), and every member talks and listens, so a tick does decode + mix + encode +
packetise for all of them: `MediaEngine.render`, which stops short of `sendto` (like
``excluded`` in bench/engine.py). ``baseline_us`` is the same engine and feed with the
channels in no group (so ``mix_overhead_us`` is what the mixing adds), and
``kernel_us`` is `Mixer.mix_into` alone on the engine's arrays.

Percent of one core is ``us / 20000 * 100`` for a 20 ms ptime; the target is one
conference of 1000 under 25 % (5000 us per tick).

``--quick`` (what tests/bench runs) measures one conference of 10 and of 50 and five of 10
over 20 ticks; the JSON has the same fields (the 1000-member target is then null).

Run: ``.venv/bin/python bench/mixer.py [--ticks N] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import raise_nofile
from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from media.rtp import pack_header

PTIME_US = 20_000
SINK = ("127.0.0.1", 9)  # never sent to: render stops before sendto
CASES = [(1, 10), (1, 100), (1, 500), (1, 1000), (100, 10)]  # (conferences, members each)
QUICK_CASES = [(1, 10), (1, 50), (5, 10)]
QUICK_TICKS = 20


def payloads(count: int, seconds: float = 1.0) -> list[list[bytes]]:
    """`count` tones, each cut into PCMU frames."""
    t = np.arange(int(8000 * seconds)) / 8000
    out = []
    for i in range(count):
        wave = (6000 * np.sin(2 * np.pi * (300 + 170 * i) * t)).astype(np.int16)
        codes = g711.ulaw_encode(wave).tobytes()
        out.append([codes[o : o + 160] for o in range(0, len(codes), 160)])
    return out


class Setup:
    """An engine with `groups` × `size` PCMU channels, in mix groups or (`mix=False`) not."""

    def __init__(self, engine: MediaEngine, groups: int, size: int) -> None:
        self.engine = engine
        self.groups = groups
        self.size = size
        self.channels: list[Channel] = []
        self.tones = payloads(8)

    async def open(self, mix: bool) -> None:
        n = self.groups * self.size
        self.channels = [await self.engine.open_channel() for _ in range(n)]
        for ch in self.channels:
            ch.configure(remote=SINK, payload_type=g711.PCMU, latch=False)
        if mix:
            for g in range(self.groups):
                group = self.engine.create_mix_group()
                for ch in self.channels[g * self.size : (g + 1) * self.size]:
                    group.add(ch)

    def tick(self, i: int) -> float:
        """Feed one packet per channel (untimed), then time one render."""
        for k, ch in enumerate(self.channels):
            frames = self.tones[k % 8]
            packet = pack_header(0, False, i, i * 160, 0x5EED + k) + frames[i % len(frames)]
            ch._on_rtp(packet, SINK)
        t0 = time.perf_counter()
        self.engine.render(i * 0.02)
        return (time.perf_counter() - t0) * 1e6

    def kernel(self, ticks: int) -> float:
        """Median of `Mixer.mix_into` alone on this engine's last arrays."""
        n = len(self.channels)
        engine = self.engine
        mixer, pcm_in, out = engine._mixing._mixer, engine._pcm_in[:n], engine._pcm_out[:n]
        costs = []
        for _ in range(ticks):
            t0 = time.perf_counter()
            mixer.mix_into(pcm_in, out, add_out=False)
            costs.append((time.perf_counter() - t0) * 1e6)
        return statistics.median(costs)


async def case(groups: int, size: int, ticks: int) -> dict[str, float | int]:
    # The mixed and the plain engine tick in turn, so that load from other processes
    # falls on both alike and the overhead is a fair difference.
    mixed = Setup(MediaEngine(port_range=(0, 0)), groups, size)
    plain = Setup(MediaEngine(port_range=(0, 0)), groups, size)
    await mixed.open(mix=True)
    await plain.open(mix=False)
    costs: tuple[list[float], list[float]] = ([], [])
    for i in range(ticks + 10):
        a, b = mixed.tick(i), plain.tick(i)
        if i >= 10:  # warm-up: jitter buffers fill, the plan is built
            costs[0].append(a)
            costs[1].append(b)
    kernel = mixed.kernel(ticks)
    await mixed.engine.stop()
    await plain.engine.stop()
    us, base = statistics.median(costs[0]), statistics.median(costs[1])
    return {
        "conferences": groups,
        "members_each": size,
        "channels": groups * size,
        "us": round(us, 1),
        "pct_core": round(us / PTIME_US * 100, 2),
        "p99_us": round(float(np.percentile(costs[0], 99)), 1),
        "baseline_us": round(base, 1),
        "mix_overhead_us": round(us - base, 1),
        "kernel_us": round(kernel, 1),
    }


async def main(ticks: int, cases: list[tuple[int, int]], quick: bool = False
               ) -> dict[str, object]:
    nofile = raise_nofile(4 * max(g * s for g, s in cases) + 256)
    results = [await case(g, s, ticks) for g, s in cases]
    target = next((r for r in results if r["channels"] == 1000 and r["conferences"] == 1),
                  None)
    return {
        "bench": "conference_mix_tick",
        "quick": quick,
        "ptime_ms": 20,
        "ticks_measured": ticks,
        "stat": "median",
        "nofile": nofile,
        "results": results,
        "target_1000_in_one_under_25pct": None if target is None else target["pct_core"] < 25,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: conferences of 10 and 50, five of 10, 20 ticks")
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(ticks=QUICK_TICKS)
        args = parser.parse_args()
    cases = QUICK_CASES if args.quick else CASES
    print(json.dumps(asyncio.run(main(args.ticks, cases, args.quick)), indent=2))
