"""Capture loopback traffic with tshark and read back what the switch sent.

    async with Capture(tmp_path) as cap:
        await cap.start(ports=[sw_port, peer_sip_port, peer_media_port])
        ... run the call ...
    packets = rtp_packets(cap.pcap, dst_port=peer_media_port)
    pcm = rtp_pcm(packets)                     # int16, G.711 decoded by the harness
    assert expert_problems(cap.pcap, sip_ports=[...], rtp_ports=[...]) == []

The capture is bounded (`-a duration:`) and counts as started only when tshark logs
"Capture started" (dumpcap has the socket open): its earlier "Capturing on" line comes
~30 ms too soon, and packets sent right after it were missed in tests.
Analysis runs tshark on the finished file; payloads are decoded with tests/support/g711.py,
never with the switch's codec. SIP on non-5060 ports and RTP without SDP context are only
dissected when named with `-d udp.port==N,sip|rtp`, so every reader takes the ports.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support import g711
from tests.support.procs import ManagedProcess, start_process

SETTLE_S = 0.3  # loopback is synchronous, this only lets dumpcap drain its ring buffer
TELEPHONE_EVENT_PT = 101
MAX_GAP_SAMPLES = 8000 * 30


class CaptureError(AssertionError):
    """tshark could not capture or read a capture."""


def tshark_binary() -> str:
    found = shutil.which("tshark")
    if not found:
        raise CaptureError("tshark not found: `make install` apt-installs it")
    return found


def port_filter(ports: Iterable[int]) -> str:
    """A BPF filter for UDP and TCP on 127.0.0.1 to or from any of `ports`."""
    plist = sorted(set(ports))
    if not plist:
        return "host 127.0.0.1 and (udp or tcp)"
    return "host 127.0.0.1 and (udp or tcp) and (" + " or ".join(
        f"port {p}" for p in plist) + ")"


class Capture:
    """One bounded tshark capture on `lo` into WORKDIR/NAME.pcapng."""

    def __init__(self, workdir: Path, name: str = "capture") -> None:
        self.workdir = workdir
        self.name = name
        self.pcap = workdir / f"{name}.pcapng"
        self.process: ManagedProcess | None = None

    async def start(self, ports: Iterable[int] = (), duration: float = 60.0,
                    interface: str = "lo", ready_timeout: float = 15.0) -> None:
        """Start capturing traffic to/from `ports` (all loopback UDP/TCP if none)."""
        if self.process is not None:
            raise CaptureError("capture already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [tshark_binary(), "-i", interface, "-n", "-f", port_filter(ports),
                "-a", f"duration:{max(1, round(duration))}", "-w", str(self.pcap)]
        self.process = await start_process(self.name, argv, self.workdir, cwd=self.workdir)
        if await self.process.stderr.wait_for(r"Capture started", ready_timeout) is None:
            await self.process.stop(term_timeout=2.0)
            raise CaptureError(f"tshark did not start capturing\n{self.process.describe()}")

    async def stop(self) -> Path:
        """Let the last packets land, stop tshark (SIGINT, kill after 5 s), return the file."""
        if self.process is None:
            raise CaptureError("capture not started")
        if self.process.returncode is None:
            await asyncio.sleep(SETTLE_S)
            await self.process.stop(term_timeout=5.0, sig=signal.SIGINT)
        if not self.pcap.exists():
            raise CaptureError(f"no capture file\n{self.process.describe()}")
        return self.pcap

    async def __aenter__(self) -> Capture:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.stop()


def decode_as(sip_ports: Iterable[int] = (), rtp_ports: Iterable[int] = ()) -> list[str]:
    args: list[str] = []
    for p in sorted(set(sip_ports)):
        args += ["-d", f"udp.port=={p},sip", "-d", f"tcp.port=={p},sip"]
    for p in sorted(set(rtp_ports)):
        args += ["-d", f"udp.port=={p},rtp"]
    args += ["-d", f"rtp.pt=={TELEPHONE_EVENT_PT},rtpevent"]
    return args


def tshark_fields(pcap: Path, fields: Sequence[str], display_filter: str,
                  extra: Sequence[str] = ()) -> list[list[str]]:
    """Rows of `-T fields` output (tab-separated, one row per matching frame)."""
    argv = [tshark_binary(), "-r", str(pcap), "-n", *extra, "-Y", display_filter,
            "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        argv += ["-e", f]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise CaptureError(f"tshark failed ({done.returncode}): {' '.join(argv)}\n"
                           f"{done.stderr}")
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet as captured (frame order is arrival order)."""

    frame: int
    time: float
    src_port: int
    dst_port: int
    ssrc: int
    payload_type: int
    seq: int
    timestamp: int
    marker: bool
    payload: bytes


RTP_FIELDS = ("frame.number", "frame.time_relative", "udp.srcport", "udp.dstport", "rtp.ssrc",
              "rtp.p_type", "rtp.seq", "rtp.timestamp", "rtp.marker", "rtp.payload")


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "set")


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "").replace("|", ""))


def rtp_packets(pcap: Path, dst_port: int, src_port: int | None = None,
                payload_types: Iterable[int] | None = None) -> list[RtpPacket]:
    """RTP packets sent to 127.0.0.1:`dst_port` (optionally from `src_port`), frame order."""
    flt = f"rtp && udp.dstport=={dst_port}"
    if src_port is not None:
        flt += f" && udp.srcport=={src_port}"
    pts = set(payload_types) if payload_types is not None else None
    rows = tshark_fields(pcap, RTP_FIELDS, flt, decode_as(rtp_ports=[dst_port]))
    out = []
    for r in rows:
        pkt = RtpPacket(frame=int(r[0]), time=float(r[1]), src_port=int(r[2]),
                        dst_port=int(r[3]), ssrc=int(r[4], 0), payload_type=int(r[5]),
                        seq=int(r[6]), timestamp=int(r[7]), marker=_flag(r[8]),
                        payload=_hex(r[9]) if len(r) > 9 else b"")
        if pts is None or pkt.payload_type in pts:
            out.append(pkt)
    return out


def rtp_pcm(packets: Sequence[RtpPacket], payload_types: Iterable[int] = (0, 8),
            fill_gaps: bool = True) -> np.ndarray:
    """Decode G.711 packets to int16 PCM, each SSRC run placed by RTP timestamp.

    Packets are taken in arrival order; a new SSRC starts a new run appended after the
    previous one. Within a run, timestamp gaps (lost packets, silence suppression) become
    zeros when `fill_gaps`, duplicates are dropped, and late packets land where they belong.
    """
    pts = set(payload_types)
    audio = [p for p in packets if p.payload_type in pts]
    runs: list[list[RtpPacket]] = []
    for p in audio:
        if not runs or runs[-1][-1].ssrc != p.ssrc:
            runs.append([])
        runs[-1].append(p)
    pieces = [_place_run(run, fill_gaps) for run in runs]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


def _place_run(run: Sequence[RtpPacket], fill_gaps: bool) -> np.ndarray:
    base = run[0].timestamp
    decoded = []
    seen: set[int] = set()
    for p in run:
        offset = (p.timestamp - base) & 0xFFFFFFFF
        if offset >= 1 << 31:  # earlier than the first packet (reordered): skip it
            continue
        if offset in seen:
            continue
        seen.add(offset)
        decoded.append((offset, g711.decode(p.payload, p.payload_type)))
    decoded.sort(key=lambda item: item[0])
    if not fill_gaps:
        return np.concatenate([pcm for _, pcm in decoded])
    end = max(off + len(pcm) for off, pcm in decoded)
    if end > MAX_GAP_SAMPLES + sum(len(pcm) for _, pcm in decoded):
        raise CaptureError(f"RTP timestamps span {end} samples: not one stream?")
    out = np.zeros(end, dtype=np.int16)
    for off, pcm in decoded:
        out[off : off + len(pcm)] = pcm
    return out


@dataclass(frozen=True)
class DtmfEvent:
    """One RFC 4733 telephone-event packet."""

    frame: int
    ssrc: int
    seq: int
    timestamp: int
    event: int
    end: bool
    volume: int
    duration: int


DTMF_SYMBOLS = "0123456789*#ABCD"


def dtmf_events(pcap: Path, dst_port: int) -> list[DtmfEvent]:
    """telephone-event (PT 101) packets sent to `dst_port`, in frame order."""
    fields = ("frame.number", "rtp.ssrc", "rtp.seq", "rtp.timestamp", "rtpevent.event_id",
              "rtpevent.end_of_event", "rtpevent.volume", "rtpevent.duration")
    rows = tshark_fields(pcap, fields, f"rtpevent && udp.dstport=={dst_port}",
                         decode_as(rtp_ports=[dst_port]))
    return [DtmfEvent(int(r[0]), int(r[1], 0), int(r[2]), int(r[3]), int(r[4]), _flag(r[5]),
                      int(r[6]), int(r[7])) for r in rows]


def dtmf_digits(events: Sequence[DtmfEvent]) -> str:
    """The digits of the events, one per (SSRC, RTP timestamp), in order of appearance."""
    seen: dict[tuple[int, int], int] = {}
    for e in events:
        seen.setdefault((e.ssrc, e.timestamp), e.event)
    return "".join(DTMF_SYMBOLS[ev] if ev < 16 else "?" for ev in seen.values())


@dataclass(frozen=True)
class SipPacket:
    frame: int
    src_port: int
    dst_port: int
    method: str
    status: int | None
    call_id: str
    cseq: str


def sip_messages(pcap: Path, sip_ports: Iterable[int]) -> list[SipPacket]:
    """SIP messages on `sip_ports` in frame order: method (or '' for a response), status."""
    fields = ("frame.number", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport",
              "sip.Method", "sip.Status-Code", "sip.Call-ID", "sip.CSeq")
    out = []
    for r in tshark_fields(pcap, fields, "sip", decode_as(sip_ports=sip_ports)):
        r = r + [""] * (len(fields) - len(r))
        src, dst = (r[1], r[2]) if r[1] else (r[3], r[4])
        out.append(SipPacket(int(r[0]), int(src or 0), int(dst or 0), r[5],
                             int(r[6]) if r[6] else None, r[7], r[8]))
    return out


def expert_problems(pcap: Path, sip_ports: Iterable[int] = (), rtp_ports: Iterable[int] = (),
                    src_ports: Iterable[int] | None = None,
                    dst_ports: Iterable[int] | None = None) -> list[str]:
    """Malformed packets and expert infos of severity warning or worse, one line each.

    `sip_ports`/`rtp_ports` say how to dissect; `src_ports`/`dst_ports` keep only packets
    from/to those ports (e.g. the switch's SIP port, the peer's media port). Note that the
    SIP dissector is lenient: this catches broken syntax, not semantic SIP errors.
    """
    flt = "(_ws.malformed || _ws.expert.severity >= warning)"
    src_ports = list(src_ports) if src_ports is not None else None
    dst_ports = list(dst_ports) if dst_ports is not None else None
    if src_ports == [] or dst_ports == []:
        return []
    if src_ports is not None:
        ports = ", ".join(str(p) for p in src_ports)
        flt += f" && (udp.srcport in {{{ports}}} || tcp.srcport in {{{ports}}})"
    if dst_ports is not None:
        ports = ", ".join(str(p) for p in dst_ports)
        flt += f" && (udp.dstport in {{{ports}}} || tcp.dstport in {{{ports}}})"
    fields = ("frame.number", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport",
              "_ws.col.Protocol", "_ws.expert.message", "_ws.col.Info")
    rows = tshark_fields(pcap, fields, flt, decode_as(sip_ports, rtp_ports))
    problems = []
    for r in rows:
        r = r + [""] * (len(fields) - len(r))
        src, dst = (r[1], r[2]) if r[1] else (r[3], r[4])
        problems.append(f"frame {r[0]} {src}->{dst} {r[5]}: {r[6] or 'malformed'} ({r[7]})")
    return problems
