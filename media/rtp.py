"""Sans-I/O RTP and RTCP wire formats (RFC 3550), and RFC 4733 telephone-event payloads.

Wire objects parse with `X.parse(data)` and serialise with `bytes(x)`; malformed input
raises `ValueError` with a fixed message, which the caller (the channel) counts and
drops. Two fast paths serve the per-packet datapath, where a dataclass per packet would
be the dominant cost: `unpack_rtp` on receive and `pack_header` on send (the engine packs
all of a tick's headers at once with numpy; see `media.engine`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_RTCP_HEADER = struct.Struct("!BBH")
_TELEPHONE_EVENT = struct.Struct("!BBH")


def pack_header(pt: int, marker: bool, seq: int, ts: int, ssrc: int) -> bytes:
    """Pack a 12-byte RTP header with no CSRC, extension or padding."""
    return _HEADER.pack(0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)


def unpack_rtp(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    """Parse an RTP packet into ``(pt, marker, seq, ts, ssrc, payload)``.

    The common packet (no CSRC, extension or padding) takes one `struct` call; anything
    else goes through `RtpPacket.parse`. Raises `ValueError` like it.
    """
    if len(data) < RTP_HEADER_SIZE:
        raise ValueError("RTP packet length is less than 12 bytes")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 == 0x80:
        return b1 & 0x7F, b1 > 0x7F, seq, ts, ssrc, data[RTP_HEADER_SIZE:]
    packet = RtpPacket.parse(data)
    h = packet.header
    return h.payload_type, h.marker, h.sequence_number, h.timestamp, h.ssrc, packet.payload


def is_rtcp(data: bytes) -> bool:
    """True if a datagram on an RTP port is RTCP (RFC 5761 §4: PT 64-95 with marker set)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fixed RTP header plus CSRC list and header extension (RFC 3550 §5.1, §5.3.1)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpHeader:
        """Parse the header of an RTP packet (the payload is ignored)."""
        return RtpPacket.parse(data).header

    def __bytes__(self) -> bytes:
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.extension_profile is not None:
            b0 |= 0x10
        out = [
            _HEADER.pack(
                b0,
                (self.marker << 7) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        out.extend(struct.pack("!I", c) for c in self.csrc)
        if self.extension_profile is not None:
            if len(self.extension) % 4:
                raise ValueError("RTP header extension length must be a multiple of 4")
            out.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            out.append(self.extension)
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """An RTP packet: header, payload and the amount of padding (RFC 3550 §5.1)."""

    header: RtpHeader
    payload: bytes = b""
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a datagram; raises `ValueError` on anything that is not RTP version 2."""
        if len(data) < RTP_HEADER_SIZE:
            raise ValueError("RTP packet length is less than 12 bytes")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise ValueError("RTP packet has invalid version")
        pos = RTP_HEADER_SIZE
        cc = b0 & 0x0F
        if len(data) < pos + 4 * cc:
            raise ValueError("RTP packet has truncated CSRC")
        csrc = struct.unpack_from(f"!{cc}I", data, pos)
        pos += 4 * cc
        profile: int | None = None
        extension = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise ValueError("RTP packet has truncated extension")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise ValueError("RTP packet has truncated extension")
            extension = data[pos : pos + 4 * words]
            pos += 4 * words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            # RFC 3550 §5.1: the last octet counts the padding, itself included.
            padding = data[-1]
            if padding == 0 or pos + padding > end:
                raise ValueError("RTP packet has invalid padding length")
            end -= padding
        header = RtpHeader(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension_profile=profile,
            extension=extension,
        )
        return cls(header=header, payload=bytes(data[pos:end]), padding_size=padding)

    def __bytes__(self) -> bytes:
        return self.encode()

    def encode(self) -> bytes:
        """Serialise the packet (padding, if any, as zeros ending in its length)."""
        head = bytes(self.header)
        if not self.padding_size:
            return head + self.payload
        if not 0 < self.padding_size < 256:
            raise ValueError("RTP padding size must be between 1 and 255")
        head = bytes([head[0] | 0x20]) + head[1:]
        pad = bytes(self.padding_size - 1) + bytes([self.padding_size])
        return head + self.payload + pad


# --- RTCP: enough to accept and count what peers send (RFC 3550 §6) ---


@dataclass(frozen=True, slots=True)
class RtcpPacket:
    """One packet of an RTCP compound packet: type, count field, sender SSRC and body.

    `ssrc` is the first 32-bit word after the header (the sender for SR/RR, the first
    chunk's source for SDES and BYE); None when the packet has no body.
    """

    packet_type: int
    count: int
    ssrc: int | None
    body: bytes


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Split an RTCP compound packet into its packets; raises `ValueError` on bad framing."""
    if len(data) < 4:
        raise ValueError("RTCP packet length is less than 4 bytes")
    packets = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise ValueError("RTCP packet has truncated header")
        b0, pt, words = _RTCP_HEADER.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise ValueError("RTCP packet has invalid version")
        end = pos + 4 * (words + 1)
        if end > len(data):
            raise ValueError("RTCP packet has truncated body")
        body = data[pos + 4 : end]
        if b0 & 0x20:
            # Padding is only allowed on the last packet of a compound (RFC 3550 §6.4.1).
            if end != len(data) or not body or body[-1] == 0 or body[-1] > len(body):
                raise ValueError("RTCP packet has invalid padding length")
            body = body[: len(body) - body[-1]]
        ssrc = struct.unpack_from("!I", body)[0] if len(body) >= 4 else None
        packets.append(RtcpPacket(packet_type=pt, count=b0 & 0x1F, ssrc=ssrc, body=bytes(body)))
        pos = end
    return packets


# --- RFC 4733 telephone-event payload ---


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 named-event payload: event code, end bit, volume, duration."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse the first 4-byte event of a telephone-event payload."""
        if len(data) < 4:
            raise ValueError("telephone-event payload is less than 4 bytes")
        event, flags, duration = _TELEPHONE_EVENT.unpack_from(data)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        return pack_telephone_event(self.event, self.end, self.volume, self.duration)


def pack_telephone_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    """Pack a 4-byte RFC 4733 payload (the R bit is always 0)."""
    if not 0 <= event <= 255:
        raise ValueError("telephone-event code must be between 0 and 255")
    if not 0 <= volume <= 63:
        raise ValueError("telephone-event volume must be between 0 and 63")
    return _TELEPHONE_EVENT.pack(event, (end << 7) | volume, min(duration, 0xFFFF))


DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 §3.2: event codes 0-15 are these DTMF digits, in this order."""
