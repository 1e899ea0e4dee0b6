"""RTP receive path: Python cost per inbound media packet; prints JSON.

What one packet costs once the engine's receive set (`media.udpio`) hands it to its
channel: header unpack, latching check, RTCP reception statistics (RFC 3550
A.1/A.3/A.8), the repacketiser when the peer's packet time is not 20 ms, the jitter
buffer push, and the engine's pops of the frames it yields (one per 20 ms). The socket
itself is left out (bench/bridge.py measures it). This is the path of the first packet of
a stream and of everything that is not the common packet; the common one is taken by
the compiled receive set itself (`media.udpio`):

``socket_path``: one packet into each of 500 channels' sockets, then one `drain` of the
engine's receive set, timed: epoll, `recvfrom` and the whole receive path per packet,
socket included, for ``fast`` (the compiled set taking the common packet in C),
``callback`` (the compiled set handing every packet to `Channel._on_rtp` and the Python
jitter buffer and statistics, as before the fast path) and ``python`` (the Python
receive set, the fallback), each the median of ``--drains`` drains.
Packets are fed in order; each repetition uses a fresh SSRC so the stream restarts cleanly.
``per_s_at_1000_calls_pct_core`` scales the cost to 1000 calls sending at their ptime.

``--quick`` (what tests/bench runs) feeds 500 packets per run and 5000 statistics updates;
the JSON has the same fields.

Run: ``.venv/bin/python bench/receive.py [--packets N] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import jitter, rtcp, udpio
from media.engine import MediaEngine
from media.rtcp import ReceptionStats
from media.rtp import pack_header

PTIMES_MS = (20, 30, 10, 60)
QUICK = {"packets": 500, "stats_updates": 5000, "drains": 5}
SOCKET_CHANNELS = 500
PATHS = ("fast", "callback", "python")


async def socket_us(path: str, drains: int, n: int = SOCKET_CHANNELS) -> float | None:
    """Median µs per packet of a drain of one packet on each of `n` channel sockets."""
    if udpio.KERNEL != "c" and path != "python":
        return None
    saved = (udpio.RtpSockets, udpio.RtpStream, udpio.JitterBuffer, udpio.ReceptionStats)
    if path != "fast":  # every datagram to the channel's callback, all of it in Python
        udpio.RtpStream = None
        udpio.JitterBuffer, udpio.ReceptionStats = jitter.JitterBuffer, rtcp.ReceptionStats
    if path == "python":
        udpio.RtpSockets = udpio.PyRtpSockets
    engine = MediaEngine(port_range=(0, 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    try:
        channels = [await engine.open_channel() for _ in range(n)]
        for ch in channels:
            ch.configure(remote=sender.getsockname(), payload_type=0, latch=False)
        ports = [("127.0.0.1", ch.local_port) for ch in channels]
        costs = []
        for i in range(drains + 5):
            packet = pack_header(0, False, i & 0xFFFF, i * 160, 0x5EED) + b"\xd5" * 160
            for dest in ports:
                sender.sendto(packet, dest)
            t0 = time.perf_counter()
            got = engine._receiver.drain()
            cost = (time.perf_counter() - t0) / max(1, got) * 1e6
            for ch in channels:  # the tick's pop, untimed: the buffers stay shallow
                ch._jb.pop()
            if i >= 5:  # the first packets latch and start each stream
                costs.append(cost)
        return statistics.median(costs)
    finally:
        sender.close()
        await engine.stop()
        udpio.RtpSockets, udpio.RtpStream, udpio.JitterBuffer, udpio.ReceptionStats = saved


async def per_packet_us(ptime_ms: int, packets: int, reps: int = 5) -> float:
    engine = MediaEngine(port_range=(0, 0))
    try:
        channel = await engine.open_channel()
        channel.configure(remote=("127.0.0.1", 9), payload_type=0)
        size = 8 * ptime_ms
        addr = ("127.0.0.1", 9)
        best = float("inf")
        for rep in range(reps):
            stream = [
                pack_header(0, i == 0, i & 0xFFFF, (i * size) & 0xFFFFFFFF, 1000 + rep)
                + b"\xd5" * size
                for i in range(packets)
            ]
            jb = channel._jb
            due = 0.0
            t0 = time.perf_counter()
            for data in stream:
                channel._on_rtp(data, addr)
                due += ptime_ms / 20
                while due >= 1:  # the engine pops one frame per 20 ms tick
                    jb.pop()
                    due -= 1
            best = min(best, (time.perf_counter() - t0) / packets * 1e6)
        return best
    finally:
        await engine.stop()


def stats_update_us(n: int = 200_000) -> float:
    stats = ReceptionStats.start(1, 0)
    seqs = [(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, i * 0.02) for i in range(1, n + 1)]
    update = stats.update
    t0 = time.perf_counter()
    for seq, ts, at in seqs:
        update(seq, ts, at)
    return (time.perf_counter() - t0) / n * 1e6


async def main(
    packets: int, stats_updates: int, drains: int, quick: bool = False
) -> dict[str, object]:
    results = []
    for ptime in PTIMES_MS:
        us = await per_packet_us(ptime, packets)
        rate = 1000 / ptime  # packets per second per call
        results.append({
            "ptime_ms": ptime,
            "repacketised": ptime != 20,
            "us_per_packet": round(us, 3),
            "per_s_at_1000_calls_pct_core": round(us * rate * 1000 / 1e6 * 100, 2),
        })
    return {
        "bench": "rtp_receive",
        "quick": quick,
        "packets_per_run": packets,
        "results": results,
        "rtcp_reception_stats_update_us": round(stats_update_us(stats_updates), 3),
        "kernel": udpio.KERNEL,
        "socket_path": {
            "channels": SOCKET_CHANNELS,
            "drains": drains,
            **{f"{path}_us_per_packet": None if us is None else round(us, 3)
               for path in PATHS for us in [await socket_us(path, drains)]},
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=20_000)
    parser.add_argument("--stats-updates", type=int, default=200_000)
    parser.add_argument("--drains", type=int, default=50)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 500 packets, 5000 statistics updates, 5 drains")
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    result = asyncio.run(main(args.packets, args.stats_updates, args.drains, args.quick))
    print(json.dumps(result, indent=2))
