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

The common packet does not even reach Python. A channel's socket is added with an
`RtpStream` (compiled only): while the channel says it may (`Channel._follow`: receiving,
latched or not latching, not repacketising), a datagram that is plain RTP of its media
payload type, one frame long and of the SSRC it follows is counted, fed to its RFC 3550
reception statistics and pushed into its jitter buffer by the drain itself, and the
buffer is marked for the tick's pops; both of those objects are then the compiled ones
(`JitterBuffer`, `ReceptionStats`, same behaviour as `media.jitter` and `media.rtcp`).
Everything else still goes to the callback (`Channel._on_rtp`) as before: the first
packet of a stream (new SSRC: new statistics), latching, RFC 4733 events, RTCP-mux,
other payload types or lengths, garbage. The tests hold the two paths to the same
results on the same packet sequences.

Sending stays a plain `sendto` per channel socket in the engine. (A C send loop was
tried and removed: its gain on the bridge benchmark was within this machine's run-to-run
noise, and outbound set-up at 200 CPS stalled in 6 of 9 runs with it. That stall did not
come back in 12 later runs of the two commits that had the loop, and came once in 10
runs without it: it is not the loop's. The loop would save the interpreter's share of a
send, about half a microsecond of the 1.3-1.8 a loopback `sendto` costs, most of it the
kernel's.)
The receive set and its fast path are compiled (`media._udpio`, built by `make
install`); the Python reference below has the same behaviour without the fast path, and
`KERNEL` says which this process uses (with `RtpStream` None under the Python one). The
Python one is the fallback only: `select.epoll` costs more per datagram than the
datagram endpoints it replaces.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Callable
from typing import Any

from .jitter import JitterBuffer as PyJitterBuffer
from .rtcp import ReceptionStats as PyReceptionStats

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

    def add(self, sock: socket.socket, callback: DatagramCallback, stream: Any = None) -> None:
        # `stream` is the compiled set's fast path (`RtpStream`): none here, and so every
        # datagram goes to `callback`.
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


def py_gather(
    rx: dict[Any, Any], frames: list[Any], detecting: bool
) -> tuple[list[Any] | None, list[int] | None]:
    """The tick's pops: one frame from each jitter buffer in `rx` (channel -> buffer) into
    `frames[channel._slot]`, the channel's silence when the buffer has none. Returns the
    channels whose buffers went idle (for the engine to stop popping) and, with
    `detecting`, the slots of channels that detect in-band DTMF and got a frame (each
    None when empty)."""
    idle: list[Any] | None = None
    rows: list[int] | None = None
    for channel, jb in rx.items():
        frame = jb.pop()
        if frame is None:
            frame = channel._silence_in
            if jb.idle:
                if idle is None:
                    idle = []
                idle.append(channel)
        elif detecting and channel._detect_inband:
            if rows is None:
                rows = []
            rows.append(channel._slot)
        frames[channel._slot] = frame
    return idle, rows


try:
    from ._udpio import JitterBuffer as _CJitterBuffer
    from ._udpio import ReceptionStats as _CReceptionStats
    from ._udpio import RtpSockets as _CRtpSockets
    from ._udpio import RtpStream as _CRtpStream
    from ._udpio import gather as _c_gather
except ImportError as exc:  # no C compiler at install time
    _compiled_error: str | None = str(exc)
    KERNEL = "python"
    RtpSockets: Any = PyRtpSockets
    RtpStream: Any = None
    JitterBuffer: Any = PyJitterBuffer
    ReceptionStats: Any = PyReceptionStats
    gather: Any = py_gather
else:
    _compiled_error = None
    KERNEL = "c"
    RtpSockets = _CRtpSockets
    RtpStream = _CRtpStream
    JitterBuffer = _CJitterBuffer
    ReceptionStats = _CReceptionStats
    gather = _c_gather
