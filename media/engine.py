"""The media engine: every channel on one drift-free ptime clock, one batch per tick.

Theory of operation. Each channel owns a slot: an index into per-slot lists and numpy
arrays (send state, packet buffer, decoded input). Slots are kept dense (closing a
channel moves the last one into its place), so `[:n]` is always the live set and one
numpy call covers every channel. A tick (`tick(now)`) does, across all channels:

1. gather: one frame per receiving channel from its jitter buffer, joined into one
   (N, 160) uint8 array and decoded with the G.711 tables into `pcm_in` (N, 160) int16;
2. detect: the in-band DTMF detector runs over the rows of channels that want digits
   and received audio this tick (one batched call); then each registered hook gets
   (channels, pcm_in) — VAD, AMD;
3. route: each channel's output is the next frame of its playback queue, or silence;
   then, while any mix group has members, the conference mixer (`media.dsp.mixer`)
   adds to each listening member's row the sum of its group's other talkers (one
   batch for all groups, see `media.conference`), and while any two-party bridge is up,
   each bridged channel's row becomes its partner's input row, plus its own playback
   when it plays (one gather for all bridges, see `media.bridge`); then each output
   hook gets (channels, pcm_in, pcm_out) — the recorder (`media.recorder`);
4. encode per codec into the payload column of a structured (N,) packet array whose
   big-endian header fields are written as whole columns, then cut the array's bytes
   into datagrams and send each from its channel's socket. A channel sending RFC 4733
   DTMF has its datagram replaced by this tick's telephone-event packet (same SSRC and
   sequence space; the event's own timestamp).

Python work per channel per tick is one bytes slice per playing channel and one slice
plus `sendto` per sending channel; the jitter-buffer pops of the receiving channels are
one compiled call (`media.udpio.gather`), and everything else is a handful of numpy
calls per tick. Inbound, every channel's RTP socket is in one receive set whose
descriptor the event loop watches: the loop wakes once for any number of ready sockets,
the set takes each channel's common packet itself (into its jitter buffer, in C) and
hands the rest to the channel (`Channel._on_rtp`), and each tick drains it once more
first, so what arrived a moment ago is in this tick. (A datagram endpoint per channel would
cost an event-loop callback per packet: most of a core at a thousand legs.) RTCP, a
packet every few seconds, keeps a datagram endpoint per channel. The clock (`_run`) keeps absolute
deadlines on the loop's clock (`time.monotonic`): a tick that starts late is counted, and
if the loop falls more than `max_behind` ticks behind, the missed ticks are skipped (and
counted) rather than run in a burst; RTP timestamps still advance by the skipped time.
The loop's timers are good to a millisecond at best (uvloop rounds delays to whole
milliseconds), which would be jitter on every stream we send; so the clock wakes up to
`TIMER_SLACK` early and sleeps the rest precisely. That holds the loop for at most
`TIMER_SLACK` (1.5 ms) per tick, with no CPU spent; a late tick does not wait at all.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from . import g711, udpio
from .bridge import Bridges
from .channel import Addr, Channel, _DtmfSend, _Playback, _RtcpProtocol
from .conference import MixGroup, MixGroups
from .errors import BridgeError
from .events import DigitSource
from .jitter import JitterBuffer
from .rtp import pack_header

log = logging.getLogger(__name__)

DetectHook = Callable[[Sequence[Channel], npt.NDArray[np.int16]], None]
"""Called every tick with the live channels and their decoded input, row i = channels[i].

`pcm_in` is the engine's own (N, 160) int16 buffer, overwritten next tick: copy what you
keep. A row is silence when its channel received nothing (A-law silence decodes to +8).
"""

OutputHook = Callable[
    [Sequence[Channel], npt.NDArray[np.int16], npt.NDArray[np.int16]], None
]
"""Called every tick after routing with the live channels, their decoded input and the
output rendered for them (what each is sent, whatever its source), row i = channels[i].

Both arrays are the engine's, read-only to the hook and overwritten next tick: copy what
you keep. An output row is rendered even while its channel does not send (then silence).
"""

_CODEC_ORDER = (g711.PCMU, g711.PCMA)
TIMER_SLACK = 0.0015
"""How early the engine's clock asks the loop to wake it; it sleeps the rest precisely."""


class DtmfDetectorLike(Protocol):
    """The batched in-band DTMF detector's interface (`media.dsp.dtmf.DtmfDetector`).

    State is per row; the engine's rows are channel slots. `process` returns
    (row, digit) once per press, at its onset. An optional `move(src, dst)` copies a
    row's state when the engine moves a channel to another slot.
    """

    def process(
        self, pcm: npt.NDArray[np.int16], rows: npt.NDArray[np.intp] | None
    ) -> list[tuple[int, str]]: ...

    def reset(self, row: int) -> None: ...

    def ensure_capacity(self, n: int) -> None: ...


def _default_dtmf_detector() -> DtmfDetectorLike | None:
    try:
        from .dsp.dtmf import DtmfDetector
    except ImportError:
        log.warning("media.dsp.dtmf is not available: no in-band DTMF detection")
        return None
    detector = DtmfDetector(capacity=64)
    if detector.kernel != "c":
        log.warning(
            "the compiled DTMF kernel is not built: in-band detection runs the numpy "
            "reference at about four times the CPU; run `make install` with a C compiler"
        )
    return detector


@dataclass(slots=True)
class EngineStats:
    """Clock and load counters of the engine."""

    ticks: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    channels: int = 0
    tick_cost_us: float = 0.0  # exponentially weighted moving average
    max_tick_cost_us: float = 0.0
    send_errors: int = 0


def _packet_dtype(samples: int) -> np.dtype[Any]:
    # One record is one datagram: RFC 3550 §5.1 header fields in network byte order.
    return np.dtype(
        [
            ("b0", "u1"),
            ("b1", "u1"),
            ("seq", ">u2"),
            ("ts", ">u4"),
            ("ssrc", ">u4"),
            ("payload", "u1", (samples,)),
        ]
    )


def _grown(
    engine: MediaEngine, name: str, dtype: type[np.generic], capacity: int, n: int
) -> npt.NDArray[Any]:
    arr = np.zeros(capacity, dtype)
    if n:
        arr[:n] = getattr(engine, name)[:n]
    return arr


class MediaEngine:
    """Owns all media channels and runs them on one ptime clock; see the module doc."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port_range: tuple[int, int] = (20000, 29999),
        ptime_ms: int = 20,
        jitter_ms: int = 60,
        late_threshold_ms: float | None = None,
        max_behind: int = 3,
        dtmf_detector: DtmfDetectorLike | None = None,
    ) -> None:
        """`dtmf_detector` is for tests; by default the engine makes its own."""
        if ptime_ms <= 0 or 8 * ptime_ms > 65535:
            raise ValueError("ptime_ms out of range")
        lo, hi = port_range
        if (lo, hi) != (0, 0) and not 0 < lo <= hi < 65535:
            raise ValueError(f"bad RTP port range {port_range}")
        self.host = host
        self.port_range = (lo, hi)
        self.ptime = ptime_ms / 1000
        self.samples = 8 * ptime_ms
        self.jitter_ms = jitter_ms
        self.late_threshold = (
            self.ptime / 4 if late_threshold_ms is None else late_threshold_ms / 1000
        )
        self.max_behind = max_behind
        self.stats = EngineStats()
        self.detect_hooks: list[DetectHook] = []
        self.output_hooks: list[OutputHook] = []
        self._last_tick_at = 0.0  # loop time of the last tick (RTCP pairs RTP with wallclock)
        self._packet_size = 12 + self.samples
        self._zero_frame = bytes(2 * self.samples)
        self._channels: list[Channel] = []
        self._in_frames: list[bytes] = []
        self._out_frames: list[bytes | memoryview] = []
        # Per slot: the RTP socket a channel sends from, and where to.
        self._socks: list[socket.socket] = []
        self._dests: list[Addr | None] = []
        # Every channel's RTP socket in one receive set, read when the loop finds it
        # readable and once more before each tick (`media.udpio`).
        self._receiver = udpio.RtpSockets()
        self._pop_frames = udpio.gather  # the tick's jitter-buffer pops, of the same kernel
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        # Channels whose jitter buffer needs a pop each tick, and the playback each
        # playing channel reads from (dicts: ordered, O(1) removal, no per-tick lookups).
        self._rx_active: dict[Channel, JitterBuffer] = {}
        self._playing: dict[Channel, _Playback] = {}
        self._n_sending = 0
        self._codec_groups: list[tuple[int, npt.NDArray[np.intp] | None]] = []
        self._groups_dirty = True
        self._in_tick = False
        self._deferred_detach: list[Channel] = []
        self._tx_rows: list[int] | None = []  # sending slots of the last render; None: all
        self._port_cursor = 0
        self._task: asyncio.Task[None] | None = None
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._pcm_in_zero = True
        # DTMF: channels with in-band detection on, and those sending RFC 4733 events.
        self._dtmf = dtmf_detector if dtmf_detector is not None else _default_dtmf_detector()
        self._inband: set[Channel] = set()
        self._te_tx: dict[Channel, _DtmfSend] = {}
        self._mixing = MixGroups(self.samples, self._loop)
        self._bridging = Bridges()
        self._capacity = 0
        self._alloc(64)

    # --- lifecycle ---

    async def start(self) -> None:
        """Start the ptime clock task."""
        if self._task is None:
            self._loop_ref = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="media-engine-clock")

    async def stop(self) -> None:
        """Stop the clock and close every channel."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for channel in list(self._channels):
            channel.close()

    @property
    def channels(self) -> Sequence[Channel]:
        """The open channels, in slot order."""
        return self._channels

    def create_mix_group(self) -> MixGroup:
        """A new, empty conference mix; see `media.conference.MixGroup`."""
        return self._mixing.create()

    @property
    def mix_groups(self) -> Mapping[int, MixGroup]:
        """The open mix groups, by id."""
        return self._mixing.groups

    def bridge(self, a: Channel, b: Channel) -> None:
        """Bridge two channels: from the next tick each hears the other (plus its own
        playback), whatever their codecs, and RFC 4733 digits pass through (see
        `media.bridge`). A no-op if they are already bridged to each other.

        Raises `BridgeError` if either is closed, of another engine, in a conference
        mix or bridged elsewhere, or if `a` is `b`.
        """
        for channel in (a, b):
            if channel._engine is not self:
                raise BridgeError(f"{channel!r} belongs to another media engine")
        self._bridging.connect(a, b)

    def unbridge(self, channel: Channel) -> None:
        """End the bridge `channel` is in, for both sides; a no-op if it is in none.

        An RFC 4733 event being relayed gets its end packets."""
        self._bridging.disconnect(channel)

    @property
    def bridge_count(self) -> int:
        """How many two-party bridges are up."""
        return len(self._bridging)

    def add_detect_hook(self, hook: DetectHook) -> None:
        self.detect_hooks.append(hook)

    def remove_detect_hook(self, hook: DetectHook) -> None:
        with contextlib.suppress(ValueError):
            self.detect_hooks.remove(hook)

    def add_output_hook(self, hook: OutputHook) -> None:
        self.output_hooks.append(hook)

    def remove_output_hook(self, hook: OutputHook) -> None:
        with contextlib.suppress(ValueError):
            self.output_hooks.remove(hook)

    async def open_channel(self) -> Channel:
        """Bind an RTP port (and RTCP on port+1 when free) and return a new channel."""
        loop = asyncio.get_running_loop()
        self._loop_ref = self._loop_ref or loop
        rtp_sock, rtcp_sock = self._bind_pair()
        port = rtp_sock.getsockname()[1]
        channel = Channel(
            self,
            local_host=self.host,
            local_port=port,
            rtcp_port=None if rtcp_sock is None else rtcp_sock.getsockname()[1],
            ssrc=random.getrandbits(32),
            jitter=udpio.JitterBuffer(depth_ms=self.jitter_ms, ptime_ms=round(self.ptime * 1000)),
        )
        try:
            if rtcp_sock is not None:
                rtcp, _ = await loop.create_datagram_endpoint(
                    lambda: _RtcpProtocol(channel), sock=rtcp_sock
                )
                channel._rtcp_transport = rtcp
            self._receive_from(loop, rtp_sock, channel)
        except BaseException:
            rtp_sock.close()
            if rtcp_sock is not None:
                rtcp_sock.close()
            if channel._rtcp_transport is not None:
                channel._rtcp_transport.close()
            raise
        # Sent from the raw socket, never through a transport: a datagram the kernel
        # can't take right now is stale by the next tick, so it is dropped, not buffered.
        channel._rtp_sock = rtp_sock
        self._attach(channel, rtp_sock)
        return channel

    def _receive_from(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, channel: Channel
    ) -> None:
        stream = None
        if udpio.RtpStream is not None:
            # The compiled set takes the channel's common packet itself (`media.udpio`).
            stream = udpio.RtpStream(channel._jb, self.samples, self._rx_active, channel)
        self._receiver.add(sock, channel._on_rtp, stream)
        channel._fast = stream
        channel._follow()
        if self._reader_loop is None:
            loop.add_reader(self._receiver.fileno(), self._drain)
            self._reader_loop = loop

    def _stop_receiving(self, sock: socket.socket) -> None:
        if sock.fileno() < 0:
            return
        self._receiver.remove(sock)
        loop = self._reader_loop
        if not len(self._receiver) and loop is not None:
            self._reader_loop = None
            if not loop.is_closed():
                loop.remove_reader(self._receiver.fileno())

    def _drain(self) -> None:
        try:
            self._receiver.drain()
        except OSError:
            log.exception("reading the RTP sockets failed")

    # --- the clock ---

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = time.monotonic  # loop.time()'s clock, read precisely (uvloop caches it)
        period = self.ptime
        deadline = clock() + period
        while True:
            delay = deadline - clock()
            if delay > 0:
                # Yield once per tick however late the wake-up: received packets get in.
                await asyncio.sleep(max(0.0, delay - TIMER_SLACK))
                rest = deadline - clock()
                if rest > 0:
                    time.sleep(rest)
            now = clock()
            behind = now - deadline
            if behind >= period * self.max_behind:
                skipped = int(behind // period)
                self.stats.skipped_ticks += skipped
                deadline += skipped * period
                n = len(self._channels)
                self._ts[:n] += np.uint32((skipped * self.samples) & 0xFFFFFFFF)
            elif behind > self.late_threshold:
                self.stats.late_ticks += 1
            try:
                self.tick(loop.time())
            except Exception:
                log.exception("media tick failed")
            deadline += period

    def tick(self, now: float) -> None:
        """Run one media tick for all channels and send its packets."""
        # What arrived since the loop last looked is due in this tick, not the next.
        self._drain()
        self._in_tick = True
        try:
            self._transmit(self._render(now))
        finally:
            self._end_tick()

    def render(self, now: float) -> list[bytes]:
        """Run one tick up to packetisation and return its datagrams, without sending.

        Benchmarks call this to measure the engine without the socket cost; the state
        advances exactly as in `tick`.
        """
        self._in_tick = True
        try:
            return self._render(now)
        finally:
            self._end_tick()

    def _render(self, now: float) -> list[bytes]:
        t0 = time.perf_counter()
        self._last_tick_at = now
        try:
            n = len(self._channels)
            self.stats.ticks += 1
            if n == 0:
                self._tx_rows = []
                return []
            if self._groups_dirty:
                self._regroup(n)
            self._gather(n, now)
            played = bool(self._playing)  # before route ends this tick's last frames
            bridging = self._bridging.active
            # The bridge adds playback only on the rows that play: note them first.
            playing = [c._slot for c in self._playing] if played and bridging else None
            pcm_out = self._route(n)
            if self._mixing.active or bridging:
                pcm_out = self._mix(n, pcm_out, played, playing)
            if self.output_hooks:
                self._run_output_hooks(n, pcm_out)
            return self._packetise(n, pcm_out)
        finally:
            cost = (time.perf_counter() - t0) * 1e6
            stats = self.stats
            stats.tick_cost_us += (cost - stats.tick_cost_us) / 16
            stats.max_tick_cost_us = max(stats.max_tick_cost_us, cost)

    def _end_tick(self) -> None:
        self._in_tick = False
        deferred, self._deferred_detach = self._deferred_detach, []
        for channel in deferred:
            self._detach(channel)

    # --- tick stages ---

    def _gather(self, n: int, now: float) -> None:
        rx = self._rx_active
        pcm_in = self._pcm_in[:n]
        decoded = bool(rx)
        detect_rows: list[int] = []
        if decoded:
            frames = self._in_frames
            idle, detected = self._pop_frames(rx, frames, bool(self._inband))
            if detected is not None:
                detect_rows = detected
            for channel in idle or ():
                del rx[channel]
            codes = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(n, self.samples)
            for pt, rows in self._codec_groups:
                table = g711.DECODE_TABLES[pt]
                # mode="clip" skips bounds checks: uint8 codes always index 256 entries.
                if rows is None:
                    np.take(table, codes, out=pcm_in, mode="clip")
                else:
                    pcm_in[rows] = np.take(table, codes[rows], mode="clip")
        elif not self._pcm_in_zero:
            pcm_in.fill(0)
        self._pcm_in_zero = not decoded
        if detect_rows:
            self._detect_dtmf(pcm_in, detect_rows, now)
        if self.detect_hooks:
            channels = self._channels
            for hook in tuple(self.detect_hooks):
                try:
                    hook(channels, pcm_in)
                except Exception:
                    log.exception("detect hook %r failed", hook)

    def _run_output_hooks(self, n: int, pcm_out: npt.NDArray[np.int16]) -> None:
        channels, pcm_in = self._channels, self._pcm_in[:n]
        for hook in tuple(self.output_hooks):
            try:
                hook(channels, pcm_in, pcm_out)
            except Exception:
                log.exception("output hook %r failed", hook)

    def _detect_dtmf(self, pcm_in: npt.NDArray[np.int16], rows: list[int], now: float) -> None:
        assert self._dtmf is not None  # channels detect only when there is a detector
        try:
            hits = self._dtmf.process(pcm_in, np.array(rows, dtype=np.intp))
        except Exception:
            log.exception("in-band DTMF detector failed")
            return
        channels = self._channels
        for row, digit in hits:
            channels[row]._report_digit(digit, DigitSource.INBAND, now)

    def _route(self, n: int) -> npt.NDArray[np.int16]:
        frames = self._out_frames
        playing = self._playing
        if playing:
            size = 2 * self.samples
            ending = []
            for item in playing.values():
                start = item.offset
                end = start + size
                if end < item.size:
                    frames[item.channel._slot] = item.data[start:end]
                    item.offset = end
                else:
                    ending.append(item)
            finished = []
            for item in ending:
                channel = item.channel
                frames[channel._slot] = channel._last_frame(item)
                if channel not in playing:
                    finished.append(channel._slot)
            if finished:
                # Their last frame goes out this tick; silence from the next one on.
                pcm = np.frombuffer(b"".join(frames), dtype=np.int16).reshape(n, self.samples)
                for slot in finished:
                    frames[slot] = self._zero_frame
                return pcm
        # A join of prepared byte frames is far cheaper than N row copies into an array.
        return np.frombuffer(b"".join(frames), dtype=np.int16).reshape(n, self.samples)

    def _mix(
        self, n: int, routed: npt.NDArray[np.int16], played: bool, playing: list[int] | None
    ) -> npt.NDArray[np.int16]:
        # Members hear their mix, bridged channels their partner, each plus its own
        # playback (the routed frame; silence when not playing, so the addition is
        # skipped while nothing played at all). No channel is in both.
        out = self._pcm_out[:n]
        pcm_in = self._pcm_in[:n]
        bridging = self._bridging
        if not (bridging.active and bridging.covers(n)):  # else the bridges write every row
            np.copyto(out, routed)
        if self._mixing.active:
            self._mixing.render(pcm_in, out, add_out=played)
        if bridging.active:
            bridging.render(pcm_in, out, routed, playing)
        return out

    def _packetise(self, n: int, pcm_out: npt.NDArray[np.int16]) -> list[bytes]:
        events = self._event_packets() if self._te_tx else None
        pkt = self._pkt[:n]
        payload = pkt["payload"]
        codes = pcm_out.view(np.uint16)
        for pt, rows in self._codec_groups:
            table = g711.ENCODE_TABLES[pt]
            if rows is None:
                np.take(table, codes, out=payload, mode="clip")
            else:
                payload[rows] = np.take(table, codes[rows], mode="clip")
        seq = self._seq[:n]
        marker = self._marker[:n]
        pkt["seq"] = seq
        pkt["ts"] = self._ts[:n]
        pkt["b1"] = self._pt[:n] | (marker.view(np.uint8) << 7)
        raw = pkt.tobytes()
        size = self._packet_size
        sending = self._sending[:n]
        if self._n_sending == n:
            self._tx_rows = None
            datagrams = [raw[o : o + size] for o in range(0, n * size, size)]
            seq += 1
            marker[:] = False
            self._pkts_out[:n] += 1
        else:
            rows = np.flatnonzero(sending)
            self._tx_rows = rows.tolist()
            datagrams = [raw[r * size : (r + 1) * size] for r in self._tx_rows]
            seq[rows] += 1
            marker[rows] = False
            self._pkts_out[rows] += 1
        if events:
            tx_rows = self._tx_rows
            for slot, data in events:
                datagrams[slot if tx_rows is None else bisect.bisect_left(tx_rows, slot)] = data
        # RTP timestamps follow the clock whether or not anything is sent (RFC 3550 §5.1).
        self._ts[:n] += np.uint32(self.samples)
        return datagrams

    def _event_packets(self) -> list[tuple[int, bytes]]:
        # This tick's RFC 4733 packets of the channels sending DTMF (all are sending), as
        # (slot, datagram), taking the sequence number their audio packet would have had.
        out = []
        finished = []
        for channel, job in self._te_tx.items():
            packet = job.sender.tick()
            te_pt = channel._te_pt
            if packet is not None and te_pt is not None:
                slot = channel._slot
                if packet.start:
                    job.timestamp = int(self._ts[slot])
                header = pack_header(
                    te_pt, packet.marker, int(self._seq[slot]), job.timestamp, channel._stats.ssrc
                )
                out.append((slot, header + packet.payload))
            if job.sender.done:
                finished.append(channel)
        for channel in finished:
            channel._dtmf_finished()
        return out

    def _transmit(self, datagrams: list[bytes]) -> None:
        rows = self._tx_rows
        if rows is None:
            socks: Sequence[socket.socket] = self._socks
            dests: Sequence[Addr | None] = self._dests
        else:
            socks = [self._socks[r] for r in rows]
            dests = [self._dests[r] for r in rows]
        for sock, data, dest in zip(socks, datagrams, dests, strict=False):
            try:
                sock.sendto(data, dest)  # type: ignore[arg-type]
            except OSError:
                # Full socket buffer, unreachable network, socket closed mid-tick: a
                # real-time packet is dropped and counted, never retried.
                self.stats.send_errors += 1

    # --- slots ---

    def _alloc(self, capacity: int) -> None:
        # Per-slot state, grown by doubling; rows [:n] are the live channels.
        n = len(self._channels)
        pkt = np.zeros(capacity, _packet_dtype(self.samples))
        pkt["b0"] = 0x80  # version 2, no padding, no extension, no CSRC
        if n:
            pkt[:n] = self._pkt[:n]
        self._pkt: npt.NDArray[Any] = pkt
        self._seq: npt.NDArray[np.uint16] = _grown(self, "_seq", np.uint16, capacity, n)
        self._ts: npt.NDArray[np.uint32] = _grown(self, "_ts", np.uint32, capacity, n)
        self._pt: npt.NDArray[np.uint8] = _grown(self, "_pt", np.uint8, capacity, n)
        self._codec: npt.NDArray[np.uint8] = _grown(self, "_codec", np.uint8, capacity, n)
        self._marker: npt.NDArray[np.bool_] = _grown(self, "_marker", np.bool_, capacity, n)
        self._sending: npt.NDArray[np.bool_] = _grown(self, "_sending", np.bool_, capacity, n)
        self._pkts_out: npt.NDArray[np.int64] = _grown(self, "_pkts_out", np.int64, capacity, n)
        self._pcm_in: npt.NDArray[np.int16] = np.zeros((capacity, self.samples), np.int16)
        self._pcm_out: npt.NDArray[np.int16] = np.zeros((capacity, self.samples), np.int16)
        self._pcm_in_zero = True
        self._capacity = capacity
        if self._dtmf is not None:
            self._dtmf.ensure_capacity(capacity)

    _SLOT_ARRAYS = ("_seq", "_ts", "_pt", "_marker", "_sending", "_pkts_out", "_codec", "_pkt")

    def _attach(self, channel: Channel, sock: socket.socket) -> None:
        slot = len(self._channels)
        if slot == self._capacity:
            self._alloc(2 * self._capacity)
        channel._slot = slot
        self._channels.append(channel)
        self._in_frames.append(channel._silence_in)
        self._out_frames.append(self._zero_frame)
        self._socks.append(sock)
        self._dests.append(None)
        # RFC 3550 §5.1: random initial sequence number and timestamp.
        self._seq[slot] = random.getrandbits(16)
        self._ts[slot] = random.getrandbits(32)
        self._pkt["ssrc"][slot] = channel._stats.ssrc
        self._pt[slot] = 0
        self._marker[slot] = True
        self._sending[slot] = False
        self._pkts_out[slot] = 0
        self._codec[slot] = 0
        self._groups_dirty = True
        self._bridging.slots_moved()
        self.stats.channels = len(self._channels)

    def _detach(self, channel: Channel) -> None:
        slot = channel._slot
        if slot < 0:
            return
        # Out of the receive set at once, even mid-tick: the socket closes next, and its
        # descriptor number may come back as another channel's.
        self._stop_receiving(self._socks[slot])
        if self._sending[slot]:
            self._sending[slot] = False
            self._n_sending -= 1
        self._te_tx.pop(channel, None)
        if channel._mix_group is not None:
            channel._mix_group.remove(channel)
        self._bridging.disconnect(channel)
        if channel._detect_inband:
            channel._detect_inband = False
            self._inband.discard(channel)
        if self._in_tick:
            # A hook closed a channel mid-tick: keep slots stable until the tick ends.
            self._deferred_detach.append(channel)
            return
        self._rx_active.pop(channel, None)
        self._playing.pop(channel, None)
        last = len(self._channels) - 1
        if slot != last:
            moved = self._channels[last]
            for name in self._SLOT_ARRAYS:
                arr = getattr(self, name)
                arr[slot] = arr[last]
            self._channels[slot] = moved
            self._in_frames[slot] = self._in_frames[last]
            self._out_frames[slot] = self._out_frames[last]
            self._socks[slot] = self._socks[last]
            self._dests[slot] = self._dests[last]
            moved._slot = slot
            if self._dtmf is not None:
                self._move_detector_row(last, slot)
        self._channels.pop()
        self._in_frames.pop()
        self._out_frames.pop()
        self._socks.pop()
        self._dests.pop()
        channel._slot = -1
        self._groups_dirty = True
        self._mixing.slots_moved()
        self._bridging.slots_moved()
        self.stats.channels = len(self._channels)

    def _regroup(self, n: int) -> None:
        codec = self._codec[:n]
        groups: list[tuple[int, npt.NDArray[np.intp] | None]] = []
        for index, pt in enumerate(_CODEC_ORDER):
            rows = np.flatnonzero(codec == index)
            if len(rows) == n:
                groups = [(pt, None)]
                break
            if len(rows):
                groups.append((pt, rows))
        self._codec_groups = groups
        self._groups_dirty = False

    # --- called by Channel ---

    def _loop(self) -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            if self._loop_ref is None:
                raise
            return self._loop_ref

    def _configure(self, channel: Channel) -> None:
        slot = channel._slot
        pt = channel._pt or 0
        self._pt[slot] = pt
        codec = _CODEC_ORDER.index(pt)
        if self._codec[slot] != codec:
            self._codec[slot] = codec
            self._groups_dirty = True
        self._set_destination(channel)
        was, now = bool(self._sending[slot]), channel._send
        if now and not was:
            # A new talk-spurt (stream start, or resume after hold): RFC 3551 §4.1 marker.
            self._marker[slot] = True
        self._sending[slot] = now
        self._n_sending += int(now) - int(was)
        self._in_frames[slot] = channel._silence_in
        if not channel._receive:
            self._rx_active.pop(channel, None)
        self._playing_changed(channel)
        self._dtmf_changed(channel)
        self._inband_changed(channel)

    def _move_detector_row(self, src: int, dst: int) -> None:
        # Detector state is per row and must follow its channel: a reset would report a
        # key held across the move a second time. `move` is optional in the interface;
        # without it the row starts over (at worst, that one press is reported twice).
        assert self._dtmf is not None
        move = getattr(self._dtmf, "move", None)
        if move is not None:
            move(src, dst)
        else:
            self._dtmf.reset(dst)

    def _dtmf_changed(self, channel: Channel) -> None:
        # Like playback, RFC 4733 DTMF advances only while the channel sends.
        if channel._dtmf_out and channel._send and channel._slot >= 0:
            self._te_tx[channel] = channel._dtmf_out[0]
        else:
            self._te_tx.pop(channel, None)

    def _inband_changed(self, channel: Channel) -> None:
        # Detect only where someone listens for digits: idle calls cost nothing.
        on = (
            self._dtmf is not None
            and channel._inband_dtmf
            and channel._on_digit is not None
            and channel._receive
            and channel._slot >= 0
            and not channel._closed
        )
        if on == channel._detect_inband:
            return
        channel._detect_inband = on
        if on:
            assert self._dtmf is not None
            self._dtmf.reset(channel._slot)
            self._inband.add(channel)
        else:
            self._inband.discard(channel)

    def _set_destination(self, channel: Channel) -> None:
        if channel._slot >= 0:
            self._dests[channel._slot] = channel._dest

    def _playing_changed(self, channel: Channel) -> None:
        # Playback advances only while the channel sends: a prompt queued during hold
        # is heard after resume, not lost.
        if channel._queue and channel._send and channel._slot >= 0:
            self._playing[channel] = channel._queue[0]
        elif self._playing.pop(channel, None) is not None:
            self._out_frames[channel._slot] = self._zero_frame

    def _rtp_clock(self, channel: Channel) -> int:
        """The RTP timestamp of `channel`'s stream now: its last packet's, plus the time
        since that tick (for the RTP/NTP pair of an RTCP sender report)."""
        slot = channel._slot
        if slot < 0:
            return 0
        elapsed = max(0.0, self._loop().time() - self._last_tick_at) if self._last_tick_at else 0
        last = int(self._ts[slot]) - self.samples
        return (last + round(elapsed * self.samples / self.ptime)) & 0xFFFFFFFF

    def _sync_stats(self, channel: Channel) -> None:
        fast = channel._fast
        if fast is not None and fast.packets:
            # What the receive set took itself (`media.udpio`), folded in when asked.
            channel._stats.packets_in += fast.packets
            channel._stats.bytes_in += fast.octets
            fast.packets = fast.octets = 0
        if channel._slot >= 0:
            stats = channel._stats
            stats.packets_out = int(self._pkts_out[channel._slot])
            stats.bytes_out = stats.packets_out * self._packet_size

    # --- ports ---

    def _bind_pair(self) -> tuple[socket.socket, socket.socket | None]:
        lo, hi = self.port_range
        if (lo, hi) == (0, 0):
            return self._bind_ephemeral()
        first = lo + (lo & 1)
        count = (hi - first) // 2 + 1
        for i in range(count):
            port = first + 2 * ((self._port_cursor + i) % count)
            rtp = self._try_bind(port)
            if rtp is None:
                continue
            rtcp = self._try_bind(port + 1)
            if rtcp is None:
                rtp.close()
                continue
            self._port_cursor = (self._port_cursor + i + 1) % count
            return rtp, rtcp
        raise OSError(f"no free RTP/RTCP port pair in {lo}-{hi} on {self.host}")

    def _bind_ephemeral(self) -> tuple[socket.socket, socket.socket | None]:
        # RFC 3550 §11 wants RTP on an even port and RTCP on the next one: try a few
        # OS-chosen ports for that, else settle for what the OS gave.
        fallback = None
        for _ in range(16):
            rtp = self._try_bind(0)
            if rtp is None:
                break
            port = rtp.getsockname()[1]
            rtcp = self._try_bind(port + 1) if port % 2 == 0 and port < 65535 else None
            if rtcp is not None:
                if fallback is not None:
                    fallback.close()
                return rtp, rtcp
            if fallback is None:
                fallback = rtp
            else:
                rtp.close()
        if fallback is None:
            raise OSError(f"cannot bind a UDP port on {self.host}")
        return fallback, None

    def _try_bind(self, port: int) -> socket.socket | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock
