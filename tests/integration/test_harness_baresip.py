"""baresip driven by the harness, proved against SIPp peers (no switch involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import audio
from tests.support.baresip import BaresipRunner
from tests.support.capture import Capture, dtmf_digits, dtmf_events
from tests.support.sipp import SippRunner

pytest_plugins = ["tests.support.fixtures"]


async def test_call_to_echo_uas_records_what_came_back(sipp_runner: SippRunner,
                                                       baresip_runner: BaresipRunner) -> None:
    source = audio.concat(audio.sine(1000, 1.0), audio.silence(0.5), audio.sine(500, 1.0))
    async with sipp_runner.uas("uas", rtp_echo=True) as uas:
        call = await baresip_runner.call(uas.uri(), source, seconds=3.0)
    assert "CALL_ESTABLISHED" in call.events and "CALL_CLOSED" in call.events
    assert call.events.index("CALL_ESTABLISHED") < call.events.index("CALL_CLOSED")
    assert len(call.rx) / 8000 == pytest.approx(3.0, abs=0.3)  # the source's padded length
    beep = audio.tone_segments(call.rx, 1000, min_db=-30)
    low = audio.tone_segments(call.rx, 500, min_db=-30)
    assert len(beep) == 1 and beep[0][1] - beep[0][0] == pytest.approx(1.0, abs=0.06)
    assert len(low) == 1 and low[0][1] - low[0][0] == pytest.approx(1.0, abs=0.06)
    assert low[0][0] - beep[0][1] == pytest.approx(0.5, abs=0.06)
    _, corr = audio.best_alignment(audio.trim_silence(call.tx), call.rx)
    assert corr > 0.9  # the echo is the sent audio through G.711 twice
    assert "Call established" in call.log


async def test_dtmf_via_cons_becomes_rfc4733_events(sipp_runner: SippRunner,
                                                    baresip_runner: BaresipRunner,
                                                    capture: Capture) -> None:
    async with sipp_runner.uas("uas_bye.xml", params={"HOLD_MS": 20000}) as uas:
        await capture.start([uas.media_port], duration=40)
        async with baresip_runner.start(seconds=15.0) as phone:
            await phone.dial(uas.uri())
            await phone.wait_event("CALL_ESTABLISHED")
            await phone.send_dtmf("1#")
            await phone.hangup()
            await phone.wait_event("CALL_CLOSED")
        await capture.stop()
    events = dtmf_events(capture.pcap, dst_port=uas.media_port)
    assert dtmf_digits(events) == "1#"
    assert all(e.end for e in events[-3:])


async def test_answers_an_incoming_call_and_records_it(sipp_runner: SippRunner,
                                                       baresip_runner: BaresipRunner,
                                                       tmp_path: Path) -> None:
    ulaw = audio.to_ulaw_file(audio.sine(800, 1.5), tmp_path / "in.ulaw")
    async with baresip_runner.start(seconds=10.0, user="alice") as phone:
        result = await sipp_runner.run("uac_listen.xml", ("127.0.0.1", phone.config.sip_port),
                                       service="alice", audio_file=ulaw,
                                       params={"PAUSE_MS": 2000})
        await phone.wait_event("CALL_CLOSED")
    result.assert_ok()
    types = phone.event_types()  # auto-answer: no CALL_INCOMING in baresip 1.0.0
    assert types.index("CALL_ESTABLISHED") < types.index("CALL_CLOSED"), types
    heard = audio.tone_segments(phone.rx_audio(), 800, min_db=-30)
    # baresip's jitter buffer drops the first ~100 ms that arrive while its call starts up
    assert len(heard) == 1 and heard[0][1] - heard[0][0] == pytest.approx(1.45, abs=0.1)
