"""History/Logs/Calls: the service filter, connectTime, every filter at once, blocks of
1,000 followed through next_block_uri over thousands of logs, and the fields of each
kind of call's log (inbound, Dials/Connect, DIAL and TRANSFER legs, queued, trunked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from control.calls import Call, CallStatus, Direction, HangupEnd, iso
from control.storage import Storage
from tests.control.api.test_api_history import LOGS, call_ids, list_logs, record

Client = TestClient[web.Request, web.Application]
T0 = datetime(2016, 9, 19, 18, 0, 0, tzinfo=UTC)
WINDOW = {"begin_date": iso(T0), "end_date": iso(T0 + timedelta(hours=1))}
# the fields of the spec's call log (List Call Logs and View Call Log)
SPEC_FIELDS = {
    "id", "api_no", "call_id", "parent_call_id", "caller_no", "start_time", "end_time",
    "app_id", "subaccount_id", "type", "direction", "hangup_end", "duration", "status",
    "error", "error_code", "detection", "connect_time_billed", "connect_time_sec",
    "origin_api", "text_message", "config", "sip", "charge", "service", "lrn",
    "created_on", "updated_on"}


async def save_mixed(storage: Storage) -> None:
    await storage.save_call_log(record("a@1", T0))
    await storage.save_call_log(record("t@1", T0, service="sip_trunking"))
    await storage.save_call_log(record("u@1", T0, service="sip_trunking",
                                       direction="outbound", parent_call_id="t@1"))
    old = record("v@1", T0)  # a log saved before logs said their service
    old.pop("service", None)
    await storage.save_call_log(old)


@pytest.mark.parametrize("params,expected", [
    ({"service": "sip_trunking"}, ["t@1", "u@1"]),
    ({"service": "programmable_voice"}, ["a@1", "v@1"]),
    ({"service": "SIP_Trunking", "direction": "outbound"}, ["u@1"]),
    ({}, ["a@1", "t@1", "u@1", "v@1"]),
    ({"service": "programmable_messaging"}, []),
    ({"type": "sms", "service": "sip_trunking"}, []),
])
async def test_the_service_filter(client: Client, auth: dict[str, str], storage: Storage,
                                  params: dict[str, str], expected: list[str]) -> None:
    await save_mixed(storage)
    assert call_ids(await list_logs(client, auth, **WINDOW, **params)) == expected


async def test_connect_time_as_the_spec_example_spells_it(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    await storage.save_call_log(record("short@1", T0, connect_time_sec=3))
    await storage.save_call_log(record("long@1", T0, connect_time_sec=40))
    assert call_ids(await list_logs(client, auth, **WINDOW, connectTime="10")) == ["long@1"]
    assert call_ids(await list_logs(client, auth, **WINDOW, connectTime="0")) == [
        "long@1", "short@1"]
    resp = await client.get(LOGS, params={"connectTime": "x"}, headers=auth)
    assert resp.status == 400


async def test_every_filter_at_once(client: Client, auth: dict[str, str],
                                    storage: Storage) -> None:
    await storage.save_call_log(record("hit@1", T0, service="sip_trunking",
                                       direction="outbound", connect_time_sec=20))
    changes: list[dict[str, Any]] = [
        {"service": "programmable_voice"}, {"direction": "inbound"}, {"connect_time_sec": 5},
        {"caller_no": "+15550001111"}, {"api_no": "+15550002222"}]
    for n, change in enumerate(changes):
        await storage.save_call_log(record(f"miss{n}@1", T0, **{
            "service": "sip_trunking", "direction": "outbound", "connect_time_sec": 20,
            **change}))
    await storage.save_call_log(record("late@1", T0 + timedelta(hours=2),
                                       service="sip_trunking", direction="outbound",
                                       connect_time_sec=20))
    body = await list_logs(client, auth, **WINDOW, service="sip_trunking",
                           direction="outbound", connect_time="20",
                           caller_no="+17145551212", api_no="+19495551212", type="voice")
    assert call_ids(body) == ["hit@1"]


async def test_bad_service(client: Client, auth: dict[str, str]) -> None:
    resp = await client.get(LOGS, params={"service": "fax"}, headers=auth)
    body = await resp.json()
    assert resp.status == 400 and body["code"] == 400001
    assert body["message"].startswith("Validation Error: service ")


async def test_thousands_of_logs_in_blocks_of_1000(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    total = 2503
    for n in range(total):  # every third outbound; many share a start time
        await storage.save_call_log(record(
            f"{n:05d}@1", T0 + timedelta(milliseconds=n // 4),
            direction="outbound" if n % 3 == 0 else "inbound"))
    blocks: list[list[str]] = []
    body = await list_logs(client, auth, **WINDOW)
    while True:
        blocks.append(call_ids(body))
        if not body["is_truncated"]:
            assert body["next_block_uri"] is None
            break
        uri = body["next_block_uri"]
        assert uri.startswith(LOGS + "?")
        body = await (await client.get(URL(uri, encoded=True), headers=auth)).json()
        assert body["begin_date"] == WINDOW["begin_date"]  # the same search, further on
    assert [len(b) for b in blocks] == [1000, 1000, 503]
    assert [c for b in blocks for c in b] == [f"{n:05d}@1" for n in range(total)]
    # with a filter, the blocks hold only what it keeps
    body = await list_logs(client, auth, **WINDOW, direction="outbound")
    assert len(body["logs"]) == 835 and body["is_truncated"] is False


def ended_call(call_id: str, direction: Direction, **fields: Any) -> Call:
    call = Call(id=call_id, direction=direction, caller_no="+17145551212",
                api_no="+19495551212", app_id="app", **fields)
    call.mark_ringing()
    call.mark_connected()
    call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    return call


async def test_each_kind_of_call_logs_the_spec_fields_and_its_legs(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    inbound = ended_call("1@1", Direction.INBOUND, sip_call_id="abc", sip_response_code=200)
    dial_leg = ended_call("2@1", Direction.OUTBOUND, parent_call_id="1@1")
    transfer_leg = ended_call("3@1", Direction.OUTBOUND, parent_call_id="1@1")
    connect = ended_call("4@1", Direction.OUTBOUND)  # Dials/Connect: no parent
    queued = ended_call("5@1", Direction.INBOUND)
    queued.queue_visits.append({"name": "sales", "wait_s": 3, "reason": "poll_connect"})
    trunked = ended_call("6@1", Direction.INBOUND, service="sip_trunking")
    trunk_leg = ended_call("7@1", Direction.OUTBOUND, service="sip_trunking",
                           parent_call_id="6@1")
    calls = [inbound, dial_leg, transfer_leg, connect, queued, trunked, trunk_leg]
    for call in calls:
        await storage.save_call_log(call.log_record())
    window = {"begin_date": iso(inbound.start_time - timedelta(minutes=1)),
              "end_date": iso(inbound.start_time + timedelta(minutes=1))}
    logs = {log["call_id"]: log for log in (await list_logs(client, auth, **window))["logs"]}
    assert list(logs) == [c.id for c in calls]
    for log in logs.values():
        assert set(log) >= SPEC_FIELDS, SPEC_FIELDS - set(log)
        assert (log["type"], log["status"], log["origin_api"]) == (
            "voice", "completed", "CallFlows")
        assert log["text_message"] is None and log["hangup_end"] == "caller"
    assert {k: v["parent_call_id"] for k, v in logs.items()} == {
        "1@1": None, "2@1": "1@1", "3@1": "1@1", "4@1": None, "5@1": None, "6@1": None,
        "7@1": "6@1"}
    assert [v["service"] for v in logs.values()] == ["programmable_voice"] * 5 + [
        "sip_trunking"] * 2
    assert logs["1@1"]["sip"] == {"call_id": "abc", "response_code": 200}
    assert logs["5@1"]["queues"][0]["name"] == "sales"
    one = await (await client.get(f"{LOGS}/7@1", headers=auth)).json()
    assert one["parent_call_id"] == "6@1" and one["updated_on"] == one["end_time"]
