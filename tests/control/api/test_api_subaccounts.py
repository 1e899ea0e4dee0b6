"""Application Sub Accounts: Create, List, View, Update, Delete and the Sub Account
Errors (403803, 404801, 404802), and the `/SubAccounts/{id}` prefix's own errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.api import ApiContext
from control.inventory import InventoryService
from control.storage import Storage

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]

ADDRESS = {"address_1": "4695 MacArthur Ct", "address_2": "", "city": "Newport Beach",
           "region": "CA", "postal_code": "92660", "country": "US",
           "type_of_service": "business"}


async def create(client: Client, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/SubAccounts", json={"name": "A", **body}, headers=auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_view_list(client: Client, auth: dict[str, str]) -> None:
    made = await create(client, auth, name="My First Sub Account", port_out_pin="1234",
                        service_address=ADDRESS)
    assert isinstance(made["id"], int) and made["id"] >= 1
    assert made["name"] == "My First Sub Account" and made["status"] == "active"
    assert made["port_out_pin"] == "1234" and made["service_address"] == ADDRESS
    assert made["created_on"] == made["updated_on"] == made["modified_on"]
    assert made["sip_domains"]["callflows"].endswith(".accounts.sip.voxswitch")
    resp = await client.get(f"/v1/SubAccounts/{made['id']}", headers=auth)
    assert resp.status == 200 and await resp.json() == made
    resp = await client.get("/v1/SubAccounts", headers=auth)
    body = await resp.json()
    assert body["app_id"] and [s["id"] for s in body["subaccounts"]] == [made["id"]]
    assert body["pagination"] == {"current_page": 0, "total_pages": 1, "total_items": 1,
                                  "items_per_page": 25}
    assert {"id", "name", "created_on", "modified_on", "updated_on", "notes",
            "status"} <= set(body["subaccounts"][0])


async def test_list_status_and_pages(client: Client, auth: dict[str, str]) -> None:
    ids = [(await create(client, auth, name=f"n{i}"))["id"] for i in range(3)]
    resp = await client.put(f"/v1/SubAccounts/{ids[1]}", json={"name": "n1", "status": "inactive"},
                            headers=auth)
    assert resp.status == 201 and (await resp.json())["status"] == "inactive"
    active = await (await client.get("/v1/SubAccounts", headers=auth)).json()
    assert [s["id"] for s in active["subaccounts"]] == [ids[0], ids[2]]
    inactive = await (await client.get("/v1/SubAccounts?status=inactive", headers=auth)).json()
    assert [s["id"] for s in inactive["subaccounts"]] == [ids[1]]
    page = await (await client.get("/v1/SubAccounts?page=1&page_size=1", headers=auth)).json()
    assert [s["id"] for s in page["subaccounts"]] == [ids[2]]
    assert page["pagination"]["total_pages"] == 2


async def test_update_keeps_what_the_body_leaves_out(client: Client, auth: dict[str, str]) -> None:
    made = await create(client, auth, port_out_pin="1234", service_address=ADDRESS)
    resp = await client.put(f"/v1/SubAccounts/{made['id']}", json={"name": "B", "notes": "x"},
                            headers=auth)
    assert resp.status == 201
    body = await resp.json()
    assert body["name"] == "B" and body["notes"] == "x" and body["port_out_pin"] == "1234"
    assert body["service_address"] == ADDRESS and body["status"] == "active"


BAD_BODIES = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": 3}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": "a", "port_out_pin": 1234}, "port_out_pin"),
    ({"name": "a", "service_address": "here"}, "service_address"),
    ({"name": "a", "service_address": {**ADDRESS, "city": None}}, "city"),
    ({"name": "a", "service_address": {**ADDRESS, "country": "USA"}}, "country"),
    ({"name": "a", "service_address": {**ADDRESS, "type_of_service": "home"}},
     "type_of_service"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_create_refuses_bad_bodies(client: Client, auth: dict[str, str], check_error: Check,
                                         body: dict[str, Any], field: str) -> None:
    resp = await client.post("/v1/SubAccounts", json=body, headers=auth)
    assert resp.status == 400
    error = await resp.json()
    check_error(error, 400, 400001)
    assert field in error["message"]


async def test_bad_json_and_not_an_object(client: Client, auth: dict[str, str],
                                          check_error: Check) -> None:
    resp = await client.post("/v1/SubAccounts", data="{", headers=auth)
    check_error(await resp.json(), 400, 400010)
    resp = await client.post("/v1/SubAccounts", json=[1], headers=auth)
    check_error(await resp.json(), 400, 400001)
    made = await create(client, auth)
    resp = await client.put(f"/v1/SubAccounts/{made['id']}", json={"name": "a", "status": "gone"},
                            headers=auth)
    check_error(await resp.json(), 400, 400001)
    resp = await client.get("/v1/SubAccounts?status=deleted", headers=auth)
    check_error(await resp.json(), 400, 400001)


@pytest.mark.parametrize("sub_id", ["999", "0", "abc", "-1", "99999999999999999999"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_unknown_ids_answer_404801(client: Client, auth: dict[str, str], check_error: Check,
                                         sub_id: str, method: str) -> None:
    resp = await client.request(method, f"/v1/SubAccounts/{sub_id}", json={"name": "a"},
                                headers=auth)
    assert resp.status == 404
    check_error(await resp.json(), 404, 404801)
    resp = await client.get(f"/v1/SubAccounts/{sub_id}/LiveCalls", headers=auth)
    check_error(await resp.json(), 404, 404801)


async def test_delete_then_404802_everywhere(client: Client, auth: dict[str, str],
                                             check_error: Check) -> None:
    made = await create(client, auth)
    path = f"/v1/SubAccounts/{made['id']}"
    assert (await client.get(path + "/LiveCalls", headers=auth)).status == 200
    resp = await client.delete(path, headers=auth)
    assert resp.status == 204 and await resp.read() == b""
    for method in ("GET", "PUT", "DELETE"):
        resp = await client.request(method, path, json={"name": "a"}, headers=auth)
        check_error(await resp.json(), 404, 404802)
    resp = await client.get(path + "/LiveCalls", headers=auth)
    check_error(await resp.json(), 404, 404802)
    assert (await (await client.get("/v1/SubAccounts", headers=auth)).json())["subaccounts"] == []


async def test_delete_with_usage_answers_403803(client: Client, auth: dict[str, str],
                                                check_error: Check, storage: Storage) -> None:
    made = await create(client, auth)
    await storage.save_call_log({"call_id": "1@1", "start_time": "2026-01-01T00:00:00+00:00",
                                 "subaccount_id": made["id"]})
    resp = await client.delete(f"/v1/SubAccounts/{made['id']}", headers=auth)
    check_error(await resp.json(), 403, 403803)
    resp = await client.put(f"/v1/SubAccounts/{made['id']}", json={"name": "A",
                                                                  "status": "inactive"},
                            headers=auth)
    assert resp.status == 201 and (await resp.json())["status"] == "inactive"


async def test_sub_accounts_are_not_below_the_prefix(client: Client, auth: dict[str, str],
                                                     check_error: Check) -> None:
    made = await create(client, auth)
    resp = await client.get(f"/v1/SubAccounts/{made['id']}/SubAccounts", headers=auth)
    check_error(await resp.json(), 404, 404001)


async def test_prefix_needs_the_api_key(client: Client, check_error: Check) -> None:
    resp = await client.get("/v1/SubAccounts/1/LiveCalls")
    check_error(await resp.json(), 401, 401001)


async def test_a_trunk_is_usage_too(client: Client, auth: dict[str, str], check_error: Check,
                                    ctx: ApiContext, storage: Storage) -> None:
    ctx.inventory = InventoryService(storage)
    made = await create(client, auth)
    resp = await client.post(f"/v1/SubAccounts/{made['id']}/Trunks", headers=auth, json={
        "direction": "inbound", "inbound": {"destination": "127.0.0.1:5099"}})
    assert resp.status == 201, await resp.text()
    resp = await client.delete(f"/v1/SubAccounts/{made['id']}", headers=auth)
    check_error(await resp.json(), 403, 403803)
