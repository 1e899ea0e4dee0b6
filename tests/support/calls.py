"""One-liners for the common integration pattern: place a SIPp call and hear what came back.

    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    active, in_band = audio.speech_like(heard.pcm)
    assert heard.problems == []
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.support.capture import (
    Capture,
    DtmfEvent,
    RtpPacket,
    dtmf_events,
    expert_problems,
    rtp_packets,
    rtp_pcm,
)
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippResult, SippRunner

_calls = itertools.count(1)


@dataclass
class HeardCall:
    """A finished SIPp call and the RTP its peer sent to SIPp's media port."""

    result: SippResult
    media_port: int
    pcap: Path
    packets: list[RtpPacket]
    pcm: npt.NDArray[np.int16]
    dtmf: list[DtmfEvent]
    problems: list[str]  # malformed/warning packets to SIPp's SIP or media port


async def sipp_call_heard(sipp: SippRunner, target: tuple[str, int],
                          scenario: str = "uac_listen.xml", *, capture_seconds: float = 60.0,
                          **run_kwargs: Any) -> HeardCall:
    """Run `scenario` against `target` under a tshark capture; decode what SIPp was sent.

    `run_kwargs` go to `SippRunner.run` (service, audio_file, params, timeout, ...).
    """
    media_port = run_kwargs.pop("media_port", None) or free_rtp_port()
    async with Capture(sipp.workdir, f"call-{next(_calls):02d}") as cap:
        await cap.start([target[1], media_port], duration=capture_seconds)
        result = await sipp.run(scenario, target, media_port=media_port, **run_kwargs)
        pcap = await cap.stop()
    packets = rtp_packets(pcap, dst_port=media_port)
    problems = expert_problems(pcap, sip_ports=[target[1]], rtp_ports=[media_port],
                               dst_ports=[media_port, *_sipp_sip_ports(result)])
    return HeardCall(result, media_port, pcap, packets, rtp_pcm(packets),
                     dtmf_events(pcap, dst_port=media_port), problems)


def _sipp_sip_ports(result: SippResult) -> list[int]:
    argv = result.argv
    return [int(argv[argv.index("-p") + 1])] if "-p" in argv else []
