"""`GET /openapi.json`: an OpenAPI 3.1 document generated from the registered route table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from control.api.routing import ROUTES, Route, RouteTable, Schema

routes = RouteTable("Meta")

TITLE = "voxswitch control API"
VERSION = "0.1.0"
OPENAPI_PATH = "/openapi.json"

ERROR_SCHEMA: Schema = {
    "type": "object",
    "required": ["ref_id", "status", "code", "message", "help", "user_message"],
    "properties": {
        "ref_id": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "help": {"type": "string"},
        "user_message": {"type": "string"},
    },
}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in sorted(route.responses.items()):
        entry: dict[str, Any] = {"description": "No content" if schema is None else "Success"}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = entry
    responses["default"] = {
        "description": "Error (the spec's error body)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if route.handler.__doc__:
        op["description"] = " ".join(route.handler.__doc__.split())
    params = route.all_params()
    if params:
        op["parameters"] = [p.to_openapi() for p in params]
    if route.body is not None:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": route.body}},
        }
    return op


def build_document(table: Iterable[Route], server_url: str = "/v1") -> dict[str, Any]:
    """The OpenAPI document describing exactly the routes of `table`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION},
        "servers": [{"url": server_url}],
        "security": [{"ApiKey": []}],
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": paths,
    }


@routes.route(
    "GET",
    OPENAPI_PATH,
    summary="This API's OpenAPI 3.1 document",
    responses={200: {"type": "object"}},
)
async def get_openapi(request: web.Request) -> web.Response:
    # the server URL is wherever this app is mounted (/v1, or a prefix added later)
    server_url = request.path.removesuffix(OPENAPI_PATH) or "/"
    table: list[Route] = request.app[ROUTES]
    return web.json_response(build_document(table, server_url))
