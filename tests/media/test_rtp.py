"""RTP/RTCP wire formats and RFC 4733 payloads."""

from __future__ import annotations

import struct

import pytest

from media import rtp
from media.rtp import RtcpPacket, RtpHeader, RtpPacket, TelephoneEvent

# A PCMU packet as a softphone sends it: marker set, seq 0xABCD, 160 bytes of silence.
PCMU_PACKET = bytes.fromhex("8080abcd0001e2401234567f") + b"\xff" * 160


def test_parse_simple_packet() -> None:
    p = RtpPacket.parse(PCMU_PACKET)
    h = p.header
    assert (h.payload_type, h.marker, h.sequence_number) == (0, True, 0xABCD)
    assert (h.timestamp, h.ssrc) == (123456, 0x1234567F)
    assert p.payload == b"\xff" * 160 and p.padding_size == 0
    assert bytes(p) == PCMU_PACKET
    assert RtpHeader.parse(PCMU_PACKET) == h


def test_round_trip_csrc_extension_padding() -> None:
    header = RtpHeader(
        payload_type=8,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=7,
        marker=False,
        csrc=(1, 2, 3),
        extension_profile=0xBEDE,
        extension=b"\x10\xaa\x00\x00",
    )
    packet = RtpPacket(header=header, payload=b"\xd5" * 160, padding_size=4)
    data = bytes(packet)
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert len(data) == 12 + 12 + 8 + 160 + 4
    assert RtpPacket.parse(data) == packet
    assert packet.encode() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet length is less than 12 bytes"),
        (b"\x80\x00\x00", "RTP packet length is less than 12 bytes"),
        (b"\x40" + bytes(11), "RTP packet has invalid version"),
        (b"\x00" + bytes(11), "RTP packet has invalid version"),
        (b"\x82" + bytes(11) + bytes(4), "RTP packet has truncated CSRC"),
        (b"\x90" + bytes(11) + b"\xbe", "RTP packet has truncated extension"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00\x02\x00", "RTP packet has truncated extension"),
        (b"\xa0" + bytes(11) + b"\x00", "RTP packet has invalid padding length"),
        (b"\xa0" + bytes(11) + b"ab\x09", "RTP packet has invalid padding length"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        RtpPacket.parse(data)
    assert str(exc.value) == message


@pytest.mark.parametrize("marker", [False, True])
def test_pack_header_matches_dataclass(marker: bool) -> None:
    raw = rtp.pack_header(8, marker, 0x1FFFF, 0x1_0000_0005, 0xDEADBEEF)
    assert raw == bytes(RtpHeader(8, 0xFFFF, 5, 0xDEADBEEF, marker=marker))


def test_unpack_rtp_fast_and_slow_paths_agree() -> None:
    assert rtp.unpack_rtp(PCMU_PACKET) == (0, True, 0xABCD, 123456, 0x1234567F, b"\xff" * 160)
    h = RtpHeader(0, 5, 6, 7, csrc=(9,))
    slow = bytes(RtpPacket(h, b"xyz", padding_size=2))
    assert rtp.unpack_rtp(slow) == (0, False, 5, 6, 7, b"xyz")
    with pytest.raises(ValueError, match="invalid version"):
        rtp.unpack_rtp(b"\x00" * 20)
    with pytest.raises(ValueError, match="less than 12"):
        rtp.unpack_rtp(b"\x80")


def sr(ssrc: int) -> bytes:
    body = struct.pack("!IIIIII", ssrc, 1, 2, 3, 4, 5)
    return struct.pack("!BBH", 0x80, 200, len(body) // 4) + body


def rr(ssrc: int, blocks: int = 1) -> bytes:
    body = struct.pack("!I", ssrc) + bytes(24 * blocks)
    return struct.pack("!BBH", 0x80 | blocks, 201, len(body) // 4) + body


def sdes(ssrc: int, cname: bytes) -> bytes:
    chunk = struct.pack("!IBB", ssrc, 1, len(cname)) + cname + b"\x00"
    chunk += bytes(-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def bye(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x81, 203, 1, ssrc)


def test_parse_rtcp_compound() -> None:
    compound = sr(11) + sdes(11, b"alice@example") + bye(11)
    packets = rtp.parse_rtcp(compound)
    assert [p.packet_type for p in packets] == [rtp.RTCP_SR, rtp.RTCP_SDES, rtp.RTCP_BYE]
    assert all(p.ssrc == 11 for p in packets)
    assert rtp.parse_rtcp(rr(5, 2) + sdes(5, b"x"))[0] == RtcpPacket(201, 2, 5, rr(5, 2)[4:])


def test_parse_rtcp_padding_on_last_packet() -> None:
    body = struct.pack("!I", 5) + b"\x00\x00\x00\x04"
    padded = struct.pack("!BBH", 0xA0, 201, 2) + body
    assert rtp.parse_rtcp(padded)[0].body == struct.pack("!I", 5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80", "RTCP packet length is less than 4 bytes"),
        (b"\x40\xc8\x00\x00", "RTCP packet has invalid version"),
        (b"\x80\xc8\x00\x06" + bytes(8), "RTCP packet has truncated body"),
        (bye(1) + b"\x81\xcb", "RTCP packet has truncated header"),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x00", "RTCP packet has invalid padding length"),
    ],
)
def test_parse_rtcp_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        rtp.parse_rtcp(data)
    assert str(exc.value) == message


def test_is_rtcp_demux() -> None:
    assert rtp.is_rtcp(sr(1)) and rtp.is_rtcp(rr(1))
    assert not rtp.is_rtcp(PCMU_PACKET)
    assert not rtp.is_rtcp(rtp.pack_header(101, True, 1, 1, 1))


@pytest.mark.parametrize(
    ("event", "raw"),
    [
        (TelephoneEvent(5, end=False, volume=10, duration=400), b"\x05\x0a\x01\x90"),
        (TelephoneEvent(11, end=True, volume=63, duration=1600), b"\x0b\xbf\x06\x40"),
    ],
)
def test_telephone_event_round_trip(event: TelephoneEvent, raw: bytes) -> None:
    assert bytes(event) == raw
    assert TelephoneEvent.parse(raw) == event
    assert rtp.pack_telephone_event(event.event, event.end, event.volume, event.duration) == raw


def test_telephone_event_errors() -> None:
    with pytest.raises(ValueError) as exc:
        TelephoneEvent.parse(b"\x01\x02")
    assert str(exc.value) == "telephone-event payload is less than 4 bytes"
    with pytest.raises(ValueError):
        rtp.pack_telephone_event(256, False, 10, 0)
    with pytest.raises(ValueError):
        rtp.pack_telephone_event(1, False, 64, 0)
    assert rtp.DTMF_EVENTS[10] == "*" and rtp.DTMF_EVENTS[11] == "#"
