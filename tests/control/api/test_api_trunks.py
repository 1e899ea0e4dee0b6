"""Trunks over REST: create, list, view, update, delete, the spec's fields and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.calls import iso, utcnow
from control.inventory import InventoryService
from tests.control.api.conftest import APP_ID, ERROR_FIELDS

Client = TestClient[web.Request, web.Application]
INBOUND: dict[str, Any] = {
    "direction": "inbound", "simultaneous_call_limit": 1, "description": "some_inbound",
           "recording": {"setting": "do_not_record"},
           "inbound": {"destination": "pbx.example.com:5080"}}
OUTBOUND: dict[str, Any] = {"direction": "outbound", "simultaneous_call_limit": 2,
            "description": "outbound trunk 7", "recording": {},
            "outbound": {"domain": "acme.trunk.voxolo.gy", "authentication": [
                {"source": "twilio", "value": "AC123"},
                {"source": "other", "value": "203.0.113.0/24"}],
                "override_early_media": "to_country", "fax_support": "enabled",
                "max_post_dial_delay": 10}}


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[Client]:
    ctx.inventory = InventoryService(ctx.storage, ("+1949555XXXX",))
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as test_client:
        yield test_client


async def error(resp: Any, status: int, code: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    out = await resp.json()
    assert set(out) == ERROR_FIELDS and out["code"] == code, out
    return out


async def create(client: Client, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/Trunks", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_view_list_update_delete(client: Client, auth: dict[str, str]) -> None:
    inbound = await create(client, auth, INBOUND)
    tid = inbound["trunk_id"]
    assert inbound["app_id"] == APP_ID and inbound["status"] == "active"
    assert inbound["inbound"] == {
        "destination": "pbx.example.com:5080", "failover": {"source": None, "value": None},
        "phone_numbers_uri": f"/v1/PhoneNumbers/Trunks/{tid}"}
    assert inbound["recording"] == {"setting": "do_not_record"}
    assert {"created_on", "modified_on", "updated_on"} <= set(inbound)
    outbound = await create(client, auth, OUTBOUND)
    assert outbound["outbound"]["authentication"][1] == {"source": "other",
                                                         "value": "203.0.113.0/24"}
    listed = await (await client.get("/v1/Trunks", headers=auth)).json()
    assert [t["trunk_id"] for t in listed["trunks"]] == [tid, outbound["trunk_id"]]
    assert await (await client.get(f"/v1/Trunks/{tid}", headers=auth)).json() == inbound
    upd = await client.put(f"/v1/Trunks/{tid}", json={
        "description": "updated description", "status": "inactive",
        "inbound": {"failover": {"source": "sip_uri", "value": "sip:backup@10.0.0.9:5060"}}},
        headers=auth)
    assert upd.status == 200, await upd.text()
    got = await upd.json()
    assert (got["description"], got["status"]) == ("updated description", "inactive")
    assert got["inbound"]["destination"] == "pbx.example.com:5080"  # kept
    assert got["inbound"]["failover"] == {"source": "sip_uri",
                                          "value": "sip:backup@10.0.0.9:5060"}
    assert got["created_on"] == inbound["created_on"]
    assert (await client.delete(f"/v1/Trunks/{tid}", headers=auth)).status == 204
    await error(await client.get(f"/v1/Trunks/{tid}", headers=auth), 404, 404002)


async def test_unknown_ids(client: Client, auth: dict[str, str]) -> None:
    for method in ("GET", "DELETE"):
        await error(await client.request(method, "/v1/Trunks/nope", headers=auth), 404, 404002)
    await error(await client.put("/v1/Trunks/nope", json={"description": "x"}, headers=auth),
                404, 404002)
    await error(await client.get("/v1/Trunks/nope/Logs/Calls", headers=auth), 404, 404002)
    await error(await client.patch("/v1/Trunks", json={}, headers=auth), 405, 405001)


@pytest.mark.parametrize("body,field", [
    ({}, "direction"),
    ({"direction": "sideways"}, "direction"),
    ({"direction": "inbound"}, "inbound"),
    ({"direction": "inbound", "inbound": {}}, "inbound.destination"),
    ({"direction": "inbound", "inbound": {"destination": "bad host!"}}, "inbound.destination"),
    ({"direction": "inbound", "inbound": {"destination": "h:99999"}}, "inbound.destination"),
    ({**INBOUND, "simultaneous_call_limit": 0}, "simultaneous_call_limit"),
    ({**INBOUND, "simultaneous_call_limit": "2"}, "simultaneous_call_limit"),
    ({**INBOUND, "recording": {"setting": "always"}}, "recording.setting"),
    ({**INBOUND, "status": "paused"}, "status"),
    ({"direction": "inbound", "inbound": {"destination": "h", "failover": {
        "source": "fax", "value": "x"}}}, "inbound.failover.source"),
    ({"direction": "inbound", "inbound": {"destination": "h", "failover": {
        "source": "phone_number", "value": "949"}}}, "inbound.failover.value"),
    ({"direction": "inbound", "inbound": {"destination": "h", "failover": {
        "source": "api", "value": "Elsewhere"}}}, "inbound.failover.value"),
    ({"direction": "inbound", "inbound": {"destination": "h", "failover": {
        "source": "sip_uri"}}}, "inbound.failover.value"),
    ({"direction": "inbound", "inbound": {"destination": "h", "failover": {
        "source": "trunk_id", "value": "no-such-trunk"}}}, "inbound.failover.value"),
    ({"direction": "outbound"}, "outbound"),
    ({"direction": "outbound", "outbound": {}}, "outbound.authentication"),
    ({"direction": "outbound", "outbound": {"authentication": [
        {"source": "other", "value": "10.0.0.0/33"}]}}, "outbound.authentication[0].value"),
    ({"direction": "outbound", "outbound": {"authentication": [
        {"source": "carrier", "value": "x"}]}}, "outbound.authentication[0].source"),
    ({**OUTBOUND, "outbound": {**OUTBOUND["outbound"], "domain": "acme.example.com"}},
     "outbound.domain"),
    ({**OUTBOUND, "outbound": {**OUTBOUND["outbound"], "domain": "ac_me.trunk.voxolo.gy"}},
     "outbound.domain"),
    ({**OUTBOUND, "outbound": {**OUTBOUND["outbound"], "max_post_dial_delay": 6}},
     "outbound.max_post_dial_delay"),
    ({**OUTBOUND, "outbound": {**OUTBOUND["outbound"], "max_post_dial_delay": 31}},
     "outbound.max_post_dial_delay"),
    ({**OUTBOUND, "outbound": {**OUTBOUND["outbound"], "fax_support": "yes"}},
     "outbound.fax_support"),
    ({**OUTBOUND, "outbound": {**OUTBOUND["outbound"], "override_early_media": "USA"}},
     "outbound.override_early_media"),
])
async def test_bad_bodies_name_the_field(client: Client, auth: dict[str, str],
                                         body: dict[str, Any], field: str) -> None:
    out = await error(await client.post("/v1/Trunks", json=body, headers=auth), 400, 400001)
    assert field in out["message"], out


async def test_bad_updates(client: Client, auth: dict[str, str]) -> None:
    tid = (await create(client, auth, INBOUND))["trunk_id"]
    await error(await client.put(f"/v1/Trunks/{tid}", json={"direction": "outbound"},
                                 headers=auth), 400, 400001)
    await error(await client.put(f"/v1/Trunks/{tid}", json={"inbound": {
        "failover": {"source": "trunk_id", "value": tid}}}, headers=auth), 400, 400001)
    await error(await client.put(f"/v1/Trunks/{tid}", data=b"not json", headers=auth),
                400, 400010)
    await error(await client.post("/v1/Trunks", json=[1], headers=auth), 400, 400001)
    # a domain belongs to one trunk
    await create(client, auth, OUTBOUND)
    await error(await client.post("/v1/Trunks", json=OUTBOUND, headers=auth), 400, 400001)


async def test_failover_to_another_inbound_trunk(client: Client, auth: dict[str, str]) -> None:
    backup = await create(client, auth, INBOUND)
    main = await create(client, auth, {**INBOUND, "inbound": {
        "destination": "sip:10.1.2.3:5060",
        "failover": {"source": "trunk_id", "value": backup["trunk_id"]}}})
    assert main["inbound"]["failover"] == {"source": "trunk_id", "value": backup["trunk_id"]}


async def test_trunk_call_logs_are_empty_for_a_new_trunk(client: Client,
                                                         auth: dict[str, str]) -> None:
    tid = (await create(client, auth, INBOUND))["trunk_id"]
    resp = await client.get(f"/v1/Trunks/{tid}/Logs/Calls", headers=auth)
    assert resp.status == 200
    assert (await resp.json())["logs"] == []
    await error(await client.get(f"/v1/Trunks/{tid}/Logs/Calls?direction=up", headers=auth),
                400, 400001)


async def test_call_logs_by_trunk(client: Client, auth: dict[str, str], ctx: ApiContext) -> None:
    tid = (await create(client, auth, INBOUND))["trunk_id"]
    other = (await create(client, auth, INBOUND))["trunk_id"]
    assert ctx.inventory is not None
    start = utcnow() - timedelta(minutes=5)
    for call_id, trunk, direction in (("1@1", tid, "inbound"), ("2@1", other, "inbound"),
                                      ("3@1", tid, "outbound"), ("4@1", None, "inbound")):
        await ctx.storage.save_call_log({"id": call_id, "call_id": call_id,
                                         "start_time": iso(start), "direction": direction,
                                         "caller_no": "sipp", "api_no": "+19495550100",
                                         "connect_time_sec": 0})
        if trunk:
            await ctx.inventory.store.add_trunk_call(call_id, trunk, start)
    own = await (await client.get(f"/v1/Trunks/{tid}/Logs/Calls", headers=auth)).json()
    assert [log["call_id"] for log in own["logs"]] == ["1@1", "3@1"]
    hist = await (await client.get(f"/v1/History/Logs/Calls?trunk_id={tid}&direction=outbound",
                                   headers=auth)).json()
    assert [log["call_id"] for log in hist["logs"]] == ["3@1"]
    everything = await (await client.get("/v1/History/Logs/Calls", headers=auth)).json()
    assert len(everything["logs"]) == 4
    none = await (await client.get("/v1/History/Logs/Calls?trunk_id=nope", headers=auth)).json()
    assert none["logs"] == []
