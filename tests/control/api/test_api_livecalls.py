"""LiveCalls methods over HTTP, against a real CallRegistry of real Calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.calls import Call, CallRegistry, CallStatus, HangupEnd
from control.storage import Storage

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]
MakeCall = Callable[..., Call]


async def list_calls(client: Client, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await client.get("/v1/LiveCalls", params=params, headers=auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [c["id"] for c in body["calls"]]


@pytest.fixture
def four_calls(make_call: MakeCall) -> list[Call]:
    return [
        make_call("10@1", caller_no="+17145550001", api_no="+19495550001", connected_s=30),
        make_call("9@1", caller_no="+17145550002", api_no="+19495550001", connected_s=120),
        make_call("11@1", caller_no="bob", api_no="1000", connected_s=5),
        make_call("12@1", caller_no="+17145550001", api_no="1000"),  # ringing: 0 ms
    ]


async def test_no_calls(client: Client, auth: dict[str, str]) -> None:
    assert await list_calls(client, auth) == {
        "calls": [],
        "longest_call": None,
        "shortest_call": None,
        "total_calls": 0,
    }


async def test_call_fields(client: Client, auth: dict[str, str], four_calls: list[Call]) -> None:
    body = await list_calls(client, auth, sort_by="id")
    first = body["calls"][0]
    assert set(first) == {
        "id",
        "no",
        "caller_id_no",
        "status",
        "detection",
        "date",
        "session_data",
        "connected_time",
        "error",
        "app_id",
        "subaccount_id",
        "direction",  # voxswitch extensions
        "parent_call_id",
    }
    assert first["id"] == "9@1" and first["no"] == "+17145550002"
    assert first["caller_id_no"] == "+19495550001"
    assert first["status"] == "live-in-progress"
    assert 120_000 <= first["connected_time"] < 125_000


async def test_default_sort_is_connected_time_ascending(
    client: Client, auth: dict[str, str], four_calls: list[Call]
) -> None:
    body = await list_calls(client, auth)
    assert ids(body) == ["12@1", "11@1", "10@1", "9@1"]
    times = [c["connected_time"] for c in body["calls"]]
    assert times == sorted(times) and times[0] == 0
    assert ids(await list_calls(client, auth, sort_order="desc")) == ["9@1", "10@1", "11@1", "12@1"]


async def test_sort_by_id_orders_sequence_numbers_numerically(
    client: Client, auth: dict[str, str], four_calls: list[Call]
) -> None:
    assert ids(await list_calls(client, auth, sort_by="id")) == ["9@1", "10@1", "11@1", "12@1"]
    body = await list_calls(client, auth, sort_by="ID", sort_order="desc")
    assert ids(body) == ["12@1", "11@1", "10@1", "9@1"]


async def test_longest_shortest_and_total(
    client: Client, auth: dict[str, str], four_calls: list[Call]
) -> None:
    body = await list_calls(client, auth)
    assert body["total_calls"] == 4
    assert body["longest_call"]["id"] == "9@1"
    assert body["longest_call"]["connected_time"] >= 120_000
    assert body["shortest_call"] == {"id": "12@1", "connected_time": 0}


async def test_max_results_limits_calls_not_the_summary(
    client: Client, auth: dict[str, str], four_calls: list[Call]
) -> None:
    body = await list_calls(client, auth, max_results=2, sort_order="desc")
    assert ids(body) == ["9@1", "10@1"]
    assert body["total_calls"] == 4
    assert body["shortest_call"]["id"] == "12@1"


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"filter_on_nos": "+17145550001"}, ["12@1", "10@1"]),
        ({"filter_on_nos": " 17145550001"}, ["12@1", "10@1"]),  # an unencoded "+"
        ({"filter_on_nos": "+1 714 555 0002,bob"}, ["11@1", "9@1"]),
        ({"filter_on_call_id_nos": "+19495550001"}, ["10@1", "9@1"]),
        ({"filter_on_call_id_nos": "1000", "filter_on_nos": "bob"}, ["11@1"]),
        ({"filter_on_apis": "CallFlows"}, ["12@1", "11@1", "10@1", "9@1"]),
        ({"min_connected_time": "30000"}, ["10@1", "9@1"]),
        ({"max_connected_time": "10000"}, ["12@1", "11@1"]),
        ({"min_connected_time": "1", "max_connected_time": "60000"}, ["11@1", "10@1"]),
        ({"filter_on_nos": "+15550000000"}, []),
    ],
)
async def test_filters(
    client: Client,
    auth: dict[str, str],
    four_calls: list[Call],
    params: dict[str, str],
    expected: list[str],
) -> None:
    body = await list_calls(client, auth, **params)
    assert ids(body) == expected
    assert body["total_calls"] == len(expected)


async def test_ended_calls_are_not_listed(
    client: Client, auth: dict[str, str], registry: CallRegistry, four_calls: list[Call]
) -> None:
    four_calls[0].mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    registry.ended(four_calls[0])
    assert "10@1" not in ids(await list_calls(client, auth))


@pytest.mark.parametrize(
    "params,field",
    [
        ({"sort_by": "date"}, "sort_by"),
        ({"sort_order": "up"}, "sort_order"),
        ({"filter_on_apis": "Dials"}, "filter_on_apis"),
        ({"max_results": "0"}, "max_results"),
        ({"max_results": "many"}, "max_results"),
        ({"min_connected_time": "-1"}, "min_connected_time"),
        ({"max_connected_time": "soon"}, "max_connected_time"),
        ({"filter_on_nos": "+12,a b"}, "filter_on_nos"),
    ],
)
async def test_bad_list_params(
    client: Client, auth: dict[str, str], check_error: Check, params: dict[str, str], field: str
) -> None:
    resp = await client.get("/v1/LiveCalls", params=params, headers=auth)
    err = await resp.json()
    check_error(err, 400, 400001)
    assert field in err["message"]


# -- detail --------------------------------------------------------------------------------


async def test_detail_of_a_live_call(
    client: Client, auth: dict[str, str], four_calls: list[Call]
) -> None:
    resp = await client.get("/v1/LiveCalls/9@1", headers=auth)
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == "9@1" and body["status"] == "live-in-progress"
    assert body["detection"] == "unknown"


async def test_detail_of_a_call_that_ended_recently(
    client: Client, auth: dict[str, str], registry: CallRegistry, four_calls: list[Call]
) -> None:
    call = four_calls[1]
    call.session_data = {"name": "Bob"}
    call.mark_ended(CallStatus.COMPLETED, HangupEnd.API)
    registry.ended(call)
    body = await (await client.get("/v1/LiveCalls/9@1", headers=auth)).json()
    assert body["status"] == "completed"
    assert body["session_data"] == {"name": "Bob"}
    assert body["connected_time"] >= 120_000


async def test_detail_falls_back_to_the_call_log(
    client: Client,
    auth: dict[str, str],
    registry: CallRegistry,
    storage: Storage,
    clock: Any,
    check_error: Check,
    four_calls: list[Call],
) -> None:
    call = four_calls[0]
    call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    registry.ended(call)
    await storage.save_call_log(call.log_record())
    clock.now += registry.RETAIN_ENDED_S + 1  # the registry forgets it
    assert registry.get("10@1") is None
    resp = await client.get("/v1/LiveCalls/10@1", headers=auth)
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "id": "10@1",
        "no": "+17145550001",
        "caller_id_no": "+19495550001",
        "status": "completed",
        "detection": "unknown",
        "date": call.log_record()["start_time"],
        "session_data": call.session_data,
        "connected_time": call.log_record()["connected_time"],
        "error": None,
        "app_id": call.app_id,
        "subaccount_id": 0,
        "direction": "inbound",
        "parent_call_id": None,
    }
    assert body["connected_time"] >= 30_000


async def test_detail_of_an_unknown_call(
    client: Client, auth: dict[str, str], check_error: Check
) -> None:
    resp = await client.get("/v1/LiveCalls/404@1", headers=auth)
    assert resp.status == 404
    err = await resp.json()
    check_error(err, 404, 404404)
    assert "404@1" in err["help"]


# -- End Call and Hang Up ------------------------------------------------------------------


async def test_delete_ends_the_call(
    client: Client, auth: dict[str, str], four_calls: list[Call]
) -> None:
    resp = await client.delete("/v1/LiveCalls/10@1", headers=auth)
    assert resp.status == 204 and await resp.read() == b""
    assert four_calls[0].control.calls == [("end", None)]  # type: ignore[union-attr]
    assert four_calls[1].control.calls == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body,expected",
    [
        (None, None),
        ({}, None),
        ({"message": None}, None),
        ({"message": "Goodbye"}, ["Goodbye"]),
        ({"message": []}, None),
        (
            {"message": ["Let me play you a song.", "https://x.test/a.mp3", "dtmf://12"]},
            ["Let me play you a song.", "https://x.test/a.mp3", "dtmf://12"],
        ),
    ],
)
async def test_hangup_passes_the_message(
    client: Client,
    auth: dict[str, str],
    four_calls: list[Call],
    body: Any,
    expected: list[str] | None,
) -> None:
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    resp = await client.post("/v1/LiveCalls/11@1/Actions/HangUp", headers=auth, **kwargs)
    assert resp.status == 204
    assert four_calls[2].control.calls == [("hangup", expected)]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body", [{"message": 5}, {"message": ["ok", 5]}, {"message": [""]}, {"message": {}}, [1]]
)
async def test_hangup_validates_the_message(
    client: Client, auth: dict[str, str], check_error: Check, four_calls: list[Call], body: Any
) -> None:
    resp = await client.post("/v1/LiveCalls/11@1/Actions/HangUp", json=body, headers=auth)
    err = await resp.json()
    check_error(err, 400, 400001)
    assert "message" in err["message"] or "body" in err["message"]
    assert four_calls[2].control.calls == []  # type: ignore[union-attr]


async def test_hangup_with_bad_json(
    client: Client, auth: dict[str, str], check_error: Check, four_calls: list[Call]
) -> None:
    resp = await client.post("/v1/LiveCalls/11@1/Actions/HangUp", data=b"{", headers=auth)
    check_error(await resp.json(), 400, 400010)


@pytest.mark.parametrize(
    "method,path",
    [("DELETE", "/v1/LiveCalls/{}"), ("POST", "/v1/LiveCalls/{}/Actions/HangUp")],
)
async def test_hangup_and_end_need_a_live_call(
    client: Client,
    auth: dict[str, str],
    check_error: Check,
    registry: CallRegistry,
    four_calls: list[Call],
    method: str,
    path: str,
) -> None:
    ended = four_calls[0]
    ended.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    registry.ended(ended)
    for call_id in ("nope@1", "10@1"):
        resp = await client.request(method, path.format(call_id), headers=auth)
        assert resp.status == 404
        check_error(await resp.json(), 404, 404404)
    assert ended.control.calls == []  # type: ignore[union-attr]
