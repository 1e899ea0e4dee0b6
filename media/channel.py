"""A media channel: one call leg's RTP socket, inbound jitter buffer and playback queue.

The channel owns what happens per packet (receive, validate, latch, buffer) and per API
call (configure, play, stop, close). Everything per tick lives in `MediaEngine`, which
keeps the channel's send state (SSRC, sequence number, timestamp, marker, payload type)
in numpy arrays indexed by the channel's slot so that a tick works on all channels at
once. The channel reaches the engine only through `media.host.ChannelHost` (the engine
imports the channel, never the reverse). Garbage from the network is counted in `stats`
and dropped; it never raises.

DTMF: inbound RFC 4733 packets go through the channel's `TelephoneEventReceiver`, SIP
INFO digits come in through `receive_info_digit`, and the engine's in-band detector
reports per slot; all three meet in the channel's `DigitCombiner`, which calls
`on_digit` once per press. `send_dtmf` queues RFC 4733 events (sent by the engine in
place of audio packets) or, without telephone-event, in-band tones as playback. A
bridged channel also hands the RFC 4733 events it follows to its bridge, which re-sends
them on the partner (`media.bridge`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import g711, udpio
from .digits import DigitCombiner, dtmf_audio, inband_latency
from .events import DigitReceived, DigitSource, TelephoneEventReceived, TelephoneEventStarted
from .host import BridgeSeat, ChannelHost, MixSeat
from .jitter import JitterBuffer
from .repacketise import Repacketiser
from .rtcp import (
    ReceptionStats,
    SenderInfo,
    build_report,
    ntp_time,
    parse_sender_report,
    report_interval,
)
from .rtp import DTMF_EVENTS, RTCP_SR, TelephoneEvent, is_rtcp, parse_rtcp, unpack_rtp
from .telephone_event import TelephoneEventReceiver, TelephoneEventRelay, TelephoneEventSender

log = logging.getLogger(__name__)
_monotonic = time.monotonic  # the receive path's clock (loop.time() is the same clock)

Addr = tuple[str, int]
_SEQ_TS_SSRC = struct.Struct("!HII")
TelephoneEventHook = Callable[[TelephoneEventReceived], None]
DigitHook = Callable[[DigitReceived], None]


@dataclass(slots=True)
class ChannelStats:
    """Counters of one channel. `latched_addr` is where media goes after latching."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    bad_packets: int = 0
    rtcp_packets: int = 0
    rtcp_sent: int = 0
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


class _DtmfSend:
    """One queued RFC 4733 `send_dtmf()` (or an event relayed from a bridge partner): its
    packet plan, completion future, and the RTP timestamp of the event being sent (fixed
    at the event's first packet)."""

    __slots__ = ("future", "sender", "timestamp")

    def __init__(
        self, sender: TelephoneEventSender | TelephoneEventRelay, future: asyncio.Future[bool]
    ) -> None:
        self.sender = sender
        self.future = future
        self.timestamp = 0


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.channel._on_rtcp(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTCP socket error on port %s: %s", self.channel.local_port, exc)


class Channel:
    """One leg's media endpoint; create with `MediaEngine.open_channel()`."""

    def __init__(
        self,
        engine: ChannelHost[Channel],
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
        # The RTP socket: the engine reads it (`media.udpio`) and sends from it.
        self._rtp_sock: socket.socket | None = None
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
        # Made on the first packet that is not one frame long (a peer at another ptime);
        # from then on the stream's every packet goes through it.
        self._repack: Repacketiser | None = None
        # RTCP (RFC 3550 §6): reception statistics of the peer's stream, and our reports.
        self._rx_stats: ReceptionStats | None = None
        self._rx_type: type[ReceptionStats] = udpio.ReceptionStats  # the receive set's kernel
        # The compiled receive set's view of this channel (`media.udpio.RtpStream`), set
        # by the engine; None with the Python one.
        self._fast: Any = None
        self._rtcp_timer: asyncio.TimerHandle | None = None
        self._rtcp_from: Addr | None = None  # where the peer's RTCP comes from
        self._rtcp_remote: Addr | None = None  # where its SDP said to send RTCP
        self._rtcp_mux = False
        self._reports = 0
        # packets_out at the last report and the one before: RFC 3550 §6.4 sends an SR
        # if RTP went out since either (a BYE just after a periodic report is still one)
        self._packets_at_report = 0
        self._packets_at_previous_report = 0
        self._cname = f"voxswitch-{ssrc:08x}@{local_host}"
        self._closed = False
        # DTMF. In-band detection is on by default even with telephone-event: phones
        # that negotiate it do not always send it (see `media.digits` for the merge).
        self._on_digit: DigitHook | None = None
        self._inband_dtmf = True
        self._detect_inband = False  # set by the engine: in its detection set now
        self._te_rx = TelephoneEventReceiver()
        self._digits = DigitCombiner(latency={DigitSource.INBAND: inband_latency(engine.jitter_ms)})
        self._dtmf_out: deque[_DtmfSend] = deque()
        self._mix_group: MixSeat[Channel] | None = None  # set by MixGroup.add/remove
        self._bridge: BridgeSeat[Channel] | None = None  # set by the engine's bridges

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
    def reception(self) -> ReceptionStats | None:
        """RFC 3550 A.3/A.8 state of the inbound source (loss, jitter); None before media."""
        return self._rx_stats

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def mix_group(self) -> MixSeat[Channel] | None:
        """The conference mix this channel is a member of, if any."""
        return self._mix_group

    @property
    def bridged_to(self) -> Channel | None:
        """The channel this one is bridged with (`MediaEngine.bridge`), if any."""
        return None if self._bridge is None else self._bridge.partner(self)

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

    @property
    def on_digit(self) -> DigitHook | None:
        """Called on the loop thread with each `DigitReceived`, once per key press
        whichever forms it arrived in (RFC 4733, in-band, SIP INFO). Exceptions are
        logged, never raised into the engine. In-band detection runs only while set."""
        return self._on_digit

    @on_digit.setter
    def on_digit(self, hook: DigitHook | None) -> None:
        self._on_digit = hook
        self._engine._inband_changed(self)

    @property
    def inband_dtmf(self) -> bool:
        """Whether to detect DTMF tones in the inbound audio (default True)."""
        return self._inband_dtmf

    @inband_dtmf.setter
    def inband_dtmf(self, enabled: bool) -> None:
        self._inband_dtmf = bool(enabled)
        self._engine._inband_changed(self)

    def receive_info_digit(
        self, digit: str, duration_ms: int | None = None
    ) -> DigitReceived | None:
        """A digit from a SIP INFO request (see `signaling.dtmf_info`); returns what was
        passed to `on_digit`, or None (a duplicate, no hook, or closed).

        The duration is not used for merging; it is accepted so that the control layer
        hands over what the INFO said.
        """
        key = digit.upper() if len(digit) == 1 else ""
        if not key or key not in DTMF_EVENTS:
            raise ValueError(f"not a DTMF digit: {digit!r} (accepted: 0-9 * # A-D)")
        if duration_ms is not None and duration_ms < 0:
            raise ValueError(f"DTMF duration must not be negative, got {duration_ms}")
        if self._closed:
            return None
        return self._report_digit(key, DigitSource.INFO, self._engine._loop().time())

    def send_dtmf(
        self, digits: str, *, tone_ms: int = 100, gap_ms: int = 250, dash_ms: int = 250
    ) -> asyncio.Future[bool]:
        """Send a dial string: 0-9 * # A-D, "-" for `dash_ms` of pause, spaces ignored.

        With telephone-event negotiated, as RFC 4733 events: they start on the next tick
        and replace the audio while each event is sent (audio resumes between digits,
        timestamps continuous). Otherwise as in-band tones at -10 dBm0 per frequency,
        queued after current playback like `play()`. The future is True once all was
        sent, False if `stop_audio()` or `close()` came first. Raises `ValueError` on a
        bad string.
        """
        if self._te_pt is None:
            return self.play(dtmf_audio(digits, tone_ms=tone_ms, gap_ms=gap_ms, dash_ms=dash_ms))
        sender = TelephoneEventSender(
            digits,
            tone_ms=tone_ms,
            gap_ms=gap_ms,
            dash_ms=dash_ms,
            ptime_ms=round(self._engine.ptime * 1000),
        )
        future: asyncio.Future[bool] = self._engine._loop().create_future()
        if self._closed or sender.done:
            future.set_result(not self._closed)
            return future
        job = _DtmfSend(sender, future)
        self._dtmf_out.append(job)
        future.add_done_callback(lambda _: self._abort_dtmf(job))
        self._engine._dtmf_changed(self)
        return future

    def configure(
        self,
        *,
        remote: Addr,
        payload_type: int,
        telephone_event_pt: int | None = None,
        send: bool = True,
        receive: bool = True,
        latch: bool = True,
        rtcp: Addr | None = None,
        rtcp_mux: bool = False,
    ) -> None:
        """Apply negotiated SDP; call again on re-INVITE.

        RTCP reports go to `rtcp` (the peer's `a=rtcp`), else to the RTP port + 1, or with
        `rtcp_mux` to the RTP destination from the RTP port; once the peer's own RTCP
        arrives, back to where it came from.

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
            self._reset_rx()
            self._silence_in = bytes([g711.SILENCE_CODES[payload_type]]) * self._frame_bytes
        self._pt = payload_type
        self._te_pt = telephone_event_pt
        self._rtcp_remote = (rtcp[0], int(rtcp[1])) if rtcp is not None else None
        self._rtcp_mux = rtcp_mux
        if telephone_event_pt is None and self._dtmf_out:
            self._drop_dtmf()
        self._send = send and remote[0] not in ("0.0.0.0", "::") and remote[1] != 0
        self._receive = receive
        if not receive:
            self._reset_rx()
        self._engine._configure(self)
        self._follow()
        if self._rtcp_timer is None:
            self._schedule_rtcp()

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
        """Stop current and queued playback and DTMF; their futures resolve False.

        An RFC 4733 event under way still gets its end packets.
        """
        queue, self._queue = self._queue, deque()
        for item in queue:
            if not item.future.done():
                item.future.set_result(False)
        for job in list(self._dtmf_out):
            if not job.future.done():
                job.future.set_result(False)
            self._abort_dtmf(job)
        if not self._closed:
            self._engine._playing_changed(self)

    @property
    def is_playing(self) -> bool:
        return bool(self._queue)

    def close(self) -> None:
        """Release the ports; idempotent. Pending playback futures resolve False.

        A last RTCP report with BYE tells the peer the stream has ended."""
        if self._closed:
            return
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None
        try:
            self._send_report(bye=True)
        except Exception:
            log.exception("RTCP BYE failed on %r", self)
        self.stop_audio()
        self._drop_dtmf()
        self._engine._sync_stats(self)
        self._closed = True
        self._send = False
        self._engine._detach(self)
        self._reset_rx()
        self._fast = None  # out of the receive set: no cycle with it left behind
        self.on_telephone_event = None
        self._on_digit = None
        if self._rtcp_transport is not None:
            self._rtcp_transport.close()
        if self._rtp_sock is not None:
            self._rtp_sock.close()  # after `_detach`: out of the engine's receive set first

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

    def _relay_event(self, event: int, volume: int) -> TelephoneEventRelay | None:
        # A bridge partner's RFC 4733 event, re-sent live from the next tick (after any
        # queued send_dtmf); None without telephone-event: the bridge plays tones instead.
        if self._closed or self._te_pt is None:
            return None
        relay = TelephoneEventRelay(event, volume=volume)
        self._dtmf_out.append(_DtmfSend(relay, self._engine._loop().create_future()))
        self._engine._dtmf_changed(self)
        return relay

    def _dtmf_finished(self) -> None:
        # Called by the engine on the tick that sent the head job's last packet.
        job = self._dtmf_out.popleft()
        if not job.future.done():
            job.future.set_result(True)
        self._engine._dtmf_changed(self)

    def _abort_dtmf(self, job: _DtmfSend) -> None:
        # Stopped, or the awaiter gave up: cut the plan short (an event under way still
        # sends its end packets, so the job stays until the engine finishes it).
        if job not in self._dtmf_out:
            return
        job.sender.stop()
        if job.sender.done:
            self._dtmf_out.remove(job)
            if not self._closed:
                self._engine._dtmf_changed(self)

    def _drop_dtmf(self) -> None:
        queue, self._dtmf_out = self._dtmf_out, deque()
        for job in queue:
            if not job.future.done():
                job.future.set_result(False)
        if not self._closed:
            self._engine._dtmf_changed(self)

    def _report_digit(self, digit: str, source: DigitSource, at: float) -> DigitReceived | None:
        hook = self._on_digit
        if hook is None:
            return None
        received = self._digits.report(digit, source, at)
        if received is None:
            return None
        try:
            hook(received)
        except Exception:
            # A bug in the control layer must not take down the receive path or the tick.
            log.exception("on_digit hook failed on %r", self)
        return received

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
            self._on_rtcp(data, addr)
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
        rx = self._rx_stats
        if rx is None or rx.ssrc != ssrc:
            rx = self._rx_stats = self._rx_type.start(ssrc, seq)
            self._follow()
        rx.update(seq, ts, _monotonic())
        if self._receive:
            if self._repack is None and len(payload) == self._frame_bytes:
                self._jb.push(seq, ts, ssrc, payload)
            elif payload:  # an empty one carries no samples
                self._repacketise(ts, ssrc, payload)
            self._engine._rx_active[self] = self._jb

    def _follow(self) -> None:
        # Tell the compiled receive set when it may take this channel's common packet
        # itself: while `_on_media` would do no more with it than count it, feed the
        # stream's statistics and buffer it (no latching, repacketising or new SSRC).
        fast = self._fast
        if fast is not None:
            take = (
                self._receive
                and not self._closed
                and self._pt is not None
                and self._repack is None
                and not self._latch_pending
            )
            fast.follow(take, self._pt or 0, self._rx_stats)

    def _repacketise(self, ts: int, ssrc: int, payload: bytes) -> None:
        repack = self._repack
        if repack is None:
            repack = self._repack = Repacketiser(self._frame_bytes, self._silence_in)
            self._follow()
            log.info(
                "repacketising %r: the peer sends %d-sample packets, the engine %d-sample frames",
                self, len(payload), self._frame_bytes,
            )
        for seq, frame_ts, frame in repack.push(ts, ssrc, payload):
            self._jb.push(seq, frame_ts, ssrc, frame)

    def _reset_rx(self) -> None:
        """Forget the inbound stream (codec change, receive off, close)."""
        self._jb.reset()
        self._repack = None
        self._follow()

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
        if not self._receive:
            return
        # The receiver follows every event, hook or not, so that a hook set mid-event
        # does not hear that event's end packets as a new press.
        now = self._engine._loop().time()
        te_rx = self._te_rx
        for happened in te_rx.feed(seq, ts, marker, ssrc, event, now):
            if isinstance(happened, TelephoneEventStarted):
                if happened.event < 16:
                    self._report_digit(DTMF_EVENTS[happened.event], DigitSource.RFC4733, now)
                # Read after the digit hook, which may have ended the bridge.
                if self._bridge is not None:
                    self._bridge._event_started(self, happened.event, event.volume)
            elif self._bridge is not None:
                self._bridge._event_ended(self, happened.event, happened.duration)
        if self._bridge is not None and te_rx.active:
            self._bridge._event_update(self, te_rx.duration)
        hook = self.on_telephone_event
        if hook is None:
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

    def _on_rtcp(self, data: bytes, addr: Any) -> None:
        try:
            packets = parse_rtcp(data)
        except ValueError:
            self._stats.bad_packets += 1
            return
        self._stats.rtcp_packets += 1
        self._rtcp_from = (addr[0], addr[1])  # symmetric RTCP (RFC 4961): answer there
        rx = self._rx_stats
        for packet in packets:
            if packet.packet_type == RTCP_SR and rx is not None and packet.ssrc == rx.ssrc:
                try:
                    _, seconds, fraction = parse_sender_report(packet.body)
                except ValueError:
                    self._stats.bad_packets += 1
                    continue
                rx.sender_report(seconds, fraction, time.monotonic())

    # --- RTCP reports ---

    def _schedule_rtcp(self) -> None:
        if self._closed:
            return
        delay = report_interval(first=self._reports == 0)
        self._rtcp_timer = self._engine._loop().call_later(delay, self._on_rtcp_timer)

    def _on_rtcp_timer(self) -> None:
        self._rtcp_timer = None
        try:
            self._send_report()
        except Exception:
            # Reports are best effort: a bug here must not stop the next one, or the call.
            log.exception("RTCP report failed on %r", self)
        self._schedule_rtcp()

    def _rtcp_destination(self) -> Addr | None:
        if self._rtcp_from is not None:
            return self._rtcp_from
        if self._dest is None or self._remote is None:
            return None
        if self._rtcp_mux:
            return self._dest
        if self._rtcp_remote is not None:
            return self._rtcp_remote
        return (self._dest[0], self._remote[1] + 1)  # RFC 3550 §11: RTP port + 1

    def _send_report(self, bye: bool = False) -> None:
        """Send SR (RTP sent since the report before last) or RR, SDES CNAME, and BYE if
        `bye`."""
        dest = self._rtcp_destination()
        # From the RTCP socket, or the RTP one with rtcp-mux or when RTCP has no port.
        rtcp = self._rtcp_transport
        sendto: Callable[[bytes, Addr], object] | None
        if self._rtcp_mux or rtcp is None:
            sendto = None if self._rtp_sock is None else self._rtp_sock.sendto
        else:
            sendto = None if rtcp.is_closing() else rtcp.sendto
        if dest is None or sendto is None or self._closed:
            return
        self._engine._sync_stats(self)
        stats = self._stats
        now = time.monotonic()
        sender = None
        if stats.packets_out > self._packets_at_previous_report:
            seconds, fraction = ntp_time(time.time())
            sender = SenderInfo(
                ntp_seconds=seconds,
                ntp_fraction=fraction,
                rtp_timestamp=self._engine._rtp_clock(self),
                packets=stats.packets_out,
                octets=stats.packets_out * self._frame_bytes,
            )
        self._packets_at_previous_report = self._packets_at_report
        self._packets_at_report = stats.packets_out
        blocks = [self._rx_stats.report_block(now)] if self._rx_stats is not None else []
        report = build_report(stats.ssrc, self._cname, sender=sender, blocks=blocks, bye=bye)
        try:
            sendto(report, dest)
        except OSError as exc:  # a full buffer or a gone network: the next report will do
            log.debug("RTCP report on %r not sent: %s", self, exc)
            return
        self._reports += 1
        stats.rtcp_sent += 1

    def _latch_to(self, addr: Any) -> None:
        dest = (addr[0], addr[1])
        self._latch_pending = False
        self._follow()
        self._stats.latched_addr = dest
        if dest != self._dest:
            self._dest = dest
            self._engine._set_destination(self)
