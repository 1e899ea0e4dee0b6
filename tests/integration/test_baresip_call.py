"""baresip calls the real switch: what a softphone hears, and who hangs up.

baresip's source is silence padded well past the flow, so the call can only end early if
the switch hangs it up. baresip's jitter buffer drops about 100 ms at call start, which
only eats into leading silence here; and when a BYE arrives it closes the call with the
last 100-200 ms still in its jitter buffer (jitter_buffer_delay 5-10), which never reach
the recording. So a tone that ends the flow is also measured on the wire, where the
switch sent it, and what baresip heard of it may be up to that much shorter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import audio
from tests.support.baresip import Baresip, BaresipRunner
from tests.support.callback_app import CallbackApp, Reply
from tests.support.capture import Capture, rtp_packets, rtp_pcm
from tests.support.fixtures import SwitchFactory
from tests.support.switch import RunningSwitch, rest

RATE = audio.RATE
SENTENCE = "Welcome to the voxswitch test line. Here is a tone."
SOURCE_S = 40.0  # baresip hangs up when its source ends: far beyond any flow here
TAIL_LOSS_S = 0.2  # baresip's jitter buffer content at the BYE, lost from the recording


async def _call_log(sw: RunningSwitch, call_id: str) -> dict[str, Any]:
    async with rest(sw) as http, http.get(f"/v1/History/Logs/Calls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def _call_until_closed(phone: Baresip, sw: RunningSwitch,
                             timeout: float) -> list[str]:
    await phone.dial(f"sip:1000@{sw.sip_uri_host}")
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    await phone.wait_event("CALL_CLOSED", timeout=timeout)
    return phone.event_types()


async def test_say_play_hangup_heard_by_baresip(
    switch: SwitchFactory, callback_app: CallbackApp, baresip_runner: BaresipRunner,
    capture: Capture, tmp_path: Path,
) -> None:
    media = tmp_path / "media"
    wav = audio.write_wav(media / "tone1k.wav", audio.sine(1000.0, 1.5, level=-12.0))
    callback_app.set_script({
        "init_call": Reply.actions([
            {"type": "SAY", "params": {"text": SENTENCE}},
            {"type": "PLAY", "params": {"url": wav.as_uri()}},
            {"type": "HANGUP"},
        ]),
        "end_call": Reply(json={}),
    })
    sw = await switch(default_callback=callback_app.url,
                      extra_args=["--media-dir", str(media)])
    async with baresip_runner.start(seconds=SOURCE_S, lifetime=SOURCE_S + 10) as phone:
        low, high = phone.config.rtp_ports
        await capture.start([sw.sip_udp[1], *range(low, high + 1)], duration=60)
        events = await _call_until_closed(phone, sw, timeout=25)
    pcap = await capture.stop()
    assert events.index("CALL_ESTABLISHED") < events.index("CALL_CLOSED"), events
    rx = phone.rx_audio()
    # closed long before baresip's own source ran out: the switch hung up
    assert len(rx) / RATE < SOURCE_S - 10, len(rx) / RATE

    sent = [rtp_pcm(pk) for port in range(low, high + 1)
            if (pk := rtp_packets(pcap, dst_port=port))]
    assert len(sent) == 1, "one RTP stream from the switch to baresip"
    sent_tones = audio.tone_segments(sent[0], 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(sent_tones) == 1, sent_tones
    assert sent_tones[0][1] - sent_tones[0][0] == pytest.approx(1.5, abs=0.1)

    tones = audio.tone_segments(rx, 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(tones) == 1, tones
    start, end = tones[0]
    assert 1.5 - 0.1 - TAIL_LOSS_S <= end - start <= 1.5 + 0.1, (start, end)
    assert start == pytest.approx(sent_tones[0][0], abs=0.1)
    speech = rx[: int(start * RATE)]
    active, in_band = audio.speech_like(speech)
    assert active > 1.5, active  # the sentence, spoken before the tone
    assert in_band > 0.8
    assert audio.level_spread(speech) > 3.0  # speech, not a steady tone
    assert audio.speech_like(rx[int(end * RATE) + 800:])[0] < 0.2  # then only the BYE

    end_call = await callback_app.wait_for(type="end_call", timeout=10)
    assert end_call.fields["status"] == "completed"
    assert end_call.fields["error_code"] is None
    log = await _call_log(sw, end_call.fields["call_id"])
    assert log["hangup_end"] == "api"
    assert "Traceback" not in sw.logs()


async def test_demo_flow_heard_by_baresip(switch: SwitchFactory,
                                          baresip_runner: BaresipRunner) -> None:
    sw = await switch()
    async with baresip_runner.start(seconds=SOURCE_S, lifetime=SOURCE_S + 10) as phone:
        events = await _call_until_closed(phone, sw, timeout=35)
    assert events.index("CALL_ESTABLISHED") < events.index("CALL_CLOSED"), events
    rx = phone.rx_audio()
    assert len(rx) / RATE < SOURCE_S - 10, len(rx) / RATE  # the switch hung up

    tones = audio.tone_segments(rx, 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(tones) == 1, tones
    start, end = tones[0]
    assert end - start == pytest.approx(1.0, abs=0.1)
    greeting = rx[: int(start * RATE)]
    good_bye = rx[int(end * RATE):]
    assert audio.speech_like(greeting)[0] > 3.0
    assert audio.level_spread(greeting) > 3.0
    assert audio.speech_like(good_bye)[0] > 0.3
    assert "Traceback" not in sw.logs()
