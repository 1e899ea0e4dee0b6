"""RTP socket I/O for the media engine: one receive set for every channel, batch sends.

Receive. A datagram endpoint per channel costs an event-loop callback per packet, and
with a thousand legs at 50 packets a second that callback, not the kernel, is most of
a core. `RtpSockets` puts every channel's RTP socket in one epoll set; the engine
registers the set's own descriptor with the event loop, so the loop wakes once when any
channel has packets, and `drain` reads every ready socket (up to `max_per_socket` each,
so one flooded port cannot starve the rest) and hands each datagram to its channel's
callback with its source address. Delivery keeps the loop's semantics: packets arrive as
the loop runs, whether or not the engine's clock does; the clock drains once more just
before each tick, so a frame that came in a moment ago is in this tick.

Send. `send_batch` sends one tick's datagrams, one `sendto` per channel socket, to
destinations packed once by `pack_sockaddr` when they were set. A destination that is
not an address literal (an SDP connection address may be a host name) packs to None;
those rows come back unsent for the caller to send through Python's resolver.

Both have a compiled version (`media._udpio`, built by `make install`) and the Python
reference below with the same behaviour; `KERNEL` says which this process uses.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

DatagramCallback = Callable[[bytes, Any], None]
_BUF = 65536
_MAX_EVENTS = 1024
_FAMILY = struct.Struct("=H")  # sa_family_t, host byte order
_PORT = struct.Struct("!H")


def pack_sockaddr(family: int, dest: tuple[str, int]) -> bytes | None:
    """`dest` as the C `struct sockaddr` a socket of `family` sends to, or None when
    `dest` is not an address literal of that family (or its port is out of range)."""
    host, port = dest[0], dest[1]
    if not 0 <= port <= 0xFFFF:
        return None
    try:
        addr = socket.inet_pton(family, host)
    except (OSError, ValueError, TypeError):
        return None
    if family == socket.AF_INET:
        return _FAMILY.pack(family) + _PORT.pack(port) + addr + bytes(8)
    if family == socket.AF_INET6:
        # sockaddr_in6: family, port, flowinfo, address, scope id
        return _FAMILY.pack(family) + _PORT.pack(port) + bytes(4) + addr + bytes(4)
    return None


class PyRtpSockets:
    """The receive set in Python (`select.epoll`); see the module doc."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._entries: dict[int, tuple[Callable[[int], tuple[bytes, Any]], DatagramCallback]] = {}
        self.datagrams = 0
        self.errors = 0
        self.truncated = 0  # never: a 64 KiB buffer holds any UDP datagram

    def fileno(self) -> int:
        return self._epoll.fileno()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, sock: socket.socket, callback: DatagramCallback) -> None:
        fd = sock.fileno()
        if fd in self._entries:
            raise ValueError(f"socket {fd} is already in the receive set")
        self._epoll.register(fd, select.EPOLLIN)
        self._entries[fd] = (sock.recvfrom, callback)

    def remove(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._entries.pop(fd, None) is None:
            return
        try:
            self._epoll.unregister(fd)
        except OSError:
            pass  # a socket closed already has left the set by itself

    def drain(self, max_per_socket: int = 32) -> int:
        total = 0
        entries = self._entries
        for fd, _ in self._epoll.poll(0, _MAX_EVENTS):
            entry = entries.get(fd)
            received = 0
            while entry is not None and received < max_per_socket:
                recvfrom, callback = entry
                try:
                    data, addr = recvfrom(_BUF)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    self.errors += 1
                    log.debug("RTP receive error on socket %d: %s", fd, exc)
                    break
                received += 1
                total += 1
                try:
                    callback(data, addr)
                except Exception:
                    # One channel's bug must not stop the others' packets.
                    log.exception("RTP receive callback failed on socket %d", fd)
                entry = entries.get(fd)  # the callback may have closed the channel
        self.datagrams += total
        return total

    def close(self) -> None:
        self._entries.clear()
        self._epoll.close()


def py_send_batch(
    datagrams: Sequence[bytes],
    socks: Sequence[socket.socket],
    sockaddrs: Sequence[bytes | None],
    dests: Sequence[tuple[str, int] | None],
    rows: Sequence[int] | None,
) -> tuple[int, list[int] | None]:
    """The batch send in Python; see `send_batch`."""
    errors = 0
    unsent: list[int] | None = None
    for i, data in enumerate(datagrams):
        slot = i if rows is None else rows[i]
        if sockaddrs[slot] is None:
            if unsent is None:
                unsent = []
            unsent.append(i)
            continue
        try:
            socks[slot].sendto(data, dests[slot])  # type: ignore[arg-type]
        except OSError:
            errors += 1
    return errors, unsent


try:
    from ._udpio import RtpSockets as _CRtpSockets
    from ._udpio import send_batch as _c_send_batch
except ImportError as exc:  # no C compiler at install time
    _compiled_error: str | None = str(exc)
    KERNEL = "python"
    RtpSockets: Any = PyRtpSockets
else:
    _compiled_error = None
    KERNEL = "c"
    RtpSockets = _CRtpSockets


def send_batch(
    datagrams: list[bytes],
    socks: list[socket.socket],
    fds: list[int],
    sockaddrs: list[bytes | None],
    dests: Sequence[tuple[str, int] | None],
    rows: list[int] | None,
    *,
    kernel: str | None = None,
) -> tuple[int, list[int] | None]:
    """Send `datagrams[i]` from socket `rows[i]` (`i` when `rows` is None) to its packed
    destination. Returns (send errors, the indices `i` whose destination did not pack,
    or None when there were none). A full socket buffer, an unreachable network or a
    closed socket is one error: real-time packets are dropped, never retried."""
    if (kernel or KERNEL) == "c":
        return _c_send_batch(datagrams, fds, sockaddrs, rows)
    return py_send_batch(datagrams, socks, sockaddrs, dests, rows)


