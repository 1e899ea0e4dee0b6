"""GET /v1/LiveEvents: whole snapshots as server-sent events, one at once and one per
change, over the real sub-app and a real CallRegistry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from control.calls import CallRegistry, CallStatus, HangupEnd
from tests.control.api.conftest import MakeCall

Client = TestClient[web.Request, web.Application]


async def next_event(resp: Any, timeout: float = 5.0) -> dict[str, Any]:
    """The data of the next `live` event on the stream (comments and retry skipped)."""
    block: list[str] = []
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode()
        if line == "":
            raise AssertionError("the stream ended")
        if line == "\n":
            if any(b.startswith("event: live") for b in block):
                data = next(b for b in block if b.startswith("data: "))
                return dict(json.loads(data[len("data: "):]))
            block = []
            continue
        block.append(line.rstrip("\n"))


async def test_the_stream_sends_a_snapshot_at_once_and_again_on_each_change(
    client: Client, auth: dict[str, str], make_call: MakeCall, registry: CallRegistry,
) -> None:
    async with client.get("/v1/LiveEvents", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert await next_event(resp) == {"calls": [], "conferences": [], "queues": []}
        call = make_call("7@1", connected_s=3)
        snap = await next_event(resp)
        [view] = snap["calls"]
        assert view["id"] == "7@1" and view["status"] == "live-in-progress"
        # the answer as epoch ms instead of a duration that changes every instant
        assert "connected_time" not in view
        assert abs(view["connected_at"] / 1000 - call.connect_time.timestamp()) < 0.01
        call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
        registry.ended(call)
        assert (await next_event(resp))["calls"] == []


async def test_nothing_is_sent_while_nothing_changes(
    client: Client, auth: dict[str, str], make_call: MakeCall,
) -> None:
    make_call("8@1", connected_s=1)
    async with client.get("/v1/LiveEvents", headers=auth) as resp:
        await next_event(resp)
        try:
            await next_event(resp, timeout=1.0)  # four samples, all the same
        except TimeoutError:
            return
        raise AssertionError("a second event without a change")


async def test_max_events_ends_the_stream_and_bad_values_are_400001(
    client: Client, auth: dict[str, str],
    check_error: Callable[[dict[str, Any], int, int], None],
) -> None:
    async with client.get("/v1/LiveEvents?max_events=1", headers=auth) as resp:
        text = await asyncio.wait_for(resp.text(), 5)
    assert text.count("event: live") == 1
    for bad in ("0", "x", "-3"):
        async with client.get(f"/v1/LiveEvents?max_events={bad}", headers=auth) as resp:
            assert resp.status == 400
            check_error(await resp.json(), 400, 400001)


async def test_the_stream_needs_the_api_key(
    client: Client, check_error: Callable[[dict[str, Any], int, int], None],
) -> None:
    async with client.get("/v1/LiveEvents") as resp:
        assert resp.status == 401
        check_error(await resp.json(), 401, 401001)
