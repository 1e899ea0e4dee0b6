"""Queues over HTTP: every LiveCalls/Queues method, its shape and its error codes
(404711, 404712, 404713), on a real QueueService with a fake clock (members without
media), including the long poll woken by an offer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import control.api.queues as queues_api
from control.api import ApiContext, build_api
from control.calls import Call
from control.queues import LeaveReason, QueuedCall, QueueService

from .conftest import FakeClock

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]
MakeCall = Callable[..., Call]
APP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"  # conftest's APP_ID
T0 = datetime(2026, 11, 27, 9, 30, 0, tzinfo=UTC)
BASE = "/LiveCalls/Queues"


class Member:
    def __init__(self, call: Call) -> None:
        self.call = call

    def media_channel(self) -> None:
        return None

    async def audio(self, url: str) -> np.ndarray:
        return np.zeros(8, dtype=np.int16)


@pytest.fixture
def service(clock: FakeClock) -> QueueService:
    start = clock.now
    return QueueService(None, clock=clock,
                        wall=lambda: T0 + timedelta(seconds=clock.now - start))


@pytest.fixture
async def client(ctx: ApiContext, service: QueueService) -> AsyncIterator[Client]:
    ctx.queues = service
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
def offer(service: QueueService, make_call: MakeCall) -> Callable[..., QueuedCall]:
    count = iter(range(1, 100))

    def make(name: str = "sales") -> QueuedCall:
        n = next(count)
        call = make_call(f"{n}@77", caller_no=f"+1714555000{n}", connected_s=1)
        return service.offer((APP, 0), name, Member(call))

    return make


async def request(client: Client, auth: dict[str, str], method: str,
                  path: str) -> tuple[int, Any]:
    resp = await client.request(method, "/v1" + path, headers=auth)
    text = await resp.text()
    return resp.status, (json.loads(text) if text else None)


def queued_call(n: int, queued_on: str, hold_time: float, position: int) -> dict[str, Any]:
    return {"call": {"id": f"{n}@77", "no": f"+1714555000{n}", "caller_id_no": "+19495551212"},
            "queued_on": queued_on, "hold_time": hold_time, "position": position}


# ---- List Queues, View Queue Details -------------------------------------------------------


async def test_list_is_empty(client: Client, auth: dict[str, str]) -> None:
    assert await request(client, auth, "GET", BASE) == (200, {"queues": []})


async def test_list_and_view(client: Client, auth: dict[str, str], clock: FakeClock,
                             offer: Callable[..., QueuedCall]) -> None:
    offer()
    clock.now += 20
    offer()
    offer("support")
    clock.now += 10
    status, body = await request(client, auth, "GET", BASE)
    assert status == 200
    assert body == {"queues": [{"name": "sales", "hold_times": {"estimated": 20.0}},
                               {"name": "support", "hold_times": {"estimated": 10.0}}]}
    assert await request(client, auth, "GET", f"{BASE}/sales") == (
        200, {"name": "sales", "hold_times": {"estimated": 20.0}})


@pytest.mark.parametrize("path", [
    f"{BASE}/nowhere", f"{BASE}/nowhere/Calls", f"{BASE}/nowhere/Calls/1@77",
    f"{BASE}/nowhere/Peek", f"{BASE}/nowhere/Poll", f"{BASE}/bad%20name",
])
async def test_unknown_queue_is_404711(client: Client, auth: dict[str, str], check_error: Check,
                                       offer: Callable[..., QueuedCall], path: str) -> None:
    offer()
    status, body = await request(client, auth, "GET", path)
    assert status == 404
    check_error(body, 404, 404711)
    assert body["help"] == ("The queue ID may be wrong or the queue could have been garbage "
                            "collected.")
    assert body["user_message"] == "The requested queue was not found."


@pytest.mark.parametrize("method, path", [
    ("DELETE", f"{BASE}/nowhere"), ("DELETE", f"{BASE}/nowhere/Calls/1@77")])
async def test_unknown_queue_deletes_are_404711(client: Client, auth: dict[str, str],
                                                check_error: Check, method: str,
                                                path: str) -> None:
    _status, body = await request(client, auth, method, path)
    check_error(body, 404, 404711)


async def test_a_switch_without_queues(ctx: ApiContext, auth: dict[str, str],
                                       check_error: Check) -> None:
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))  # ctx.queues is None
    async with TestClient(TestServer(root, host="127.0.0.1")) as client:
        assert await request(client, auth, "GET", BASE) == (200, {"queues": []})
        _status, body = await request(client, auth, "GET", f"{BASE}/sales/Poll")
        check_error(body, 404, 404711)


# ---- List Queued Calls, View Queued Call Detail -----------------------------------------------


async def test_list_queued_calls(client: Client, auth: dict[str, str], clock: FakeClock,
                                 offer: Callable[..., QueuedCall]) -> None:
    offer()
    clock.now += 30.5
    offer()
    clock.now += 0.25
    status, body = await request(client, auth, "GET", f"{BASE}/sales/Calls")
    assert status == 200
    assert body == {
        "calls": [queued_call(1, "2026-11-27T09:30:00.000Z", 30.75, 1),
                  queued_call(2, "2026-11-27T09:30:30.500Z", 0.25, 2)],
        "queue_name": "sales",
        "hold_times": {"average": 15.5, "least": 0.25, "greatest": 30.75},
    }


async def test_list_calls_of_an_empty_queue(client: Client, auth: dict[str, str],
                                            service: QueueService,
                                            offer: Callable[..., QueuedCall]) -> None:
    offer()
    service.poll((APP, 0), "sales")
    assert await request(client, auth, "GET", f"{BASE}/sales/Calls") == (200, {
        "calls": [], "queue_name": "sales",
        "hold_times": {"average": 0.0, "least": 0.0, "greatest": 0.0}})


async def test_view_queued_call(client: Client, auth: dict[str, str], clock: FakeClock,
                                check_error: Check, offer: Callable[..., QueuedCall]) -> None:
    offer()
    offer()
    clock.now += 4
    status, body = await request(client, auth, "GET", f"{BASE}/sales/Calls/2@77")
    assert (status, body) == (200, queued_call(2, "2026-11-27T09:30:00.000Z", 4.0, 2))
    status, body = await request(client, auth, "GET", f"{BASE}/sales/Calls/9@77")
    check_error(body, 404, 404712)
    assert body["help"] == "The call is not in the queue. It may have left the queue already."
    assert body["user_message"] == "The requested queued call was not found."


# ---- Peek, Poll ---------------------------------------------------------------------------------


async def test_peek_leaves_the_call_queued(client: Client, auth: dict[str, str],
                                           clock: FakeClock, service: QueueService,
                                           offer: Callable[..., QueuedCall]) -> None:
    offer()
    offer()
    clock.now += 60
    want = queued_call(1, "2026-11-27T09:30:00.000Z", 60.0, 1)
    assert await request(client, auth, "GET", f"{BASE}/sales/Peek") == (200, want)
    assert await request(client, auth, "GET", f"{BASE}/sales/Peek") == (200, want)
    assert len(service.get((APP, 0), "sales").entries) == 2


async def test_empty_queue_peek_is_404713(client: Client, auth: dict[str, str],
                                          service: QueueService, check_error: Check,
                                          offer: Callable[..., QueuedCall]) -> None:
    offer()
    service.poll((APP, 0), "sales")
    _status, body = await request(client, auth, "GET", f"{BASE}/sales/Peek")
    check_error(body, 404, 404713)
    assert body["help"] == body["user_message"] == "The queue is empty. No call was found."


async def test_poll_takes_the_head(client: Client, auth: dict[str, str], clock: FakeClock,
                                   service: QueueService,
                                   offer: Callable[..., QueuedCall]) -> None:
    first = offer()
    offer()
    clock.now += 12
    status, body = await request(client, auth, "GET", f"{BASE}/sales/Poll")
    assert (status, body) == (200, queued_call(1, "2026-11-27T09:30:00.000Z", 12.0, 1))
    assert first.reason is LeaveReason.POLLED
    assert [e.call.id for e in service.get((APP, 0), "sales").entries] == ["2@77"]
    status, body = await request(client, auth, "GET", f"{BASE}/sales/Peek")
    assert body["call"]["id"] == "2@77" and body["position"] == 1


async def test_poll_of_an_empty_queue_returns_the_call_offered_next(
        client: Client, auth: dict[str, str], service: QueueService,
        offer: Callable[..., QueuedCall]) -> None:
    offer()
    service.poll((APP, 0), "sales")
    polling = asyncio.ensure_future(request(client, auth, "GET", f"{BASE}/sales/Poll"))
    queue = service.get((APP, 0), "sales")
    for _ in range(200):  # until the request is in and waiting
        if queue.waiters:
            break
        await asyncio.sleep(0.005)
    assert queue.waiters and not polling.done()
    entry = offer()
    status, body = await asyncio.wait_for(polling, 10)
    assert status == 200 and body["call"]["id"] == entry.call.id
    assert entry.reason is LeaveReason.POLLED and not queue.entries


async def test_poll_timeout_is_404713(client: Client, auth: dict[str, str],
                                      service: QueueService, check_error: Check,
                                      offer: Callable[..., QueuedCall],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queues_api, "POLL_TIMEOUT_S", 0.05)
    offer()
    service.poll((APP, 0), "sales")
    _status, body = await request(client, auth, "GET", f"{BASE}/sales/Poll")
    check_error(body, 404, 404713)


async def test_poll_of_a_deleted_queue_is_404711(client: Client, auth: dict[str, str],
                                                 service: QueueService, check_error: Check,
                                                 offer: Callable[..., QueuedCall]) -> None:
    offer()
    service.poll((APP, 0), "sales")
    polling = asyncio.ensure_future(request(client, auth, "GET", f"{BASE}/sales/Poll"))
    queue = service.get((APP, 0), "sales")
    for _ in range(200):
        if queue.waiters:
            break
        await asyncio.sleep(0.005)
    assert (await request(client, auth, "DELETE", f"{BASE}/sales"))[0] == 200
    _status, body = await asyncio.wait_for(polling, 10)
    check_error(body, 404, 404711)


# ---- Remove Queued Call, Delete Queue ------------------------------------------------------------


async def test_remove_queued_call(client: Client, auth: dict[str, str], service: QueueService,
                                  check_error: Check,
                                  offer: Callable[..., QueuedCall]) -> None:
    offer()
    second = offer()
    offer()
    assert await request(client, auth, "DELETE", f"{BASE}/sales/Calls/2@77") == (204, None)
    assert second.reason is LeaveReason.REMOVED
    _status, body = await request(client, auth, "GET", f"{BASE}/sales/Calls")
    assert [(c["call"]["id"], c["position"]) for c in body["calls"]] == [("1@77", 1),
                                                                         ("3@77", 2)]
    _status, body = await request(client, auth, "DELETE", f"{BASE}/sales/Calls/2@77")
    check_error(body, 404, 404712)


async def test_delete_queue(client: Client, auth: dict[str, str], clock: FakeClock,
                            check_error: Check, service: QueueService,
                            offer: Callable[..., QueuedCall]) -> None:
    entries = [offer(), offer()]
    clock.now += 9
    assert await request(client, auth, "DELETE", f"{BASE}/sales") == (
        200, {"name": "sales", "hold_times": {"estimated": 9.0}})
    assert all(e.reason is LeaveReason.QUEUE_DELETED for e in entries)
    assert await request(client, auth, "GET", BASE) == (200, {"queues": []})
    _status, body = await request(client, auth, "GET", f"{BASE}/sales")
    check_error(body, 404, 404711)
    _status, body = await request(client, auth, "DELETE", f"{BASE}/sales")
    check_error(body, 404, 404711)
    offer()  # offering recreates it
    assert (await request(client, auth, "GET", f"{BASE}/sales"))[0] == 200


async def test_queue_names_do_not_collide_with_call_ids(client: Client, auth: dict[str, str],
                                                        make_call: MakeCall) -> None:
    make_call("Queues")  # a call id that looks like the path: the queue routes win
    assert await request(client, auth, "GET", BASE) == (200, {"queues": []})


# ---- OpenAPI -------------------------------------------------------------------------------------


async def test_every_queue_route_is_documented_with_its_schema(
        client: Client, auth: dict[str, str]) -> None:
    status, doc = await request(client, auth, "GET", "/openapi.json")
    assert status == 200
    paths = doc["paths"]
    want = {
        ("get", BASE): "queues",
        ("get", f"{BASE}/{{queue_name}}"): "hold_times",
        ("delete", f"{BASE}/{{queue_name}}"): "hold_times",
        ("get", f"{BASE}/{{queue_name}}/Calls"): "calls",
        ("get", f"{BASE}/{{queue_name}}/Calls/{{call_id}}"): "position",
        ("get", f"{BASE}/{{queue_name}}/Peek"): "position",
        ("get", f"{BASE}/{{queue_name}}/Poll"): "position",
    }
    for (method, path), prop in want.items():
        op = paths[path][method]
        assert op["tags"] == ["Queues"]
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert prop in schema["properties"], (method, path)
    remove = paths[f"{BASE}/{{queue_name}}/Calls/{{call_id}}"]["delete"]
    assert "204" in remove["responses"]
