"""Sans-I/O RTCP reports (RFC 3550 §6): what one channel tells its peer about both streams.

- `ReceptionStats` follows one inbound source (A.1 sequence extension, A.3 loss, A.8
  interarrival jitter, and the peer's last SR for LSR/DLSR); the channel feeds it every
  media packet.
- `build_report` makes a compound packet: SR when we sent RTP since the last report
  (else RR), with a report block on the peer's stream when it sent any, then SDES CNAME,
  then BYE when the channel is closing.
- `report_interval` is §6.3's interval for a two-party session: 5 s minimum (half of it
  before the first report), randomised to 0.5-1.5 times, divided by e − 3/2.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Protocol

from .rtp import RTCP_BYE, RTCP_RR, RTCP_SDES, RTCP_SR, RTP_VERSION

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
MIN_INTERVAL_S = 5.0
_COMPENSATION = 2.718281828459045 - 1.5  # RFC 3550 §6.3.1: e - 3/2
_SDES_CNAME = 1
_MAX_DROPOUT = 3000  # A.1: a forward jump beyond this (or a big step back) is a restart
_MAX_MISORDER = 100


def ntp_time(unix: float) -> tuple[int, int]:
    """(seconds, fraction) of a Unix time as a 64-bit NTP timestamp."""
    seconds = int(unix) + NTP_EPOCH_OFFSET
    return seconds & 0xFFFFFFFF, int((unix % 1.0) * (1 << 32)) & 0xFFFFFFFF


def ntp_middle(seconds: int, fraction: int) -> int:
    """The middle 32 bits of an NTP timestamp (the form LSR takes)."""
    return ((seconds & 0xFFFF) << 16) | (fraction >> 16)


def report_interval(first: bool, rng: random.Random | None = None) -> float:
    """Seconds to the next report (RFC 3550 §6.3.1, two members, audio-rate bandwidth)."""
    base = MIN_INTERVAL_S / 2 if first else MIN_INTERVAL_S
    return base * (rng or random).uniform(0.5, 1.5) / _COMPENSATION


@dataclass(slots=True)
class ReceptionStats:
    """RFC 3550 Appendix A state for one inbound source; `update` per media packet."""

    ssrc: int
    rate: int = 8000
    base_seq: int = 0
    max_seq: int = 0
    cycles: int = 0  # count of sequence wraps, times 65536
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    jitter: float = 0.0  # in timestamp units
    transit: int | None = None
    last_sr: int = 0  # middle 32 bits of the NTP time of the peer's last SR
    last_sr_at: float | None = None  # our clock when it came

    @classmethod
    def start(cls, ssrc: int, seq: int, rate: int = 8000) -> ReceptionStats:
        return cls(ssrc=ssrc, rate=rate, base_seq=seq, max_seq=seq)

    def update(self, seq: int, ts: int, arrival: float) -> None:
        """Count one packet with sequence number `seq` and timestamp `ts`, arriving at
        `arrival` seconds on our clock. Runs per media packet: the common case is short."""
        if 0 < seq - self.max_seq < _MAX_DROPOUT:
            self.max_seq = seq  # in order, no wrap
        else:
            self._sequence(seq)
        self.received += 1
        transit = int(arrival * self.rate) - ts
        last = self.transit
        self.transit = transit
        if last is not None:
            d = transit - last
            if d < 0:
                d = -d
            if d >= 0x80000000:  # the timestamp wrapped between the two packets
                d = abs(d - 0x100000000)
            self.jitter += (d - self.jitter) * 0.0625  # A.8: J += (|D| - J) / 16

    def _sequence(self, seq: int) -> None:
        delta = (seq - self.max_seq) & 0xFFFF
        if 0 < delta < _MAX_DROPOUT:  # forward across the wrap (the in-order case is done)
            self.cycles += 0x10000
            self.max_seq = seq
        elif _MAX_DROPOUT <= delta <= 0x10000 - _MAX_MISORDER:  # the sender restarted
            self.base_seq = self.max_seq = seq
            self.cycles = self.received = self.expected_prior = self.received_prior = 0
            self.transit = None
        # else: a little late (reordered or duplicate): counted, the maximum unchanged

    def sender_report(self, ntp_seconds: int, ntp_fraction: int, now: float) -> None:
        """Note an SR from this source (for LSR and DLSR in our next report block)."""
        self.last_sr = ntp_middle(ntp_seconds, ntp_fraction)
        self.last_sr_at = now

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative when duplicates outnumber losses)."""
        return self.expected - self.received

    def report_block(self, now: float) -> bytes:
        """A 24-byte report block (§6.4.1) on this source; starts a new loss interval."""
        return report_block(self, now)


class _Source(Protocol):
    # What a report block is made from: `ReceptionStats`, or its compiled twin.
    ssrc: int
    expected_prior: int
    received_prior: int
    received: int
    jitter: float
    last_sr: int
    last_sr_at: float | None

    @property
    def expected(self) -> int: ...

    @property
    def lost(self) -> int: ...

    @property
    def extended_max(self) -> int: ...


def report_block(source: _Source, now: float) -> bytes:
    """`source`'s 24-byte report block (§6.4.1); starts a new loss interval."""
    expected, received = source.expected, source.received
    expected_interval = expected - source.expected_prior
    lost_interval = expected_interval - (received - source.received_prior)
    source.expected_prior, source.received_prior = expected, received
    fraction = 0
    if expected_interval > 0 and lost_interval > 0:
        fraction = min(255, (lost_interval << 8) // expected_interval)
    lost = max(-0x800000, min(0x7FFFFF, source.lost)) & 0xFFFFFF
    dlsr = 0
    if source.last_sr_at is not None:
        dlsr = min(0xFFFFFFFF, int((now - source.last_sr_at) * 65536))
    return struct.pack(
        "!IIIIII",
        source.ssrc,
        (fraction << 24) | lost,
        source.extended_max & 0xFFFFFFFF,
        int(source.jitter) & 0xFFFFFFFF,
        source.last_sr,
        dlsr,
    )


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """What an SR says of our own stream (§6.4.1)."""

    ntp_seconds: int
    ntp_fraction: int
    rtp_timestamp: int
    packets: int
    octets: int


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    """The 4-byte header of a packet whose body (32-bit aligned) is `body`."""
    return struct.pack("!BBH", (RTP_VERSION << 6) | count, packet_type, len(body) // 4)


def build_report(
    ssrc: int,
    cname: str,
    *,
    sender: SenderInfo | None,
    blocks: list[bytes],
    bye: bool = False,
) -> bytes:
    """A compound RTCP packet: SR (when `sender`) or RR, SDES CNAME, and BYE if `bye`."""
    if len(blocks) > 31:
        raise ValueError("at most 31 report blocks fit one SR or RR")
    if sender is not None:
        body = struct.pack(
            "!IIIIII",
            ssrc,
            sender.ntp_seconds,
            sender.ntp_fraction,
            sender.rtp_timestamp & 0xFFFFFFFF,
            sender.packets & 0xFFFFFFFF,
            sender.octets & 0xFFFFFFFF,
        )
        body += b"".join(blocks)
        out = _header(RTCP_SR, len(blocks), body) + body
    else:
        body = struct.pack("!I", ssrc) + b"".join(blocks)
        out = _header(RTCP_RR, len(blocks), body) + body
    name = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, _SDES_CNAME, len(name)) + name
    chunk += bytes(4 - len(chunk) % 4)  # a null item ends the chunk, padded to 32 bits
    out += _header(RTCP_SDES, 1, chunk) + chunk
    if bye:
        out += _header(RTCP_BYE, 1, b"\0" * 4) + struct.pack("!I", ssrc)
    return out


def parse_sender_report(body: bytes) -> tuple[int, int, int]:
    """(sender SSRC, NTP seconds, NTP fraction) from the body of an SR."""
    if len(body) < 24:
        raise ValueError("RTCP SR is shorter than its sender info")
    ssrc, seconds, fraction = struct.unpack_from("!III", body)
    return ssrc, seconds, fraction
