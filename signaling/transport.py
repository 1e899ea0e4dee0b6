"""UDP and TCP transports (RFC 3261 §18): asyncio protocols that move bytes only.

Incoming bytes become `(data, source)` calls on the stack's receive callback; TCP streams
are cut into messages by `StreamFramer` (Content-Length framing, §18.3). A framing error
cannot be resynchronised, so it closes the connection. Outgoing bytes go to a
`Destination`; over TCP through the connection to that address, opened when missing.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import Any, cast

from .events import Destination
from .message import SipParseError, StreamFramer

log = logging.getLogger("voxswitch.signaling.transport")

Receiver = Callable[[bytes, Destination], None]
ConnectFailed = Callable[[Destination, str], None]


class UdpTransport(asyncio.DatagramProtocol):
    def __init__(self, receive: Receiver) -> None:
        self._receive = receive
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not data.strip(b"\r\n"):
            return  # RFC 5626 CRLF keep-alive
        self._receive(data, Destination("udp", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction timers deal with the loss.
        log.info("udp error: %s", exc, extra={"error": str(exc)})

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


class TcpConnection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport) -> None:
        self._owner = owner
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer = Destination("tcp", "", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Destination("tcp", host, port)
        self._owner.connections[self.peer.addr] = self

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            log.warning(
                "tcp framing error, closing: %s",
                exc.reason,
                extra={"peer": self.peer.addr, "error": exc.reason},
            )
            self.close()
            return
        if self._framer.keepalives:
            self._framer.keepalives = 0
            self.write(b"\r\n")  # RFC 5626 §4.4.1: a CRLF answers the double-CRLF ping
        for message in messages:
            self._owner.receive(message, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner.connections.get(self.peer.addr) is self:
            del self._owner.connections[self.peer.addr]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpTransport:
    """The listening socket plus every connection, keyed by the peer's address."""

    def __init__(self, receive: Receiver) -> None:
        self.receive = receive
        # Told when an outbound connect fails, with what was queued for it dropped.
        self.on_connect_failed: ConnectFailed | None = None
        self.connections: dict[tuple[str, int], TcpConnection] = {}
        self.server: asyncio.Server | None = None
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: TcpConnection(self), host, port)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        connection = self.connections.get(addr)
        if connection is not None:
            connection.write(data)
            return
        queued = self._pending.get(addr)
        if queued is not None:
            queued.append(data)  # a connect is already under way
            return
        self._pending[addr] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(lambda: TcpConnection(self), *addr)
        except OSError as exc:
            dropped = self._pending.pop(addr, [])
            log.warning(
                "tcp connect to %s:%s failed: %s",
                *addr,
                exc,
                extra={"peer": addr, "error": str(exc), "dropped": len(dropped)},
            )
            if self.on_connect_failed is not None:
                self.on_connect_failed(Destination("tcp", *addr), f"tcp connect failed: {exc}")
            return
        for data in self._pending.pop(addr, []):
            connection.write(data)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections.values()):
            connection.close()  # a closing transport still flushes what it buffered
        if self.server is not None:
            await self.server.wait_closed()
        self.connections.clear()


async def open_transports(
    host: str, port: int, receive: Receiver, *, attempts: int = 20
) -> tuple[UdpTransport, TcpTransport]:
    """Bind UDP and TCP on `host`; port 0 picks an ephemeral port, the same number for
    both when one is free on both (retried `attempts` times, then TCP takes its own)."""
    loop = asyncio.get_running_loop()
    for attempt in range(attempts):
        _, udp = await loop.create_datagram_endpoint(
            lambda: UdpTransport(receive), local_addr=(host, port)
        )
        tcp = TcpTransport(receive)
        try:
            await tcp.listen(host, udp.port)
            return udp, tcp
        except OSError as exc:
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                if port != 0:
                    udp.close()
                    raise
                break
            udp.close()
    await tcp.listen(host, 0)
    return udp, tcp
