"""CallFlows configuration methods over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.storage import Storage

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]

BASE = "/v1/CallFlows/Configurations"
BODY: dict[str, Any] = {
    "callback": {
        "method": "POST",
        "url": "https://myserver.test/ivr_app/callback-handler",
        "content_type": "application/json",
        "headers": {"X-Custom-Name": "custom header value"},
    },
    "answer_on_ring": 5,
    "custom_data": {"foo": "bar"},
}


@pytest.mark.parametrize(
    "path,no",
    [
        ("/Default", {"value": "application", "type": "DEFAULT"}),
        ("/PhoneNumbers/%2B17145551213", {"value": "+17145551213", "type": "US"}),
        ("/PhoneNumbers/+17145551213", {"value": "+17145551213", "type": "US"}),
        ("/PhoneNumbers/%2B44%20207%20123%204567", {"value": "+442071234567", "type": "GB"}),
        ("/PhoneNumbers/1000", {"value": "1000", "type": "UNKNOWN"}),
        ("/PhoneNumbers/bob", {"value": "bob", "type": "UNKNOWN"}),
    ],
)
async def test_put_get_delete_round_trip(
    client: Client, auth: dict[str, str], check_error: Check, path: str, no: dict[str, str]
) -> None:
    resp = await client.put(BASE + path, json=BODY, headers=auth)
    assert resp.status == 200
    put = await resp.json()
    assert put["no"] == no
    assert put["callback"] == BODY["callback"] | {"timeout": 5}
    assert put["answer_on_ring"] == 5 and put["custom_data"] == {"foo": "bar"}
    assert put["created_on"] == put["updated_on"] == put["last_set_on"]

    resp = await client.get(BASE + path, headers=auth)
    assert resp.status == 200
    assert await resp.json() == put

    resp = await client.delete(BASE + path, headers=auth)
    assert resp.status == 204
    assert await resp.read() == b""

    resp = await client.get(BASE + path, headers=auth)
    assert resp.status == 404
    check_error(await resp.json(), 404, 404102)
    resp = await client.delete(BASE + path, headers=auth)
    assert resp.status == 404
    check_error(await resp.json(), 404, 404102)


async def test_encoded_and_formatted_numbers_name_one_config(
    client: Client, auth: dict[str, str]
) -> None:
    await client.put(BASE + "/PhoneNumbers/%2B1%20714-555-1212", json=BODY, headers=auth)
    resp = await client.get(BASE + "/PhoneNumbers/%2B17145551212", headers=auth)
    assert resp.status == 200


async def test_second_put_keeps_created_on(
    client: Client, auth: dict[str, str], storage: Storage
) -> None:
    path = BASE + "/PhoneNumbers/1000"
    first = await (await client.put(path, json=BODY, headers=auth)).json()
    second = await (
        await client.put(path, json={"callback": {"url": "http://x.test/"}}, headers=auth)
    ).json()
    assert second["created_on"] == first["created_on"]
    assert second["updated_on"] >= first["updated_on"]
    assert second["answer_on_ring"] == 1
    stored = await storage.get_config("1000")
    assert stored is not None and stored.callback.url == "http://x.test/"


async def test_default_and_number_configs_are_separate(
    client: Client, auth: dict[str, str]
) -> None:
    await client.put(BASE + "/Default", json=BODY, headers=auth)
    resp = await client.get(BASE + "/PhoneNumbers/1000", headers=auth)
    assert resp.status == 404
    body = await (await client.get(BASE + "/PhoneNumbers", headers=auth)).json()
    assert body["callbacks"] == []  # the Default is not a phone number


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "callback"),
        ({"callback": {"url": "nope"}}, "callback.url"),
        ({"callback": {"url": "https://x.test", "method": "PATCH"}}, "callback.method"),
        ({"callback": {"url": "https://x.test", "timeout": 30}}, "callback.timeout"),
        ({"callback": {"url": "https://x.test"}, "answer_on_ring": 20}, "answer_on_ring"),
        ({"callback": {"url": "https://x.test"}, "custom_data": 5}, "custom_data"),
        ([1, 2], "body"),
    ],
)
async def test_validation_errors_name_the_field(
    client: Client, auth: dict[str, str], check_error: Check, body: Any, field: str
) -> None:
    resp = await client.put(BASE + "/Default", json=body, headers=auth)
    assert resp.status == 400
    err = await resp.json()
    check_error(err, 400, 400001)
    assert field in err["message"] and field in err["help"]


@pytest.mark.parametrize("number", ["%2B0123", "%2B1abc", "a%20b", "x@y"])
async def test_bad_path_numbers(
    client: Client, auth: dict[str, str], check_error: Check, number: str
) -> None:
    resp = await client.get(BASE + "/PhoneNumbers/" + number, headers=auth)
    err = await resp.json()
    check_error(err, 400, 400001)
    assert "phone_number" in err["message"]


async def _fill(client: Client, auth: dict[str, str], count: int) -> list[str]:
    numbers = [f"+1949555{n:04d}" for n in range(count)]
    for number in numbers:
        resp = await client.put(BASE + "/PhoneNumbers/" + number, json=BODY, headers=auth)
        assert resp.status == 200
    return numbers


async def test_list_defaults_to_page_0_of_25(client: Client, auth: dict[str, str]) -> None:
    numbers = await _fill(client, auth, 27)
    body = await (await client.get(BASE + "/PhoneNumbers", headers=auth)).json()
    assert [c["no"]["value"] for c in body["callbacks"]] == numbers[:25]
    assert body["pagination"] == {
        "current_page": 0,
        "total_pages": 2,
        "total_items": 27,
        "items_per_page": 25,
    }


@pytest.mark.parametrize(
    "page,size,first,count,pages",
    [(0, 3, 0, 3, 3), (1, 3, 3, 3, 3), (2, 3, 6, 1, 3), (3, 3, 0, 0, 3), (0, 7, 0, 7, 1)],
)
async def test_list_pagination_math(
    client: Client,
    auth: dict[str, str],
    page: int,
    size: int,
    first: int,
    count: int,
    pages: int,
) -> None:
    numbers = await _fill(client, auth, 7)
    resp = await client.get(
        BASE + "/PhoneNumbers", params={"page": page, "page_size": size}, headers=auth
    )
    body = await resp.json()
    assert [c["no"]["value"] for c in body["callbacks"]] == numbers[first : first + count]
    assert body["pagination"] == {
        "current_page": page,
        "total_pages": pages,
        "total_items": 7,
        "items_per_page": size,
    }


async def test_empty_list_has_no_pages(client: Client, auth: dict[str, str]) -> None:
    body = await (await client.get(BASE + "/PhoneNumbers", headers=auth)).json()
    assert body == {
        "callbacks": [],
        "pagination": {"current_page": 0, "total_pages": 0, "total_items": 0, "items_per_page": 25},
    }


@pytest.mark.parametrize(
    "params,field",
    [
        ({"page": "-1"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1001"}, "page_size"),
        ({"page_size": "2.5"}, "page_size"),
    ],
)
async def test_bad_page_params(
    client: Client, auth: dict[str, str], check_error: Check, params: dict[str, str], field: str
) -> None:
    resp = await client.get(BASE + "/PhoneNumbers", params=params, headers=auth)
    err = await resp.json()
    check_error(err, 400, 400001)
    assert err["message"].startswith(f"Validation Error: {field} ")
