"""The PSTN simulator end to end: the real switch dials its own simulator numbers (REST
Dials/Connect, a flow's TRANSFER) over SIP and RTP on 127.0.0.1, with no outbound proxy
and no far end of ours; the call log, the callbacks, DETECT's results and what a SIPp
caller hears tell what each number did."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, rtp_packets, rtp_pcm
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest, voxswitch_argv

CALLER_ID = "+17145550100"
HANGUP = {"type": "HANGUP"}
LIVE, VOICEMAIL, FAX = "+15550101000", "+15550102000", "+15550103000"


async def connect(sw: RunningSwitch, no: str, **extra: Any) -> str:
    body = {"call": {"no": no, "caller_id_no": CALLER_ID, **extra.pop("call", {})},
            **extra}
    async with rest(sw) as http, http.post("/v1/Dials/Connect", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["call"]["id"])


async def get(sw: RunningSwitch, path: str) -> tuple[int, Any]:
    async with rest(sw) as http, http.get(path) as resp:
        return resp.status, await resp.json()


async def ended_log(sw: RunningSwitch, call_id: str, timeout: float = 45.0
                    ) -> dict[str, Any]:
    """The call log once the call has ended (polled: a call that never connected sends
    no end_call)."""
    async def poll() -> dict[str, Any]:
        while True:
            status, body = await get(sw, f"/v1/History/Logs/Calls/{call_id}")
            if status == 200 and body.get("end_time"):
                return dict(body)
            await asyncio.sleep(0.3)
    return await asyncio.wait_for(poll(), timeout)


def flow(actions: list[dict[str, Any]]) -> Any:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions(actions)
        return Reply(json={})
    return script


def of_call(call_id: str) -> Callable[[CallbackRequest], bool]:
    return lambda r: r.fields.get("call_id") == call_id


def hook_of(call_id: str, event: str) -> Callable[[CallbackRequest], bool]:
    return lambda r: (r.path == "/hooks" and r.fields.get("call_id") == call_id
                      and r.fields.get("event_name") == event)


async def test_refusing_numbers_and_a_hang_up_show_in_the_call_log(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 30}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    expected = {"+15550104000": ("busy", 486), "+15550107000": ("failed", 404),
                "+15550108000": ("failed", 503), "+15550109000": ("failed", 603)}
    ids = {no: await connect(sw, no) for no in expected}
    hangs_up = await connect(sw, "+15550100030")  # answers, hangs up after 3 s
    for no, (status, code) in expected.items():
        log = await ended_log(sw, ids[no])
        assert (log["status"], log["sip"]["response_code"]) == (status, code), (no, log)
        assert log["connected_time"] == 0
    log = await ended_log(sw, hangs_up)
    assert log["status"] == "completed" and log["hangup_end"] == "caller", log
    assert 2.5 <= log["connected_time"] / 1000 <= 6.0, log  # its 3 s, not the flow's 30
    # no outbound proxy was needed, and the simulator's side left no call records
    code, body = await get(sw, "/v1/History/Logs/Calls")
    assert code == 200 and len(body["logs"]) == 5, body


async def test_no_answer_rings_until_the_timeout_and_slow_answer_rings_its_seconds(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 1}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    no_answer = await connect(sw, "+15550105000", timeout=20)
    gives_up = await connect(sw, "+15550105040")  # 480 after 4 s of ringing
    slow = await connect(sw, "+15550106060")  # answers after 6 s
    log = await ended_log(sw, slow)
    ring_s = (log["duration"] - log["connected_time"]) / 1000
    assert log["status"] == "completed" and 5.5 <= ring_s <= 10.0, log
    log = await ended_log(sw, gives_up)
    assert (log["status"], log["sip"]["response_code"]) == ("no-answer", 480), log
    assert log["duration"] / 1000 >= 3.5, log
    log = await ended_log(sw, no_answer, timeout=60)
    assert log["status"] == "no-answer" and log["connected_time"] == 0, log
    assert log["duration"] / 1000 >= 19.5, log  # rang until the switch's 20 s timeout


async def test_detect_tells_the_person_the_voicemail_and_the_fax_apart(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    detect = {"type": "DETECT", "events": {
        "on_live_person": [{"type": "WEBHOOK", "params": {
            "event_name": "person", "url": "hooks", "await_response": True}}],
        "on_voicemail": [{"type": "WEBHOOK", "params": {
            "event_name": "machine", "url": "hooks", "await_response": True}}]}}
    after = {"type": "WEBHOOK", "params": {"event_name": "detected", "url": "hooks",
                                           "await_response": True}}
    callback_app.set_script(flow([detect, after, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    ids = {kind: await connect(sw, no) for kind, no in
           (("live_person", LIVE), ("voicemail", VOICEMAIL), ("fax", FAX))}
    for kind, call_id in ids.items():
        done = await callback_app.wait_for(type=None, timeout=45,
                                           predicate=hook_of(call_id, "detected"))
        assert done.fields["detection"] == kind, (kind, done.fields)
        assert (await ended_log(sw, call_id))["detection"] == kind
    events = {r.fields["call_id"]: r.fields["event_name"] for r in callback_app.requests
              if r.path == "/hooks" and r.fields["event_name"] != "detected"}
    assert events == {ids["live_person"]: "person", ids["voicemail"]: "machine"}, events


async def test_connect_with_preconnect_detection_tells_init_call(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    callback_app.set_script(flow([HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    ids = {kind: await connect(sw, no, detection="preconnect") for kind, no in
           (("live_person", LIVE), ("voicemail", VOICEMAIL), ("fax", FAX))}
    for kind, call_id in ids.items():
        init = await callback_app.wait_for(type="init_call", timeout=30,
                                           predicate=of_call(call_id))
        assert init.fields["detection"] == kind, (kind, init.fields)


async def test_a_caller_transferred_to_the_voicemail_hears_its_greeting_then_the_beep(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script(flow([{"type": "TRANSFER", "params": {
        "no": VOICEMAIL, "caller_id_no": CALLER_ID}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    a_port = free_rtp_port()
    async with Capture(tmp_path, "caller") as cap:
        await cap.start([a_port], duration=60)
        result = await sipp_runner.run("uac_listen.xml", sw.sip_udp, service="1000",
                                       media_port=a_port, params={"PAUSE_MS": 14000},
                                       timeout=40)
        pcap = await cap.stop()
    result.assert_ok()
    heard = rtp_pcm(rtp_packets(pcap, dst_port=a_port))
    beeps = audio.tone_segments(heard, 1000.0, min_db=-30.0, min_duration=0.3)
    assert len(beeps) == 1, beeps
    start, end = beeps[0]
    assert 0.4 <= end - start <= 0.7, beeps  # the simulator's 0.5 s beep
    greeting = heard[: int(start * 8000)]
    assert audio.speech_like(audio.trim_silence(greeting)), "no greeting before the beep"
    assert len(audio.trim_silence(greeting)) / 8000 >= 3.0  # seconds of it, not a word
    # the caller's leg and the transfer's leg are the switch's; the simulator logs none
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    _, body = await get(sw, "/v1/History/Logs/Calls")
    legs = [(x["direction"], x["caller_no"]) for x in body["logs"]
            if x.get("parent_call_id") == parent]
    assert legs == [("outbound", VOICEMAIL)], body


async def test_the_rest_view_lists_the_behaviours(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    sw = await switch(default_callback=callback_app.url)
    status, body = await get(sw, "/v1/Simulator/Numbers")
    assert status == 200 and body["enabled"] is True, body
    assert body["numbers"] == "+1555010XXXX"
    rows = {row["behaviour"]: row for row in body["behaviours"]}
    assert rows["voicemail"]["example"] == VOICEMAIL and rows["busy"]["sip_status"] == 486
    assert len(rows) == 10
    status, one = await get(sw, "/v1/Simulator/Numbers/%2B15550106150")
    assert status == 200 and one["behaviour"]["behaviour"] == "slow_answer"
    assert one["seconds"] == 15
    status, err = await get(sw, "/v1/Simulator/Numbers/%2B19495550100")
    assert status == 404 and err["code"] == 404002, err
    assert "+1555010XXXX" in err["help"], err  # where its numbers are


async def test_switched_off_its_numbers_have_no_route(
    switch: SwitchFactory, callback_app: CallbackApp, tmp_path: Path,
) -> None:
    config = tmp_path / "off.toml"
    config.write_text("[simulator]\nenabled = false\n")
    sw = await switch(default_callback=callback_app.url, extra_args=["--config", str(config)])
    body = {"call": {"no": LIVE, "caller_id_no": CALLER_ID}}
    async with rest(sw) as http, http.post("/v1/Dials/Connect", json=body) as resp:
        err = await resp.json()
    assert resp.status == 400 and "no outbound route" in err["message"] + err.get(
        "help", ""), err
    status, listing = await get(sw, "/v1/Simulator/Numbers")
    assert status == 200 and listing["enabled"] is False and listing["numbers"] is None


async def test_a_malformed_range_stops_the_switch_at_startup(tmp_path: Path) -> None:
    for text, says in (('numbers = "+1555010XXX"', "simulator numbers"),
                       ('numbers = "+1949555XXXX"', "overlap the numbers pool"),
                       ('numbers = 12', "simulator numbers")):
        config = tmp_path / "bad.toml"
        config.write_text(f"[simulator]\n{text}\n")
        proc = await asyncio.create_subprocess_exec(
            *voxswitch_argv(), "serve", "--config", str(config), "--data-dir",
            str(tmp_path / "data"), "--sip-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 2, (text, stderr)
        message = stderr.decode()
        assert message.startswith("voxswitch: ") and says in message, (text, message)
        assert "Traceback" not in message, message


async def test_a_flows_dial_reaches_the_live_person_with_detection(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call" and req.fields["direction"] == "inbound":
            return Reply.actions([
                {"type": "DIAL", "params": {"no": LIVE, "caller_id_no": CALLER_ID,
                                            "detection": "preconnect"}},
                {"type": "PAUSE", "params": {"seconds": 2}}, HANGUP])
        if req.type == "init_call":  # the dialled call's own flow
            return Reply.actions([{"type": "PAUSE", "params": {"seconds": 1}}, HANGUP])
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                   params={"BYE_TIMEOUT_MS": 20000}, timeout=30)
    result.assert_ok()
    child = await callback_app.wait_for(
        type="init_call", timeout=20, predicate=lambda r: r.fields["direction"] == "outbound")
    assert child.fields["detection"] == "live_person", child.fields
    log = await ended_log(sw, child.fields["call_id"])
    parent = callback_app.of_type("init_call")[0].fields["call_id"]
    assert (log["status"], log["parent_call_id"], log["caller_no"]) == (
        "completed", parent, LIVE), log


async def test_voxswitch_dial_calls_a_simulator_number(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 0.5}}, HANGUP]))
    sw = await switch(default_callback=callback_app.url)
    proc = await asyncio.create_subprocess_exec(
        *voxswitch_argv(), "dial", VOICEMAIL, "--from", CALLER_ID, "--url", sw.http_url,
        "--api-key", sw.api_key, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    call_id = out.decode().strip().rpartition(": call ")[2]
    init = await callback_app.wait_for(type="init_call", timeout=15,
                                       predicate=of_call(call_id))
    assert init.fields["caller_no"] == VOICEMAIL
    assert (await ended_log(sw, call_id))["status"] == "completed"
