"""Media engine tick cost for 100-2000 channels all playing G.711 audio; prints JSON.

Every channel is configured for PCMU, plays a shared 8 s prompt and receives one
inbound PCMU packet per tick (fed straight into its receive path, no socket), so a tick
does the whole pipeline: jitter-buffer pop, decode, detect hook (a no-op), route,
encode and packetise.

- ``excluded``: `MediaEngine.render` — everything up to the datagrams' bytes, no sendto.
- ``included``: `MediaEngine.tick` — the same plus one `sendto` per channel on real
  loopback UDP sockets to a sink socket.
- ``rx_us``: the per-packet receive path for all channels in one tick (parse, latch
  check, jitter-buffer push), which runs in `datagram_received` outside the tick.

Percent of one core is ``us / 20000 * 100`` for a 20 ms ptime.

``--quick`` (what tests/bench runs) measures 10 and 50 channels over 20 ticks; the JSON has
the same fields (the 1000-channel target is then null).

Run: ``.venv/bin/python bench/engine.py [--ticks N] [--channels 100,500,...] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from media.rtp import pack_header

PTIME_US = 20_000
QUICK = {"ticks": 20, "channels": "10,50"}


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def prompt(seconds: float) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    wave = 8000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1209 * t)
    pcm = wave.astype(np.int16)
    pcm.flags.writeable = False
    return pcm


def noop_hook(channels: Sequence[Channel], pcm_in: np.ndarray) -> None:
    pass


async def run_size(n: int, ticks: int, audio: np.ndarray) -> dict[str, float | int]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink_addr = sink.getsockname()
    engine = MediaEngine(port_range=(0, 0))
    engine.add_detect_hook(noop_hook)
    channels = [await engine.open_channel() for _ in range(n)]
    for ch in channels:
        ch.configure(remote=sink_addr, payload_type=g711.PCMU, latch=False)
    payload = g711.ulaw_encode(audio[:160]).tobytes()
    seq = [0]

    def feed() -> float:
        # One inbound packet per channel, as datagram_received would deliver it.
        s = seq[0]
        packet = pack_header(0, False, s, s * 160, 0x5EED) + payload
        t0 = time.perf_counter()
        for ch in channels:
            ch._on_rtp(packet, sink_addr)
        seq[0] = s + 1
        return (time.perf_counter() - t0) * 1e6

    def measure(step: str) -> tuple[list[float], list[float]]:
        for ch in channels:
            ch.stop_audio()
            ch.play(audio)
        costs, rx = [], []
        for i in range(ticks + 10):
            rx_us = feed()
            t0 = time.perf_counter()
            if step == "render":
                engine.render(i * 0.02)
            else:
                engine.tick(i * 0.02)
            if i >= 10:  # warm-up: jitter buffers fill, caches settle
                costs.append((time.perf_counter() - t0) * 1e6)
                rx.append(rx_us)
        return costs, rx

    excluded, rx = measure("render")
    included, _ = measure("tick")
    assert all(ch.stats.packets_out > 0 for ch in channels)
    await engine.stop()
    sink.close()
    ex, inc, rx_us = statistics.median(excluded), statistics.median(included), statistics.median(rx)
    return {
        "channels": n,
        "excluded_us": round(ex, 1),
        "excluded_pct_core": round(ex / PTIME_US * 100, 2),
        "excluded_p99_us": round(float(np.percentile(excluded, 99)), 1),
        "included_us": round(inc, 1),
        "included_pct_core": round(inc / PTIME_US * 100, 2),
        "included_p99_us": round(float(np.percentile(included, 99)), 1),
        "rx_us": round(rx_us, 1),
        "total_with_rx_pct_core": round((inc + rx_us) / PTIME_US * 100, 2),
    }


async def main(sizes: list[int], ticks: int, quick: bool = False) -> dict[str, object]:
    nofile = raise_nofile(2 * max(sizes) + 256)
    audio = prompt(8.0)
    results = [await run_size(n, ticks, audio) for n in sizes]
    target = next((r for r in results if r["channels"] == 1000), None)
    return {
        "bench": "media_engine_tick",
        "quick": quick,
        "ptime_ms": 20,
        "ticks_measured": ticks,
        "stat": "median",
        "nofile": nofile,
        "results": results,
        "target_1000_excluded_under_25pct": None
        if target is None
        else target["excluded_pct_core"] < 25,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--channels", default="100,500,1000,2000")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10,50 x 20 ticks")
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    sizes = [int(x) for x in args.channels.split(",")]
    print(json.dumps(asyncio.run(main(sizes, args.ticks, args.quick)), indent=2))
