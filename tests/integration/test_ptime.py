"""Callers that send 10, 30 or 60 ms packets are heard whole: in-band keys reach COLLECT.

SIPp sends each caller's audio from a pcap written by the test (tests/support/pcap.py), so
the packet time is whatever the test chose; the SDP offers the same `a=ptime`. The audio
is DTMF: the detector needs 40 ms of clean, continuous tone per key, so a stream that is
cut at the wrong places (the engine works in 20 ms frames) loses its keys. Before the
switch re-cut inbound packets by timestamp, these calls heard nothing.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from media import g711
from media.tones import dtmf_digits, silence
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.pcap import write_rtp_pcap
from tests.support.sipp import SippRunner

KEYS = "159#0*"
PTIMES = {"3010": 10, "3030": 30, "3060": 60}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="SIPp's play_pcap_audio needs raw sockets (root)"
)


def script(request: CallbackRequest) -> object:
    if request.type == "init_call":
        params = {"num_digits": len(KEYS), "finish_on_key": "off", "timeout": 3000}
        return [{"type": "COLLECT", "name": "menu", "params": params}]
    if request.type == "live_call":
        return [{"type": "HANGUP"}]
    return Reply(json={})


async def test_callers_at_10_30_and_60_ms_ptime_are_heard_whole(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    pcm = dtmf_digits(KEYS, tone_s=0.07, gap_s=0.08, level_dbm0=-10)
    codes = g711.ulaw_encode(silence(0.3)).tobytes() + g711.ulaw_encode(pcm).tobytes()
    pcaps = {
        number: write_rtp_pcap(tmp_path / f"keys-{ptime}ms.pcap", codes, ptime_ms=ptime)
        for number, ptime in PTIMES.items()
    }
    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    results = await asyncio.gather(*(
        sipp_runner.run("uac_pcap_audio.xml", sw.sip_udp, service=number, timeout=30,
                        params={"PCAP": pcaps[number], "PTIME": PTIMES[number]})
        for number in PTIMES
    ))
    for result in results:
        result.assert_ok()
    for number, ptime in PTIMES.items():
        live = await callback_app.wait_for(
            type="live_call", predicate=lambda r, n=number: r.fields.get("api_no") == n,
            timeout=30)
        assert live.fields["key_presses"] == [
            {"name": "menu", "digits": KEYS, "history": [KEYS]}
        ], (ptime, live.fields["key_presses"])
    log = "\n".join(sw.process.stderr.lines)
    assert log.count("repacketising") == len(PTIMES), "each caller's stream was re-cut"
