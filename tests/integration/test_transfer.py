"""TRANSFER end to end: caller A (SIPp UAC) calls the switch, its flow transfers it to B
(a SIPp UAS the switch dials); each side sends its own tone and a tshark capture on both
media ports tells what each heard."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, dtmf_events, rtp_packets, rtp_pcm
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner, key_steps
from tests.support.switch import RunningSwitch, rest

A_HZ, B_HZ = 697.0, 1209.0
HANGUP = {"type": "HANGUP"}


def hook(event: str) -> dict[str, Any]:
    return {"type": "WEBHOOK", "params": {"event_name": event, "url": "hooks",
                                          "await_response": True}}


def tone_file(tmp_path: Path, freq: float, name: str, *, alaw: bool = False) -> Path:
    pcm = audio.sine(freq, 20.0, level=-12.0)
    if alaw:
        return audio.to_alaw_file(pcm, tmp_path / f"{name}.alaw")
    return audio.to_ulaw_file(pcm, tmp_path / f"{name}.ulaw")


def heard(pcap: Path, port: int) -> np.ndarray:
    return rtp_pcm(rtp_packets(pcap, dst_port=port))


def script_of(actions: list[dict[str, Any]],
              after: list[dict[str, Any]] | None = None) -> Any:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions(actions)
        if req.type == "live_call":
            return Reply.actions(after or [HANGUP])
        return Reply(json={})
    return script


async def call_log(sw: RunningSwitch, call_id: str) -> dict[str, Any]:
    async with rest(sw) as http, http.get(f"/v1/History/Logs/Calls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def legs_of(sw: RunningSwitch, parent: str) -> list[dict[str, Any]]:
    async with rest(sw) as http, http.get("/v1/History/Logs/Calls") as resp:
        body = await resp.json()
    return [log for log in body["logs"] if log.get("parent_call_id") == parent]


async def test_the_two_sides_hear_each_other_across_codecs_and_b_hanging_up_returns_a(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    a_port = free_rtp_port()
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"CODEC_PT": 8, "CODEC_NAME": "PCMA", "HOLD_MS": 4000},
                               audio_file=tone_file(tmp_path, B_HZ, "b", alaw=True),
                               payload_type=8) as uas:
        callback_app.set_script(script_of([
            {"type": "TRANSFER", "params": {"no": uas.uri("bob"),
                                            "caller_id_no": "+17145550100"}},
            hook("after-transfer"), HANGUP]))
        sw = await switch(default_callback=callback_app.url)
        async with Capture(tmp_path, "both") as cap:
            await cap.start([a_port, uas.media_port], duration=60)
            result = await sipp_runner.run(
                "uac_wait_bye_pcmu_only.xml", sw.sip_udp, service="1000", media_port=a_port,
                audio_file=tone_file(tmp_path, A_HZ, "a"), audio_loops=-1,
                params={"BYE_TIMEOUT_MS": 20000}, timeout=40)
            b = await uas.finish()
            pcap = await cap.stop()
    result.assert_ok()
    b.assert_ok()
    a_heard, b_heard = heard(pcap, a_port), heard(pcap, uas.media_port)
    assert audio.tone_duration(a_heard, B_HZ) > 3.0, "A did not hear B"
    assert audio.tone_duration(a_heard, A_HZ) == 0.0, "A heard itself"
    assert audio.tone_duration(b_heard, A_HZ) > 3.0, "B did not hear A"
    assert audio.tone_duration(b_heard, B_HZ) == 0.0, "B heard itself"
    b_types = {p.payload_type for p in rtp_packets(pcap, dst_port=uas.media_port)}
    assert b_types == {8}, b_types  # B got A-law, A (PCMU only) got mu-law
    assert {p.payload_type for p in rtp_packets(pcap, dst_port=a_port)} == {0}
    # B's BYE gave A back to its flow: the next action ran
    hooks = [r.fields["event_name"] for r in callback_app.requests if r.path == "/hooks"]
    assert hooks == ["after-transfer"]
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    legs = await legs_of(sw, parent)
    assert [(leg["status"], leg["direction"], leg["api_no"]) for leg in legs] == [
        ("completed", "outbound", "+17145550100")]
    assert "From: <sip:+17145550100@" in b.messages


async def test_a_hanging_up_ends_b(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    async with sipp_runner.uas("uas_stream.xml", rtp_echo=False, calls=1,
                               audio_file=tone_file(tmp_path, B_HZ, "b")) as uas:
        callback_app.set_script(script_of([{"type": "TRANSFER",
                                            "params": {"no": uas.uri("bob")}}]))
        sw = await switch(default_callback=callback_app.url)
        result = await sipp_runner.run("uac_listen.xml", sw.sip_udp, service="1000",
                                       params={"PAUSE_MS": 3000})
        b = await uas.finish()
    result.assert_ok()
    b.assert_ok()  # B got the BYE
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["call_id"] == parent and end.fields["status"] == "completed"
    legs = await legs_of(sw, parent)
    assert [leg["status"] for leg in legs] == ["completed"]
    assert not callback_app.of_type("live_call")  # A hung up: no flow after the transfer


async def test_a_busy_far_end_is_reported_and_the_flow_goes_on(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_reject.xml", calls=1, params={"STATUS": 486}) as uas:
        callback_app.set_script(script_of([
            {"type": "TRANSFER", "params": {"no": uas.uri("bob")}},
            hook("after-transfer"), HANGUP]))
        sw = await switch(default_callback=callback_app.url)
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
        (await uas.finish()).assert_ok()
    result.assert_ok()
    failed = await callback_app.wait_for(type="failed_call")
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    assert failed.fields["status"] == "busy"
    assert failed.fields["parent_call_id"] == parent
    assert [r.fields["event_name"] for r in callback_app.requests
            if r.path == "/hooks"] == ["after-transfer"]
    assert [leg["status"] for leg in await legs_of(sw, parent)] == ["busy"]


async def test_async_transfer_start_and_stop_as_in_the_spec_example(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    async with sipp_runner.uas("uas_stream.xml", rtp_echo=False, calls=1,
                               audio_file=tone_file(tmp_path, B_HZ, "b")) as uas:
        callback_app.set_script(script_of([
            {"type": "TRANSFER", "params": {"no": uas.uri("bob"), "async": True}},
            {"type": "COLLECT", "params": {"num_digits": 1, "timeout": 3600000},
             "actions": [{"type": "SAY", "params": {"text": "Press any key to end the call."}}]},
            {"type": "TRANSFER", "params": {"event": "stop"}},
            hook("stopped"), HANGUP]))
        sw = await switch(default_callback=callback_app.url)
        result = await sipp_runner.run(
            "uac_info_keys.xml", sw.sip_udp, service="1000",
            params={"KEY_STEPS": key_steps([(3000, "5")]), "BYE_TIMEOUT_MS": 15000},
            timeout=30)
        b = await uas.finish()
    result.assert_ok()
    b.assert_ok()  # the stop hung up B
    assert [r.fields["event_name"] for r in callback_app.requests
            if r.path == "/hooks"] == ["stopped"]
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    assert [leg["status"] for leg in await legs_of(sw, parent)] == ["completed"]


async def test_rest_transfer_moves_a_live_call_to_b(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 2000},
                               audio_file=tone_file(tmp_path, B_HZ, "b")) as uas:
        callback_app.set_script(script_of(
            [{"type": "PAUSE", "params": {"seconds": 30}}], after=[hook("back"), HANGUP]))
        sw = await switch(default_callback=callback_app.url)
        caller = asyncio.create_task(sipp_runner.run(
            "uac_wait_bye.xml", sw.sip_udp, service="1000", params={"BYE_TIMEOUT_MS": 30000},
            timeout=45))
        init = await callback_app.wait_for(type="init_call", timeout=15)
        call_id = init.fields["call_id"]
        await asyncio.sleep(0.5)
        async with rest(sw) as http:
            bad = await http.post(f"/v1/LiveCalls/{call_id}/Actions/Transfer",
                                  json={"call": {"no": "not a number"}})
            assert bad.status == 400 and (await bad.json())["code"] == 400001
            gone = await http.post("/v1/LiveCalls/1@1/Actions/Transfer",
                                   json={"call": {"no": uas.uri("bob")}})
            assert gone.status == 404 and (await gone.json())["code"] == 404404
            ok = await http.post(f"/v1/LiveCalls/{call_id}/Actions/Transfer",
                                 json={"message": "Transferring you now.",
                                       "call": {"no": uas.uri("bob")}})
            assert ok.status == 204, await ok.text()
        b = await uas.finish(timeout=30)
        result = await caller
    result.assert_ok()
    b.assert_ok()
    await callback_app.wait_for(type=None, predicate=lambda r: r.path == "/hooks")
    assert [leg["status"] for leg in await legs_of(sw, call_id)] == ["completed"]


async def test_rfc4733_digits_from_a_reach_b_as_telephone_events(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    pcaps = Path("/usr/share/sip-tester")
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 5500},
                               audio_file=tone_file(tmp_path, B_HZ, "b")) as uas:
        callback_app.set_script(script_of([{"type": "TRANSFER",
                                            "params": {"no": uas.uri("bob")}}]))
        sw = await switch(default_callback=callback_app.url)
        a_port = free_rtp_port()
        async with Capture(tmp_path, "dtmf") as cap:
            await cap.start([a_port, uas.media_port], duration=40)
            result = await sipp_runner.run(
                "uac_pcap_dtmf.xml", sw.sip_udp, service="1000", media_port=a_port,
                params={"PCAP_DIR": pcaps, "LEAD_MS": 1500, "BYE_TIMEOUT_MS": 15000},
                timeout=30)
            pcap = await cap.stop()
        (await uas.finish()).assert_ok()
    result.assert_ok()  # B hung up, A's flow went on and hung up A
    ends = [e.event for e in dtmf_events(pcap, uas.media_port) if e.end]
    assert ends == [1, 1, 1, 5, 5, 5, 11, 11, 11], ends


async def test_a_hanging_up_while_b_rings_cancels_b(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_ring_cancel.xml", calls=1) as uas:
        callback_app.set_script(script_of([{"type": "TRANSFER",
                                            "params": {"no": uas.uri("bob")}}]))
        sw = await switch(default_callback=callback_app.url)
        result = await sipp_runner.run("uac_listen.xml", sw.sip_udp, service="1000",
                                       params={"PAUSE_MS": 2500})
        b = await uas.finish()
    result.assert_ok()
    b.assert_ok()  # B got our CANCEL and answered 487
    assert "CANCEL sip:" in b.messages
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    for _ in range(50):
        legs = await legs_of(sw, parent)
        if legs:
            break
        await asyncio.sleep(0.1)
    assert [leg["status"] for leg in legs] == ["canceled"]
