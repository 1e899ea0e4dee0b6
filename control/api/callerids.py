"""Caller IDs (spec: Caller IDs): Create, List, View, Update, Delete and Verify.

An unknown caller ID is the spec's 404 404254; creating one the account has is its 400
404254 ("1001: failed to insert caller-id: this caller-id already exists"). Verify
starts the verification call (control.callerids) and answers the PIN at once; its
optional body (a voxswitch extension) sets `timeout`, the call's ring time in seconds.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError, ErrorPreset
from control.api.pagination import page_of
from control.api.query import fix_plus, json_body
from control.api.routing import Param, RouteTable, Schema
from control.callerids import (
    CAPABILITIES,
    E164,
    RING_TIMEOUT_S,
    STATUSES,
    CallerIdExists,
    CallerIdService,
    VerifyRefused,
    caller_id_json,
    new_row,
    now_iso,
)

routes = RouteTable("Caller IDs")

EXISTS = ErrorPreset(
    400, 404254, "1001: failed to insert caller-id: this caller-id already exists",
    "It appears that the request was invalid. Check the 'message' property for more detail.",
    "A 3rd-party service could not understand your request. This could be due to submitting "
    "invalid data.")
NOT_FOUND = ErrorPreset(
    404, 404254, "Not Found",
    "The Call ID Number does not exist in your application. It may have been removed or "
    "never added.", "The Caller ID Number could not be found.")

CALLER_ID = Param("caller_id", "path", {"type": "string"}, "E.164, + encoded as %2B.")
BODY: Schema = {"type": "object", "properties": {"description": {"type": ["string", "null"]}}}
VERIFY_BODY: Schema = {"type": "object", "properties": {"timeout": {
    "type": "integer", "minimum": RING_TIMEOUT_S[0], "maximum": RING_TIMEOUT_S[1],
    "description": "voxswitch: the verification call's ring time in seconds"}}}
CALLER_ID_SCHEMA: Schema = {"type": "object", "properties": {
    "no": {"type": "string"}, "formatted": {"type": "string"},
    "capabilities": {"type": "array", "items": {"enum": list(CAPABILITIES)}},
    "description": {"type": "string"}, "created_on": {"type": "string"},
    "updated_on": {"type": "string"}, "status": {"enum": list(STATUSES)},
    "usage": {"type": "integer"},
    "verification": {"type": ["object", "null"],
                     "description": "voxswitch: the last verification call"}}}
LIST_SCHEMA: Schema = {"type": "object", "properties": {
    "caller_ids": {"type": "array", "items": CALLER_ID_SCHEMA},
    "pagination": {"type": "object"}}}
VERIFY_SCHEMA: Schema = {"type": "object", "properties": {
    "id": {"type": "integer"}, "verify_pin": {"type": "string"}}}


def service(request: web.Request) -> CallerIdService:
    found = context(request).callerids
    if found is None:
        raise ApiError.not_supported()
    return found


def caller_id_of(request: web.Request) -> str:
    raw = fix_plus(request.match_info["caller_id"]).strip()
    if not E164.match(raw):
        raise ApiError.validation("caller_id", f"{raw!r} is not an E.164 number "
                                  "(example: +17145551212)")
    return raw


async def _description(request: web.Request) -> tuple[bool, str | None]:
    body = await json_body(request, required=False)
    if body is None:
        return False, None
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    value = body.get("description")
    if value is not None and not isinstance(value, str):
        raise ApiError.validation("description", "must be a string")
    if value is not None and len(value) > 255:
        raise ApiError.validation("description", "is longer than 255 characters")
    return "description" in body, value


async def _existing(request: web.Request) -> dict[str, Any]:
    no = caller_id_of(request)
    row = await service(request).store.get(subaccount(request), no)
    if row is None:
        raise ApiError.from_preset(NOT_FOUND, help=f"No caller ID {no}: it may have been "
                                   "removed or never added.")
    return row


@routes.route("POST", "/CallerIDs/{caller_id}", summary="Create a Caller ID",
              params=(CALLER_ID,), body=BODY, responses={201: CALLER_ID_SCHEMA})
async def create_caller_id(request: web.Request) -> web.Response:
    no = caller_id_of(request)
    _, description = await _description(request)
    row = new_row(no, subaccount(request), description)
    try:
        await service(request).store.create(row)
    except CallerIdExists:
        raise ApiError.from_preset(EXISTS) from None
    return web.json_response(caller_id_json(row), status=201)


@routes.route("GET", "/CallerIDs", summary="List Caller IDs", responses={200: LIST_SCHEMA})
async def list_caller_ids(request: web.Request) -> web.Response:
    page = page_of(request)
    rows, total = await service(request).store.list(subaccount(request), page.offset,
                                                    page.size)
    return web.json_response({"caller_ids": [caller_id_json(r) for r in rows],
                              "pagination": page.body(total)})


@routes.route("GET", "/CallerIDs/{caller_id}", summary="View a Caller ID",
              params=(CALLER_ID,), responses={200: CALLER_ID_SCHEMA})
async def get_caller_id(request: web.Request) -> web.Response:
    return web.json_response(caller_id_json(await _existing(request)))


@routes.route("PUT", "/CallerIDs/{caller_id}", summary="Update a Caller ID",
              params=(CALLER_ID,), body=BODY, responses={200: CALLER_ID_SCHEMA})
async def update_caller_id(request: web.Request) -> web.Response:
    row = await _existing(request)
    given, description = await _description(request)
    if given:
        row.update(description=description, updated_on=now_iso())
        await service(request).store.save(row)
    return web.json_response(caller_id_json(row))


@routes.route("DELETE", "/CallerIDs/{caller_id}", summary="Delete a Caller ID",
              params=(CALLER_ID,), responses={204: None})
async def delete_caller_id(request: web.Request) -> web.Response:
    row = await _existing(request)
    await service(request).store.delete(row["subaccount_id"], row["no"])
    return web.Response(status=204)


@routes.route("POST", "/CallerIDs/{caller_id}/Verify",
              summary="Verify a Caller ID: a call asks for the PIN", params=(CALLER_ID,),
              body=VERIFY_BODY, responses={200: VERIFY_SCHEMA})
async def verify_caller_id(request: web.Request) -> web.Response:
    row = await _existing(request)
    body = await json_body(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    timeout = (body or {}).get("timeout", RING_TIMEOUT_S[2])
    low, high, _ = RING_TIMEOUT_S
    if isinstance(timeout, bool) or not isinstance(timeout, int) \
            or not low <= timeout <= high:
        raise ApiError.validation("timeout", f"must be whole seconds from {low} to {high}")
    try:
        attempt = await service(request).verify(row, float(timeout))
    except VerifyRefused as exc:
        raise ApiError.validation("caller_id", str(exc)) from None
    return web.json_response({"id": attempt.id, "verify_pin": attempt.verify_pin})
