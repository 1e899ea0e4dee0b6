"""Caller ID verification end to end: the switch calls the number through the outbound
proxy (a SIPp UAS), asks for the PIN by TTS, and the UAS keys it in as SIP INFO digits or
RFC 4733 events: the right PIN verifies, wrong ones do not, an unanswered call neither.

The PIN is only known once Verify answers, and SIPp takes its keys when it starts: the
UAS starts after Verify, on the port the proxy setting named, and the switch's INVITE
reaches it with a retransmission (Timer A)."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

from media.rtp import pack_header
from tests.support.fixtures import SwitchFactory
from tests.support.pcap import udp_frame, write_pcap
from tests.support.ports import free_udp_port
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

NO = "+19495550123"
PATH = "/v1/CallerIDs/%2B19495550123"
FINAL = {"verified", "wrong_pin", "no_pin", "no_answer", "busy", "failed"}

# an INFO digit from the UAS (From/To of its side of the dialog)
UAS_INFO = """<pause milliseconds="{pause_ms}"/>
<send retrans="500">
  <![CDATA[
    INFO [next_url] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    [routes]
    From: [$our_to]
    To: [$their_from]
    Call-ID: [call_id]
    CSeq: {cseq} INFO
    Contact: <sip:[local_ip]:[local_port];transport=[transport]>
    Max-Forwards: 70
    Content-Type: application/dtmf-relay
    Content-Length: [len]

    Signal={digit}
    Duration=160
  ]]>
</send>
<recv response="200"/>"""


def keys(digits: str, lead_ms: int = 1500, gap_ms: int = 250) -> str:
    return "\n".join(UAS_INFO.format(pause_ms=lead_ms if i == 0 else gap_ms, cseq=1 + i,
                                     digit=d) for i, d in enumerate(digits))


def rfc4733_pcap(path: Path, digits: str, gap_s: float = 0.4) -> Path:
    """The RFC 4733 events of `digits` (PT 101) as one stream for play_pcap_audio: per
    digit five updates 20 ms apart, then three end packets; one SSRC, rising seq and
    timestamps, so that a digit keyed twice is two events."""
    records, seq, at = [], 0, 1_700_000_000.0
    for n, digit in enumerate(digits):
        event = "0123456789*#".index(digit) if digit in "0123456789*#" else 0
        ts = 160 * 50 * (n + 1)
        for i in range(8):
            end = i >= 5
            duration = 160 * min(i + 1, 5)
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            rtp = pack_header(101, i == 0, seq, ts, 0x4733) + payload
            records.append((at, udp_frame(rtp, ("10.0.0.1", 10000), ("10.0.0.2", 20000))))
            seq += 1
            at += 0.02 if i < 5 else 0.005
        at += gap_s
    return write_pcap(path, records)


def pcap_step(pcap: Path, play_ms: int, lead_ms: int = 1500) -> str:
    """KEY_STEPS that play `pcap` (play_pcap_audio returns at once: wait `play_ms`)."""
    return (f'<pause milliseconds="{lead_ms}"/>\n'
            f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
            f'<pause milliseconds="{play_ms}"/>')


async def api(sw: RunningSwitch, method: str, path: str = PATH, body: Any = None,
              status: int = 200) -> Any:
    async with rest(sw) as http, http.request(method, path, json=body) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def final(sw: RunningSwitch, timeout: float = 40.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got: dict[str, Any] = await api(sw, "GET")
        if (got["verification"] or {}).get("status") in FINAL:
            return got
        assert loop.time() < deadline, got
        await asyncio.sleep(0.2)


async def start(switch: SwitchFactory) -> tuple[RunningSwitch, int]:
    port = free_udp_port()
    sw = await switch(extra_args=["--outbound-proxy", f"sip:127.0.0.1:{port}"])
    made = await api(sw, "POST", body={"description": "Desk Phone"}, status=201)
    assert made["status"] == "unverified"
    return sw, port


async def test_the_right_pin_verifies_the_caller_id(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw, port = await start(switch)
    started = await api(sw, "POST", PATH + "/Verify")
    pin = started["verify_pin"]
    async with sipp_runner.uas("uas_info_keys.xml", port=port, calls=1,
                               params={"KEY_STEPS": keys(pin)}) as uas:
        got = await final(sw)
        result = await uas.finish(timeout=20)
    result.assert_ok()  # keyed in, then our BYE
    assert got["status"] == "verified", got
    assert got["verification"]["id"] == started["id"]
    assert result.logged("ruri") == [f"sip:{NO}@127.0.0.1:{port}"]
    log = await api(sw, "GET", f"/v1/History/Logs/Calls/{got['verification']['call_id']}")
    assert (log["direction"], log["caller_no"], log["api_no"]) == ("outbound", NO,
                                                                    "voxswitch")
    listed = await api(sw, "GET", "/v1/CallerIDs")
    assert [(c["no"], c["status"]) for c in listed["caller_ids"]] == [(NO, "verified")]


async def test_the_right_pin_as_rfc_4733_events(
    switch: SwitchFactory, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    sw, port = await start(switch)
    pin = (await api(sw, "POST", PATH + "/Verify"))["verify_pin"]
    pcap = rfc4733_pcap(tmp_path / "pin.pcap", pin + "#")
    async with sipp_runner.uas("uas_info_keys.xml", port=port, calls=1, rtp_echo=False,
                               params={"KEY_STEPS": pcap_step(pcap, 600 * 5)}) as uas:
        got = await final(sw)
        result = await uas.finish(timeout=20)
    result.assert_ok()
    assert (got["status"], got["verification"]["status"]) == ("verified", "verified"), got


async def test_a_wrong_pin_leaves_it_unverified(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw, port = await start(switch)
    pin = (await api(sw, "POST", PATH + "/Verify"))["verify_pin"]
    wrong = "".join(str((int(d) + 1) % 10) for d in pin)
    async with sipp_runner.uas("uas_info_keys.xml", port=port, calls=1,
                               params={"KEY_STEPS": keys(wrong * 3)}) as uas:
        got = await final(sw)
        result = await uas.finish(timeout=20)
    result.assert_ok()  # three entries, then our BYE
    assert (got["status"], got["verification"]["status"]) == ("unverified", "wrong_pin")


async def test_no_answer_leaves_it_unverified(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw, port = await start(switch)
    await api(sw, "POST", PATH + "/Verify", body={"timeout": 5})
    async with sipp_runner.uas("uas_ring_cancel.xml", port=port, calls=1) as uas:
        got = await final(sw, timeout=20)
        result = await uas.finish(timeout=10)
    result.assert_ok()  # rang, then our CANCEL
    assert (got["status"], got["verification"]["status"]) == ("unverified", "no_answer")
    async with rest(sw) as http, http.delete(PATH) as resp:
        assert resp.status == 204
    await api(sw, "GET", status=404)
