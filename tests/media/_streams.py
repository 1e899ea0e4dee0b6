"""Seeded inbound RTP streams as a bad network delivers them, for holding the compiled
receive path (`media._udpio`) and the Python one to the same behaviour.

`plan(seed)` is a list of steps, one per 20 ms tick: the packets that arrive during the
tick, as (seq, ts, ssrc, marker, frame number), in arrival order. The sender starts
near the wrap of the 16-bit sequence number and, for some seeds, of the 32-bit
timestamp; the network reorders (delays of up to a few ticks), loses, duplicates and
bursts; the sender sometimes changes SSRC, jumps its sequence number or timestamp,
pauses, or sets the marker bit.
"""

from __future__ import annotations

import random

Packet = tuple[int, int, int, bool, int]  # seq, ts, ssrc, marker, frame number


def plan(seed: int, ticks: int = 400) -> list[list[Packet]]:
    rng = random.Random(seed)
    seq = rng.choice([rng.randrange(65536), 65536 - rng.randrange(1, 40)])
    ts = rng.choice([rng.randrange(1 << 32), (1 << 32) - 160 * rng.randrange(1, 40)])
    ssrc = rng.getrandbits(32)
    late = rng.choice([0.0, 0.05, 0.3])  # share of packets delayed
    loss = rng.choice([0.0, 0.02, 0.2])
    dup = rng.choice([0.0, 0.02, 0.1])
    arrivals: dict[int, list[Packet]] = {}
    frame = 0
    paused = 0
    marker = True
    for tick in range(ticks):
        if paused:
            paused -= 1
            continue
        event = rng.random()
        if event < 0.005:
            ssrc = rng.getrandbits(32)  # a new source
            marker = True
        elif event < 0.01:
            seq += rng.choice([rng.randrange(101, 3000), -rng.randrange(101, 3000)])
        elif event < 0.015:
            ts += rng.choice([8000 * 11, 8000 * 3600, -8000 * 20])
        elif event < 0.025:
            paused = rng.randrange(1, 20)
            marker = True
        sends = rng.randrange(5, 20) if event > 0.995 else 1  # a burst: the sender ran ahead
        for _ in range(sends):
            packet = (seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, marker, frame)
            marker = False
            seq += 1
            ts += 160
            frame += 1
            if rng.random() < loss:
                continue
            copies = 2 if rng.random() < dup else 1
            for _ in range(copies):
                delay = rng.randrange(1, 8) if rng.random() < late else 0
                arrivals.setdefault(tick + delay, []).append(packet)
    return [arrivals.get(tick, []) for tick in range(ticks + 8)]


def payload(frame: int, size: int = 160) -> bytes:
    """A distinct payload per frame number."""
    return (frame & 0xFFFFFFFF).to_bytes(4, "big") * (size // 4)
