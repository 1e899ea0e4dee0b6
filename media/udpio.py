"""RTP receive for the media engine: one receive set for every channel's socket.

A datagram endpoint per channel costs an event-loop callback per packet, and
with a thousand legs at 50 packets a second that callback, not the kernel, is most of
a core. `RtpSockets` puts every channel's RTP socket in one epoll set; the engine
registers the set's own descriptor with the event loop, so the loop wakes once when any
channel has packets, and `drain` reads every ready socket (up to `max_per_socket` each,
so one flooded port cannot starve the rest) and hands each datagram to its channel's
callback with its source address. Delivery keeps the loop's semantics: packets arrive as
the loop runs, whether or not the engine's clock does; the clock drains once more just
before each tick, so a frame that came in a moment ago is in this tick.

Sending stays a plain `sendto` per channel socket in the engine. (A C send loop was
tried: its gain on the bridge benchmark was within this machine's run-to-run noise, and
with it outbound call set-up at 200 CPS stalled in most runs, for a reason not found.)
The receive set has a compiled version
(`media._udpio`, built by `make install`) and the Python reference below with the same
behaviour; `KERNEL` says which this process uses. The Python one is the fallback only:
`select.epoll` costs more per datagram than the datagram endpoints it replaces.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DatagramCallback = Callable[[bytes, Any], None]
_BUF = 65536
_MAX_EVENTS = 1024


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


try:
    from ._udpio import RtpSockets as _CRtpSockets
except ImportError as exc:  # no C compiler at install time
    _compiled_error: str | None = str(exc)
    KERNEL = "python"
    RtpSockets: Any = PyRtpSockets
else:
    _compiled_error = None
    KERNEL = "c"
    RtpSockets = _CRtpSockets
