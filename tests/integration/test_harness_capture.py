"""The tshark capture and its readers, on packets the test crafts itself."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio, g711
from tests.support.capture import (
    Capture,
    RtpPacket,
    dtmf_digits,
    dtmf_events,
    expert_problems,
    port_filter,
    rtp_packets,
    rtp_pcm,
    sip_messages,
)
from tests.support.ports import free_rtp_port, free_udp_port

pytest_plugins = ["tests.support.fixtures"]

SSRC = 0x1234ABCD


def rtp(pt: int, seq: int, ts: int, payload: bytes, marker: bool = False,
        ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


def event(digit: int, end: bool, duration: int) -> bytes:
    return struct.pack("!BBH", digit, (0x80 if end else 0) | 10, duration)


BAD_SIP = (b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n"
           b"This header has no colon\r\nCall-ID: x@y\r\nCSeq: 1 OPTIONS\r\n"
           b"Content-Length: 0\r\n\r\n")
GOOD_SIP = (b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKy\r\n"
            b"From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: good@y\r\n"
            b"CSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", free_udp_port()))
    yield sock
    sock.close()


async def test_reads_rtp_dtmf_sip_and_expert_problems(capture: Capture,
                                                      sender: socket.socket) -> None:
    rtp_port, sip_port, other_port = free_rtp_port(), free_udp_port(), free_rtp_port()
    await capture.start([rtp_port, sip_port, other_port], duration=30)
    tone = audio.sine(1000, 0.1)
    frames = [g711.ulaw_encode(tone[i : i + 160]) for i in range(0, 800, 160)]
    dest = ("127.0.0.1", rtp_port)
    sender.sendto(rtp(0, 65534, 1000, frames[0], marker=True), dest)
    sender.sendto(rtp(0, 65535, 1160, frames[1]), dest)
    sender.sendto(rtp(0, 1, 1480, frames[3]), dest)          # seq 0 lost: 20 ms gap
    sender.sendto(rtp(0, 0, 1320, frames[2]), dest)          # ... arrives late
    sender.sendto(rtp(8, 9, 0, g711.alaw_encode(tone[:160]), ssrc=7),
                  ("127.0.0.1", other_port))
    for n, (end, dur) in enumerate([(False, 160), (False, 320), (True, 480), (True, 480)]):
        sender.sendto(rtp(101, 2 + n, 1640, event(5, end, dur), marker=n == 0), dest)
    sender.sendto(rtp(101, 6, 2600, event(11, True, 800)), dest)
    sender.sendto(b"\x80\x00\x01", dest)                      # 3-byte "RTP": malformed
    sender.sendto(GOOD_SIP, ("127.0.0.1", sip_port))
    sender.sendto(BAD_SIP, ("127.0.0.1", sip_port))
    await asyncio.sleep(0.05)
    pcap = await capture.stop()

    audio_packets = rtp_packets(pcap, dst_port=rtp_port, payload_types=[0])
    assert [p.seq for p in audio_packets] == [65534, 65535, 1, 0]
    assert audio_packets[0].marker and not audio_packets[1].marker
    assert audio_packets[0].ssrc == SSRC
    assert audio_packets[0].src_port == sender.getsockname()[1]
    pcm = rtp_pcm(audio_packets)
    assert len(pcm) == 640
    expected = g711.ulaw_decode(b"".join(frames[:4]))
    assert pcm.tolist() == expected.tolist()
    assert rtp_packets(pcap, dst_port=rtp_port, src_port=1) == []
    other = rtp_packets(pcap, dst_port=other_port)
    assert [(p.payload_type, p.ssrc) for p in other] == [(8, 7)]

    events = dtmf_events(pcap, dst_port=rtp_port)
    assert [(e.event, e.end, e.duration) for e in events] == [
        (5, False, 160), (5, False, 320), (5, True, 480), (5, True, 480), (11, True, 800)]
    assert dtmf_digits(events) == "5#"

    sip = sip_messages(pcap, [sip_port])
    assert (sip[0].method, sip[0].call_id, sip[0].cseq) == ("OPTIONS", "good@y", "7 OPTIONS")

    problems = expert_problems(pcap, sip_ports=[sip_port], rtp_ports=[rtp_port])
    assert any("malformed" in p.lower() and f"->{rtp_port}" in p for p in problems), problems
    assert any("colon" in p.lower() and f"->{sip_port}" in p for p in problems), problems
    assert expert_problems(pcap, sip_ports=[sip_port], rtp_ports=[rtp_port],
                           src_ports=[1, 2]) == []
    only_sip = expert_problems(pcap, sip_ports=[sip_port], rtp_ports=[rtp_port],
                               dst_ports=[sip_port])
    assert only_sip and all(f"->{sip_port}" in p for p in only_sip)


def _packet(seq: int, ts: int, payload: bytes, ssrc: int = 1, pt: int = 0) -> RtpPacket:
    return RtpPacket(frame=seq, time=0.0, src_port=1, dst_port=2, ssrc=ssrc, payload_type=pt,
                     seq=seq, timestamp=ts, marker=False, payload=payload)


def test_rtp_pcm_places_by_timestamp_and_appends_new_ssrc_runs() -> None:
    one = g711.ulaw_encode(np.full(160, 1000, np.int16))
    two = g711.alaw_encode(np.full(160, -1000, np.int16))
    packets = [_packet(1, 4294967200, one), _packet(2, 224, one),  # ts wraps; 160-sample gap
               _packet(2, 224, one),                                 # duplicate
               _packet(3, 50, two, ssrc=2, pt=8), _packet(4, 0, one, pt=101)]
    pcm = rtp_pcm(packets)
    assert len(pcm) == 160 + 160 + 160 + 160
    assert np.all(pcm[:160] > 900) and np.all(pcm[160:320] == 0)
    assert np.all(pcm[320:480] > 900) and np.all(pcm[480:] < -900)
    assert len(rtp_pcm(packets, fill_gaps=False)) == 480
    assert len(rtp_pcm([])) == 0


def test_port_filter() -> None:
    assert port_filter([5, 3, 5]) == "host 127.0.0.1 and (udp or tcp) and (port 3 or port 5)"
    assert port_filter([]) == "host 127.0.0.1 and (udp or tcp)"


async def test_capture_must_be_started_before_stopped(tmp_path: Path) -> None:
    cap = Capture(tmp_path, "never")
    with pytest.raises(AssertionError, match="capture not started"):
        await cap.stop()
