"""Bridged call pairs on real UDP sockets, the engine on its real clock; prints JSON.

This process is the switch's media plane: it opens two channels per pair (leg a PCMU,
leg b PCMA, so every pair transcodes), bridges them, and runs `MediaEngine` on its own
20 ms clock (uvloop when installed, as `voxswitch serve` does), pinned to one CPU. A
load generator, this script in ``--generator`` mode, runs in a separate process pinned
to the other CPU: every 20 ms it sends one G.711 packet into every leg, the legs spread
over ten 2 ms slots (independent far ends are not in step with each other), and it
receives everything the engine sends, with the kernel's receive timestamps
(SO_TIMESTAMPNS), on a few sockets of its own (25 legs each), which it polls every 2 ms
rather than waits on (a waiting receiver is woken per datagram, a cost that loopback
charges to the sender).

Each frame the generator sends carries a stamp in the signs of its first 24 samples
(an 8-bit sync pattern, then the 16-bit send count): signs survive G.711 transcoding, so
the generator can tell which of its frames came out of which leg. Per size, after a
warm-up, over a window of ``--seconds``:

- ``loss_pct``: frames sent into a leg during the window that never came out of its
  partner (lost on a socket, late for the jitter buffer, or not sent), of all frames
  sent, pooled over legs; ``loss_worst_leg_pct`` is the worst leg's;
- ``jitter_p50_ms`` / ``jitter_p99_ms`` / ``jitter_max_ms``: |inter-arrival - 20 ms| of
  consecutive packets of each leg as the generator's kernel stamped them, pooled over
  every leg: the engine's send jitter;
- ``late_ticks`` / ``skipped_ticks`` / ``ticks``: the engine's own clock counters
  (`EngineStats`) over the window; ``tick_cost_us`` its moving average at the end and
  ``max_tick_cost_us`` the worst tick in the window;
- ``cpu_pct``: CPU time of the engine process (user + system, `getrusage`) over the
  window, in percent of one core: ticks, the receive path of every packet, the
  loopback sends. ``generator_cpu_pct`` is the generator's, and
  ``generator_late_sends`` counts its 2 ms slots (ten per tick) that began more than
  5 ms late: beyond a few percent of them, the machine set the pace, not the engine.

``--sched fifo`` runs the engine's thread at real-time priority (SCHED_FIFO,
``--sched-priority``, not inherited by the generator), as a deployment would run a media
server on a shared machine (FreeSWITCH's ``-rp``, Asterisk's ``-p``): other runnable
processes on its CPU then no longer delay its ticks. ``engine_sched`` records which.

The issue's target: 500 pairs (1,000 legs) on one core with loss < 0.1 % and p99 jitter
< 5 ms (``target_500_pairs_met``; null when 500 pairs were not run, as in ``--quick``).
Another process on the engine's CPU shows up as late ticks and jitter (the engine is
preempted mid-tick, or woken late): ``loadavg_1m`` is recorded at the start, and
``engine_cpu_busy_pct`` is how busy the engine's CPU was over the window (`/proc/stat`),
of which ``engine_cpu_others_pct`` was not the engine process (other processes, and
interrupt work the kernel does not charge to the engine).

Run: ``.venv/bin/python bench/bridge.py [--pairs 100,250,500] [--seconds 15]
[--rtp-ports 10000-19999] [--sched normal|fifo] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import struct
import sys
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import g711
from media.engine import EngineStats, MediaEngine

PTIME = 0.02
QUICK = {"pairs": "5,20", "seconds": 1.5, "warmup": 0.5}
LEGS_PER_SOCKET = 25
SLOTS = 10  # the generator's sends are spread over 10 slots of 2 ms per period
POLL = PTIME / SLOTS  # and it drains its sockets after each slot
SYNC = (1, 0, 1, 1, 0, 0, 1, 0)  # never all ones: a silence frame is not a stamp
STAMP = len(SYNC) + 16
HEAD = 12 + STAMP  # what the generator keeps of each packet: RTP header and stamp
CODECS = (g711.PCMU, g711.PCMA)  # leg a, leg b of each pair
TARGET_PAIRS = 500
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 lacks the name


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin(cpu: int | None) -> list[int]:
    if cpu is not None and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def schedule(policy: str, priority: int) -> str:
    """Put this thread (the engine's: it runs the loop) under `policy`; what it is now."""
    if policy == "fifo":
        flags = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)  # not the generator
        os.sched_setscheduler(0, flags, os.sched_param(priority))
        return f"fifo:{priority}"
    return "normal"


def cpu_busy_seconds(cpu: int) -> float | None:
    """Busy time of one CPU since boot (`/proc/stat`: all but idle and iowait), or None."""
    try:
        with open("/proc/stat") as f:
            for row in f:
                name, *fields = row.split()
                if name == f"cpu{cpu}":
                    ticks = [int(x) for x in fields[:8]]
                    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the load generator (its own process) ---


class Frames:
    """The stamped 20 ms payloads, per codec: 24 stamp samples, then a tone."""

    def __init__(self) -> None:
        t = np.arange(160 - STAMP) / 8000
        self.tail = {
            pt: g711.encode(pt, (3000 * np.sin(2 * np.pi * f * t)).astype(np.int16))
            for pt, f in zip(CODECS, (440, 1000), strict=True)
        }
        self.plus = {pt: g711.encode(pt, np.array([8000], np.int16)) for pt in CODECS}
        self.minus = {pt: g711.encode(pt, np.array([-8000], np.int16)) for pt in CODECS}
        self.byte = {pt: [self._bits(pt, v, 8) for v in range(256)] for pt in CODECS}
        self.sync = {pt: b"".join(self._bit(pt, b) for b in SYNC) for pt in CODECS}

    def _bit(self, pt: int, bit: int) -> bytes:
        return self.plus[pt] if bit else self.minus[pt]

    def _bits(self, pt: int, value: int, width: int) -> bytes:
        return b"".join(self._bit(pt, (value >> (width - 1 - i)) & 1) for i in range(width))

    def payload(self, pt: int, count: int) -> bytes:
        byte = self.byte[pt]
        return self.sync[pt] + byte[(count >> 8) & 0xFF] + byte[count & 0xFF] + self.tail[pt]


def stamps(raw: np.ndarray) -> np.ndarray:
    """Send count of each received payload prefix (M, STAMP) uint8; -1 where no stamp."""
    signs = (raw & 0x80) != 0  # the sign bit of a code is the same in µ-law and A-law
    ok = (signs[:, : len(SYNC)] == np.array(SYNC, bool)).all(axis=1)
    weights = 1 << np.arange(15, -1, -1)
    count = signs[:, len(SYNC) :].astype(np.int64) @ weights
    return np.where(ok, count, -1)


def generator(config: dict[str, Any]) -> dict[str, Any]:
    """Send into every leg and receive from it; see the module doc. Talks to the engine
    process on stdin/stdout: addresses out, "go" in, "measure" and "done" out, results."""
    cpus = pin(config["cpu"])
    legs: list[tuple[int, int]] = [tuple(leg) for leg in config["legs"]]
    n_sock = -(-len(legs) // LEGS_PER_SOCKET)
    socks = []
    for _ in range(n_sock):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 << 20)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks.append(sock)
    sock_of = [socks[i // LEGS_PER_SOCKET] for i in range(len(legs))]
    print(json.dumps({"addrs": [s.getsockname() for s in sock_of]}), flush=True)
    assert sys.stdin.readline().strip() == "go"

    frames = Frames()
    header = struct.Struct("!BBHII")
    # Leg i sends in slot i % SLOTS of each 20 ms: far ends are not in step with each
    # other (nor with the engine), so their packets arrive spread over the period.
    slots: list[list[tuple[Any, tuple[str, int], int, int]]] = [[] for _ in range(SLOTS)]
    for i, (port, pt) in enumerate(legs):
        slots[i % SLOTS].append((sock_of[i].sendto, ("127.0.0.1", port), pt, 0x10000 + i))
    ports, times = array("l"), array("q")
    heads = bytearray()
    recording = False
    warmup_ticks = round(config["warmup"] / PTIME)
    window_ticks = round(config["seconds"] / PTIME)
    late_sends = send_errors = 0
    window: list[int] = []

    def drain(sock: socket.socket) -> None:
        recvmsg = sock.recvmsg
        while True:
            try:
                data, anc, _, addr = recvmsg(256, 64)
            except BlockingIOError:
                return
            if recording:
                sec, nsec = struct.unpack_from("qq", anc[0][2])
                times.append(sec * 1_000_000_000 + nsec)
                ports.append(addr[1])
                heads.extend(data[:HEAD])

    step = PTIME / SLOTS
    sub = 0  # slot deadlines since the start: count = sub // SLOTS
    deadline = time.monotonic()
    cpu0 = cpu1 = 0.0
    payloads: dict[int, bytes] = {}
    while sub < (warmup_ticks + window_ticks) * SLOTS:
        # Poll rather than wait on the sockets: a process blocked on a socket is woken by
        # each datagram, and on loopback the sender (the engine) pays for the wake-up.
        # The kernel stamps each datagram on arrival, so polling costs no accuracy.
        time.sleep(max(0.0, deadline - time.monotonic()))
        if time.monotonic() - deadline > PTIME / 4:
            late_sends += 1
        count, slot = divmod(sub, SLOTS)
        if slot == 0:
            if count == warmup_ticks:
                recording = True
                window = [time.time_ns(), 0]
                cpu0 = cpu_seconds()
                print("measure", flush=True)
            payloads = {pt: frames.payload(pt, count) for pt in CODECS}
        seq, ts = count & 0xFFFF, (count * 160) & 0xFFFFFFFF
        for sendto, dest, pt, ssrc in slots[slot]:
            try:
                sendto(header.pack(0x80, pt, seq, ts, ssrc) + payloads[pt], dest)
            except OSError:
                send_errors += 1
        sub += 1
        deadline += step
        for sock in socks:
            drain(sock)
    window[1] = time.time_ns()
    cpu1 = cpu_seconds()
    print("done", flush=True)
    # The last frames are still in the engine's jitter buffers: keep receiving a while.
    tail_end = time.monotonic() + 0.3
    while time.monotonic() < tail_end:
        time.sleep(POLL)
        for sock in socks:
            drain(sock)
    for sock in socks:
        sock.close()
    results = analyse(legs, np.frombuffer(ports, np.int64), np.frombuffer(times, np.int64),
                      np.frombuffer(bytes(heads), np.uint8).reshape(-1, HEAD),
                      (warmup_ticks, warmup_ticks + window_ticks - 1), window)
    results.update(
        generator_cpu_pct=round((cpu1 - cpu0) / ((window[1] - window[0]) / 1e9) * 100, 1),
        generator_late_sends=late_sends, generator_send_errors=send_errors,
        generator_cpus=cpus, packets_sent=window_ticks * len(legs),
    )
    return results


def analyse(
    legs: Sequence[tuple[int, int]],
    ports: np.ndarray,
    times: np.ndarray,
    raw: np.ndarray,
    counts: tuple[int, int],
    window: list[int],
) -> dict[str, Any]:
    leg_of = {port: i for i, (port, _) in enumerate(legs)}
    known, index = np.unique(ports, return_inverse=True)
    leg = np.array([leg_of.get(int(p), -1) for p in known], np.int64)[index]
    seq = raw[:, 2].astype(np.int64) << 8 | raw[:, 3]
    # Loss: which of the window's frames sent into each leg's partner came out of the leg.
    first, last = counts
    count = stamps(raw[:, 12:])
    heard = np.zeros((len(legs), last - first + 1), bool)
    keep = (leg >= 0) & (count >= first) & (count <= last)
    heard[leg[keep], count[keep] - first] = True
    lost = 1.0 - heard.mean(axis=1)
    # Jitter: inter-arrival of consecutive packets of each leg inside the window.
    inside = (times >= window[0]) & (times <= window[1]) & (leg >= 0)
    order = np.lexsort((times[inside], leg[inside]))
    t, g, s = times[inside][order], leg[inside][order], seq[inside][order]
    consecutive = (g[1:] == g[:-1]) & ((s[1:] - s[:-1]) % 65536 == 1)
    deviation = np.abs(np.diff(t)[consecutive] / 1e6 - PTIME * 1000)
    pct = np.percentile(deviation, [50, 99]) if len(deviation) else [0.0, 0.0]
    return {
        "packets_received": int(inside.sum()),
        "loss_pct": round(float(lost.mean()) * 100, 4),
        "loss_worst_leg_pct": round(float(lost.max()) * 100, 4),
        "jitter_p50_ms": round(float(pct[0]), 3),
        "jitter_p99_ms": round(float(pct[1]), 3),
        "jitter_max_ms": round(float(deviation.max()) if len(deviation) else 0.0, 3),
    }


# --- the engine (this process) ---


def snapshot(stats: EngineStats) -> tuple[int, int, int, int]:
    return stats.ticks, stats.late_ticks, stats.skipped_ticks, stats.send_errors


async def line(proc: asyncio.subprocess.Process, expect: str | None = None) -> str:
    """The generator's next line of output (`expect`ed, when given)."""
    assert proc.stdout is not None
    text = (await proc.stdout.readline()).decode().strip()
    if not text or (expect is not None and text != expect):
        raise RuntimeError(f"the load generator said {text!r}, not {expect or 'JSON'!r}")
    return text


async def run_size(pairs: int, args: argparse.Namespace) -> dict[str, Any]:
    engine = MediaEngine(port_range=args.rtp_ports)
    channels = [await engine.open_channel() for _ in range(2 * pairs)]
    legs = [[ch.local_port, CODECS[i % 2]] for i, ch in enumerate(channels)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--generator",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    config = {"legs": legs, "warmup": args.warmup, "seconds": args.seconds,
              "cpu": args.generator_cpu}
    proc.stdin.write(json.dumps(config).encode() + b"\n")
    addrs = json.loads(await line(proc))["addrs"]
    for i, (ch, addr) in enumerate(zip(channels, addrs, strict=True)):
        ch.configure(remote=tuple(addr), payload_type=CODECS[i % 2], latch=False)
    for a, b in zip(channels[::2], channels[1::2], strict=True):
        engine.bridge(a, b)
    await engine.start()
    proc.stdin.write(b"go\n")
    await line(proc, "measure")
    engine_cpu = (args.engine_cpus or [None])[0]
    busy0 = None if engine_cpu is None else cpu_busy_seconds(engine_cpu)
    before, cpu0, t0 = snapshot(engine.stats), cpu_seconds(), time.monotonic()
    engine.stats.max_tick_cost_us = 0.0
    await line(proc, "done")
    after, cpu1, t1 = snapshot(engine.stats), cpu_seconds(), time.monotonic()
    busy1 = None if engine_cpu is None else cpu_busy_seconds(engine_cpu)
    max_cost, cost = engine.stats.max_tick_cost_us, engine.stats.tick_cost_us
    out = json.loads(await line(proc))
    await proc.wait()
    await engine.stop()
    ticks, late, skipped, send_errors = (y - x for x, y in zip(before, after, strict=True))
    result = {
        "pairs": pairs, "legs": 2 * pairs,
        **{k: out[k] for k in ("packets_sent", "packets_received", "loss_pct",
                               "loss_worst_leg_pct", "jitter_p50_ms", "jitter_p99_ms",
                               "jitter_max_ms")},
        "ticks": ticks, "late_ticks": late, "skipped_ticks": skipped,
        "send_errors": send_errors, "tick_cost_us": round(cost, 1),
        "max_tick_cost_us": round(max_cost, 1),
        "cpu_pct": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
        **busy_fields(busy0, busy1, cpu1 - cpu0, t1 - t0),
        **{k: out[k] for k in ("generator_cpu_pct", "generator_late_sends",
                               "generator_send_errors")},
        "_generator_cpus": out["generator_cpus"],
    }
    log(f"{pairs} pairs: loss {result['loss_pct']}%, jitter p99 {result['jitter_p99_ms']} ms, "
        f"late ticks {late}/{ticks}, engine CPU {result['cpu_pct']}% "
        f"(its CPU busy {result['engine_cpu_busy_pct']}%, "
        f"others {result['engine_cpu_others_pct']}%)")
    return result


def busy_fields(
    busy0: float | None, busy1: float | None, engine_s: float, seconds: float
) -> dict[str, float | None]:
    if busy0 is None or busy1 is None:
        return {"engine_cpu_busy_pct": None, "engine_cpu_others_pct": None}
    busy = (busy1 - busy0) / seconds * 100
    return {"engine_cpu_busy_pct": round(busy, 1),
            "engine_cpu_others_pct": round(max(0.0, busy - engine_s / seconds * 100), 1)}


def met(result: dict[str, Any] | None) -> bool | None:
    if result is None:
        return None
    return bool(result["loss_pct"] < 0.1 and result["jitter_p99_ms"] < 5)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(x) for x in args.pairs.split(",")]
    nofile = raise_nofile(4 * max(sizes) + 256)
    loadavg = os.getloadavg()[0]
    cpus = pin(args.engine_cpu)
    sched = schedule(args.sched, args.sched_priority)
    args.engine_cpus = cpus if len(cpus) == 1 else []  # whose busy time to read
    results = []
    for pairs in sizes:
        log(f"{pairs} pairs ({2 * pairs} legs): {args.warmup} s warm-up, {args.seconds} s")
        results.append(await run_size(pairs, args))
    generator_cpus = {tuple(r.pop("_generator_cpus")) for r in results}  # one per size
    target = next((r for r in results if r["pairs"] == TARGET_PAIRS), None)
    return {
        "bench": "bridge",
        "quick": args.quick,
        "ptime_ms": round(PTIME * 1000),
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "codecs": "PCMU <-> PCMA",
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "engine_cpus": cpus,
        "engine_sched": sched,
        "generator_cpus": sorted(set().union(*generator_cpus)),
        "loadavg_1m": round(loadavg, 2),
        "nofile": nofile,
        "results": results,
        "target_500_pairs_met": met(target),
    }


def port_range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi)


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main(args))
    return uvloop.run(main(args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per size")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rtp-ports", type=port_range, default=(10000, 19999),
                        help="the engine's RTP/RTCP port range, LO-HI")
    parser.add_argument("--engine-cpu", type=int, default=0)
    parser.add_argument("--generator-cpu", type=int, default=1)
    parser.add_argument("--sched", choices=("normal", "fifo"), default="normal",
                        help="the engine thread's scheduling policy (fifo: real-time)")
    parser.add_argument("--sched-priority", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5,20 pairs, 2 s each")
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        print(json.dumps(generator(json.loads(sys.stdin.readline()))), flush=True)
        sys.exit(0)
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    print(json.dumps(run(args), indent=2))
