"""A media channel: one call leg's RTP socket, inbound jitter buffer and playback queue.

The channel owns what happens per packet (receive, validate, latch, buffer) and per API
call (configure, play, stop, close). Everything per tick lives in `MediaEngine`, which
keeps the channel's send state (SSRC, sequence number, timestamp, marker, payload type)
in numpy arrays indexed by the channel's slot so that a tick works on all channels at
once. Garbage from the network is counted in `stats` and dropped; it never raises.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import g711
from .events import TelephoneEventReceived
from .jitter import JitterBuffer
from .rtp import TelephoneEvent, is_rtcp, parse_rtcp, unpack_rtp

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)

Addr = tuple[str, int]
_SEQ_TS_SSRC = struct.Struct("!HII")
TelephoneEventHook = Callable[[TelephoneEventReceived], None]


@dataclass(slots=True)
class ChannelStats:
    """Counters of one channel. `latched_addr` is where media goes after latching."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    bad_packets: int = 0
    rtcp_packets: int = 0
    telephone_events: int = 0
    latched_addr: Addr | None = None
    ssrc: int = 0
    remote_ssrc: int | None = None

    @property
    def bytes(self) -> int:
        """Bytes sent and received on the RTP socket."""
        return self.bytes_in + self.bytes_out


class _Playback:
    """One queued `play()`: the int16 samples as bytes, read offset, completion future."""

    __slots__ = ("channel", "data", "future", "offset", "size")

    def __init__(self, channel: Channel, data: memoryview, future: asyncio.Future[bool]) -> None:
        self.channel = channel
        self.data = data
        self.size = len(data)
        self.offset = 0
        self.future = future


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.channel._on_rtp(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: not our error, keep sending.
        log.debug("RTP socket error on port %s: %s", self.channel.local_port, exc)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.channel._on_rtcp(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTCP socket error on port %s: %s", self.channel.local_port, exc)


class Channel:
    """One leg's media endpoint; create with `MediaEngine.open_channel()`."""

    def __init__(
        self,
        engine: MediaEngine,
        *,
        local_host: str,
        local_port: int,
        rtcp_port: int | None,
        ssrc: int,
        jitter: JitterBuffer,
    ) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self.rtcp_port = rtcp_port
        self.on_telephone_event: TelephoneEventHook | None = None
        self._engine = engine
        self._jb = jitter
        self._stats = ChannelStats(ssrc=ssrc)
        self._slot = -1  # index in the engine's per-tick arrays; set by the engine
        self._frame_bytes = engine.samples  # one G.711 frame is one byte per sample
        self._queue: deque[_Playback] = deque()
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._remote: Addr | None = None
        self._dest: Addr | None = None
        self._latch = True
        self._latch_pending = False
        self._pt: int | None = None
        self._te_pt: int | None = None
        self._send = False
        self._receive = False
        self._silence_in = bytes([g711.ULAW_SILENCE]) * self._frame_bytes
        self._closed = False

    def __repr__(self) -> str:
        return f"<Channel {self.local_host}:{self.local_port} slot={self._slot}>"

    # --- API for the control layer ---

    @property
    def stats(self) -> ChannelStats:
        """Counters; sent counts are read from the engine's per-slot arrays."""
        if not self._closed:
            self._engine._sync_stats(self)
        return self._stats

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def remote(self) -> Addr | None:
        """The address from SDP (None until configured)."""
        return self._remote

    @property
    def destination(self) -> Addr | None:
        """Where RTP goes now: the latched source address, else the SDP address."""
        return self._dest

    @property
    def payload_type(self) -> int | None:
        return self._pt

    @property
    def sending(self) -> bool:
        """True while configured with send=True (and not closed)."""
        return self._send and not self._closed

    def configure(
        self,
        *,
        remote: Addr,
        payload_type: int,
        telephone_event_pt: int | None = None,
        send: bool = True,
        receive: bool = True,
        latch: bool = True,
    ) -> None:
        """Apply negotiated SDP; call again on re-INVITE.

        `send=False` (hold) stops sending; going back to `send=True` resumes with the
        marker bit set. A connection address of 0.0.0.0 is the old way to say hold
        (RFC 3264 §8.4) and is treated as `send=False`. With `latch`, media goes to the
        source address of the first valid RTP packet once one arrives (symmetric RTP,
        for peers behind NAT); a new `remote` restarts latching.
        """
        if payload_type not in g711.ENCODE_TABLES:
            raise ValueError(f"unsupported payload type {payload_type}: only PCMU (0), PCMA (8)")
        if self._closed:
            return
        remote = (remote[0], int(remote[1]))
        if remote != self._remote or latch != self._latch:
            self._remote = remote
            self._dest = remote
            self._latch = latch
            self._latch_pending = latch
            self._stats.latched_addr = None
        if payload_type != self._pt:
            self._jb.reset()
            self._silence_in = bytes([g711.SILENCE_CODES[payload_type]]) * self._frame_bytes
        self._pt = payload_type
        self._te_pt = telephone_event_pt
        self._send = send and remote[0] not in ("0.0.0.0", "::") and remote[1] != 0
        self._receive = receive
        if not receive:
            self._jb.reset()
        self._engine._configure(self)

    def play(self, pcm: npt.ArrayLike) -> asyncio.Future[bool]:
        """Queue int16 mono 8 kHz audio; the future is True once all of it was sent,
        False if it was stopped or the channel closed first."""
        future: asyncio.Future[bool] = self._engine._loop().create_future()
        if self._closed:
            future.set_result(False)
            return future
        arr = np.asarray(pcm)
        if arr.dtype != np.int16:
            raise TypeError(f"play() takes int16 PCM, not {arr.dtype}")
        if arr.ndim > 2:
            raise ValueError("play() takes mono audio: a 1-D array (or frames as 2-D)")
        if not arr.size:
            future.set_result(True)
            return future
        # No copy: a cached prompt is played on many channels at once from one array
        # (the caller must not modify it while it plays).
        data = np.ascontiguousarray(arr).data.cast("B")
        item = _Playback(self, data, future)
        self._queue.append(item)
        # An awaiter that gives up (cancel, wait_for timeout) takes its audio off the queue.
        future.add_done_callback(lambda _: self._playback_done(item))
        self._engine._playing_changed(self)
        return future

    def stop_audio(self) -> None:
        """Stop current and queued playback; their futures resolve False."""
        queue, self._queue = self._queue, deque()
        for item in queue:
            if not item.future.done():
                item.future.set_result(False)
        if not self._closed:
            self._engine._playing_changed(self)

    @property
    def is_playing(self) -> bool:
        return bool(self._queue)

    def close(self) -> None:
        """Release the ports; idempotent. Pending playback futures resolve False."""
        if self._closed:
            return
        self.stop_audio()
        self._engine._sync_stats(self)
        self._closed = True
        self._send = False
        self._engine._detach(self)
        self._jb.reset()
        self.on_telephone_event = None
        for transport in (self._transport, self._rtcp_transport):
            if transport is not None:
                transport.close()

    # --- engine side: called once per tick for channels that are playing ---

    def _last_frame(self, item: _Playback) -> bytes:
        # Called by the engine when `item` has no whole frame left: take the rest, padded
        # with silence to a whole ptime, and move on to the next queued playback.
        frame = item.data[item.offset :].tobytes()
        frame += bytes(2 * self._frame_bytes - len(frame))
        if self._queue and self._queue[0] is item:
            self._queue.popleft()
        if not item.future.done():
            item.future.set_result(True)
        self._engine._playing_changed(self)
        return frame

    def _playback_done(self, item: _Playback) -> None:
        if item in self._queue:
            self._queue.remove(item)
            if not self._closed:
                self._engine._playing_changed(self)

    # --- datagram side ---

    def _on_rtp(self, data: bytes, addr: Any) -> None:
        stats = self._stats
        if len(data) > 12 and data[0] == 0x80 and data[1] & 0x7F == self._pt:
            # Fast path: plain RTP (no CSRC, extension or padding) with our media PT.
            stats.packets_in += 1
            stats.bytes_in += len(data)
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            self._on_media(seq, ts, ssrc, data[12:], addr)
            return
        if is_rtcp(data):  # RFC 5761 rtcp-mux on the RTP port
            self._on_rtcp(data)
            return
        stats.packets_in += 1
        stats.bytes_in += len(data)
        try:
            pt, marker, seq, ts, ssrc, payload = unpack_rtp(data)
        except ValueError:
            stats.bad_packets += 1
            return
        if pt == self._pt:
            self._on_media(seq, ts, ssrc, payload, addr)
        elif pt == self._te_pt:
            self._on_telephone_event(marker, seq, ts, ssrc, payload, addr)
        else:
            stats.bad_packets += 1

    def _on_media(self, seq: int, ts: int, ssrc: int, payload: bytes, addr: Any) -> None:
        if self._latch_pending:
            self._latch_to(addr)
        self._stats.remote_ssrc = ssrc
        if self._receive:
            if len(payload) != self._frame_bytes:
                payload = self._fit(payload)
            self._jb.push(seq, ts, ssrc, payload)
            self._engine._rx_active[self] = self._jb

    def _fit(self, payload: bytes) -> bytes:
        # The engine gathers fixed-size frames; a peer using another ptime is cut or
        # padded with silence to ours (a repacketiser would be the full answer).
        n = self._frame_bytes
        return payload[:n] + self._silence_in[: max(0, n - len(payload))]

    def _on_telephone_event(
        self, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes, addr: Any
    ) -> None:
        try:
            event = TelephoneEvent.parse(payload)
        except ValueError:
            self._stats.bad_packets += 1
            return
        if self._latch_pending:
            self._latch_to(addr)
        self._stats.telephone_events += 1
        hook = self.on_telephone_event
        if hook is None or not self._receive:
            return
        received = TelephoneEventReceived(
            event=event.event,
            end=event.end,
            volume=event.volume,
            duration=event.duration,
            timestamp=ts,
            sequence_number=seq,
            marker=marker,
            ssrc=ssrc,
        )
        try:
            hook(received)
        except Exception:
            # A bug in the control layer must not take down the receive path.
            log.exception("on_telephone_event hook failed on %r", self)

    def _on_rtcp(self, data: bytes) -> None:
        try:
            parse_rtcp(data)
        except ValueError:
            self._stats.bad_packets += 1
            return
        self._stats.rtcp_packets += 1

    def _latch_to(self, addr: Any) -> None:
        dest = (addr[0], addr[1])
        self._latch_pending = False
        self._stats.latched_addr = dest
        if dest != self._dest:
            self._dest = dest
            self._engine._set_destination(self)
