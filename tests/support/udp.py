"""A far end's RTP (or RTCP) port for media tests: a plain non-blocking UDP socket on
127.0.0.1, and a bounded wait for a condition the event loop will make true."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from media.rtp import RtpPacket


class UdpPeer:
    """A UDP socket on 127.0.0.1 (`port` 0: any free one) standing in for the far end."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def drain(self) -> list[RtpPacket]:
        """Every RTP packet waiting on the socket, in arrival order."""
        packets = []
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except BlockingIOError:
                return packets
            packets.append(RtpPacket.parse(data))

    def close(self) -> None:
        self.sock.close()


async def until(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (polling every 2 ms) until `cond()` holds; AssertionError after `timeout` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.002)
