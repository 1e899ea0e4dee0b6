"""Trunks (spec: Trunks): SIP Trunks stored in SQLite, and their call logs.

An unknown trunk_id is the spec's general 404002 ("the resource no longer exists"), bad
bodies 400001 naming the field. Deleting a trunk parks its numbers (ParkingLot) rather
than leave them routed nowhere.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.context import context, owns, subaccount
from control.api.errors import ApiError
from control.api.history import MAX_LOGS, date_range
from control.api.phonenumbers import _TRUNK_NOT_FOUND, TRUNK_ID, inventory
from control.api.query import json_body, list_param
from control.api.routing import RouteTable, Schema, query
from control.calls import iso
from control.inventory import PARKING_LOT, TRUNKS, InventoryService
from control.trunks import (
    AUTH_SOURCES,
    DIRECTIONS,
    FAILOVER_SOURCES,
    FAX_SUPPORT,
    RECORDING_SETTINGS,
    STATUSES,
    build_trunk,
    new_trunk_id,
)

routes = RouteTable("Trunks")

_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
TRUNK_BODY: Schema = {
    "type": "object",
    "properties": {
        "direction": {"enum": list(DIRECTIONS)},
        "status": {"enum": list(STATUSES)},
        "description": _NULLABLE_STRING,
        "simultaneous_call_limit": {"type": ["integer", "null"], "minimum": 1},
        "recording": {"type": "object", "properties": {
            "setting": {"enum": list(RECORDING_SETTINGS)}}},
        "inbound": {"type": "object", "required": ["destination"], "properties": {
            "destination": {"type": "string"},
            "failover": {"type": "object", "properties": {
                "source": {"enum": [*FAILOVER_SOURCES, None]}, "value": _NULLABLE_STRING}}}},
        "outbound": {"type": "object", "properties": {
            "domain": _NULLABLE_STRING,
            "authentication": {"type": "array", "items": {
                "type": "object", "required": ["source", "value"], "properties": {
                    "source": {"enum": list(AUTH_SOURCES)}, "value": {"type": "string"}}}},
            "override_early_media": _NULLABLE_STRING,
            "fax_support": {"enum": list(FAX_SUPPORT)},
            "max_post_dial_delay": {"type": ["integer", "null"], "minimum": 7,
                                    "maximum": 30}}},
    },
}
CREATE_BODY: Schema = {**TRUNK_BODY, "required": ["direction"]}
TRUNK_SCHEMA: Schema = {"type": "object", "properties": {
    "trunk_id": {"type": "string"}, "created_on": {"type": "string"},
    "modified_on": {"type": "string"}, "updated_on": {"type": "string"},
    "app_id": {"type": "string"}, "subaccount_id": {"type": ["integer", "null"]},
    **TRUNK_BODY["properties"]}}
LIST_SCHEMA: Schema = {"type": "object", "properties": {
    "trunks": {"type": "array", "items": TRUNK_SCHEMA}}}


async def _trunk(request: web.Request) -> dict[str, Any]:
    trunk_id = request.match_info["trunk_id"]
    trunk = await inventory(request).store.get_trunk(trunk_id)
    if trunk is None or not owns(request, trunk):  # another account's: never existed
        raise ApiError.from_preset(_TRUNK_NOT_FOUND, help=f"No SIP Trunk {trunk_id!r}: the "
                                   "ID is wrong, or the trunk was deleted.")
    return trunk


async def _check_failover(request: web.Request, trunk: dict[str, Any]) -> None:
    fo = (trunk.get("inbound") or {}).get("failover") or {}
    if fo.get("source") != "trunk_id":
        return
    other = await inventory(request).store.get_trunk(fo["value"])
    if other is None or other["direction"] != "inbound" or not owns(request, other):
        raise ApiError.validation("inbound.failover.value",
                                  f"no inbound SIP Trunk {fo['value']!r}")


async def _save(request: web.Request, trunk: dict[str, Any]) -> None:
    await _check_failover(request, trunk)
    if not await inventory(request).store.put_trunk(trunk):
        raise ApiError.validation("outbound.domain", f"{trunk['outbound']['domain']} is "
                                  "already the domain of another trunk")


@routes.route("GET", "/Trunks", summary="List SIP Trunks", responses={200: LIST_SCHEMA})
async def list_trunks(request: web.Request) -> web.Response:
    trunks = await inventory(request).store.list_trunks()
    return web.json_response({"trunks": [t for t in trunks if owns(request, t)]})


@routes.route("POST", "/Trunks", summary="Create a SIP Trunk", body=CREATE_BODY,
              body_required=True, responses={201: TRUNK_SCHEMA})
async def create_trunk(request: web.Request) -> web.Response:
    trunk = build_trunk(await json_body(request), None, trunk_id=new_trunk_id(),
                        now=InventoryService.now(), app_id=context(request).app_id,
                        subaccount_id=subaccount(request))
    await _save(request, trunk)
    return web.json_response(trunk, status=201)


@routes.route("GET", "/Trunks/{trunk_id}", summary="View a SIP Trunk", params=(TRUNK_ID,),
              responses={200: TRUNK_SCHEMA})
async def get_trunk(request: web.Request) -> web.Response:
    return web.json_response(await _trunk(request))


@routes.route("PUT", "/Trunks/{trunk_id}", summary="Update a SIP Trunk", params=(TRUNK_ID,),
              body=TRUNK_BODY, body_required=True, responses={200: TRUNK_SCHEMA})
async def update_trunk(request: web.Request) -> web.Response:
    """Fields given replace the stored ones (inbound, outbound and recording field by
    field); the direction cannot change."""
    existing = await _trunk(request)
    trunk = build_trunk(await json_body(request), existing, trunk_id=existing["trunk_id"],
                        now=InventoryService.now(), app_id=context(request).app_id,
                        subaccount_id=existing.get("subaccount_id") or 0)
    await _save(request, trunk)
    return web.json_response(trunk)


@routes.route("DELETE", "/Trunks/{trunk_id}", summary="Delete a SIP Trunk",
              params=(TRUNK_ID,), responses={204: None})
async def delete_trunk(request: web.Request) -> web.Response:
    """Its numbers go to the ParkingLot."""
    trunk = await _trunk(request)
    store = inventory(request).store
    await store.delete_trunk(trunk["trunk_id"])
    await store.reassign(TRUNKS + trunk["trunk_id"], PARKING_LOT, InventoryService.now())
    return web.Response(status=204)


@routes.route("GET", "/Trunks/{trunk_id}/Logs/Calls",
              summary="List the call logs of one SIP Trunk (at most 1,000)",
              params=(TRUNK_ID,
                      query("begin_date", {"type": "string", "format": "date-time"},
                            "Inclusive; default one hour before now."),
                      query("end_date", {"type": "string", "format": "date-time"},
                            "Exclusive; default now."),
                      query("direction", {"type": "string"}, "inbound, outbound or both.")),
              responses={200: {"type": "object"}})
async def list_trunk_call_logs(request: web.Request) -> web.Response:
    """The History/Logs/Calls records (with `trunk_id`) of the calls the trunk carried."""
    trunk = await _trunk(request)
    begin, end = date_range(request)
    directions = list_param(request, "direction", separators=",|")
    for d in directions or []:
        if d not in DIRECTIONS:
            raise ApiError.validation("direction", "must be inbound, outbound or both")
    logs, truncated = await inventory(request).store.trunk_call_logs(
        trunk["trunk_id"], begin, end, directions, MAX_LOGS)
    return web.json_response({"logs": logs, "begin_date": iso(begin), "end_date": iso(end),
                              "is_truncated": truncated})
