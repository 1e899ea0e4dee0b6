"""A small asyncio RTP endpoint for the test phone: G.711 out and in, RFC 4733 both ways.

Sending: one packet every ptime (20 ms), paced on the loop's clock so the stream keeps
its rate however late a tick runs. Each tick sends the next RFC 4733 packet while a digit
string is going out (`media.telephone_event.TelephoneEventSender`; the audio waits), else
the next frame of queued audio (`play`), else silence. Receiving: G.711 payloads are
decoded with `media.g711` and written into the heard buffer *by RTP timestamp*, so that
what the test measures is the far end's audio time, not the packets' arrival jitter; a
new SSRC (the switch bridging another source in) is anchored at its arrival time.
Telephone-events go through `media.telephone_event.TelephoneEventReceiver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media import g711
from media.events import TelephoneEventStarted
from media.rtp import DTMF_EVENTS, TelephoneEvent, is_rtcp, pack_header, unpack_rtp
from media.telephone_event import TelephoneEventReceiver, TelephoneEventSender

log = logging.getLogger("voxswitch.testkit.rtp")

RATE = 8000
_TS_MOD = 1 << 32
# A timestamp this far from where the arrival time puts it is a sender that reset its
# clock (or a new source under the old SSRC): anchor it afresh.
REANCHOR_S = 2.0

Pcm = npt.NDArray[np.int16]


@dataclass
class _Anchor:
    ts: int
    index: int


class RtpEndpoint(asyncio.DatagramProtocol):
    """One call's RTP: `open()`, then `start(remote, ...)` once the answer is known."""

    def __init__(self, host: str = "127.0.0.1", *, reanchor_s: float = REANCHOR_S) -> None:
        self.host = host
        self.reanchor_s = reanchor_s
        self.port = 0
        self.remote: tuple[str, int] | None = None
        self.payload_type = g711.PCMU
        self.event_pt: int | None = None
        self.ptime_ms = 20
        self.packets_in = self.packets_out = 0
        self.rfc4733_keys: list[tuple[float, str]] = []  # (audio time, key)
        self._heard = np.zeros(RATE * 4, np.int16)
        self._heard_len = 0
        self._started_at: float | None = None  # loop time of the first packet in
        self._anchors: dict[int, _Anchor] = {}
        self._receiver = TelephoneEventReceiver()
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._queue: deque[Pcm] = deque()
        self._queued_done: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._samples_queued = 0
        self._samples_sent = 0
        self._digits: TelephoneEventSender | None = None
        self._digits_done: asyncio.Future[None] | None = None
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._event_ts = 0

    # ---- lifecycle --------------------------------------------------------------------------

    async def open(self, port: int = 0) -> int:
        """Bind RTP on `port` (0: any) and RTCP on the next one, which is drained only;
        return the RTP port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, port), family=socket.AF_INET)
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        with contextlib.suppress(OSError):  # RTCP is a courtesy: a taken port is no error
            self._rtcp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(self.host, self.port + 1),
                family=socket.AF_INET)
        return self.port

    def start(self, remote: tuple[str, int], payload_type: int, event_pt: int | None,
              ptime_ms: int = 20) -> None:
        """Start sending to `remote` (the far end's negotiated media address)."""
        if payload_type not in g711.DECODE_TABLES:
            raise ValueError(f"the test phone speaks G.711 only, not payload type {payload_type}")
        self.remote, self.payload_type, self.event_pt = remote, payload_type, event_pt
        self.ptime_ms = ptime_ms
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for transport in (self._transport, self._rtcp):
            if transport is not None:
                transport.close()
        self._transport = self._rtcp = None
        for _, fut in self._queued_done:
            if not fut.done():
                fut.cancel()
        if self._digits_done is not None and not self._digits_done.done():
            self._digits_done.cancel()

    # ---- what we send -----------------------------------------------------------------------

    def play(self, pcm: Pcm) -> asyncio.Future[None]:
        """Queue 8 kHz int16 audio after what is queued; the future is done once it is sent."""
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(samples)
        self._samples_queued += len(samples)
        self._queued_done.append((self._samples_queued, fut))
        if not len(samples):
            self._settle_played()
        return fut

    def send_digits(self, digits: str, tone_ms: int, gap_ms: int) -> asyncio.Future[None]:
        """Send `digits` as RFC 4733 events; the future is done after the last end packet."""
        if self.event_pt is None:
            raise RuntimeError("the far end did not accept telephone-event in its SDP: "
                               "send the digits with mode='inband' or mode='info'")
        if self._digits is not None and not self._digits.done:
            raise RuntimeError("digits are still being sent: await the previous send_digits")
        self._digits = TelephoneEventSender(digits, tone_ms=tone_ms, gap_ms=gap_ms,
                                            ptime_ms=self.ptime_ms)
        self._digits_done = asyncio.get_running_loop().create_future()
        return self._digits_done

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.ptime_ms / 1000
        spp = RATE * self.ptime_ms // 1000
        next_at = loop.time()
        while True:
            self._send_one(spp)
            next_at += period
            delay = next_at - loop.time()
            if delay < -0.2:  # the loop stalled: don't burst to catch up, resume from now
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(max(delay, 0.0))

    def _send_one(self, spp: int) -> None:
        if self._transport is None or self.remote is None:
            return
        sender = self._digits
        if sender is not None and not sender.done:
            packet = sender.tick()
            if sender.done and self._digits_done is not None and not self._digits_done.done():
                self._digits_done.set_result(None)
            if packet is not None:
                assert self.event_pt is not None
                if packet.start:
                    self._event_ts = self._ts
                header = pack_header(self.event_pt, packet.marker, self._seq, self._event_ts,
                                     self._ssrc)
                self._sendto(header + packet.payload)
                self._ts = (self._ts + spp) % _TS_MOD
                return
        frame = self._next_frame(spp)
        payload = g711.encode(self.payload_type, frame)
        self._sendto(pack_header(self.payload_type, False, self._seq, self._ts, self._ssrc)
                     + payload)
        self._ts = (self._ts + spp) % _TS_MOD

    def _sendto(self, data: bytes) -> None:
        assert self._transport is not None and self.remote is not None
        self._transport.sendto(data, self.remote)
        self._seq = (self._seq + 1) & 0xFFFF
        self.packets_out += 1

    def _next_frame(self, spp: int) -> Pcm:
        out = np.zeros(spp, np.int16)
        filled = 0
        while filled < spp and self._queue:
            head = self._queue[0]
            take = min(spp - filled, len(head))
            out[filled:filled + take] = head[:take]
            filled += take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        self._samples_sent += filled
        self._settle_played()
        return out

    def _settle_played(self) -> None:
        while self._queued_done and self._queued_done[0][0] <= self._samples_sent:
            _, fut = self._queued_done.popleft()
            if not fut.done():
                fut.set_result(None)

    # ---- what we hear -----------------------------------------------------------------------

    @property
    def heard(self) -> Pcm:
        """Everything received so far as 8 kHz samples (gaps are silence)."""
        return self._heard[:self._heard_len]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after the far end closed its port: expected at hang-up.
        log.debug("rtp socket error: %s", exc, extra={"port": self.port})

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            return
        try:
            pt, marker, seq, ts, ssrc, payload = unpack_rtp(data)
        except ValueError as exc:
            log.warning("unreadable RTP from %s: %s", addr, exc, extra={"port": self.port})
            return
        self.packets_in += 1
        now = asyncio.get_running_loop().time()
        if self._started_at is None:
            self._started_at = now
        if pt == self.event_pt and self.event_pt is not None:
            try:
                event = TelephoneEvent.parse(payload)
            except ValueError:
                return
            for ev in self._receiver.feed(seq, ts, marker, ssrc, event, now):
                if isinstance(ev, TelephoneEventStarted) and ev.event < len(DTMF_EVENTS):
                    # timed like the audio, by the event's RTP timestamp
                    at = self._index(ssrc, ev.timestamp, now) / RATE
                    self.rfc4733_keys.append((at, DTMF_EVENTS[ev.event]))
            return
        if pt not in g711.DECODE_TABLES:
            return
        pcm = g711.decode(pt, payload)
        self._write(self._index(ssrc, ts, now), pcm)

    def _index(self, ssrc: int, ts: int, now: float) -> int:
        assert self._started_at is not None
        wall = round((now - self._started_at) * RATE)
        anchor = self._anchors.get(ssrc)
        if anchor is not None:
            delta = (ts - anchor.ts) % _TS_MOD
            if delta >= _TS_MOD // 2:
                delta -= _TS_MOD
            index = anchor.index + delta
            if abs(index - wall) <= self.reanchor_s * RATE:
                return index
        # The first packet of a source (or one that jumped): it belongs where it arrived,
        # but never over audio already heard from another source.
        index = max(wall, self._heard_len) if anchor is None else wall
        self._anchors[ssrc] = _Anchor(ts, index)
        return index

    def _write(self, index: int, pcm: Pcm) -> None:
        if index < 0:
            return
        end = index + len(pcm)
        if end > len(self._heard):
            grown = np.zeros(max(end, 2 * len(self._heard)), np.int16)
            grown[:self._heard_len] = self._heard[:self._heard_len]
            self._heard = grown
        self._heard[index:end] = pcm
        self._heard_len = max(self._heard_len, end)
