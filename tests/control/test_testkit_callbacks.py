"""control.testkit.callbacks: the plugin's callback server, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from control.testkit.callbacks import CallbackServer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[CallbackServer]:
    srv = CallbackServer()
    await srv.start()
    yield srv
    await srv.close()


async def post(srv: CallbackServer, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(srv.url, json=body) as resp:
        return resp.status, await resp.json()


async def test_a_script_answers_each_init_then_later_callbacks(server: CallbackServer) -> None:
    say = [{"type": "SAY", "params": {"text": "hi"}}]
    server.script(say)
    assert await post(server, {"type": "init_call", "call_id": "c1"}) == (200, {"actions": say})
    assert await post(server, {"type": "live_call"}) == (200, {"actions": [{"type": "HANGUP"}]})
    assert await post(server, {"type": "end_call", "key_presses": [
        {"name": "menu", "digits": "2", "history": ["2"]}]}) == (200, {})
    assert await post(server, {"type": "init_call"}) == (200, {"actions": say})  # next call
    assert [r["type"] for r in server.requests] == ["init_call", "live_call", "end_call",
                                                    "init_call"]
    assert server.of_type("init_call")[0]["call_id"] == "c1"
    assert server.last() == {"type": "init_call"}
    assert server.digits("menu") == "2" and server.digits("other") is None


async def test_steps_are_consumed_in_order_and_the_last_repeats(server: CallbackServer) -> None:
    server.steps([{"type": "PAUSE"}], {"actions": [{"type": "HANGUP"}], "name": "x"})
    replies = [await post(server, {"type": t}) for t in ("init_call", "live_call", "live_call")]
    assert replies == [(200, {"actions": [{"type": "PAUSE"}]}),
                       (200, {"actions": [{"type": "HANGUP"}], "name": "x"}),
                       (200, {"actions": [{"type": "HANGUP"}], "name": "x"})]


async def test_a_handler_that_raises_answers_500_and_is_kept(server: CallbackServer) -> None:
    @server.handler
    async def flow(body: dict[str, Any]) -> Any:
        if body["type"] == "live_call":
            raise KeyError("digits")
        return None

    assert await post(server, {"type": "init_call"}) == (200, {})
    status, body = await post(server, {"type": "live_call"})
    assert status == 500 and "KeyError: 'digits'" in body["traceback"]
    assert len(server.errors) == 1 and "KeyError" in server.errors[0]


async def test_form_and_query_callbacks_are_recorded_as_fields(server: CallbackServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.url, data={"type": "init_call", "api_no": "+1555"}):
            pass
        async with http.get(server.url, params={"type": "live_call", "call_id": "c9"}):
            pass
    assert server.requests == [{"type": "init_call", "api_no": "+1555"},
                               {"type": "live_call", "call_id": "c9"}]


async def test_wait_for_says_what_came_instead(server: CallbackServer) -> None:
    await post(server, {"type": "init_call"})
    waiter = asyncio.ensure_future(server.wait_for("end_call", timeout=5))
    await post(server, {"type": "end_call", "status": "completed"})
    assert (await waiter)["status"] == "completed"
    with pytest.raises(AssertionError, match=r"no failed_call callback within 0.1 s; "
                                             r"got init_call, end_call"):
        await server.wait_for("failed_call", timeout=0.1)


async def test_a_tone_is_served_for_play(server: CallbackServer) -> None:
    url = server.tone_url(440, 0.5)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200 and resp.content_type == "audio/wav"
        data = await resp.read()
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 1, 4000)
    async with aiohttp.ClientSession() as http, http.get(server.base_url + "/audio/x") as r:
        assert r.status == 404
