"""PhoneNumbers over REST: the pool search, provisioning, list, view, update, move and
release, with the spec's Phone Number Error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.inventory import InventoryService
from tests.control.api.conftest import ERROR_FIELDS

POOL = ("+1949555XXXX", "+1833555XXXX", "+18889990000-+18889990009")
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[Client]:
    ctx.inventory = InventoryService(ctx.storage, POOL)
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as test_client:
        yield test_client


def body(*nos: str) -> dict[str, Any]:
    return {"phone_numbers": [{"no": no} for no in nos]}


async def error(resp: Any, status: int, code: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    out = await resp.json()
    assert set(out) == ERROR_FIELDS and out["code"] == code, out
    return out


async def test_available_by_prefix_lists_pool_numbers_lowest_first(
        client: Client, auth: dict[str, str]) -> None:
    resp = await client.get("/v1/PhoneNumbers/Available?capabilities=voice&search_by=prefixes"
                            "&search_on=949&max_results=3", headers=auth)
    assert resp.status == 200, await resp.text()
    got = (await resp.json())["phone_numbers"]
    assert [n["no"] for n in got] == ["+19495550000", "+19495550001", "+19495550002"]
    first = got[0]
    assert first["formatted"] == "(949) 555-0000" and first["type"] == "local"
    assert "voice_inbound" in first["capabilities"] and first["location"]["country"] == "US"
    e164 = await client.get("/v1/PhoneNumbers/Available?capabilities=voice&search_by=prefixes"
                            "&search_on=%2B1833&max_results=1", headers=auth)
    assert [n["no"] for n in (await e164.json())["phone_numbers"]] == ["+18335550000"]


async def test_available_vanity_and_taken_numbers_are_left_out(
        client: Client, auth: dict[str, str]) -> None:
    # 8&&***CATS: 8, a repeated digit twice, any three digits, 2287
    resp = await client.get("/v1/PhoneNumbers/Available?capabilities=voice&type=toll_free"
                            "&search_by=vanity&search_on=8%26%26999000%2A", headers=auth)
    assert [n["no"] for n in (await resp.json())["phone_numbers"]] == [
        "+18889990000", "+18889990001", "+18889990002", "+18889990003", "+18889990004",
        "+18889990005", "+18889990006", "+18889990007", "+18889990008", "+18889990009"]
    ok = await client.post("/v1/PhoneNumbers/CallFlows", json=body("+18889990000"),
                           headers=auth)
    assert ok.status == 200, await ok.text()
    again = await client.get("/v1/PhoneNumbers/Available?capabilities=voice&search_by=vanity"
                             "&search_on=8%26%26999000%2A&max_results=2", headers=auth)
    assert [n["no"] for n in (await again.json())["phone_numbers"]] == [
        "+18889990001", "+18889990002"]
    assert all(n["type"] == "toll_free" for n in (await again.json())["phone_numbers"])


@pytest.mark.parametrize("query,code", [
    ("", 400001),  # capabilities is required
    ("capabilities=fax", 400001),
    ("capabilities=voice&max_results=101", 400001),
    ("capabilities=voice&type=mobile", 400001),
    ("capabilities=voice&search_by=nearby", 400001),
    ("capabilities=voice&search_by=region&search_on=CA", 400203),
    ("capabilities=voice&search_by=prefixes&search_on=949,%2B1714", 400203),
    ("capabilities=voice&search_by=vanity&search_on=8%3F", 400203),
    ("capabilities=voice&type=local&search_by=vanity&search_on=CATS", 400203),
])
async def test_available_bad_searches(client: Client, auth: dict[str, str], query: str,
                                      code: int) -> None:
    resp = await client.get(f"/v1/PhoneNumbers/Available?{query}", headers=auth)
    await error(resp, 400, code)


async def test_provision_view_list_update_and_release(client: Client,
                                                      auth: dict[str, str]) -> None:
    resp = await client.post("/v1/PhoneNumbers/ParkingLot",
                             json=body("+19495551212", "+19495551213"), headers=auth)
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["assigned_to"] == "ParkingLot"
    assert [(n["no"], n["status"], n["assigned_to"]) for n in out["phone_numbers"]] == [
        ("+19495551212", "routed", "ParkingLot"), ("+19495551213", "routed", "ParkingLot")]
    view = await client.get("/v1/PhoneNumbers/%2B19495551212", headers=auth)
    assert view.status == 200 and (await view.json())["formatted"] == "(949) 555-1212"
    upd = await client.put("/v1/PhoneNumbers/%2B19495551212",
                           json={"description": "Desk", "caller_id_name": "Bob Jones",
                                 "port_out_pin": "1234"}, headers=auth)
    assert upd.status == 200, await upd.text()
    got = await upd.json()
    assert (got["description"], got["caller_id_name"], got["port_out_pin"]) == (
        "Desk", "Bob Jones", "1234")
    cleared = await client.put("/v1/PhoneNumbers/%2B19495551212", json={"port_out_pin": None},
                               headers=auth)
    assert (await cleared.json())["port_out_pin"] is None
    parked = await client.get("/v1/PhoneNumbers/ParkingLot?page_size=1", headers=auth)
    listed = await parked.json()
    assert [n["no"] for n in listed["phone_numbers"]] == ["+19495551213"]  # updated_on asc
    assert listed["pagination"]["total_items"] == 2
    by_no = await client.get("/v1/PhoneNumbers?sort_by=no&sort_order=desc", headers=auth)
    assert [n["no"] for n in (await by_no.json())["phone_numbers"]] == [
        "+19495551213", "+19495551212"]
    assert (await (await client.get("/v1/PhoneNumbers/CallFlows", headers=auth)).json()
            )["phone_numbers"] == []
    gone = await client.delete("/v1/PhoneNumbers/ParkingLot", json=body("+19495551212"),
                               headers=auth)
    assert gone.status == 204
    await error(await client.get("/v1/PhoneNumbers/%2B19495551212", headers=auth), 404,
                404214)
    released = await client.get("/v1/PhoneNumbers?status=released", headers=auth)
    assert [(n["no"], n["assigned_to"]) for n in (await released.json())["phone_numbers"]] \
        == [("+19495551212", None)]
    # released numbers are back in the pool
    again = await client.post("/v1/PhoneNumbers/CallFlows", json=body("+19495551212"),
                              headers=auth)
    assert again.status == 200


async def test_provision_errors(client: Client, auth: dict[str, str]) -> None:
    await client.post("/v1/PhoneNumbers/CallFlows", json=body("+19495550001"), headers=auth)
    await error(await client.post("/v1/PhoneNumbers/CallFlows", json=body("+19495550001"),
                                  headers=auth), 400, 400200)
    await error(await client.post("/v1/PhoneNumbers/CallFlows", json=body("+17145550001"),
                                  headers=auth), 404, 400404)
    await error(await client.post("/v1/PhoneNumbers/Elsewhere", json=body("+19495550002"),
                                  headers=auth), 400, 400202)
    await error(await client.post("/v1/PhoneNumbers/Trunks/nope", json=body("+19495550002"),
                                  headers=auth), 404, 404002)
    bad: Any
    for bad in ({}, {"phone_numbers": []}, {"phone_numbers": [{"no": "949"}]}, [1]):
        await error(await client.post("/v1/PhoneNumbers/CallFlows", json=bad, headers=auth),
                    400, 400001)
    await error(await client.post("/v1/PhoneNumbers/CallFlows", data=b"{nope",
                                  headers=auth), 400, 400010)


async def test_release_update_and_view_errors(client: Client, auth: dict[str, str]) -> None:
    await client.post("/v1/PhoneNumbers/CallFlows", json=body("+19495550001"), headers=auth)
    await error(await client.delete("/v1/PhoneNumbers/ParkingLot", json=body("+19495550001"),
                                    headers=auth), 400, 400201)
    await error(await client.put("/v1/PhoneNumbers/%2B19495550009", json={"description": "x"},
                                 headers=auth), 404, 404214)
    await error(await client.put("/v1/PhoneNumbers/%2B19495550001",
                                 json={"caller_id_name": "x" * 16}, headers=auth), 400, 400001)
    await error(await client.put("/v1/PhoneNumbers/%2B19495550001",
                                 json={"port_out_pin": "12-34"}, headers=auth), 400, 400001)
    await error(await client.get("/v1/PhoneNumbers/not-a-number", headers=auth), 400, 400001)
    await error(await client.get("/v1/PhoneNumbers/CallFlows?status=lost", headers=auth),
                400, 400001)


async def test_move_reassigns_and_reports_unknown_numbers(client: Client,
                                                          auth: dict[str, str]) -> None:
    await client.post("/v1/PhoneNumbers/CallFlows", json=body("+19495550001"), headers=auth)
    await error(await client.put("/v1/PhoneNumbers/Move/ParkingLot",
                                 json={"subaccount_id": 12345, **body("+19495550001")},
                                 headers=auth), 404, 404801)  # no such Sub Account
    made = await client.post("/v1/SubAccounts", json={"name": "A"}, headers=auth)
    sub = (await made.json())["id"]
    resp = await client.put("/v1/PhoneNumbers/Move/ParkingLot",
                            json={"subaccount_id": sub,
                                  **body("+19495550001", "+19495550002")}, headers=auth)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == [
        {"no": "+19495550001", "formatted": "(949) 555-0001"},
        {"no": "+19495550002", "formatted": "(949) 555-0002",
         "error": "+19495550002 does not exist in your application"}]
    # the Sub Account's now: the main account no longer sees it
    await error(await client.get("/v1/PhoneNumbers/%2B19495550001", headers=auth), 404, 404214)
    view = await (await client.get(f"/v1/SubAccounts/{sub}/PhoneNumbers/%2B19495550001",
                                   headers=auth)).json()
    assert (view["assigned_to"], view["subaccount_id"]) == ("ParkingLot", sub)
    back = await client.put(f"/v1/SubAccounts/{sub}/PhoneNumbers/Move",
                            json={"app_id": "someone-else", **body("+19495550001")},
                            headers=auth)
    await error(back, 400, 400001)


async def test_numbers_go_to_inbound_trunks_only(client: Client, auth: dict[str, str]) -> None:
    inbound = await (await client.post("/v1/Trunks", json={
        "direction": "inbound", "inbound": {"destination": "127.0.0.1:5099"}},
        headers=auth)).json()
    outbound = await (await client.post("/v1/Trunks", json={
        "direction": "outbound", "outbound": {"authentication": [
            {"source": "other", "value": "10.0.0.0/8"}]}}, headers=auth)).json()
    path = f"/v1/PhoneNumbers/Trunks/{inbound['trunk_id']}"
    ok = await client.post(path, json=body("+19495550005"), headers=auth)
    assert ok.status == 200 and (await ok.json())["assigned_to"] == \
        f"Trunks/{inbound['trunk_id']}"
    listed = await (await client.get(path, headers=auth)).json()
    assert [n["no"] for n in listed["phone_numbers"]] == ["+19495550005"]
    await error(await client.post(f"/v1/PhoneNumbers/Trunks/{outbound['trunk_id']}",
                                  json=body("+19495550006"), headers=auth), 400, 400001)
    # deleting the trunk parks its numbers
    assert (await client.delete(f"/v1/Trunks/{inbound['trunk_id']}", headers=auth)).status \
        == 204
    view = await (await client.get("/v1/PhoneNumbers/%2B19495550005", headers=auth)).json()
    assert view["assigned_to"] == "ParkingLot"


async def test_without_an_inventory_the_routes_answer_404002(ctx: ApiContext,
                                                             auth: dict[str, str]) -> None:
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as plain:
        await error(await plain.get("/v1/Trunks", headers=auth), 404, 404002)


async def test_openapi_lists_the_routes(client: Client, auth: dict[str, str]) -> None:
    doc = await (await client.get("/v1/openapi.json", headers=auth)).json()
    paths = doc["paths"]
    assert set(paths["/PhoneNumbers/Available"]) == {"get"}
    assert set(paths["/PhoneNumbers/{phone_number}"]) == {"get", "put"}
    for assigned in ("CallFlows", "ParkingLot", "Trunks/{trunk_id}"):
        assert set(paths[f"/PhoneNumbers/{assigned}"]) == {"get", "post", "delete"}
        assert set(paths[f"/PhoneNumbers/Move/{assigned}"]) == {"put"}
    assert set(paths["/Trunks"]) == {"get", "post"}
    assert set(paths["/Trunks/{trunk_id}"]) == {"get", "put", "delete"}
    assert "trunk_id" in {p["name"] for p in paths["/History/Logs/Calls"]["get"]["parameters"]}


async def test_a_change_under_way_makes_another_wait_423(client: Client, ctx: ApiContext,
                                                        auth: dict[str, str]) -> None:
    assert ctx.inventory is not None
    async with ctx.inventory.exclusive():
        for method, path in (("POST", "/v1/PhoneNumbers/CallFlows"),
                             ("DELETE", "/v1/PhoneNumbers/CallFlows"),
                             ("PUT", "/v1/PhoneNumbers/Move/ParkingLot")):
            await error(await client.request(method, path, json=body("+19495550001"),
                                             headers=auth), 423, 423001)
    ok = await client.post("/v1/PhoneNumbers/CallFlows", json=body("+19495550001"),
                           headers=auth)
    assert ok.status == 200


async def test_lists_take_every_country_unless_asked(ctx: ApiContext,
                                                     auth: dict[str, str]) -> None:
    ctx.inventory = InventoryService(ctx.storage, ("+4420794600XX", "+1949555XXXX"))
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as c:
        await c.post("/v1/PhoneNumbers/CallFlows", json=body("+442079460001", "+19495550001"),
                     headers=auth)
        every = await (await c.get("/v1/PhoneNumbers", headers=auth)).json()
        # one provisioning, one updated_on: the numbers break the tie
        assert [n["no"] for n in every["phone_numbers"]] == ["+19495550001", "+442079460001"]
        gb = await (await c.get("/v1/PhoneNumbers?country=GB", headers=auth)).json()
        assert [n["no"] for n in gb["phone_numbers"]] == ["+442079460001"]
        avail = await (await c.get("/v1/PhoneNumbers/Available?capabilities=voice&country=GB"
                                   "&max_results=1", headers=auth)).json()
        assert [n["no"] for n in avail["phone_numbers"]] == ["+442079460000"]
