"""RTCP from the switch on a real call: sender reports that match the RTP it sent, a report
block on the caller's stream, SDES CNAME, and BYE at the end; read by tshark.

SIPp calls (streaming a tone with rtp_stream, sending no RTCP itself), the flow pauses
seven seconds and hangs up, and one capture holds SIP, RTP and the RTCP the switch sent to
SIPp's media port + 1 (RFC 3550's default, as nothing in the SDP says otherwise).
"""

from __future__ import annotations

from pathlib import Path

from tests.support import audio
from tests.support.callback_app import CallbackApp, Reply
from tests.support.capture import Capture, expert_problems, rtp_packets, tshark_fields
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippResult, SippRunner

RTCP_FIELDS = ["frame.number", "udp.srcport", "rtcp.pt", "rtcp.senderssrc",
               "rtcp.sender.packetcount", "rtcp.sender.octetcount", "rtcp.ssrc.identifier",
               "rtcp.ssrc.cum_nr", "rtcp.ssrc.high_seq", "rtcp.sdes.text"]


def ints(field: str) -> list[int]:
    """Every value of a tshark field (occurrences joined by '|'), as numbers."""
    return [int(v, 0) for v in field.split("|") if v]


async def captured_call(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
    *, seconds: float, sdp_extra: str = "",
) -> tuple[SippResult, Path, int]:
    """A SIPp call streaming a tone that the flow hangs up after `seconds`, captured on
    the switch's SIP port and SIPp's RTP and RTP + 1 ports: (result, pcap, media port)."""
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"seconds": seconds}},
                                    {"type": "HANGUP"}]),
        "end_call": Reply(json={}),
    })
    sw = await switch(default_callback=callback_app.url)
    tone = audio.to_ulaw_file(audio.sine(700, 1.0, -12), tmp_path / "tone.ulaw")
    media_port = free_rtp_port()
    async with Capture(tmp_path, "rtcp") as cap:
        await cap.start([sw.sip_udp[1], media_port, media_port + 1], duration=30)
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                       media_port=media_port, audio_file=tone, timeout=30,
                                       params={"SDP_EXTRA": sdp_extra})
        pcap = await cap.stop()
    result.assert_ok()
    return result, pcap, media_port


async def test_switch_sends_sender_reports_and_bye(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    _, pcap, media_port = await captured_call(
        switch, callback_app, sipp_runner, tmp_path, seconds=7)
    to_sipp = rtp_packets(pcap, dst_port=media_port)
    from_sipp = [p for p in rtp_packets(pcap, dst_port=to_sipp[0].src_port)
                 if p.src_port == media_port]
    switch_port, switch_ssrc = to_sipp[0].src_port, to_sipp[0].ssrc
    rows = tshark_fields(pcap, RTCP_FIELDS, f"rtcp && udp.dstport=={media_port + 1}",
                         ["-d", f"udp.port=={media_port + 1},rtcp"])
    assert rows, "no RTCP from the switch"
    reports = [dict(zip(RTCP_FIELDS, r + [""] * (len(RTCP_FIELDS) - len(r)), strict=True))
               for r in rows]
    assert all(int(r["udp.srcport"]) == switch_port + 1 for r in reports)  # its RTCP port
    senders = [r for r in reports if r["rtcp.pt"].startswith("200|")]
    assert len(senders) >= 2, reports  # the first at 1-3 s, and the last at the hang-up
    for r in senders:
        assert switch_ssrc in ints(r["rtcp.senderssrc"])
        before = sum(1 for p in to_sipp if p.frame < int(r["frame.number"]))
        assert abs(int(r["rtcp.sender.packetcount"]) - before) <= 1, (r, before)
        assert int(r["rtcp.sender.octetcount"]) == 160 * int(r["rtcp.sender.packetcount"])
        # the block on SIPp's stream: its SSRC, nothing lost, close to its newest packet
        assert from_sipp[0].ssrc in ints(r["rtcp.ssrc.identifier"])
        assert int(r["rtcp.ssrc.cum_nr"]) == 0
        heard = [p.seq for p in from_sipp if p.frame < int(r["frame.number"])]
        assert int(r["rtcp.ssrc.high_seq"]) & 0xFFFF in heard[-10:], (r, heard[-10:])
        assert r["rtcp.sdes.text"].startswith("voxswitch-")
    assert reports[-1]["rtcp.pt"] == "200|202|203", reports[-1]  # the last one says BYE
    problems = expert_problems(pcap, rtp_ports=[media_port], src_ports=[switch_port + 1],
                               dst_ports=[media_port + 1])
    assert problems == [], problems


async def test_rtcp_mux_when_the_caller_offers_it(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path
) -> None:
    """RFC 5761: a caller that offers a=rtcp-mux gets it in the answer, and the switch's
    reports come from its RTP port to the caller's RTP port."""
    result, pcap, media_port = await captured_call(
        switch, callback_app, sipp_runner, tmp_path, seconds=4, sdp_extra="a=rtcp-mux")
    answer = result.messages[result.messages.index("SIP/2.0 200 OK"):]
    assert "a=rtcp-mux" in answer.split("CSeq: 1 ACK")[0]
    switch_port = rtp_packets(pcap, dst_port=media_port)[0].src_port
    rows = tshark_fields(pcap, ["udp.srcport", "rtcp.pt"],
                         f"udp.dstport=={media_port} && (rtcp.pt==200 || rtcp.pt==201)",
                         ["-d", f"udp.port=={media_port},rtcp"])
    assert rows and {int(r[0]) for r in rows} == {switch_port}, rows
    assert not tshark_fields(pcap, ["frame.number"], f"udp.dstport=={media_port + 1}", [])
