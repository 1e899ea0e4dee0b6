"""CONFERENCE end to end: two SIPp calls sent to a room by their callback, seen and
steered over REST; a participant made to leave goes on with its flow (live_call)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

from .test_rest_live_actions import place_call, post


async def conferences(sw: RunningSwitch) -> list[dict[str, Any]]:
    async with rest(sw) as http, http.get("/v1/LiveCalls/Conferences") as resp:
        assert resp.status == 200
        return list((await resp.json())["conferences"])


async def until_participants(sw: RunningSwitch, n: int, timeout: float = 15) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            found = await conferences(sw)
            if found and found[0]["num_participants"] == n:
                return found[0]
            await asyncio.sleep(0.1)
    return await asyncio.wait_for(poll(), timeout)


async def test_two_callers_meet_and_leave_over_rest(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions([{"type": "CONFERENCE", "params": {
                "name": "lab-room", "auto_hold": True, "announce_on_join": "beep"}}])
        if req.type == "live_call":
            return Reply.actions([{"type": "HANGUP"}])
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    first = place_call(sipp_runner, sw)
    await until_participants(sw, 1)
    second = place_call(sipp_runner, sw)
    room = await until_participants(sw, 2)
    assert room["name"] == "lab-room" and room["status"] == "in-progress"
    ids = [p["call"]["id"] for p in room["participants"]]
    async with rest(sw) as http:
        part_id = room["participants"][0]["id"]
        path = f"/v1/LiveCalls/Conferences/{room['id']}/Participants/{part_id}"
        async with http.get(path) as resp:
            assert resp.status == 200
            assert (await resp.json())["call"]["id"] == ids[0]
    for call_id in ids:
        status, _ = await post(sw, f"/v1/LiveCalls/{call_id}/Actions/Conference/Mute",
                               {"conference_name": "lab-room"})
        assert status == 204
    assert all(p["muted"] for p in (await conferences(sw))[0]["participants"])
    for call_id in ids:
        status, _ = await post(sw, f"/v1/LiveCalls/{call_id}/Actions/Conference/Leave",
                               {"conference_name": "lab-room"})
        assert status == 204
    for call in (first, second):
        (await call).result.assert_ok()  # live_call → HANGUP: the flows went on
    assert await conferences(sw) == []
    for count in (1, 2):
        end = await callback_app.wait_for(type="end_call", timeout=20, count=count)
        assert end.fields["error_code"] is None, end.fields["error"]
    assert [r.type for r in callback_app.requests].count("live_call") == 2
