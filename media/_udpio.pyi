"""Types of the compiled RTP receive (`_udpio.pyx`); see `media.udpio`."""

import socket
from collections.abc import Callable
from typing import Any

from media.jitter import JitterState, JitterStats

class RtpSockets:
    datagrams: int
    errors: int
    truncated: int
    def fileno(self) -> int: ...
    def __len__(self) -> int: ...
    def add(
        self,
        sock: socket.socket,
        callback: Callable[[bytes, Any], None],
        stream: RtpStream | None = None,
    ) -> None: ...
    def remove(self, sock: socket.socket) -> None: ...
    def drain(self, max_per_socket: int = 32) -> int: ...
    def close(self) -> None: ...

class JitterBuffer:
    depth: int
    capacity: int
    max_jump: int
    max_jump_samples: int
    def __init__(
        self,
        *,
        depth_ms: int = 60,
        ptime_ms: int = 20,
        capacity_ms: int = 200,
        max_jump: int = 100,
        max_jump_samples: int = 80000,
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def stats(self) -> JitterStats: ...
    @property
    def state(self) -> JitterState: ...
    @property
    def idle(self) -> bool: ...
    def reset(self) -> None: ...
    def push(self, seq: int, ts: int, ssrc: int, payload: bytes) -> bool: ...
    def pop(self) -> bytes | None: ...

class ReceptionStats:
    ssrc: int
    rate: int
    base_seq: int
    max_seq: int
    cycles: int
    received: int
    expected_prior: int
    received_prior: int
    jitter: float
    transit: int | None
    last_sr: int
    last_sr_at: float | None
    def __init__(
        self, ssrc: int, rate: int = 8000, base_seq: int = 0, max_seq: int = 0
    ) -> None: ...
    @classmethod
    def start(cls, ssrc: int, seq: int, rate: int = 8000) -> ReceptionStats: ...
    def update(self, seq: int, ts: int, arrival: float) -> None: ...
    def sender_report(self, ntp_seconds: int, ntp_fraction: int, now: float) -> None: ...
    @property
    def extended_max(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def lost(self) -> int: ...
    def report_block(self, now: float) -> bytes: ...

class RtpStream:
    enabled: bool
    pt: int
    frame_bytes: int
    packets: int
    octets: int
    def __init__(
        self, jb: JitterBuffer, frame_bytes: int, active: dict[Any, Any], key: object
    ) -> None: ...
    def follow(self, enabled: bool, pt: int, rx: ReceptionStats | None) -> None: ...

def gather(
    rx: dict[Any, Any], frames: list[Any], detecting: bool
) -> tuple[list[Any] | None, list[int] | None]: ...
