"""The SIPp scenarios and runner, proved against SIPp's built-in `uas` and the harness's
own UAS scenarios (the switch is not involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import audio, g711
from tests.support.calls import sipp_call_heard
from tests.support.capture import Capture, expert_problems, rtp_packets, rtp_pcm, sip_messages
from tests.support.ports import free_rtp_port
from tests.support.sipp import (
    SippError,
    SippRunner,
    parse_stats,
    render_scenario,
    scenario_defaults,
)

pytest_plugins = ["tests.support.fixtures"]


async def test_uac_listen_streams_a_file_that_the_echo_returns_intact(
        sipp_runner: SippRunner, capture: Capture, tmp_path: Path) -> None:
    tone = audio.sine(1000, 1.0, level=-6)
    ulaw = audio.to_ulaw_file(tone, tmp_path / "tone.ulaw")
    media_port = free_rtp_port()
    async with sipp_runner.uas("uas", rtp_echo=True) as uas:
        await capture.start([uas.port, uas.media_port, media_port], duration=30)
        result = await sipp_runner.run("uac_listen.xml", uas.address, audio_file=ulaw,
                                       params={"PAUSE_MS": 1500}, media_port=media_port)
        await capture.stop()
    result.assert_ok()
    sent = rtp_packets(capture.pcap, dst_port=uas.media_port)
    echoed = rtp_packets(capture.pcap, dst_port=media_port)
    assert len(sent) == len(echoed) == 50  # 1 s in 20 ms packets
    assert {p.payload_type for p in echoed} == {g711.PT_PCMU}
    assert b"".join(p.payload for p in echoed) == ulaw.read_bytes()
    heard = rtp_pcm(echoed)
    assert audio.dominant_frequency(heard) == pytest.approx(1000, abs=2)
    assert audio.tone_segments(heard, 1000, min_db=-20) == [(0.0, 1.0)]
    assert expert_problems(capture.pcap, sip_ports=[uas.port],
                           rtp_ports=[uas.media_port, media_port]) == []
    methods = [m.method or str(m.status) for m in sip_messages(capture.pcap, [uas.port])]
    assert methods == ["INVITE", "180", "200", "ACK", "BYE", "200"]


async def test_uac_listen_sends_pcma_when_asked(sipp_runner: SippRunner, capture: Capture,
                                                tmp_path: Path) -> None:
    alaw = audio.to_alaw_file(audio.sine(440, 0.6), tmp_path / "tone.alaw")
    media_port = free_rtp_port()
    async with sipp_runner.uas("uas") as uas:
        await capture.start([media_port], duration=30)
        result = await sipp_runner.run("uac_listen.xml", uas.address, audio_file=alaw,
                                       payload_type=g711.PT_PCMA, params={"PAUSE_MS": 900},
                                       media_port=media_port)
        await capture.stop()
    result.assert_ok()
    echoed = rtp_packets(capture.pcap, dst_port=media_port)
    assert {p.payload_type for p in echoed} == {g711.PT_PCMA}
    assert audio.dominant_frequency(rtp_pcm(echoed)) == pytest.approx(440, abs=2)


async def test_uac_listen_over_tcp_with_default_silence(sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas", transport="tcp") as uas:
        result = await sipp_runner.run("uac_listen.xml", uas.address, transport="tcp",
                                       params={"PAUSE_MS": 300})
    result.assert_ok()
    assert "SIP/2.0/TCP" in result.messages
    assert "silence.ulaw,-1,0" in (result.workdir / "uac_listen.xml").read_text()


async def test_uac_wait_bye_answers_the_peers_bye(sipp_runner: SippRunner,
                                                  tmp_path: Path) -> None:
    ulaw = audio.to_ulaw_file(audio.sine(700, 0.5), tmp_path / "t.ulaw")
    async with sipp_runner.uas("uas_bye.xml", params={"HOLD_MS": 800}, calls=1) as uas:
        result = await sipp_runner.run("uac_wait_bye.xml", uas.address, audio_file=ulaw,
                                       params={"BYE_TIMEOUT_MS": 10000})
        uas_result = await uas.finish()
    result.assert_ok()
    uas_result.assert_ok()
    assert "BYE sip:sipp@127.0.0.1" in result.messages


async def test_uac_wait_bye_fails_when_no_bye_comes(sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas") as uas:
        result = await sipp_runner.run("uac_wait_bye.xml", uas.address,
                                       params={"BYE_TIMEOUT_MS": 500})
    assert not result.ok
    assert (result.rc, result.successful, result.failed) == (1, 0, 1)
    with pytest.raises(SippError, match=r"(?s)expected 1 successful.*rc=1.*INVITE"):
        result.assert_ok()


async def test_uac_cancel_gets_200_and_487(sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_ring_cancel.xml", calls=1) as uas:
        result = await sipp_runner.run("uac_cancel.xml", uas.address)
        uas_result = await uas.finish()
    result.assert_ok()
    uas_result.assert_ok()
    assert "SIP/2.0 487 Request Terminated" in result.messages
    invite_branch = result.messages.split("branch=", 1)[1].split()[0]
    assert result.messages.count(f"branch={invite_branch}") >= 6  # CANCEL and ACK reuse it


@pytest.mark.parametrize(("status", "reason"), [(486, "Busy Here"), (404, "Not Found"),
                                                (603, "Decline")])
async def test_uac_expect_status(sipp_runner: SippRunner, status: int, reason: str) -> None:
    params: dict[str, str | int] = {"STATUS": status, "REASON": reason}
    async with sipp_runner.uas("uas_reject.xml", params=params, calls=1) as uas:
        result = await sipp_runner.run("uac_expect_status.xml", uas.address, params=params,
                                       service="nobody")
        uas_result = await uas.finish()
    result.assert_ok()
    uas_result.assert_ok()
    assert f"SIP/2.0 {status} {reason}" in result.messages
    assert "INVITE sip:nobody@127.0.0.1" in result.messages


async def test_uac_expect_status_fails_on_a_200(sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas") as uas:
        result = await sipp_runner.run("uac_expect_status.xml", uas.address,
                                       params={"STATUS": 486}, timeout=15)
    assert not result.ok and result.failed == 1
    assert "SIP/2.0 200 OK" in result.messages


async def test_uac_options_checks_allow(sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_options.xml", calls=1) as uas:
        result = await sipp_runner.run("uac_options.xml", uas.address,
                                       params={"ALLOW_REGEXP": "INVITE.*BYE"})
    result.assert_ok()
    assert result.logged("Allow") == ["INVITE, ACK, BYE, CANCEL, OPTIONS"]


async def test_uac_options_fails_without_allow(sipp_runner: SippRunner) -> None:
    async with sipp_runner.uas("uas_options.xml", params={"ALLOW_HEADER": ""},
                               calls=1) as uas:
        result = await sipp_runner.run("uac_options.xml", uas.address, timeout=10)
    assert not result.ok and result.failed == 1
    assert "Allow:" not in result.messages


def test_render_fills_defaults_params_and_drops_empty_lines(tmp_path: Path) -> None:
    path = render_scenario("uas_options.xml", {"ALLOW_HEADER": ""}, tmp_path / "a.xml")
    text = path.read_text()
    assert "{{" not in text and "harness-defaults" not in text and "Allow:" not in text
    assert "Accept: application/sdp" in text
    text = render_scenario("uas_reject.xml", {"STATUS": 480}, tmp_path / "b.xml").read_text()
    assert "SIP/2.0 480 Busy Here" in text


def test_render_reports_missing_values(tmp_path: Path) -> None:
    with pytest.raises(SippError, match=r"uac_listen\.xml: no value for STREAM_ACTION"):
        render_scenario("uac_listen.xml", {}, tmp_path / "c.xml")


def test_scenario_defaults_use_shell_quoting() -> None:
    text = '<!-- harness-defaults: A=1 B="two words" -->'
    assert scenario_defaults(text) == {"A": "1", "B": "two words"}
    assert scenario_defaults("<scenario/>") == {}


def test_parse_stats_takes_the_last_row() -> None:
    text = "A;SuccessfulCall(C);FailedCall(C);\n1;0;0;\n2;3;1;\n"
    stats = parse_stats(text)
    assert stats["SuccessfulCall(C)"] == "3" and stats["FailedCall(C)"] == "1"
    assert parse_stats("") == {}


async def test_sipp_call_heard_decodes_the_echo(sipp_runner: SippRunner,
                                                tmp_path: Path) -> None:
    ulaw = audio.to_ulaw_file(audio.sine(600, 0.8), tmp_path / "t.ulaw")
    async with sipp_runner.uas("uas") as uas:
        heard = await sipp_call_heard(sipp_runner, uas.address, audio_file=ulaw,
                                      params={"PAUSE_MS": 1000})
    heard.result.assert_ok()
    assert len(heard.packets) == 40 and heard.dtmf == [] and heard.problems == []
    assert audio.tone_segments(heard.pcm, 600, min_db=-20) == [(0.0, 0.8)]
