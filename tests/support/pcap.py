"""Writing RTP streams as pcap files, for SIPp's `play_pcap_audio` to send.

SIPp replays each UDP payload of the file at its capture time, from its media port to the
switch's (it rewrites the addresses), so a test can send any packetisation it likes: other
packet times, odd sizes, gaps.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from pathlib import Path

from media.rtp import pack_header

_LINKTYPE_ETHERNET = 1


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """An Ethernet/IPv4/UDP frame carrying `payload` (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp


def write_pcap(path: Path, packets: Iterable[tuple[float, bytes]]) -> Path:
    """A classic (libpcap 2.4, µs) file of (seconds, Ethernet frame) records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
        for at, frame in packets:
            sec, usec = divmod(round(at * 1e6), 1_000_000)
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return path


def write_rtp_pcap(
    path: Path,
    codes: bytes,
    *,
    ptime_ms: int,
    payload_type: int = 0,
    ssrc: int = 0x5EED,
    rate: int = 8000,
    start: float = 1_700_000_000.0,
) -> Path:
    """G.711 `codes` (one byte per sample) as an RTP stream of `ptime_ms` packets, paced in
    real time, from 10.0.0.1:10000 to 10.0.0.2:20000."""
    size = rate * ptime_ms // 1000
    records = []
    for i, offset in enumerate(range(0, len(codes), size)):
        rtp = pack_header(payload_type, i == 0, i & 0xFFFF, offset, ssrc) + codes[
            offset : offset + size
        ]
        frame = udp_frame(rtp, ("10.0.0.1", 10000), ("10.0.0.2", 20000))
        records.append((start + offset / rate, frame))
    return write_pcap(path, records)
