"""Authentication, the error body and the middleware's mapping of failures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.api.routing import RouteTable
from control.storage import Storage

Check = Callable[[dict[str, Any], int, int], None]

Client = TestClient[web.Request, web.Application]

ROUTES = [
    ("GET", "/v1/CallFlows/Configurations/Default"),
    ("PUT", "/v1/CallFlows/Configurations/PhoneNumbers/%2B17145551212"),
    ("GET", "/v1/CallFlows/Configurations/PhoneNumbers"),
    ("GET", "/v1/LiveCalls"),
    ("DELETE", "/v1/LiveCalls/1@1"),
    ("POST", "/v1/LiveCalls/1@1/Actions/HangUp"),
    ("GET", "/v1/History/Logs/Calls"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/NoSuchThing"),
]


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
async def test_every_route_needs_the_api_key(
    client: Client, method: str, path: str, headers: dict[str, str], check_error: Check
) -> None:
    resp = await client.request(method, path, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    check_error(body, 401, 401001)
    assert body["message"] == "Failed Authentication"
    assert "X-API-Key" in body["help"]


async def test_key_of_another_length_fails(client: Client, auth: dict[str, str]) -> None:
    resp = await client.get("/v1/LiveCalls", headers={"X-API-Key": auth["X-API-Key"] + "x"})
    assert resp.status == 401


async def test_right_key_passes(client: Client, auth: dict[str, str]) -> None:
    resp = await client.get("/v1/LiveCalls", headers=auth)
    assert resp.status == 200


async def test_ref_ids_differ(client: Client) -> None:
    first = await (await client.get("/v1/LiveCalls")).json()
    second = await (await client.get("/v1/LiveCalls")).json()
    assert first["ref_id"] != second["ref_id"]


@pytest.mark.parametrize(
    "path", ["/v1/NoSuchThing", "/v1/CallFlows/Configurations/Nope", "/v1/LiveCalls/1/2/3"]
)
async def test_unknown_route_is_404001(
    client: Client, auth: dict[str, str], path: str, check_error: Check
) -> None:
    resp = await client.get(path, headers=auth)
    assert resp.status == 404
    check_error(await resp.json(), 404, 404001)


async def test_wrong_method_is_405001(
    client: Client, auth: dict[str, str], check_error: Check
) -> None:
    resp = await client.post("/v1/CallFlows/Configurations/Default", headers=auth)
    assert resp.status == 405
    body = await resp.json()
    check_error(body, 405, 405001)
    assert "POST" in body["help"]
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}


@pytest.mark.parametrize("payload", [b"{", b"not json", b'{"callback": }', b"\x00", b"\xff{}"])
async def test_bad_json_is_400010(
    client: Client, auth: dict[str, str], payload: bytes, check_error: Check
) -> None:
    resp = await client.put("/v1/CallFlows/Configurations/Default", data=payload, headers=auth)
    assert resp.status == 400
    body = await resp.json()
    check_error(body, 400, 400010)
    assert body["message"] == "Parsing Error"


async def test_empty_body_where_one_is_required_is_400010(
    client: Client, auth: dict[str, str], check_error: Check
) -> None:
    resp = await client.put("/v1/CallFlows/Configurations/Default", headers=auth)
    check_error(await resp.json(), 400, 400010)


async def test_storage_failure_is_500102(
    client: Client, auth: dict[str, str], storage: Storage, check_error: Check
) -> None:
    await storage.close()
    resp = await client.get("/v1/CallFlows/Configurations/Default", headers=auth)
    assert resp.status == 500
    body = await resp.json()
    check_error(body, 500, 500102)
    assert body["message"] == "Database Error"


async def test_a_bug_is_500999_and_the_server_keeps_serving(
    ctx: ApiContext, auth: dict[str, str], caplog: pytest.LogCaptureFixture, check_error: Check
) -> None:
    table = RouteTable("Test")

    @table.route("GET", "/boom", summary="raises")
    async def boom(request: web.Request) -> web.Response:
        raise KeyError("oops")

    root = web.Application()
    root.add_subapp("/v1", build_api(ctx, extra=[table]))
    async with TestClient(TestServer(root, host="127.0.0.1")) as client:
        with caplog.at_level(logging.INFO, logger="control.api"):
            resp = await client.get("/v1/boom", headers=auth)
            assert resp.status == 500
            body = await resp.json()
            check_error(body, 500, 500999)
            assert body["message"] == "Uncaught Error: KeyError"
            assert (await client.get("/v1/LiveCalls", headers=auth)).status == 200
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks and "oops" in str(tracebacks[0].exc_info[1])  # type: ignore[index]


async def test_each_request_is_logged_with_its_fields(
    client: Client, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="control.api"):
        await client.get("/v1/LiveCalls", headers=auth)
        await client.get("/v1/Nope", headers=auth)
    records: list[Any] = [r for r in caplog.records if hasattr(r, "http_status")]
    assert [(r.http_method, r.http_path, r.http_status) for r in records] == [
        ("GET", "/v1/LiveCalls", 200),
        ("GET", "/v1/Nope", 404),
    ]
    assert all(r.duration_ms >= 0 for r in records)


def test_a_route_declared_twice_is_refused(ctx: ApiContext) -> None:
    table = RouteTable("Test")

    @table.route("GET", "/LiveCalls", summary="again")
    async def again(request: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ValueError, match="declared twice"):
        build_api(ctx, extra=[table])
