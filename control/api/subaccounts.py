"""Application Sub Accounts: their CRUD methods and the `/SubAccounts/{id}` prefix.

Spec: "Application Sub Accounts" and "Sub Account Errors". `build_api` registers every
route of the API a second time below `PREFIX` (`Route.scoped`); `resolve` checks the
prefix's id before the handler runs (404801 never existed, 404802 deleted) and stores it
in the request, where `context.subaccount(request)` reads it. Handlers scope what they
read and write by it: another account's id is as unknown as one that never existed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api import pagination
from control.api.context import CONTEXT, SUBACCOUNT, context
from control.api.errors import ApiError, ErrorPreset
from control.api.query import choice_param, json_body
from control.api.routing import Param, RouteTable, Schema, query
from control.subaccountstore import ACTIVE, DELETED, INACTIVE, SubAccountRow, SubAccountStore

routes = RouteTable("SubAccounts")

PREFIX = "/SubAccounts/{subaccount_id}"
PREFIX_PARAM = Param("subaccount_id", "path", {"type": "integer", "minimum": 1},
                     "The Sub Account the method acts as (spec: prepend /SubAccounts/{id}).")

CANNOT_DELETE = ErrorPreset(
    403, 403803, "Forbidden",
    "You cannot delete due to usage on the Sub Account. If you want to deactivate this Sub "
    "Account you may update the \u201cstatus\u201d to \u201cinactive\u201d using the PUT method.",
    "This Sub Account cannot be deleted due to historical usage. You may, however, "
    "deactivate the Sub Account.")
NEVER_EXISTED = ErrorPreset(
    404, 404801, "Not Found",
    "The Sub Account ID is incorrect. A Sub Account by that ID never existed under this "
    "application.", "A 3rd-party service could not find the requested resource.")
NO_LONGER_EXISTS = ErrorPreset(
    404, 404802, "Not Found",
    "The Sub Account ID references a Sub Account that no longer exists.",
    "A 3rd-party service reports that the requested resource is no longer available.")

ADDRESS_FIELDS = ("address_1", "address_2", "city", "region", "postal_code", "country",
                  "type_of_service")
ADDRESS_REQUIRED = ("address_1", "city", "region", "postal_code", "country",
                    "type_of_service")
TYPES_OF_SERVICE = ("business", "residence")
MAX_TEXT = 255

ADDRESS_SCHEMA: Schema = {
    "type": ["object", "null"],
    "properties": {
        **{f: {"type": "string"} for f in ADDRESS_FIELDS},
        "country": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "type_of_service": {"enum": list(TYPES_OF_SERVICE)},
    },
}
CREATE_BODY: Schema = {
    "type": "object", "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1},
                   "port_out_pin": {"type": ["string", "null"]},
                   "notes": {"type": ["string", "null"]},
                   "service_address": ADDRESS_SCHEMA},
}
UPDATE_BODY: Schema = {
    **CREATE_BODY,
    "properties": {**CREATE_BODY["properties"],
                   "status": {"enum": [ACTIVE, INACTIVE]}},
}
SUBACCOUNT_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"},
        **{t: {"type": "string", "format": "date-time"}
           for t in ("created_on", "modified_on", "updated_on")},
        "notes": {"type": ["string", "null"]}, "status": {"enum": [ACTIVE, INACTIVE]},
        "port_out_pin": {"type": ["string", "null"]}, "service_address": ADDRESS_SCHEMA,
        "sip_domains": {"type": "object", "properties": {"callflows": {"type": "string"}}},
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {"app_id": {"type": "string"},
                   "subaccounts": {"type": "array", "items": SUBACCOUNT_SCHEMA},
                   "pagination": pagination.SCHEMA},
}
ID = Param("id", "path", {"type": "integer", "minimum": 1}, "ID of the sub account.")


def _store(request: web.Request) -> SubAccountStore:
    # not context(): it is scoped by the very prefix `resolve` is about to check
    return SubAccountStore(request.config_dict[CONTEXT].storage)


def _parse_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def existing(request: web.Request, raw: str) -> SubAccountRow:
    """The sub-account `raw` names; 404801 when it never existed, 404802 when deleted."""
    sub_id = _parse_id(raw)
    row = await _store(request).get(sub_id) if sub_id else None
    if row is None:
        raise ApiError.from_preset(NEVER_EXISTED)
    if row.status == DELETED:
        raise ApiError.from_preset(NO_LONGER_EXISTS)
    return row


async def resolve(request: web.Request) -> None:
    """Check a `/SubAccounts/{subaccount_id}` prefix and remember its id in the request."""
    raw = request.match_info.get("subaccount_id")
    if raw is not None:
        request[SUBACCOUNT] = (await existing(request, raw)).id


def _text(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > MAX_TEXT:
        what = "a non-empty string" if required else "a string"
        raise ApiError.validation(name, f"must be {what} of at most {MAX_TEXT} characters")
    return value


def _address(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError.validation("service_address", "must be an object")
    out: dict[str, str] = {}
    for name in ADDRESS_FIELDS:
        item = _text(value, name, required=name in ADDRESS_REQUIRED)
        out[name] = item or ""
    field = "service_address."
    if not (len(out["country"]) == 2 and out["country"].isalpha()):
        raise ApiError.validation(field + "country", "must be an ISO Alpha-2 country code")
    out["country"] = out["country"].upper()
    if out["type_of_service"] not in TYPES_OF_SERVICE:
        raise ApiError.validation(field + "type_of_service", "must be business or residence")
    return out


def _fields(body: Any, update: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    data = {"name": _text(body, "name", required=True),
            "port_out_pin": _text(body, "port_out_pin"),
            "notes": _text(body, "notes"),
            "service_address": _address(body.get("service_address"))}
    if update and body.get("status") is not None and body["status"] not in (ACTIVE, INACTIVE):
        raise ApiError.validation("status", "must be active or inactive")
    return data


def _view(request: web.Request, row: SubAccountRow) -> dict[str, Any]:
    app_id = context(request).app_id
    return {
        "id": row.id, "name": row.data.get("name"),
        "created_on": row.created_on, "modified_on": row.updated_on,
        "updated_on": row.updated_on, "notes": row.data.get("notes"), "status": row.status,
        "port_out_pin": row.data.get("port_out_pin"),
        "service_address": row.data.get("service_address"),
        # not routed: a sub-account's calls come in on its numbers
        "sip_domains": {"callflows": f"{app_id[:8]}-{row.id:04d}.accounts.sip.voxswitch"},
    }


@routes.route("POST", "/SubAccounts", summary="Create a Sub Account", body=CREATE_BODY,
              body_required=True, responses={201: SUBACCOUNT_SCHEMA})
async def create_subaccount(request: web.Request) -> web.Response:
    data = _fields(await json_body(request), update=False)
    row = await _store(request).create(data)
    return web.json_response(_view(request, row), status=201)


@routes.route("GET", "/SubAccounts", summary="List Sub Accounts",
              params=(*pagination.PARAMS,
                      query("status", {"enum": [ACTIVE, INACTIVE]},
                            "active or inactive; default: active")),
              responses={200: LIST_SCHEMA})
async def list_subaccounts(request: web.Request) -> web.Response:
    page = pagination.page_of(request)
    status = choice_param(request, "status", (ACTIVE, INACTIVE), ACTIVE)
    assert status is not None
    rows, total = await _store(request).list_page((status,), page.offset, page.size)
    return web.json_response({
        "app_id": context(request).app_id,
        "subaccounts": [_view(request, row) for row in rows],
        "pagination": page.body(total),
    })


@routes.route("GET", "/SubAccounts/{id}", summary="View Sub Account detail", params=(ID,),
              responses={200: SUBACCOUNT_SCHEMA})
async def get_subaccount(request: web.Request) -> web.Response:
    return web.json_response(_view(request, await existing(request, request.match_info["id"])))


@routes.route("PUT", "/SubAccounts/{id}", summary="Update a Sub Account", params=(ID,),
              body=UPDATE_BODY, body_required=True, responses={201: SUBACCOUNT_SCHEMA})
async def update_subaccount(request: web.Request) -> web.Response:
    row = await existing(request, request.match_info["id"])
    body = await json_body(request)
    # what the body leaves out is kept (name is required, so it always changes)
    data = {**row.data, **{k: v for k, v in _fields(body, update=True).items() if k in body}}
    status = body.get("status") or row.status
    updated = await _store(request).update(row.id, status, data)
    assert updated is not None  # _existing found it, and rows are never removed
    return web.json_response(_view(request, updated), status=201)


@routes.route("DELETE", "/SubAccounts/{id}", summary="Delete a Sub Account", params=(ID,),
              responses={204: None})
async def delete_subaccount(request: web.Request) -> web.Response:
    """403803 once the Sub Account has had numbers, calls, messages or recordings."""
    row = await existing(request, request.match_info["id"])
    store = _store(request)
    if await store.has_usage(row.id):
        raise ApiError.from_preset(CANNOT_DELETE)
    await store.delete(row.id)
    return web.Response(status=204)
