"""QUEUE end to end on the real switch with SIPp callers: who hears what (judged from the
RTP the switch sends to each peer, as in test_conference_audio), the REST views before
and after each step, the callbacks that carry `last_queue_poll_connect_call`, the REST
long poll woken by an offer, and a caller hanging up while queued."""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

from .test_conference_audio import (
    HEARD_DB,
    HOLD_HZ,
    SILENT_DB,
    call_ids,
    is_webhook,
    received_by_port,
    serve_hold_audio,
    settle_window,
    start_sipp,
)

CALLER_1_HZ, CALLER_2_HZ, AGENT_HZ = 697, 852, 1500
PROBES = (CALLER_1_HZ, CALLER_2_HZ, AGENT_HZ, HOLD_HZ)
QUEUES = "/v1/LiveCalls/Queues"
HANGUP = [{"type": "HANGUP"}]


def flow_script(init: dict[str, list[dict[str, Any]]],
                live: dict[str, list[list[dict[str, Any]]]] | None = None
                ) -> Callable[[CallbackRequest], Any]:
    """init_call -> init[api_no]; each call's n-th live_call -> live[api_no][n] (HANGUP
    once they run out); end_call and webhooks -> {}; GET /hold.wav -> 2200 Hz."""
    seen: dict[str, int] = {}

    def script(req: CallbackRequest) -> Any:
        served = serve_hold_audio(req)
        if served is not None:
            return served
        if is_webhook(req) or req.type not in ("init_call", "live_call"):
            return Reply(json={})
        number = str(req.fields.get("api_no"))
        if req.type == "init_call":
            return init[number]
        call_id = str(req.fields["call_id"])
        n = seen[call_id] = seen.get(call_id, -1) + 1
        replies = (live or {}).get(number, [])
        return replies[n] if n < len(replies) else HANGUP

    return script


def queue_offer(name: str, hold_url: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"name": name}
    if hold_url:
        params["hold_audio"] = hold_url
    return [{"type": "QUEUE", "params": params}]


async def get(sw: RunningSwitch, path: str) -> tuple[int, Any]:
    async with rest(sw) as http, http.get(path) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


async def delete(sw: RunningSwitch, path: str) -> tuple[int, Any]:
    async with rest(sw) as http, http.delete(path) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


async def queued(sw: RunningSwitch, name: str) -> dict[str, Any]:
    status, body = await get(sw, f"{QUEUES}/{name}/Calls")
    assert status == 200, body
    return dict(body)


async def until_queued(sw: RunningSwitch, name: str, check: Callable[[list[str]], bool],
                       what: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll List Queued Calls until `check(call ids in order)` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await get(sw, f"{QUEUES}/{name}/Calls")
        if status == 200 and check([c["call"]["id"] for c in body["calls"]]):
            return dict(body)
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; queue: {status} {body}")
        await asyncio.sleep(0.05)


async def until_id(app: CallbackApp, number: str) -> str:
    await app.wait_for(type="init_call", predicate=lambda r: r.fields["api_no"] == number,
                       timeout=15)
    return call_ids(app)[number]


def queue_lines(sw: RunningSwitch, event: str) -> list[dict[str, Any]]:
    out = []
    for line in sw.log_lines():
        if f'"{event}"' in line:
            record = json.loads(line)
            if record.get("event") == event:
                out.append(record)
    return out


def heard(pcm: audio.Pcm, what: str, freqs: Iterable[int] = PROBES) -> set[int]:
    """The probe tones heard in `pcm` (100 ms frames: 697 and 852 Hz stay apart); an
    AssertionError for a level neither clearly heard nor clearly absent."""
    assert len(pcm) >= audio.RATE, f"{what}: only {len(pcm) / audio.RATE:.2f} s of audio"
    levels = {}
    for hz in freqs:
        level, _ = audio.tone_power(pcm, hz, frame_s=0.1)
        power = float(np.mean(10 ** (level / 10))) if level.size else 0.0
        levels[hz] = 10 * np.log10(power) if power > 0 else audio.SILENCE_DB
    unclear = {hz: round(db, 1) for hz, db in levels.items() if SILENT_DB < db < HEARD_DB}
    assert not unclear, f"{what}: ambiguous tone levels {unclear} (all: {levels})"
    return {hz for hz, db in levels.items() if db >= HEARD_DB}


def check_positions(body: dict[str, Any], ids: list[str]) -> None:
    calls = body["calls"]
    assert [c["call"]["id"] for c in calls] == ids, body
    assert [c["position"] for c in calls] == list(range(1, len(ids) + 1)), body
    waits = [c["hold_time"] for c in calls]
    assert waits == sorted(waits, reverse=True), body  # the head waited longest
    if waits:
        assert body["hold_times"]["least"] == min(waits), body
        assert body["hold_times"]["greatest"] == max(waits), body
        assert abs(body["hold_times"]["average"] - sum(waits) / len(waits)) <= 0.001, body
    else:
        assert body["hold_times"] == {"average": 0, "least": 0, "greatest": 0}, body


async def test_agent_poll_connect_hears_the_first_caller_only(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path,
) -> None:
    hold_url = callback_app.url + "hold.wav"
    agent_flow = [{"type": "QUEUE", "params": {"name": "support", "event": "poll_connect"},
                   "events": {"on_enter_error": HANGUP}},
                  {"type": "PAUSE", "params": {"seconds": 5}}]
    callback_app.set_script(flow_script(
        init={"3001": queue_offer("support", hold_url), "3002": queue_offer("support", hold_url),
              "3009": agent_flow},
        # after the queue: caller 1 stays on (bridged) a while; caller 2 (removed over REST)
        # and the agent (after its PAUSE) hang up at their next live_call
        live={"3001": [[{"type": "PAUSE", "params": {"seconds": 10}}]]}))
    sw = await switch(default_callback=callback_app.url)
    ports = {k: free_rtp_port() for k in ("c1", "c2", "agent")}
    async with Capture(tmp_path, "queue") as cap:
        await cap.start(ports.values(), duration=60)
        c1 = start_sipp(sipp_runner, sw, tmp_path, "3001", CALLER_1_HZ,
                        media_port=ports["c1"])
        id1 = await until_id(callback_app, "3001")
        await until_queued(sw, "support", lambda ids: ids == [id1], "caller 1 queued")
        c2 = start_sipp(sipp_runner, sw, tmp_path, "3002", CALLER_2_HZ,
                        media_port=ports["c2"])
        id2 = await until_id(callback_app, "3002")
        before = await until_queued(sw, "support", lambda ids: ids == [id1, id2],
                                    "both callers queued")
        queued_at = time.time()

        # two callers waiting: positions, hold times, the queue, one call, Peek
        check_positions(before, [id1, id2])
        status, listing = await get(sw, QUEUES)
        assert status == 200 and [q["name"] for q in listing["queues"]] == ["support"]
        assert listing["queues"][0]["hold_times"]["estimated"] > 0  # no history: mean wait
        status, one = await get(sw, f"{QUEUES}/support/Calls/{id2}")
        assert status == 200 and one["position"] == 2 and one["call"]["id"] == id2, one
        assert one["call"]["no"] == "sipp" and one["call"]["caller_id_no"] == "3002", one
        status, head = await get(sw, f"{QUEUES}/support/Peek")
        assert status == 200 and head["call"]["id"] == id1 and head["position"] == 1, head
        t0, t1 = await settle_window(queued_at)
        windows = [("queued", t0, t1, {"c1": {HOLD_HZ}, "c2": {HOLD_HZ}})]

        # the agent connects with the head call: caller 2 moves up
        agent = start_sipp(sipp_runner, sw, tmp_path, "3009", AGENT_HZ,
                           media_port=ports["agent"])
        id_agent = await until_id(callback_app, "3009")
        after = await until_queued(sw, "support", lambda ids: ids == [id2],
                                   "caller 1 taken by the agent")
        connected_at = time.time()
        check_positions(after, [id2])
        assert after["calls"][0]["hold_time"] > one["hold_time"], (after, one)
        status, gone = await get(sw, f"{QUEUES}/support/Calls/{id1}")
        assert status == 404 and gone["code"] == 404712, gone
        [left] = [r for r in queue_lines(sw, "queue.left") if r["call_id"] == id1]
        assert left["queue"] == "support" and left["reason"] == "poll_connected", left
        status, view = await get(sw, f"{QUEUES}/support")
        # one served call (from position 1): a new caller, 2nd, expects twice its wait
        assert status == 200
        assert abs(view["hold_times"]["estimated"] - 2 * left["wait_s"]) <= 0.002, (view, left)
        t0, t1 = await settle_window(connected_at)
        windows.append(("connected", t0, t1, {"agent": {CALLER_1_HZ}, "c1": {AGENT_HZ},
                                              "c2": {HOLD_HZ}}))

        # the agent's PAUSE ends, its live_call hangs it up; caller 1 stays, unbridged
        (await agent.task).assert_ok()
        agent_gone = time.time()
        t0, t1 = await settle_window(agent_gone)
        windows.append(("agent gone", t0, t1, {"c1": set(), "c2": {HOLD_HZ}}))

        # REST takes caller 2 out: its flow goes on (live_call -> HANGUP)
        assert await delete(sw, f"{QUEUES}/support/Calls/{id2}") == (204, None)
        (await c2.task).assert_ok()
        (await c1.task).assert_ok()
        check_positions(await queued(sw, "support"), [])
        pcap = await cap.stop()

    received = received_by_port(pcap, ports.values())
    problems = []
    for name, t0, t1, expect in windows:
        for who, want in expect.items():
            got = heard(received[ports[who]].window(t0, t1), f"{name}/{who}")
            if got != want:
                problems.append(f"{name}: {who} heard {sorted(got)}, want {sorted(want)}")
    assert not problems, "\n".join(problems)

    # later callbacks name the other call; caller 2 was never connected
    def live_calls(call_id: str) -> list[CallbackRequest]:
        return [r for r in callback_app.of_type("live_call")
                if r.fields["call_id"] == call_id and not is_webhook(r)]

    def of_call(call_id: str) -> Callable[[CallbackRequest], bool]:
        return lambda r: r.fields["call_id"] == call_id

    ends = {cid: await callback_app.wait_for(type="end_call", predicate=of_call(cid),
                                             timeout=20)
            for cid in (id1, id2, id_agent)}
    to_agent = {"id": id_agent, "no": "sipp"}
    to_caller = {"id": id1, "no": "sipp"}
    assert [r.fields["last_queue_poll_connect_call"] for r in live_calls(id1)] == [
        to_agent, to_agent]
    assert ends[id1].fields["last_queue_poll_connect_call"] == to_agent
    assert [r.fields["last_queue_poll_connect_call"] for r in live_calls(id_agent)] == [
        to_caller]
    assert ends[id_agent].fields["last_queue_poll_connect_call"] == to_caller
    assert all(r.fields["last_queue_poll_connect_call"] is None
               for r in [*live_calls(id2), ends[id2]])
    assert all(e.fields["error_code"] is None for e in ends.values()), ends

    # the call logs keep each stay
    for call_id, reason in ((id1, "poll_connected"), (id2, "removed")):
        status, record = await get(sw, f"/v1/History/Logs/Calls/{call_id}")
        assert status == 200, record
        [stay] = record["queues"]
        assert stay["name"] == "support" and stay["reason"] == reason, record
        assert stay["wait_s"] > 0
    status, record = await get(sw, f"/v1/History/Logs/Calls/{id_agent}")
    assert record["queues"] == []


async def test_rest_long_poll_returns_the_call_offered_later(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path,
) -> None:
    callback_app.set_script(flow_script(init={"3101": queue_offer("lp"),
                                              "3102": queue_offer("lp")}))
    sw = await switch(default_callback=callback_app.url)
    status, body = await get(sw, f"{QUEUES}/lp/Poll")
    assert status == 404 and body["code"] == 404711, body  # at once: no such queue
    first = start_sipp(sipp_runner, sw, tmp_path, "3101", CALLER_1_HZ, timeout=30)
    id1 = await until_id(callback_app, "3101")
    await until_queued(sw, "lp", lambda ids: ids == [id1], "first caller queued")
    status, polled = await get(sw, f"{QUEUES}/lp/Poll")  # a call is waiting: no wait
    assert status == 200 and polled["call"]["id"] == id1 and polled["position"] == 1, polled
    (await first.task).assert_ok()  # released: its flow went on to live_call -> HANGUP
    check_positions(await queued(sw, "lp"), [])

    # the queue exists and is empty: this poll waits for the next offer
    started = time.time()
    polling = asyncio.ensure_future(get(sw, f"{QUEUES}/lp/Poll"))
    await asyncio.sleep(0.5)
    assert not polling.done()
    second = start_sipp(sipp_runner, sw, tmp_path, "3102", CALLER_2_HZ, timeout=30)
    status, polled = await asyncio.wait_for(polling, 20)
    returned = time.time()
    id2 = call_ids(callback_app)["3102"]
    assert status == 200, polled  # the call, not the 404713 of a poll that timed out
    assert polled["call"]["id"] == id2 and polled["position"] == 1, polled
    [offered] = [r for r in queue_lines(sw, "queue.offered") if r["call_id"] == id2]
    [left] = [r for r in queue_lines(sw, "queue.left") if r["call_id"] == id2]
    assert left["reason"] == "polled" and left["wait_s"] < 1.0, left  # handed over at once
    offered_at = calendar.timegm(time.strptime(offered["ts"][:19], "%Y-%m-%dT%H:%M:%S")) \
        + int(offered["ts"][20:23]) / 1000
    print(f"long poll: waited {returned - started:.3f} s in all; returned "
          f"{returned - offered_at:.3f} s after the offer was logged")
    (await second.task).assert_ok()


async def test_a_caller_hanging_up_leaves_the_queue(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path,
) -> None:
    callback_app.set_script(flow_script(init={n: queue_offer("hq")
                                              for n in ("3201", "3202", "3203")}))
    sw = await switch(default_callback=callback_app.url)
    first = start_sipp(sipp_runner, sw, tmp_path, "3201", CALLER_1_HZ, timeout=40)
    id1 = await until_id(callback_app, "3201")
    await until_queued(sw, "hq", lambda ids: ids == [id1], "first queued")
    # the second caller hangs up by itself after 4 s
    quitter = asyncio.ensure_future(sipp_runner.run(
        "uac_listen.xml", sw.sip_udp, service="3202", params={"PAUSE_MS": 4000}, timeout=30))
    id2 = await until_id(callback_app, "3202")
    await until_queued(sw, "hq", lambda ids: ids == [id1, id2], "second queued")
    third = start_sipp(sipp_runner, sw, tmp_path, "3203", CALLER_2_HZ, timeout=40)
    id3 = await until_id(callback_app, "3203")
    check_positions(await until_queued(sw, "hq", lambda ids: ids == [id1, id2, id3],
                                       "three queued"), [id1, id2, id3])
    (await quitter).assert_ok()
    after = await until_queued(sw, "hq", lambda ids: ids == [id1, id3], "the quitter gone")
    check_positions(after, [id1, id3])
    [left] = [r for r in queue_lines(sw, "queue.left") if r["call_id"] == id2]
    assert left["queue"] == "hq" and left["reason"] == "hung_up" and left["wait_s"] > 0
    end = await callback_app.wait_for(type="end_call",
                                      predicate=lambda r: r.fields["call_id"] == id2)
    assert end.fields["status"] == "completed"
    status, record = await get(sw, f"/v1/History/Logs/Calls/{id2}")
    assert status == 200 and [s["reason"] for s in record["queues"]] == ["hung_up"], record

    # deleting the queue releases the others: their flows go on (live_call -> HANGUP)
    status, deleted = await delete(sw, f"{QUEUES}/hq")
    assert status == 200 and deleted["name"] == "hq", deleted
    assert set(deleted["hold_times"]) == {"estimated"}
    (await first.task).assert_ok()
    (await third.task).assert_ok()
    status, body = await get(sw, f"{QUEUES}/hq")
    assert status == 404 and body["code"] == 404711, body
    assert await get(sw, QUEUES) == (200, {"queues": []})
    for call_id in (id1, id3):
        status, record = await get(sw, f"/v1/History/Logs/Calls/{call_id}")
        assert [s["reason"] for s in record["queues"]] == ["queue_deleted"], record
