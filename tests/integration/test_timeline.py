"""GET /v1/LiveCalls/{id}/Timeline with a real SIPp caller and a scripted callback flow.

The call (`tapped_call`, shared with test_audio_taps.py): SIPp offers PCMA and
telephone-event, sends a 1 kHz tone for a second, then the digits 1 and 5 as RFC 4733
events (SIPp's bundled pcaps); the flow answers init_call with SAY + COLLECT (two
digits), live_call with HANGUP, so the switch sends the BYE. The timeline must list the
dialog's SIP messages, the three callbacks with their status, the actions in order and
the digits; it stays after the call, answers `since_ms`, and is gone after keep_s.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import audio, g711
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.pcap import write_rtp_pcap
from tests.support.sipp import SippResult, SippRunner
from tests.support.switch import RunningSwitch, rest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="SIPp's play_pcap_audio needs raw sockets (root)")

PCAP_DIR = Path("/usr/share/sip-tester")
NUMBER = "1000"
PROMPT = "Please enter two digits now."
TONE_HZ = 1000.0
TONE_S = 1.0
LEAD_MS = 300  # after the ACK, before the tone
GAP_MS = 1500  # between the tone's start and each digit's
ERROR_FIELDS = {"ref_id", "status", "code", "message", "help", "user_message"}


def flow(request: CallbackRequest) -> Any:
    if request.type == "init_call":
        return [{"type": "SAY", "params": {"text": PROMPT}},
                {"type": "COLLECT", "name": "menu",
                 "params": {"num_digits": 2, "timeout": 10000, "finish_on_key": "off"}}]
    if request.type == "live_call":
        return [{"type": "HANGUP"}]
    return Reply(json={})


@dataclass
class TappedCall:
    sw: RunningSwitch
    call_id: str
    sipp: SippResult


def taps_config(tmp_path: Path, **taps: Any) -> list[str]:
    """--config of a TOML file with the given [taps] settings."""
    lines = ["[taps]", *(f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
                         for k, v in taps.items())]
    path = tmp_path / "taps.toml"
    path.write_text("\n".join(lines) + "\n")
    return ["--config", str(path)]


async def tapped_call(switch: SwitchFactory, callback_app: CallbackApp,
                      sipp_runner: SippRunner, tmp_path: Path,
                      extra_args: Sequence[str] = (), **taps: Any) -> TappedCall:
    """One call of the flow above on a new switch with these [taps] settings."""
    callback_app.set_script(flow)
    sw = await switch(default_callback=callback_app.url,
                      extra_args=[*taps_config(tmp_path, **taps), *extra_args])
    tone = audio.sine(TONE_HZ, TONE_S, level=-10.0)
    # the scenario reads its three pcaps from one directory: the tone's and SIPp's own
    pcaps = tmp_path / "pcaps"
    write_rtp_pcap(pcaps / "tone.pcap", g711.alaw_encode(tone), ptime_ms=20, payload_type=8)
    for name in ("dtmf_2833_1.pcap", "dtmf_2833_5.pcap"):
        shutil.copy(PCAP_DIR / name, pcaps / name)
    result = await sipp_runner.run(
        "uac_pcap_dtmf.xml", sw.sip_udp, service=NUMBER, timeout=30,
        params={"PCAP_DIR": pcaps, "PCAP_A": "tone.pcap", "PCAP_B": "dtmf_2833_1.pcap",
                "PCAP_C": "dtmf_2833_5.pcap", "LEAD_MS": LEAD_MS, "GAP_MS": GAP_MS})
    result.assert_ok()
    end = await callback_app.wait_for(type="end_call", timeout=20)
    assert end.fields["status"] == "completed", end.fields
    return TappedCall(sw, str(end.fields["call_id"]), result)


async def get_json(sw: RunningSwitch, path: str) -> tuple[int, Any]:
    async with rest(sw) as http, http.get(path) as resp:
        return resp.status, await resp.json()


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


async def test_timeline_of_a_call_lists_sip_callbacks_actions_and_digits(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path, keep_s=60)
    status, body = await get_json(call.sw, f"/v1/LiveCalls/{call.call_id}/Timeline")
    assert status == 200, body
    assert body["call_id"] == call.call_id and body["live"] is False
    assert body["started"].endswith("Z") and body["dropped"] == 0
    events = body["events"]
    assert all({"at", "ms", "kind", "summary", "seq"} <= set(e) for e in events)
    assert sorted(e["seq"] for e in events) == list(range(len(events)))
    assert [e["ms"] for e in events] == sorted(e["ms"] for e in events)
    assert all(isinstance(e["ms"], int) and e["ms"] >= 0 for e in events)
    assert all(len(e["at"]) == len("2026-01-01T00:00:00.000Z") for e in events)

    # SIP: the dialog as seen on the wire, both ways
    sip = [(e["direction"], e.get("method") or e.get("status"), e["cseq"])
           for e in of_kind(events, "sip")]
    assert sip[0] == ("in", "INVITE", "1 INVITE"), sip
    for expected in [("out", 180, "1 INVITE"), ("out", 200, "1 INVITE"),
                     ("in", "ACK", "1 ACK"), ("out", "BYE", "1 BYE"), ("in", 200, "1 BYE")]:
        assert expected in sip, (expected, sip)
    order = [sip.index(x) for x in [("in", "INVITE", "1 INVITE"), ("out", 200, "1 INVITE"),
                                    ("in", "ACK", "1 ACK"), ("out", "BYE", "1 BYE")]]
    assert order == sorted(order), sip
    invite = of_kind(events, "sip")[0]
    assert invite["sdp"]["codecs"] == ["PCMA", "telephone-event"], invite
    assert invite["remote"].startswith("127.0.0.1:")
    ok = next(e for e in of_kind(events, "sip") if e.get("status") == 200)
    assert "PCMA" in ok["sdp"]["codecs"] and ok["sdp"]["port"] > 0, ok

    # callbacks: one attempt each, with status, latency and the actions returned
    callbacks = of_kind(events, "callback")
    assert [c["event"] for c in callbacks] == ["init_call", "live_call", "end_call"]
    assert all(c["status"] == 200 and c["outcome"] == "ok" for c in callbacks), callbacks
    assert all(c["url"] == callback_app.url and c["latency_ms"] >= 0 for c in callbacks)
    assert callbacks[0]["actions"] == ["SAY", "COLLECT"]
    assert callbacks[1]["actions"] == ["HANGUP"]

    # actions, start and end, in the order they ran
    actions = [(e["action"], e["phase"]) for e in of_kind(events, "action")]
    assert actions == [("SAY", "start"), ("SAY", "end"), ("COLLECT", "start"),
                       ("COLLECT", "end"), ("HANGUP", "start"), ("HANGUP", "end")], actions
    ends = [e["result"] for e in of_kind(events, "action") if e["phase"] == "end"]
    assert ends == ["done", "done", "call ended"]

    digits = [(e["digit"], e["source"]) for e in of_kind(events, "digit")]
    assert digits == [("1", "rfc4733"), ("5", "rfc4733")]
    # the digits came after the ACK (SIPp sends them then), before COLLECT ended
    kinds = [(e["kind"], e.get("method") or e.get("action"), e.get("phase")) for e in events]
    digit_at = [i for i, e in enumerate(events) if e["kind"] == "digit"]
    assert kinds.index(("sip", "ACK", None)) < digit_at[0]
    assert digit_at[-1] < kinds.index(("action", "COLLECT", "end"))

    calls = of_kind(events, "call")
    assert calls[0]["phase"] == "start" and calls[0]["api_no"] == NUMBER
    ended = next(e for e in calls if e.get("phase") == "end")
    assert ended["status"] == "completed" and ended["hangup_end"] == "api", ended
    assert "hung up by the switch" in ended["summary"]


async def test_since_ms_unknown_calls_bad_input_and_expiry(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    keep_s = 6  # the checks before expiry take a fraction of it
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path, keep_s=keep_s)
    path = f"/v1/LiveCalls/{call.call_id}/Timeline"
    status, body = await get_json(call.sw, path)
    assert status == 200
    events = body["events"]
    cut = next(e["ms"] for e in events if e.get("action") == "COLLECT")
    status, newer = await get_json(call.sw, f"{path}?since_ms={cut}")
    assert status == 200
    assert newer["events"] == [e for e in events if e["ms"] > cut]
    assert newer["events"] and all(e["ms"] > cut for e in newer["events"])
    status, none = await get_json(call.sw, f"{path}?since_ms={events[-1]['ms']}")
    assert status == 200 and none["events"] == []

    status, bad = await get_json(call.sw, f"{path}?since_ms=soon")
    assert status == 400 and bad["code"] == 400001 and set(bad) >= ERROR_FIELDS, bad
    assert "since_ms" in bad["message"]

    for unknown in ("999999@1", "nope"):
        status, err = await get_json(call.sw, f"/v1/LiveCalls/{unknown}/Timeline")
        assert status == 404 and err["code"] == 404404 and set(err) >= ERROR_FIELDS, err
        assert unknown in err["help"]

    # another account's view (a Sub Account's prefix) does not show the main's call
    async with rest(call.sw) as http:
        async with http.post("/v1/SubAccounts", json={"name": "other"}) as resp:
            assert resp.status in (200, 201), await resp.text()
            sub = (await resp.json())["id"]
        async with http.get(f"/v1/SubAccounts/{sub}/LiveCalls/{call.call_id}/Timeline"
                            ) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 404404

    # gone after keep_s (the sweeper or the next request expires it)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + keep_s + 10
    while True:
        status, body = await get_json(call.sw, path)
        if status == 404 or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert status == 404 and body["code"] == 404404, body


async def test_an_outbound_calls_timeline_while_live_and_polled_with_since_ms(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    """Dials/Connect to a SIPp UAS: our INVITE (sent before the call's timeline links its
    dialog) heads the timeline; it is served live, and since_ms polling gets the rest."""
    def outbound_flow(request: CallbackRequest) -> Any:
        if request.type == "init_call":
            return [{"type": "PAUSE", "params": {"seconds": 2}}, {"type": "HANGUP"}]
        return Reply(json={})

    callback_app.set_script(outbound_flow)
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_answer.xml", rtp_echo=False, calls=1) as uas:
        body = {"call": {"no": uas.uri("bob"), "caller_id_no": "+17145550100"}}
        async with rest(sw) as http, http.post("/v1/Dials/Connect", json=body) as resp:
            assert resp.status == 201, await resp.text()
            call_id = (await resp.json())["call"]["id"]
        path = f"/v1/LiveCalls/{call_id}/Timeline"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:  # until the PAUSE runs: the call is answered and live
            status, live = await get_json(sw, path)
            assert status == 200, live
            if any(e.get("action") == "PAUSE" for e in live["events"]) \
                    or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert live["live"] is True, live
        seen = live["events"]
        sip = [(e["direction"], e.get("method") or e.get("status")) for e in of_kind(seen, "sip")]
        assert sip[0] == ("out", "INVITE") and ("in", 200) in sip and ("out", "ACK") in sip, sip
        start = of_kind(seen, "call")[0]
        assert start["direction"] == "outbound" and "outbound call to" in start["summary"]
        # poll as the README says (the last ms - 1, skipping seqs already seen) until the
        # call has ended: the events gathered are the whole timeline, each once
        while loop.time() < deadline + 15:
            since = seen[-1]["ms"] - 1
            status, newer = await get_json(sw, f"{path}?since_ms={since}")
            assert status == 200
            assert all(e["ms"] > since for e in newer["events"])
            known = {e["seq"] for e in seen}
            seen += [e for e in newer["events"] if e["seq"] not in known]
            if not newer["live"]:
                break
            await asyncio.sleep(0.2)
        (await uas.finish()).assert_ok()
    assert newer["live"] is False
    status, whole = await get_json(sw, path)
    assert sorted(e["seq"] for e in seen) == sorted(e["seq"] for e in whole["events"])
    tail = [(e["kind"], e.get("method") or e.get("action") or e.get("phase")) for e in seen]
    for expected in [("action", "HANGUP"), ("sip", "BYE"), ("call", "end")]:
        assert expected in tail, (expected, tail)


async def test_detection_and_recording_show_in_the_timeline(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    """A call to the PSTN simulator's voicemail number (control.pstnsim) running RECORD
    and DETECT: the detection decisions and the recording's start and save are events
    of the call, from the services' own per-call log events."""
    def detect_flow(request: CallbackRequest) -> Any:
        if request.type == "init_call":
            return [{"type": "RECORD", "name": "whole"}, {"type": "DETECT"},
                    {"type": "HANGUP"}]
        return Reply(json={})

    callback_app.set_script(detect_flow)
    sw = await switch(default_callback=callback_app.url)
    body = {"call": {"no": "+15550102000", "caller_id_no": "+17145550100"}}
    async with rest(sw) as http, http.post("/v1/Dials/Connect", json=body) as resp:
        assert resp.status == 201, await resp.text()
        call_id = (await resp.json())["call"]["id"]
    end = await callback_app.wait_for(type="end_call", timeout=45,
                                      predicate=lambda r: r.fields["call_id"] == call_id)
    assert end.fields["detection"] == "voicemail", end.fields
    status, timeline = await get_json(sw, f"/v1/LiveCalls/{call_id}/Timeline")
    assert status == 200, timeline
    events = timeline["events"]
    detection = of_kind(events, "detection")
    assert [e["log_event"] for e in detection][:1] == ["detection.started"], detection
    decided = [e for e in detection if e["log_event"] == "detection.event"]
    assert decided and decided[0]["event"] == "voicemail", detection
    assert any(e["log_event"] == "detect.decided" and e["result"] == "voicemail"
               for e in detection), detection
    recording = [e["log_event"] for e in of_kind(events, "recording")]
    assert recording == ["recording.started", "recording.saved"], recording
    rid = end.fields["recordings"][0]["id"]
    assert all(rid in e["summary"] for e in of_kind(events, "recording"))
    kinds = [e["kind"] for e in events]
    assert kinds.index("recording") < kinds.index("detection")
