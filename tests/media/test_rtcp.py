"""RTCP reports: reception statistics (RFC 3550 App. A) and the compound packets we send,
read back by our own parser and by tshark's (an independent implementation)."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from media import rtcp, udpio
from media.rtcp import (
    MIN_INTERVAL_S,
    NTP_EPOCH_OFFSET,
    ReceptionStats,
    SenderInfo,
    build_report,
    ntp_middle,
    ntp_time,
    parse_sender_report,
    report_interval,
)
from media.rtp import RTCP_BYE, RTCP_RR, RTCP_SDES, RTCP_SR, parse_rtcp
from tests.media import _streams
from tests.support.pcap import udp_frame, write_pcap

try:
    from media import _udpio
except ImportError:  # the compiled kernel is not built: its tests fail, saying so
    _udpio = None  # type: ignore[assignment]


@pytest.fixture(autouse=True, params=["c", "python"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test here runs with the compiled `ReceptionStats` (`media._udpio`) and with
    the Python reference."""
    if request.param == "c":
        if _udpio is None:
            pytest.fail(f"the compiled RTP I/O is not built ({udpio._compiled_error}): run make")
        monkeypatch.setattr(sys.modules[__name__], "ReceptionStats", _udpio.ReceptionStats)
    yield request.param


def feed(stats: ReceptionStats, seqs: list[int], ptime: float = 0.02, jitter: list[float] = ()):
    """Packets `seqs` (timestamps 160 apart per sequence step), sent every `ptime`."""
    for i, seq in enumerate(seqs):
        offset = jitter[i] if jitter else 0.0
        stats.update(seq & 0xFFFF, (1000 + 160 * (seq - seqs[0])) & 0xFFFFFFFF,
                     100.0 + (seq - seqs[0]) * ptime + offset)


def block_fields(block: bytes) -> tuple[int, int, int, int, int, int, int]:
    ssrc, word, ext_max, jitter, lsr, dlsr = struct.unpack("!IIIIII", block)
    lost = word & 0xFFFFFF
    lost = lost - (1 << 24) if lost & 0x800000 else lost
    return ssrc, word >> 24, lost, ext_max, jitter, lsr, dlsr


def test_no_loss_no_jitter() -> None:
    stats = ReceptionStats.start(0xAB, 100)
    feed(stats, list(range(100, 200)))
    assert (stats.expected, stats.received, stats.lost) == (100, 100, 0)
    assert stats.jitter == 0.0
    _, fraction, lost, ext_max, jitter, lsr, dlsr = block_fields(stats.report_block(200.0))
    assert (fraction, lost, ext_max, jitter, lsr, dlsr) == (0, 0, 199, 0, 0, 0)


def test_loss_fraction_per_interval_and_cumulative() -> None:
    stats = ReceptionStats.start(1, 0)
    feed(stats, [s for s in range(100) if s % 4])  # 0, 4, … 96 lost: a quarter
    _, fraction, lost, *_ = block_fields(stats.report_block(0.0))
    assert (fraction, lost) == (64, 25)
    feed(stats, list(range(100, 200)))  # no loss in the next interval
    _, fraction, lost, *_ = block_fields(stats.report_block(0.0))
    assert (fraction, lost) == (0, 25)


def test_sequence_wrap_counts_cycles() -> None:
    stats = ReceptionStats.start(1, 65500)
    feed(stats, list(range(65500, 65600)))
    assert stats.extended_max == 65536 + 63 and stats.lost == 0


def test_duplicates_make_loss_negative() -> None:
    stats = ReceptionStats.start(1, 0)
    feed(stats, list(range(10)))
    stats.update(5, 1000 + 5 * 160, 100.1)
    assert stats.lost == -1
    assert block_fields(stats.report_block(0.0))[2] == -1


def test_a_restarted_sequence_starts_counting_anew() -> None:
    stats = ReceptionStats.start(1, 0)
    feed(stats, list(range(50)))
    stats.update(30000, 5000, 200.0)
    assert (stats.expected, stats.received) == (1, 1)


def test_jitter_converges_to_the_mean_deviation() -> None:
    stats = ReceptionStats.start(1, 0)
    swing = [0.0 if i % 2 else 0.010 for i in range(400)]  # arrivals alternate ±10 ms
    feed(stats, list(range(400)), jitter=swing)
    assert stats.jitter == pytest.approx(80, rel=0.02)  # 10 ms = 80 timestamp units


def test_lsr_and_dlsr_from_the_peers_sender_report() -> None:
    stats = ReceptionStats.start(1, 0)
    feed(stats, [0, 1, 2])
    stats.sender_report(0x12345678, 0x9ABCDEF0, now=10.0)
    *_, lsr, dlsr = block_fields(stats.report_block(now=12.5))
    assert lsr == 0x56789ABC and dlsr == int(2.5 * 65536)


def test_ntp_time() -> None:
    seconds, fraction = ntp_time(1_700_000_000.25)
    assert seconds == 1_700_000_000 + NTP_EPOCH_OFFSET and fraction == 1 << 30
    assert ntp_middle(seconds, fraction) == ((seconds & 0xFFFF) << 16) | 0x4000


def test_report_interval_is_randomised_around_five_seconds() -> None:
    rng = random.Random(1)
    first = [report_interval(True, rng) for _ in range(500)]
    later = [report_interval(False, rng) for _ in range(500)]
    assert min(first) > 1.0 and max(first) < 3.1 and max(first) - min(first) > 1.5
    assert min(later) > MIN_INTERVAL_S * 0.5 / 1.22 and max(later) < MIN_INTERVAL_S * 1.5 / 1.21


SENDER = SenderInfo(ntp_seconds=3_900_000_000, ntp_fraction=1 << 31, rtp_timestamp=123456,
                    packets=250, octets=40000)


def test_sender_report_with_block_sdes_and_bye_parse_back() -> None:
    stats = ReceptionStats.start(0xBEEF, 7)
    feed(stats, list(range(7, 57)))
    report = build_report(0xCAFE, "voxswitch-cafe@127.0.0.1", sender=SENDER,
                          blocks=[stats.report_block(0.0)], bye=True)
    packets = parse_rtcp(report)
    assert [p.packet_type for p in packets] == [RTCP_SR, RTCP_SDES, RTCP_BYE]
    sr, sdes, bye = packets
    assert sr.count == 1 and sr.ssrc == 0xCAFE
    assert parse_sender_report(sr.body) == (0xCAFE, 3_900_000_000, 1 << 31)
    assert struct.unpack_from("!III", sr.body, 12) == (123456, 250, 40000)
    assert block_fields(sr.body[24:48])[0] == 0xBEEF
    assert sdes.body[4:6] == bytes([1, len("voxswitch-cafe@127.0.0.1")])
    assert sdes.body[6:6 + 24] == b"voxswitch-cafe@127.0.0.1"
    assert bye.ssrc == 0xCAFE
    assert len(report) % 4 == 0


def test_receiver_report_without_blocks() -> None:
    (rr, sdes) = parse_rtcp(build_report(9, "x", sender=None, blocks=[]))
    assert (rr.packet_type, rr.count, rr.ssrc, len(rr.body)) == (RTCP_RR, 0, 9, 4)
    assert sdes.packet_type == RTCP_SDES


@pytest.mark.parametrize("name_len", range(0, 9))
def test_sdes_chunk_ends_with_a_null_item_on_a_word_boundary(name_len: int) -> None:
    (_, sdes) = parse_rtcp(build_report(9, "n" * name_len, sender=None, blocks=[]))
    chunk = sdes.body
    assert len(chunk) % 4 == 0
    assert chunk[6 + name_len] == 0  # the null item after CNAME


def test_too_many_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="31"):
        build_report(1, "x", sender=None, blocks=[bytes(24)] * 32)


def test_tshark_reads_our_reports(tmp_path: Path) -> None:
    stats = ReceptionStats.start(0xBEEF, 7)
    feed(stats, [s for s in range(7, 107) if s % 10])
    packets = [
        build_report(0xCAFE, "voxswitch@host", sender=SENDER, blocks=[stats.report_block(0.0)]),
        build_report(0xCAFE, "voxswitch@host", sender=None, blocks=[], bye=True),
    ]
    pcap = write_pcap(tmp_path / "rtcp.pcap", [
        (1.0 + i, udp_frame(p, ("10.0.0.1", 20001), ("10.0.0.2", 30001)))
        for i, p in enumerate(packets)
    ])
    fields = ["rtcp.pt", "rtcp.senderssrc", "rtcp.sender.packetcount", "rtcp.sender.octetcount",
              "rtcp.ssrc.fraction", "rtcp.ssrc.cum_nr", "rtcp.ssrc.high_seq", "rtcp.sdes.text"]
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-n", "-d", "udp.port==30001,rtcp", "-T", "fields",
         *[a for f in fields for a in ("-e", f)], "-E", "separator=;"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    first = out[0].split(";")
    assert first[0] == "200,202"  # SR then SDES
    assert int(first[1], 0) == 0xCAFE
    assert (first[2], first[3]) == ("250", "40000")
    assert int(first[4]) == 0x100 * 10 // 100 and first[5] == "10"  # 7..106 less 10, 20, …
    assert int(first[6]) == 106 and first[7] == "voxswitch@host"
    assert out[1].split(";")[0] == "201,202,203"  # RR, SDES, BYE
    expert = subprocess.run(["tshark", "-r", str(pcap), "-n", "-d", "udp.port==30001,rtcp",
                             "-q", "-z", "expert,warn"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "Malformed" not in expert and "Warning" not in expert, expert


def source_fields(stats: object) -> tuple[object, ...]:
    names = ("ssrc", "rate", "base_seq", "max_seq", "cycles", "received", "expected_prior",
             "received_prior", "jitter", "transit", "last_sr", "last_sr_at", "extended_max",
             "expected", "lost")
    return tuple(getattr(stats, name) for name in names)


@pytest.mark.parametrize("seed", range(100))
def test_both_kernels_count_a_bad_network_alike(seed: int) -> None:
    # The streams of tests/media/_streams.py (reordering, loss, duplicates, restarts,
    # wraps), arriving with a jittery clock: the same fields, jitter to the last bit, and
    # the same report blocks. A new SSRC starts new statistics, as the channel does.
    rng = random.Random(seed)
    py = c = None
    now = 1000.0 + rng.random() * 1e6
    for tick, step in enumerate(_streams.plan(seed)):
        for seq, ts, ssrc, _, _ in step:
            if py is None or py.ssrc != ssrc:
                py, c = rtcp.ReceptionStats.start(ssrc, seq), _udpio.ReceptionStats.start(ssrc, seq)
            arrival = now + tick * 0.02 + rng.random() * 0.01
            py.update(seq, ts, arrival)
            c.update(seq, ts, arrival)
        if py is not None and c is not None:
            assert source_fields(py) == source_fields(c)
            if tick % 50 == 49:
                py.sender_report(tick, 0x80000000 + tick, now + tick * 0.02)
                c.sender_report(tick, 0x80000000 + tick, now + tick * 0.02)
                assert py.report_block(now + tick * 0.021) == c.report_block(now + tick * 0.021)
