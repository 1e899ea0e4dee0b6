"""The OpenAPI document lists exactly the routes the app serves."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.api.routing import RouteTable

Client = TestClient[web.Request, web.Application]

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def registered(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        assert route.resource is not None
        out.add((route.method.upper(), route.resource.canonical))
    return out


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, full path): document paths are relative to the server URL (the mount)."""
    server = doc["servers"][0]["url"]
    return {
        (method.upper(), server + path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


async def fetch_doc(app: web.Application, auth: dict[str, str]) -> dict[str, Any]:
    root = web.Application()
    root.add_subapp("/v1", app)
    async with TestClient(TestServer(root, host="127.0.0.1")) as client:
        resp = await client.get("/v1/openapi.json", headers=auth)
        assert resp.status == 200
        return await resp.json()


async def test_document_lists_every_registered_route_and_nothing_else(
    ctx: ApiContext, auth: dict[str, str]
) -> None:
    app = build_api(ctx)
    doc = await fetch_doc(app, auth)
    routes = registered(app)
    assert routes == documented(doc)
    # the resources this issue asked for are all there
    assert {
        (method, "/v1" + path)
        for method, path in {
            ("PUT", "/CallFlows/Configurations/Default"),
            ("GET", "/CallFlows/Configurations/PhoneNumbers"),
            ("DELETE", "/CallFlows/Configurations/PhoneNumbers/{phone_number}"),
            ("GET", "/LiveCalls"),
            ("GET", "/LiveCalls/{call_id}"),
            ("DELETE", "/LiveCalls/{call_id}"),
            ("POST", "/LiveCalls/{call_id}/Actions/HangUp"),
            ("GET", "/History/Logs/Calls"),
            ("GET", "/History/Logs/Calls/{call_id}"),
            ("GET", "/openapi.json"),
            # outbound calls, transfers and queues
            ("POST", "/Dials/Connect"),
            ("POST", "/LiveCalls/{call_id}/Actions/Transfer"),
            ("GET", "/LiveCalls/Queues"),
            ("GET", "/LiveCalls/Queues/{queue_name}"),
            ("DELETE", "/LiveCalls/Queues/{queue_name}"),
            ("GET", "/LiveCalls/Queues/{queue_name}/Calls"),
            ("GET", "/LiveCalls/Queues/{queue_name}/Calls/{call_id}"),
            ("DELETE", "/LiveCalls/Queues/{queue_name}/Calls/{call_id}"),
            ("GET", "/LiveCalls/Queues/{queue_name}/Peek"),
            ("GET", "/LiveCalls/Queues/{queue_name}/Poll"),
        }
    } <= routes


async def test_a_new_table_entry_appears_in_both(ctx: ApiContext, auth: dict[str, str]) -> None:
    table = RouteTable("Conferences")

    @table.route("GET", "/Conferences/{conference_id}", summary="View a conference")
    async def get_conference(request: web.Request) -> web.Response:
        return web.json_response({})

    app = build_api(ctx, extra=[table])
    doc = await fetch_doc(app, auth)
    assert ("GET", "/v1/Conferences/{conference_id}") in registered(app)
    assert registered(app) == documented(doc)
    op = doc["paths"]["/Conferences/{conference_id}"]["get"]
    assert op["tags"] == ["Conferences"]
    assert op["parameters"] == [
        {"name": "conference_id", "in": "path", "schema": {"type": "string"}, "required": True}
    ]


async def test_document_shape(ctx: ApiContext, auth: dict[str, str]) -> None:
    doc = await fetch_doc(build_api(ctx), auth)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": "/v1"}]
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"ref_id", "status", "code", "message", "help", "user_message"}
    operation_ids = []
    for path, item in doc["paths"].items():
        for op in item.values():
            operation_ids.append(op["operationId"])
            assert op["summary"] and op["responses"]["default"]
            # every {param} in the path is declared as a required path parameter
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path))
    assert len(operation_ids) == len(set(operation_ids))
    put = doc["paths"]["/CallFlows/Configurations/Default"]["put"]
    assert put["requestBody"]["required"] is True
    assert "callback" in put["requestBody"]["content"]["application/json"]["schema"]["required"]
    listing = doc["paths"]["/LiveCalls"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "sort_by",
        "sort_order",
        "filter_on_nos",
        "filter_on_call_id_nos",
        "filter_on_apis",
        "max_results",
        "min_connected_time",
        "max_connected_time",
    }
    assert "204" in doc["paths"]["/LiveCalls/{call_id}"]["delete"]["responses"]
