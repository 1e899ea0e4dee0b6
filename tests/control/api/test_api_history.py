"""History call log methods over HTTP, against a real Storage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from control.api import history
from control.calls import iso, utcnow
from control.storage import Storage

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]

LOGS = "/v1/History/Logs/Calls"
T0 = datetime(2016, 9, 19, 18, 0, 0, tzinfo=UTC)


def record(call_id: str, start: datetime, **fields: Any) -> dict[str, Any]:
    base = {
        "id": call_id,
        "call_id": call_id,
        "app_id": "app",
        "subaccount_id": 0,
        "parent_call_id": None,
        "caller_no": "+17145551212",
        "api_no": "+19495551212",
        "start_time": iso(start),
        "end_time": iso(start + timedelta(seconds=14)),
        "type": "voice",
        "direction": "inbound",
        "duration": 14712,
        "status": "completed",
        "connect_time_sec": 12,
    }
    return base | fields


async def list_logs(client: Client, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await client.get(LOGS, params=params, headers=auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def call_ids(body: dict[str, Any]) -> list[str]:
    return [log["call_id"] for log in body["logs"]]


async def test_defaults_to_the_last_hour(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    now = utcnow()
    await storage.save_call_log(record("old@1", now - timedelta(minutes=61)))
    await storage.save_call_log(record("new@1", now - timedelta(minutes=59)))
    body = await list_logs(client, auth)
    assert call_ids(body) == ["new@1"]
    begin = datetime.fromisoformat(body["begin_date"])
    end = datetime.fromisoformat(body["end_date"])
    assert end - begin == timedelta(hours=1)
    assert abs(end - now) < timedelta(seconds=5)
    assert body["is_truncated"] is False and body["next_block_uri"] is None


async def test_dates_filter_begin_inclusive_end_exclusive(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    for minute in range(4):
        await storage.save_call_log(record(f"{minute}@1", T0 + timedelta(minutes=minute)))
    body = await list_logs(
        client, auth, begin_date="2016-09-19T18:01:00.000Z", end_date="2016-09-19T18:03:00Z"
    )
    assert call_ids(body) == ["1@1", "2@1"]
    assert body["begin_date"] == "2016-09-19T18:01:00.000Z"
    assert body["end_date"] == "2016-09-19T18:03:00.000Z"
    assert body["logs"][0] == record("1@1", T0 + timedelta(minutes=1))


@pytest.mark.parametrize(
    "query",
    [
        "begin_date=2016-09-19T20:00:30%2B02:00&end_date=2016-09-19T18:01:00Z",
        "begin_date=2016-09-19T20:00:30+02:00&end_date=2016-09-19T18:01:00Z",  # "+" unencoded
        "begin_date=2016-09-19T18:00:30&end_date=2016-09-19T18:01:00",  # naive: UTC
    ],
)
async def test_offsets_and_naive_dates(
    client: Client, auth: dict[str, str], storage: Storage, query: str
) -> None:
    await storage.save_call_log(record("in@1", T0 + timedelta(seconds=45)))
    await storage.save_call_log(record("out@1", T0 + timedelta(seconds=15)))
    resp = await client.get(URL(f"{LOGS}?{query}", encoded=True), headers=auth)
    body = await resp.json()
    assert call_ids(body) == ["in@1"]


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"direction": "outbound"}, ["b@1"]),
        ({"direction": "inbound|outbound"}, ["a@1", "b@1", "c@1", "d@1"]),
        ({"connect_time": "30"}, ["c@1"]),
        ({"caller_no": "bob"}, ["d@1"]),
        ({"caller_no": "+1 714 555 1212"}, ["a@1", "b@1", "c@1"]),
        ({"api_no": "+19495551212", "direction": "inbound"}, ["a@1", "c@1", "d@1"]),
        ({"type": "sms"}, []),
    ],
)
async def test_filters(
    client: Client,
    auth: dict[str, str],
    storage: Storage,
    params: dict[str, str],
    expected: list[str],
) -> None:
    await storage.save_call_log(record("a@1", T0))
    await storage.save_call_log(record("b@1", T0, direction="outbound"))
    await storage.save_call_log(record("c@1", T0, connect_time_sec=30))
    await storage.save_call_log(record("d@1", T0, caller_no="bob"))
    window = {"begin_date": iso(T0), "end_date": iso(T0 + timedelta(hours=1))}
    assert call_ids(await list_logs(client, auth, **window, **params)) == expected


async def test_unencoded_plus_in_a_number(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    await storage.save_call_log(record("a@1", T0))
    query = f"begin_date={iso(T0)}&end_date={iso(T0 + timedelta(hours=1))}&caller_no=+17145551212"
    resp = await client.get(URL(f"{LOGS}?{query}", encoded=True), headers=auth)
    assert call_ids(await resp.json()) == ["a@1"]


async def test_truncation_and_next_block(
    client: Client, auth: dict[str, str], storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_LOGS", 3)
    for n in range(7):
        await storage.save_call_log(record(f"{n}@1", T0 + timedelta(seconds=n // 2)))
    window = {"begin_date": iso(T0), "end_date": iso(T0 + timedelta(minutes=1))}
    seen: list[str] = []
    body = await list_logs(client, auth, direction="inbound", **window)
    blocks = 1
    while body["is_truncated"]:
        assert len(body["logs"]) == 3
        seen += call_ids(body)
        uri = body["next_block_uri"]
        assert uri.startswith(LOGS + "?") and "direction=inbound" in uri
        resp = await client.get(URL(uri, encoded=True), headers=auth)
        body = await resp.json()
        blocks += 1
    seen += call_ids(body)
    assert body["next_block_uri"] is None
    assert blocks == 3
    assert seen == [f"{n}@1" for n in range(7)]


async def test_a_full_block_of_1000_is_not_truncated(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    for n in range(1001):
        await storage.save_call_log(record(f"{n}@1", T0 + timedelta(milliseconds=n)))
    window = {"begin_date": iso(T0), "end_date": iso(T0 + timedelta(minutes=1))}
    body = await list_logs(client, auth, **window)
    assert len(body["logs"]) == 1000 and body["is_truncated"] is True
    body = await list_logs(client, auth, **window | {"end_date": iso(T0 + timedelta(seconds=1))})
    assert len(body["logs"]) == 1000 and body["is_truncated"] is False


@pytest.mark.parametrize(
    "params,field",
    [
        ({"begin_date": "yesterday"}, "begin_date"),
        ({"end_date": "2016-13-01T00:00:00Z"}, "end_date"),
        ({"begin_date": "2016-09-19T19:00:00Z", "end_date": "2016-09-19T18:00:00Z"}, "begin_date"),
        ({"direction": "sideways"}, "direction"),
        ({"connect_time": "-1"}, "connect_time"),
        ({"connect_time": "1.5"}, "connect_time"),
        ({"type": "fax"}, "type"),
        ({"caller_no": "+0"}, "caller_no"),
        ({"after": "garbage"}, "after"),
    ],
)
async def test_bad_params(
    client: Client, auth: dict[str, str], check_error: Check, params: dict[str, str], field: str
) -> None:
    resp = await client.get(LOGS, params=params, headers=auth)
    err = await resp.json()
    check_error(err, 400, 400001)
    assert err["message"].startswith(f"Validation Error: {field} ")


async def test_view_one_log(
    client: Client, auth: dict[str, str], storage: Storage, check_error: Check
) -> None:
    await storage.save_call_log(record("145229@9461", T0))
    resp = await client.get(LOGS + "/145229@9461", headers=auth)
    assert resp.status == 200
    assert await resp.json() == record("145229@9461", T0)
    resp = await client.get(LOGS + "/1@2", headers=auth)
    assert resp.status == 404
    check_error(await resp.json(), 404, 404404)
