"""Free loopback ports for peers and the switch (tests/support/ports.py re-exports this).

The kernel hands out ephemeral ports from `ip_local_port_range` (32768-60999 here), so
explicitly chosen ports (RTP blocks, SIPp's media pair) are drawn at random from below that
range and probed by binding them. Ports handed out by this process are never reused, which
keeps parallel peers in one test from colliding. Under pytest-xdist each worker draws from
its own slice of that range (PYTEST_XDIST_WORKER, PYTEST_XDIST_WORKER_COUNT), so a port one
worker probed free cannot be taken by another worker's peer before it is bound.
"""

from __future__ import annotations

import os
import random
import socket
from collections import deque
from pathlib import Path

HOST = "127.0.0.1"
_RANGE = (20000, 32000)


def worker_slice(worker: str | None, workers: str | None,
                 lo: int = _RANGE[0], hi: int = _RANGE[1]) -> tuple[int, int]:
    """The part of [lo, hi) for xdist worker `worker` ("gw3") of `workers`; all of it when
    not under xdist."""
    if not worker or not workers:
        return lo, hi
    index, count = int(worker.removeprefix("gw")), int(workers)
    if not 0 <= index < count:
        raise ValueError(f"xdist worker {worker!r} is not one of {count}")
    size = (hi - lo) // count
    return lo + index * size, lo + (index + 1) * size


_LOW, _HIGH = worker_slice(os.environ.get("PYTEST_XDIST_WORKER"),
                           os.environ.get("PYTEST_XDIST_WORKER_COUNT"))
# Ports remembered as handed out: a quarter of the range, so that blocks stay easy to find.
RECENT = (_HIGH - _LOW) // 4
_handed_out: set[int] = set()
_order: deque[int] = deque()


def _can_bind(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def port_is_free(port: int, udp: bool = True, tcp: bool = True) -> bool:
    """True when `port` can be bound on 127.0.0.1 for the given protocols right now."""
    return (not udp or _can_bind(port, socket.SOCK_DGRAM)) and (
        not tcp or _can_bind(port, socket.SOCK_STREAM))


def free_port_block(count: int, align: int = 2) -> int:
    """First port of `count` consecutive ports free for UDP and TCP; the block is reserved."""
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(_LOW, _HIGH - count) // align * align
        block = range(base, base + count)
        if any(p in _handed_out for p in block):
            continue
        if all(port_is_free(p) for p in block):
            _reserve(block)
            return base
    raise RuntimeError(f"no free block of {count} loopback ports in {_LOW}-{_HIGH}")


def _reserve(block: range) -> None:
    _handed_out.update(block)
    _order.extend(block)
    while len(_order) > RECENT:
        _handed_out.discard(_order.popleft())


def free_udp_port() -> int:
    """A free UDP (and TCP) port on 127.0.0.1."""
    return free_port_block(1, align=1)


def free_tcp_port() -> int:
    """A free TCP (and UDP) port on 127.0.0.1."""
    return free_port_block(1, align=1)


def free_rtp_port() -> int:
    """An even port P with P..P+3 free: room for RTP/RTCP, and SIPp's second socket at P+2."""
    return free_port_block(4, align=2)


def free_port_range(count: int = 100) -> tuple[int, int]:
    """(low, high) inclusive range of `count` free ports, low even, e.g. for --rtp-ports."""
    base = free_port_block(count, align=2)
    return base, base + count - 1


def port_bound(port: int, udp: bool = True) -> bool:
    """True when some process has bound UDP `port` (or listens on TCP `port`) on IPv4.

    Reads /proc/net/{udp,tcp} instead of probing with bind(), which could steal the port
    from the process being waited for.
    """
    table = Path("/proc/net/udp" if udp else "/proc/net/tcp")
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if int(local.rsplit(":", 1)[1], 16) == port and (udp or state == "0A"):
            return True
    return False
