"""A SIPp caller against the real switch: what it hears and what the callback receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import audio
from tests.support.callback_app import CallbackApp, Reply
from tests.support.calls import sipp_call_heard
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import rest

TEXT = "Thank you for calling the voxswitch test line."
RATE = 8000


def expected_speech_s(tmp_path: Path, text: str, voice: str = "en-us+f3") -> float:
    """Active speech seconds of `text` spoken by espeak-ng directly (Kate's voice)."""
    wav = audio.tts_wav(text, tmp_path / "expected.wav", voice=voice)
    pcm, rate = audio.read_wav(wav)
    assert rate == RATE
    return audio.speech_like(pcm)[0]


def tone_file(tmp_path: Path, seconds: float = 2.0) -> Path:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    return audio.write_wav(media / "tone1k.wav", audio.sine(1000.0, seconds, level=-12.0))


async def test_say_play_hangup_is_heard_in_order_and_callbacks_arrive(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path,
) -> None:
    wav = tone_file(tmp_path, 2.0)
    callback_app.set_script({
        "init_call": Reply.actions([
            {"type": "SAY", "params": {"text": TEXT}},
            {"type": "PLAY", "params": {"url": wav.as_uri()}},
            {"type": "HANGUP"},
        ]),
        "end_call": Reply(json={}),
    })
    sw = await switch(default_callback=callback_app.url,
                      extra_args=["--media-dir", str(wav.parent)])
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    assert heard.problems == []

    tones = audio.tone_segments(heard.pcm, 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(tones) == 1, tones
    start, end = tones[0]
    assert 1.9 <= end - start <= 2.1
    speech = heard.pcm[: int(start * RATE)]
    active, in_band = audio.speech_like(speech)
    want = expected_speech_s(tmp_path, TEXT)
    assert abs(active - want) <= 0.2 * want, (active, want)
    assert in_band > 0.8
    assert audio.level_spread(speech) > 3.0  # speech, not a steady tone
    # nothing after the tone but the BYE
    assert audio.speech_like(heard.pcm[int(end * RATE) + 800:])[0] < 0.2

    end_call = await callback_app.wait_for(type="end_call")
    assert [r.type for r in callback_app.requests] == ["init_call", "end_call"]
    init = callback_app.requests[0].fields
    assert init["service"] == "programmable_voice"
    assert init["direction"] == "inbound"
    assert init["api_no"] == "1000" and init["caller_no"] == "sipp"
    assert init["status"] == "live-ringing"
    assert init["is_webhook"] is False
    assert init["call_id"] == end_call.fields["call_id"]
    assert init["sip_forwarded_for"] == "127.0.0.1"
    fields = end_call.fields
    assert fields["status"] == "completed"
    assert fields["error_code"] is None and fields["error"] is None
    assert fields["connect_time_sec"] >= 4
    assert fields["duration"] >= fields["connect_time_sec"] * 1000
    assert fields["end_time"] and fields["start_time"]


async def test_live_call_is_sent_when_actions_run_out(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "SESSIONDATA", "session_data": {"step": 1}},
                                    {"type": "PAUSE", "params": {"seconds": 1}}]),
        "live_call": Reply.actions([{"type": "HANGUP"}]),
        "end_call": Reply(json={}),
    })
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="+17145551212")
    result.assert_ok()
    await callback_app.wait_for(type="end_call")
    assert [r.type for r in callback_app.requests] == ["init_call", "live_call", "end_call"]
    live = callback_app.requests[1].fields
    assert live["status"] == "live-in-progress"
    assert live["session_data"] == {"step": 1}
    assert live["key_presses"] == [] and live["recordings"] == []
    assert live["api_no"] == "+17145551212"
    assert callback_app.requests[2].fields["session_data"] == {"step": 1}


async def test_caller_hangs_up_first(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"seconds": 30}}]),
        "end_call": Reply(json={}),
    })
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_listen.xml", sw.sip_udp, service="1000",
                                   params={"PAUSE_MS": 1500})
    result.assert_ok()
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["status"] == "completed"
    assert end.fields["error_code"] is None
    log = await _call_log(sw, end.fields["call_id"])
    assert log["hangup_end"] == "caller"
    assert log["status"] == "completed"
    assert log["sip"]["call_id"]


async def test_reject_busy_gets_486_and_never_200(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "REJECT",
                                                          "params": {"reason": "busy"}}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_expect_status.xml", sw.sip_udp, service="1000",
                                   params={"STATUS": 486})
    result.assert_ok()
    assert "SIP/2.0 200" not in result.messages
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["status"] == "busy"
    assert end.fields["connect_time_sec"] == 0


async def test_reject_disconnected_gets_404(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "REJECT",
                                                          "params": {"reason": "disconnected"}}])})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_expect_status.xml", sw.sip_udp, service="1000",
                                   params={"STATUS": 404})
    result.assert_ok()
    assert "SIP/2.0 200" not in result.messages


async def test_cancel_before_answer_gets_487(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    # The callback is slow, so the call is still ringing when SIPp cancels it.
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}], delay=3.0),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_cancel.xml", sw.sip_udp, service="1000")
    result.assert_ok()
    end = await callback_app.wait_for(type="end_call", timeout=15)
    assert end.fields["status"] == "canceled"


async def test_options_gets_200_with_allow(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw = await switch()
    result = await sipp_runner.run("uac_options.xml", sw.sip_udp)
    result.assert_ok()
    assert "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO" in result.messages


async def test_tcp_call_runs_the_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "PAUSE",
                                                          "params": {"seconds": 1}},
                                                         {"type": "HANGUP"}])})
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_tcp, service="1000",
                                   transport="tcp")
    result.assert_ok()
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["status"] == "completed"


async def test_demo_flow_runs_with_no_callback_configured(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw = await switch()
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000",
                                  params={"BYE_TIMEOUT_MS": 30000}, timeout=40)
    heard.result.assert_ok()
    tones = audio.tone_segments(heard.pcm, 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(tones) == 1 and 0.9 <= tones[0][1] - tones[0][0] <= 1.1
    before = heard.pcm[: int(tones[0][0] * RATE)]
    after = heard.pcm[int(tones[0][1] * RATE):]
    assert audio.speech_like(before)[0] > 3.0  # the greeting
    assert audio.speech_like(after)[0] > 0.3  # "good bye"
    assert heard.problems == []


async def _call_log(sw: Any, call_id: str) -> dict[str, Any]:
    async with rest(sw) as http, http.get(f"/v1/History/Logs/Calls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body




async def test_offerless_invite_gets_our_offer_and_the_ack_answer_sets_up_media(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    wav = tone_file(tmp_path, 1.0)
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "PLAY", "params": {"url": wav.as_uri()}}, {"type": "HANGUP"}]),
        "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url,
                      extra_args=["--media-dir", str(wav.parent)])
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_late_offer.xml", service="1000")
    heard.result.assert_ok()
    assert heard.problems == []
    tones = audio.tone_segments(heard.pcm, 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(tones) == 1 and 0.9 <= tones[0][1] - tones[0][0] <= 1.1
    assert (await callback_app.wait_for(type="end_call")).fields["error_code"] is None


async def test_answer_on_ring_delays_the_answer_by_whole_rings(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    sw = await switch()
    async with rest(sw) as http, http.put(
            "/v1/CallFlows/Configurations/Default",
            json={"callback": {"url": callback_app.url}, "answer_on_ring": 2}) as resp:
        assert resp.status == 200, await resp.text()
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000", timeout=40)
    result.assert_ok()
    fields = (await callback_app.wait_for(type="end_call")).fields
    # one ring (6 s) passes between the callback's answer and the 200 OK
    assert fields["duration"] - fields["connect_time_sec"] * 1000 >= 6000
    assert fields["status"] == "completed"
