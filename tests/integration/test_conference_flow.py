"""CONFERENCE flow end to end: key combinations over RFC 4733, DTMF passthrough, the
max_participants error handler, auto_hold, hold_on_join/start_on_join and end_on_exit,
each judged by what the peers receive (see test_conference_audio for the method), the
callbacks the flows make, and the REST views.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import audio
from tests.support.baresip import BaresipRunner
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, dtmf_digits, dtmf_events
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner

from .test_conference_audio import (
    HEARD_DB,
    HOLD_HZ,
    LEVEL_DBFS,
    Received,
    SippPeer,
    by_call,
    call_ids,
    check_views,
    conference_action,
    conferences,
    heard,
    is_live_call,
    is_webhook,
    received_by_port,
    serve_hold_audio,
    settle_window,
    start_sipp,
    tone_levels,
    until_count,
    until_view,
)
from .test_dtmf_in import digit_log

PCAP_DIR = Path("/usr/share/sip-tester")
Script = Callable[[CallbackRequest], Any]


def flow_script(init: dict[str, list[dict[str, Any]]],
                live: dict[str, list[dict[str, Any]]] | None = None) -> Script:
    """init_call -> init[api_no]; live_call -> live[api_no] (default HANGUP); webhooks and
    end_call -> {}; GET /hold.wav -> the 2200 Hz hold audio."""
    def script(req: CallbackRequest) -> Any:
        served = serve_hold_audio(req)
        if served is not None:
            return served
        number = str(req.fields.get("api_no"))
        if is_webhook(req) or req.type not in ("init_call", "live_call"):
            return Reply(json={})
        if req.type == "init_call":
            return init[number]
        return (live or {}).get(number, [{"type": "HANGUP"}])
    return script


def webhook(event: str) -> list[dict[str, Any]]:
    return [{"type": "WEBHOOK", "params": {"event_name": event}}]


def of_call(call_id: str) -> Callable[[CallbackRequest], bool]:
    return lambda r: r.fields.get("call_id") == call_id


async def window_now() -> tuple[float, float]:
    """A listening window starting just after now (the state was confirmed by a view)."""
    return await settle_window(time.time())


def hears(received: Received, window: tuple[float, float], what: str) -> set[int]:
    return heard(received.window(*window), what)


# --- keys ----------------------------------------------------------------------------------

async def test_mute_unmute_and_exit_keys_over_rfc4733(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    baresip_runner: BaresipRunner, tmp_path: Path,
) -> None:
    """baresip (1600 Hz) presses 1 (mute), 3 (unmute), then '#0' (exit): the two SIPp
    participants stop and start hearing it, '#' alone does nothing, and the exit sends its
    flow on (live_call: a PAUSE while it keeps streaming, unheard, then HANGUP)."""
    room = {"type": "CONFERENCE", "params": {"name": "keys"}}
    keyed = {"type": "CONFERENCE", "params": {"name": "keys", "mute_on_key": "1",
                                              "unmute_on_key": "3", "exit_on_key": "#0"}}
    callback_app.set_script(flow_script(
        {"2001": [room, {"type": "HANGUP"}], "2002": [room, {"type": "HANGUP"}],
         "2003": [keyed]},
        live={"2003": [{"type": "PAUSE", "params": {"seconds": 3}}, {"type": "HANGUP"}]}))
    sw = await switch(default_callback=callback_app.url)
    async with baresip_runner.start(audio.sine(1600, 30.0, LEVEL_DBFS), 32.0,
                                    lifetime=45) as phone:
        async with Capture(tmp_path, "keys") as cap:
            ports = {"a": free_rtp_port(), "b": free_rtp_port()}
            await cap.start(ports.values(), duration=60)
            peers = {"a": start_sipp(sipp_runner, sw, tmp_path, "2001", 400,
                                     media_port=ports["a"]),
                     "b": start_sipp(sipp_runner, sw, tmp_path, "2002", 700,
                                     media_port=ports["b"])}
            await until_count(sw, 2)
            await phone.dial(f"sip:2003@{sw.sip_uri_host}")
            await until_count(sw, 3)
            ids = call_ids(callback_app)
            a, b, e = ids["2001"], ids["2002"], ids["2003"]
            windows = {"in": await window_now()}

            await phone.send_dtmf("1")
            await until_view(sw, lambda c: by_call(c[0])[e]["muted"], "muted by key 1")
            await check_views(sw, "keys", {a: (False, False), b: (False, False),
                                           e: (True, False)})
            windows["muted"] = await window_now()

            await phone.send_dtmf("3")
            await until_view(sw, lambda c: not by_call(c[0])[e]["muted"], "unmuted by key 3")
            windows["unmuted"] = await window_now()

            await phone.send_dtmf("#")
            await asyncio.sleep(0.8)
            await check_views(sw, "keys", {a: (False, False), b: (False, False),
                                           e: (False, False)})
            exit_pressed = time.time()
            await phone.send_dtmf("0")
            live = await callback_app.wait_for(
                predicate=lambda r: is_live_call(r) and of_call(e)(r), timeout=10)
            assert live.wall >= exit_pressed
            await until_count(sw, 2)
            windows["exited"] = await window_now()  # baresip still streams, in its PAUSE
            await phone.wait_event("CALL_CLOSED", timeout=15)  # its flow's HANGUP
            for call_id in (a, b):
                await conference_action(sw, call_id, "Leave", "keys")
            for peer in peers.values():
                (await peer.task).assert_ok()
            pcap = await cap.stop()
    got = received_by_port(pcap, ports.values())
    want = {"in": True, "muted": False, "unmuted": True, "exited": False}
    for name, window in windows.items():
        for key, other in (("a", 700), ("b", 400)):
            expected = {other, 1600} if want[name] else {other}
            assert hears(got[ports[key]], window, f"{name}/{key}") == expected, (name, key)
    assert [d for d, _ in digit_log(sw)] == ["1", "3", "#", "0"]
    assert {source for _, source in digit_log(sw)} == {"rfc4733"}


@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp's play_pcap_audio needs raw sockets (root)")
async def test_dtmf_passes_from_sender_to_receivers_only(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    """A send_dtmf participant plays RFC 4733 '1', '5', '#' (SIPp pcaps): the switch sends
    them as RFC 4733 to the receive_dtmf participant's leg only, not to a participant
    without receive_dtmf, nor back to the sender."""
    def conference(**flags: bool) -> list[dict[str, Any]]:
        return [{"type": "CONFERENCE", "params": {"name": "dtmf", **flags}}, {"type": "HANGUP"}]

    callback_app.set_script(flow_script({
        "3001": conference(receive_dtmf=True), "3002": conference(),
        "3003": conference(send_dtmf=True)}))
    sw = await switch(default_callback=callback_app.url)
    ports = {k: free_rtp_port() for k in ("r", "n", "s")}
    async with Capture(tmp_path, "dtmf") as cap:
        await cap.start(ports.values(), duration=60)
        receivers = [start_sipp(sipp_runner, sw, tmp_path, "3001", 400, media_port=ports["r"]),
                     start_sipp(sipp_runner, sw, tmp_path, "3002", 700, media_port=ports["n"])]
        await until_count(sw, 2)
        sender = SippPeer("3003", 0, ports["s"], asyncio.create_task(sipp_runner.run(
            "uac_pcap_dtmf.xml", sw.sip_udp, service="3003", media_port=ports["s"],
            params={"PCAP_DIR": PCAP_DIR, "LEAD_MS": 1500, "BYE_TIMEOUT_MS": 30000},
            timeout=40)))
        await until_count(sw, 3)

        async def three_digits() -> None:
            while len(digit_log(sw)) < 3:
                await asyncio.sleep(0.1)

        await asyncio.wait_for(three_digits(), 15)
        await asyncio.sleep(1.0)  # let the relayed events (and their end packets) go out
        ids = call_ids(callback_app)
        for number in ("3003", "3001", "3002"):
            await conference_action(sw, ids[number], "Leave", "dtmf")
        for peer in (*receivers, sender):
            (await peer.task).assert_ok()
        pcap = await cap.stop()
    assert [d for d, _ in digit_log(sw)] == ["1", "5", "#"]
    relayed = dtmf_events(pcap, ports["r"])
    assert dtmf_digits(relayed) == "15#", relayed
    assert sum(e.end for e in relayed) >= 3, relayed
    assert dtmf_events(pcap, ports["n"]) == []
    assert dtmf_events(pcap, ports["s"]) == []


# --- room rules ------------------------------------------------------------------------------

async def test_auto_hold_alone_then_max_participants_refuses_a_third(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    """Alone with auto_hold, the first caller hears the built-in hold music; once a second
    joins it hears that one instead. With max_participants 2 a third caller is refused:
    on_enter_error_max_participants runs (a WEBHOOK), then its flow goes on, and nobody in
    the room hears it meanwhile."""
    room = {"type": "CONFERENCE", "params": {"name": "small", "auto_hold": True,
                                             "max_participants": 2}, "events": {
        "on_enter_error_max_participants": webhook("conference_full"),
        "on_enter_error": webhook("join_failed"),
        "on_enter": webhook("joined")}}
    callback_app.set_script(flow_script({
        "4001": [room, {"type": "HANGUP"}], "4002": [room, {"type": "HANGUP"}],
        "4003": [room, {"type": "PAUSE", "params": {"seconds": 3}}, {"type": "HANGUP"}]}))
    sw = await switch(default_callback=callback_app.url)
    ports = {k: free_rtp_port() for k in ("a", "b", "c")}
    async with Capture(tmp_path, "small") as cap:
        await cap.start(ports.values(), duration=60)
        peers = [start_sipp(sipp_runner, sw, tmp_path, "4001", 400, media_port=ports["a"])]
        await until_count(sw, 1)
        alone = await window_now()
        peers.append(start_sipp(sipp_runner, sw, tmp_path, "4002", 700, media_port=ports["b"]))
        await until_count(sw, 2)
        together = await window_now()
        refused_at = time.time()
        peers.append(start_sipp(sipp_runner, sw, tmp_path, "4003", 1000,
                                media_port=ports["c"]))
        ids = call_ids(callback_app)
        while "4003" not in ids:
            await asyncio.sleep(0.05)
            ids = call_ids(callback_app)
        full = await callback_app.wait_for(predicate=lambda r: is_webhook(r) and of_call(
            ids["4003"])(r) and r.fields["event_name"] == "conference_full", timeout=10)
        assert full.wall >= refused_at
        conf = await check_views(sw, "small", {ids["4001"]: (False, False),
                                               ids["4002"]: (False, False)})
        assert conf["num_participants"] == 2
        refused = await window_now()  # the third caller is in its PAUSE, streaming 1000 Hz
        await check_views(sw, "small", {ids["4001"]: (False, False),
                                        ids["4002"]: (False, False)})
        await conference_action(sw, ids["4002"], "Leave", "small")
        await until_count(sw, 1)
        alone_again = await window_now()
        await conference_action(sw, ids["4001"], "Leave", "small")
        for peer in peers:
            (await peer.task).assert_ok()
        pcap = await cap.stop()
    got = received_by_port(pcap, ports.values())
    # alone (at first, and again once the other left): the built-in music (soft notes
    # under ~1.2 kHz), not silence, not its own tone
    for window in (alone, alone_again):
        music = got[ports["a"]].window(*window)
        assert len(music) >= audio.RATE
        assert audio.rms_dbfs(music) > -45, audio.rms_dbfs(music)
        assert audio.band_fraction(music, 80, 1250) > 0.95
        assert tone_levels(music, [400])[400] < HEARD_DB
    for window in (together, refused):
        for key, other in (("a", 700), ("b", 400)):
            pcm = got[ports[key]].window(*window)
            assert heard(pcm, key) == {other}
            # nothing but the other's tone: the music stopped
            assert audio.band_fraction(pcm, other - 50, other + 50) > 0.99, key
    # the refused caller heard nothing of the room
    assert heard(got[ports["c"]].window(*refused), "c") == set()
    events = [(r.fields["call_id"], r.fields["event_name"])
              for r in callback_app.requests if is_webhook(r)]
    assert sorted(events) == sorted([(ids["4001"], "joined"), (ids["4002"], "joined"),
                                     (ids["4003"], "conference_full"),
                                     (ids["4003"], "join_failed")]), events
    ends = callback_app.of_type("end_call")
    assert len(ends) == 3 and all(r.fields["error_code"] is None for r in ends), ends


async def test_hold_on_join_waits_for_the_starter_and_end_on_exit_ends_for_all(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    """Two hold_on_join callers wait on hold (hold audio, not each other: status on-hold)
    until a start_on_join caller arrives; then all three hear each other. That caller
    has end_on_exit: a REST Leave of it ends the conference and every flow goes on."""
    def conference(**params: Any) -> list[dict[str, Any]]:
        return [{"type": "CONFERENCE", "params": {
            "name": "waiting", "hold_audio": callback_app.url + "hold.wav", **params},
            "events": {"on_enter_waiting": webhook("waiting"),
                       "on_enter_started": webhook("started")}}]

    callback_app.set_script(flow_script({
        "5001": conference(hold_on_join=True), "5002": conference(hold_on_join=True),
        "5003": conference(start_on_join=True, end_on_exit=True)}))
    sw = await switch(default_callback=callback_app.url)
    ports = {k: free_rtp_port() for k in ("a", "b", "c")}
    tones = {"a": 400, "b": 700, "c": 1000}
    async with Capture(tmp_path, "waiting") as cap:
        await cap.start(ports.values(), duration=60)
        peers = [start_sipp(sipp_runner, sw, tmp_path, n, tones[k], media_port=ports[k])
                 for k, n in (("a", "5001"), ("b", "5002"))]
        await until_count(sw, 2)
        ids = call_ids(callback_app)
        conf = await check_views(sw, "waiting", {ids["5001"]: (False, True),
                                                 ids["5002"]: (False, True)}, status="on-hold")
        assert all(p["hold_on_join"] and not p["start_on_join"] for p in conf["participants"])
        waiting = await window_now()
        peers.append(start_sipp(sipp_runner, sw, tmp_path, "5003", 1000, media_port=ports["c"]))
        await until_count(sw, 3)
        ids = call_ids(callback_app)
        conf = await check_views(sw, "waiting", {ids[n]: (False, False)
                                                 for n in ("5001", "5002", "5003")})
        starter = by_call(conf)[ids["5003"]]
        assert starter["start_on_join"] and starter["end_on_exit"], starter
        started = await window_now()
        left_at = await conference_action(sw, ids["5003"], "Leave", "waiting")
        for number in ("5001", "5002", "5003"):
            live = await callback_app.wait_for(
                predicate=lambda r, n=number: is_live_call(r) and of_call(ids[n])(r),
                timeout=10)
            assert live.wall >= left_at - 0.05, number
        assert await conferences(sw) == []
        for peer in peers:
            (await peer.task).assert_ok()
        pcap = await cap.stop()
    got = received_by_port(pcap, ports.values())
    for key in ("a", "b"):
        assert hears(got[ports[key]], waiting, f"waiting/{key}") == {HOLD_HZ}
    for key, port in ports.items():
        want = {hz for k, hz in tones.items() if k != key}
        assert hears(got[port], started, f"started/{key}") == want
    events = sorted((r.fields["call_id"], r.fields["event_name"])
                    for r in callback_app.requests if is_webhook(r))
    assert events == sorted([(ids["5001"], "waiting"), (ids["5002"], "waiting"),
                             (ids["5003"], "started")]), events
