"""The scripted callback app, driven by a plain aiohttp client."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.support.callback_app import CallbackApp, CallbackRequest, Reply

INIT = {"service": "programmable_voice", "type": "init_call", "call_id": "1@2"}
END = {"service": "programmable_voice", "type": "end_call", "call_id": "1@2"}


async def test_records_json_and_answers_by_type() -> None:
    script = {"init_call": Reply.actions([{"type": "SAY", "params": {"text": "hi"}}]),
              "end_call": Reply(status=204)}
    async with CallbackApp(script) as app, aiohttp.ClientSession() as http:
        async with http.post(app.url + "voice?x=1", json=INIT,
                             headers={"X-Test": "yes"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            assert await resp.json() == {"actions": [{"type": "SAY",
                                                      "params": {"text": "hi"}}]}
        async with http.post(app.url + "voice", json=END) as resp:
            assert resp.status == 204
        first = app.requests[0]
        assert (first.method, first.path, first.query) == ("POST", "/voice", {"x": "1"})
        assert first.headers["X-Test"] == "yes"
        assert first.type == "init_call" and first.fields["call_id"] == "1@2"
        end = await app.wait_for(type="end_call", timeout=1)
        assert end.index == 1 and end.arrived >= first.arrived
        assert app.of_type("init_call") == [first]


async def test_parses_xml_form_and_query_callbacks() -> None:
    xml = ("<request><type>live_call</type><call_id>7@8</call_id>"
           "<key_presses><name>menu</name><digits>12</digits></key_presses></request>")
    async with CallbackApp() as app, aiohttp.ClientSession() as http:
        await http.post(app.url, data=xml, headers={"Content-Type": "application/xml"})
        await http.post(app.url, data={"type": "end_call", "status": "completed"})
        await http.get(app.url + "cb", params={"type": "init_call", "key_presses.menu": "3"})
        xml_req, form_req, get_req = app.requests
        assert xml_req.body == {"type": "live_call", "call_id": "7@8",
                                "key_presses": {"name": "menu", "digits": "12"}}
        assert xml_req.type == "live_call"
        assert form_req.body == {"type": "end_call", "status": "completed"}
        assert get_req.body is None
        assert get_req.fields == {"type": "init_call", "key_presses.menu": "3"}
        assert [r.type for r in app.requests] == ["live_call", "end_call", "init_call"]


async def test_list_script_is_consumed_in_order_then_default() -> None:
    script = [Reply(status=500), {"actions": [{"type": "PAUSE"}]}, [{"type": "HANGUP"}]]
    default = Reply(status=404, body="nope")
    async with CallbackApp(script, default=default) as app, aiohttp.ClientSession() as http:
        got = []
        for _ in range(4):
            async with http.post(app.url, json=INIT) as resp:
                got.append((resp.status, await resp.text()))
        assert got[0][0] == 500
        assert json.loads(got[1][1]) == {"actions": [{"type": "PAUSE"}]}
        assert json.loads(got[2][1]) == {"actions": [{"type": "HANGUP"}]}
        assert got[3] == (404, "nope")
    assert len(script) == 3  # the caller's list is not consumed


async def test_per_type_lists_repeat_their_last_reply() -> None:
    script = {"live_call": [Reply(status=201), Reply(status=202)]}
    async with CallbackApp(script) as app, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(app.url, json={"type": "live_call"}) as resp:
                statuses.append(resp.status)
        async with http.post(app.url, json=INIT) as resp:  # unscripted type: default
            assert await resp.json() == {"actions": [{"type": "HANGUP"}]}
        assert statuses == [201, 202, 202]


async def test_callable_script_sync_and_async() -> None:
    def sync_script(req: CallbackRequest) -> Reply | None:
        return Reply(status=299) if req.type == "init_call" else None

    async def async_script(req: CallbackRequest) -> dict[str, object]:
        await asyncio.sleep(0)
        return {"echo": req.fields.get("call_id")}

    async with aiohttp.ClientSession() as http:
        async with CallbackApp(sync_script) as app:
            async with http.post(app.url, json=INIT) as resp:
                assert resp.status == 299
            async with http.post(app.url, json=END) as resp:
                assert resp.status == 200  # None -> default
        async with CallbackApp(async_script) as app, http.post(app.url, json=INIT) as resp:
            assert await resp.json() == {"echo": "1@2"}


async def test_script_errors_become_500_and_are_reported() -> None:
    def broken(req: CallbackRequest) -> Reply:
        raise KeyError("oops")

    async with CallbackApp(broken) as app, aiohttp.ClientSession() as http:
        async with http.post(app.url, json=INIT) as resp:
            assert resp.status == 500
        assert app.errors and "KeyError" in app.errors[0]


async def test_delay_triggers_a_client_timeout_but_is_recorded() -> None:
    async with CallbackApp([Reply(delay=5.0)]) as app, aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            await http.post(app.url, json=INIT, timeout=aiohttp.ClientTimeout(total=0.3))
        assert (await app.wait_for(type="init_call", timeout=1)).index == 0


async def test_raw_ccml_and_huge_bodies() -> None:
    huge = Reply.huge(100_000, [{"type": "HANGUP"}])
    script = [Reply.ccml("<Response><Hangup/></Response>"), huge,
              Reply(body=b"not json", content_type="application/json", headers={"X-A": "b"})]
    async with CallbackApp(script) as app, aiohttp.ClientSession() as http:
        async with http.post(app.url, json=INIT) as resp:
            assert resp.content_type == "application/xml"
            assert await resp.text() == "<Response><Hangup/></Response>"
        async with http.post(app.url, json=INIT) as resp:
            raw = await resp.read()
            assert len(raw) == 100_000
            assert json.loads(raw)["actions"] == [{"type": "HANGUP"}]
        async with http.post(app.url, json=INIT) as resp:
            assert (await resp.read(), resp.headers["X-A"]) == (b"not json", "b")


async def test_wait_for_counts_predicates_and_times_out() -> None:
    async with CallbackApp() as app, aiohttp.ClientSession() as http:
        waiter = asyncio.ensure_future(app.wait_for(type="live_call", count=2, timeout=5))
        for n in range(3):
            await http.post(app.url, json={"type": "live_call", "n": n})
        assert (await waiter).fields["n"] == 1
        hit = await app.wait_for(predicate=lambda r: r.fields.get("n") == 2, timeout=1)
        assert hit.index == 2
        with pytest.raises(AssertionError, match="no callback #1 of type 'end_call'"):
            await app.wait_for(type="end_call", timeout=0.2)
