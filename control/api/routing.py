"""The route table: one entry per API method, shared by the router and the OpenAPI document.

Each resource module owns a `RouteTable` and declares its methods with `@routes.route`,
next to the handler. `build_api` registers every entry of every table with aiohttp and
`openapi.json` is generated from the same entries, so a route cannot exist without being
documented. Adding a method is one decorated handler; adding a resource is one module
whose table is listed in `control.api.app.RESOURCES`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]

_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Param:
    """A query or path parameter as OpenAPI describes it."""

    name: str
    location: str  # "query" or "path"
    schema: Schema
    description: str = ""
    required: bool = False

    def to_openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "in": self.location, "schema": self.schema}
        if self.description:
            out["description"] = self.description
        if self.required or self.location == "path":
            out["required"] = True
        return out


def query(name: str, schema: Schema, description: str = "") -> Param:
    return Param(name, "query", schema, description)


@dataclass(frozen=True)
class Route:
    """One API method: where it lives, what handles it, and what it documents."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    body_required: bool = False
    # status → response schema, or None for "no body" (204)
    responses: dict[int, Schema | None] = field(default_factory=dict)
    # registered below /SubAccounts/{subaccount_id} (a copy of an unprefixed route)
    scoped: bool = False

    @property
    def operation_id(self) -> str:
        return self.handler.__name__ + ("_subaccount" if self.scoped else "")

    def all_params(self) -> list[Param]:
        """Declared parameters plus any path parameter the path names but none declares."""
        declared = {p.name for p in self.params}
        implied = [
            Param(name, "path", {"type": "string"})
            for name in _PATH_PARAM.findall(self.path)
            if name not in declared
        ]
        return [*implied, *self.params]


class RouteTable:
    """The routes of one resource module."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        params: tuple[Param, ...] = (),
        body: Schema | None = None,
        body_required: bool = False,
        responses: dict[int, Schema | None] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare `handler` as `method path`."""

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method.upper(),
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=self.tag,
                    params=params,
                    body=body,
                    body_required=body_required,
                    responses=responses if responses is not None else {200: None},
                )
            )
            return handler

        return register


# every Route registered in an app, in registration order (the OpenAPI document reads it)
ROUTES: web.AppKey[list[Route]] = web.AppKey("voxswitch_api_routes")
