"""PhoneNumbers (spec: Phone Numbers): the local number inventory over REST.

Searching `Available` reads the configured pool; "purchasing" a number (POST) assigns it
to CallFlows, ParkingLot or Trunks/{trunk_id} at once (status `routed`, price 0); PUT
edits its description, caller_id_name and port_out_pin; Move reassigns it (and its sub
account); DELETE releases it back to the pool. Errors are the spec's Phone Number Errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from control import numbers
from control.api import pagination
from control.api.context import context, owns, subaccount
from control.api.errors import ApiError, ErrorPreset
from control.api.query import choice_param, int_param, json_body, list_param
from control.api.routing import Param, RouteTable, Schema, query
from control.api.subaccounts import existing as existing_subaccount
from control.inventory import (
    CALL_FLOWS,
    PARKING_LOT,
    TRUNKS,
    Busy,
    InventoryService,
    number_json,
)
from control.inventorystore import EDITABLE, NUMBER_SORTS, Conflict

routes = RouteTable("PhoneNumbers")

STATUSES = ("reserving", "reserved", "routing", "routed", "released", "paused",
            "reserved_routing_error", "error")
CAPABILITY_QUERY = ("voice", "sms")
_E164_HELP = "an E.164 number such as +19495551212"

# spec: Phone Number Errors
ALREADY_ASSIGNED = ErrorPreset(400, 400200, "Bad Request",
                               "The numbers are already assigned to the API.",
                               "The specified phone number(s) are already assigned to this API.")
NONE_ASSIGNED = ErrorPreset(400, 400201, "Bad Request",
                            "None of the numbers are assigned to this API. No phone numbers "
                            "could be released.", "No numbers are assigned to this API.")
NO_PROVISIONING = ErrorPreset(400, 400202, "Bad Request",
                              "The /PhoneNumbers/_ resource does not support phone number "
                              "provisioning.", "The request was invalid.")
BAD_SEARCH = ErrorPreset(400, 400203, "Bad Request", "",
                         "The search was invalid. This is likely due to an invalid "
                         "combination of search criteria.")
NOT_IN_POOL = ErrorPreset(404, 400404, "Phone number not found", "",
                          "The phone number is not available.")
NOT_HELD = ErrorPreset(404, 404214, "Phone number not found",
                       "The Phone Numbers(s) do not exist in your application.",
                       "The Phone Number(s) could not be found.")
CONCURRENT = ErrorPreset(423, 423001, "Concurrent Request Error",
                         "Provisioning and releasing phone numbers does not support concurrent "
                         "requests per API Key. On status 423, try again after a few seconds.",
                         "Our service was busy modifying phone numbers. Please try again.")

NUMBER_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "no": {"type": "string"}, "formatted": {"type": "string"},
        "assigned_to": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]},
        "capabilities": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"}, "caller_id_name": {"type": ["string", "null"]},
        "status": {"enum": list(STATUSES)}, "price": {"type": "number"},
        "price_period": {"type": "string"}, "created_on": {"type": "string"},
        "updated_on": {"type": "string"}, "usage": {"type": "integer"},
        "port_out_pin": {"type": ["string", "null"]}, "type": {"enum": ["local", "toll_free"]},
        "location": {"type": "object"}, "estimated_active_date": {"type": ["string", "null"]},
    },
}
LIST_SCHEMA: Schema = {"type": "object", "properties": {
    "phone_numbers": {"type": "array", "items": NUMBER_SCHEMA},
    "pagination": pagination.SCHEMA}}
PROVISIONED_SCHEMA: Schema = {"type": "object", "properties": {
    "assigned_to": {"type": "string"},
    "phone_numbers": {"type": "array", "items": NUMBER_SCHEMA}}}
NUMBERS_BODY: Schema = {
    "type": "object", "required": ["phone_numbers"],
    "properties": {"phone_numbers": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["no"], "properties": {"no": {"type": "string"}}}}},
}
MOVE_BODY: Schema = {**NUMBERS_BODY, "properties": {
    **NUMBERS_BODY["properties"], "app_id": {"type": "string"},
    "subaccount_id": {"type": "integer"}}}
UPDATE_BODY: Schema = {"type": "object", "properties": {
    "description": {"type": "string"},
    "caller_id_name": {"type": "string", "maxLength": 15},
    "port_out_pin": {"type": ["string", "null"], "maxLength": 10}}}
SEARCH_PARAMS = (
    query("capabilities", {"type": "string"}, "voice and/or sms, comma-delimited."),
    query("country", {"type": "string"}, "ISO Alpha-2 country code (Available: default US)."),
    query("type", {"enum": list(numbers.TYPES), "default": "all"}),
    query("search_by", {"enum": list(numbers.SEARCH_BY), "default": "region"},
          "prefixes or vanity (the pool holds no location data)."),
    query("search_on", {"type": "string"}, "The prefixes (949,714 or +1949) or the vanity "
          "pattern (digits, letters, * any digit, & a repeated digit)."),
)
AVAILABLE_PARAMS = (*SEARCH_PARAMS, query("max_results", {"type": "integer", "minimum": 1,
                                                          "maximum": 100, "default": 10}))
LIST_PARAMS = (*SEARCH_PARAMS,
               query("status", {"enum": list(STATUSES)}, "Default: all but released."),
               query("sort_by", {"enum": list(NUMBER_SORTS), "default": "updated_on"}),
               query("sort_order", {"enum": ["asc", "desc"], "default": "asc"}),
               *pagination.PARAMS)
PHONE_NUMBER = Param("phone_number", "path", {"type": "string"},
                     "E.164 number (URL-encode the +: %2B19495551212).")
TRUNK_ID = Param("trunk_id", "path", {"type": "string"}, "The ID of an inbound SIP Trunk.")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def inventory(request: web.Request) -> InventoryService:
    service = context(request).inventory
    if service is None:
        raise ApiError.not_supported()
    return service


def _error(preset: ErrorPreset, help: str | None = None,
           message: str | None = None) -> ApiError:
    return ApiError.from_preset(preset, help=help, message=message)


def _e164(value: Any, field: str) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text and text.startswith(" "):
        text = "+" + text.lstrip()
    if not text or not numbers._E164.match(text):
        raise ApiError.validation(field, f"must be {_E164_HELP}")
    return text


def _path_number(request: web.Request) -> str:
    raw = request.match_info["phone_number"].strip()
    if raw[:1].isdigit():
        raw = "+" + raw  # a '+' lost to form decoding, or left out
    return _e164(raw, "phone_number")


def _body_numbers(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object with phone_numbers")
    items = body.get("phone_numbers")
    if not isinstance(items, list) or not items:
        raise ApiError.validation("phone_numbers", "is required: a list of {\"no\": "
                                  "\"+19495551212\"}")
    out: list[str] = []
    for i, item in enumerate(items):
        no = item.get("no") if isinstance(item, dict) else None
        no = _e164(no, f"phone_numbers[{i}].no")
        if no not in out:
            out.append(no)
    return out


async def _assigned_to(request: web.Request, service: InventoryService,
                       segment: str | None = None) -> str:
    """The path's assignment: CallFlows, ParkingLot or Trunks/{an inbound trunk}."""
    trunk_id = request.match_info.get("trunk_id")
    if trunk_id is None:
        return segment or CALL_FLOWS
    trunk = await service.store.get_trunk(trunk_id)
    if trunk is None or not owns(request, trunk):
        raise ApiError.from_preset(_TRUNK_NOT_FOUND, help=f"No SIP Trunk {trunk_id!r}.")
    if trunk["direction"] != "inbound":
        raise ApiError.validation("assigned_to", f"trunk {trunk_id} is outbound; numbers are "
                                  "assigned to inbound trunks")
    return TRUNKS + trunk_id


_TRUNK_NOT_FOUND = ErrorPreset(404, 404002, "Not Found", "",
                               "The requested SIP Trunk does not exist.")


def _search(request: web.Request, default_country: str | None) -> numbers.Search:
    """The search options; lists of provisioned numbers take every country unless
    `country` is given (the pool search defaults to US, as the spec says)."""
    for cap in list_param(request, "capabilities") or []:
        if cap.strip().lower() not in CAPABILITY_QUERY:
            raise ApiError.validation("capabilities", "accepts voice and sms")
    country = (request.query.get("country") or default_country or "").strip().upper() or None
    if country is not None and (len(country) != 2 or not country.isalpha()):
        raise ApiError.validation("country", "must be an ISO Alpha-2 country code such as US")
    kind = choice_param(request, "type", numbers.TYPES, "all") or "all"
    search_by = choice_param(request, "search_by", numbers.SEARCH_BY, "region") or "region"
    search_on = request.query.get("search_on")
    if search_on is not None and search_by == "prefixes":
        search_on = ",".join("+" + p.lstrip() if p.startswith(" ") else p
                             for p in search_on.split(","))
    q = numbers.Search(type=kind, country=country, search_by=search_by,
                       search_on=search_on or None)
    try:
        q.matcher()
    except numbers.SearchError as exc:
        raise _error(BAD_SEARCH, help=str(exc), message=f"Bad Request: {exc}") from None
    return q


# ---- search and list ---------------------------------------------------------------------


@routes.route("GET", "/PhoneNumbers/Available", summary="List available numbers of the pool",
              params=AVAILABLE_PARAMS, responses={200: LIST_SCHEMA})
async def list_available_numbers(request: web.Request) -> web.Response:
    """Numbers of the configured pool that no one holds, lowest first."""
    if not list_param(request, "capabilities"):
        raise ApiError.validation("capabilities", "is required: voice and/or sms")
    q = _search(request, "US")
    limit = int_param(request, "max_results", 10, lo=1, hi=numbers.MAX_RESULTS) or 10
    found = await inventory(request).available(q, limit)
    now = InventoryService.now()
    return web.json_response({"phone_numbers": [numbers.available_json(no, now)
                                                 for no in found]})


async def _list(request: web.Request, assigned_to: str | None) -> web.Response:
    q = _search(request, None)
    status = choice_param(request, "status", STATUSES, None)
    sort_by = choice_param(request, "sort_by", tuple(NUMBER_SORTS), "updated_on") \
        or "updated_on"
    order = choice_param(request, "sort_order", ("asc", "desc"), "asc")
    page = pagination.page_of(request)
    rows, total = await inventory(request).store.list_numbers(
        assigned_to, [status] if status else None, sort_by, order == "desc", page.offset,
        page.size, q.matcher(), subaccount_id=subaccount(request))
    return web.json_response({"phone_numbers": [number_json(r) for r in rows],
                              "pagination": page.body(total)})


@routes.route("GET", "/PhoneNumbers", summary="List every provisioned number",
              params=LIST_PARAMS, responses={200: LIST_SCHEMA})
async def list_numbers(request: web.Request) -> web.Response:
    return await _list(request, None)


def _by_assignment(segment: str) -> tuple[Handler, Handler, Handler]:
    async def list_assigned(request: web.Request) -> web.Response:
        service = inventory(request)
        return await _list(request, await _assigned_to(request, service, segment))

    async def provision(request: web.Request) -> web.Response:
        return await _provision(request, segment)

    async def release(request: web.Request) -> web.Response:
        return await _release(request, segment)
    name = segment.lower()
    list_assigned.__name__ = f"list_numbers_{name}"
    provision.__name__ = f"provision_numbers_{name}"
    release.__name__ = f"release_numbers_{name}"
    return list_assigned, provision, release


for _segment, _path, _params in ((CALL_FLOWS, "/PhoneNumbers/CallFlows", ()),
                                 (PARKING_LOT, "/PhoneNumbers/ParkingLot", ()),
                                 ("Trunks", "/PhoneNumbers/Trunks/{trunk_id}", (TRUNK_ID,))):
    _lister, _provisioner, _releaser = _by_assignment(_segment)
    routes.route("GET", _path, summary=f"List the numbers assigned to {_segment}",
                 params=(*_params, *LIST_PARAMS), responses={200: LIST_SCHEMA})(_lister)
    routes.route("POST", _path, summary=f"Provision pool numbers to {_segment}",
                 params=_params, body=NUMBERS_BODY, body_required=True,
                 responses={200: PROVISIONED_SCHEMA})(_provisioner)
    routes.route("DELETE", _path, summary=f"Release numbers assigned to {_segment}",
                 params=_params, body=NUMBERS_BODY, body_required=True,
                 responses={204: None})(_releaser)


@routes.route("GET", "/PhoneNumbers/{phone_number}", summary="View a provisioned number",
              params=(PHONE_NUMBER,), responses={200: NUMBER_SCHEMA})
async def get_number(request: web.Request) -> web.Response:
    no = _path_number(request)
    row = await inventory(request).store.get_number(no)
    if row is None or row["status"] == "released" or not owns(request, row):
        raise _error(NOT_HELD, help=f"{no} does not exist in your application.")
    return web.json_response(number_json(row))


@routes.route("POST", "/PhoneNumbers/{assigned_to}", summary="(not a provisioning resource)",
              responses={200: None})
async def provision_elsewhere(request: web.Request) -> web.Response:
    """Only CallFlows, ParkingLot and Trunks/{trunk_id} take numbers: 400202."""
    segment = request.match_info["assigned_to"]
    raise _error(NO_PROVISIONING, help=f"The /PhoneNumbers/{segment} resource does not "
                 "support phone number provisioning; use CallFlows, ParkingLot or "
                 "Trunks/{trunk_id}.")


# ---- provision, update, move, release ----------------------------------------------------


async def _provision(request: web.Request, segment: str) -> web.Response:
    service = inventory(request)
    wanted = _body_numbers(await json_body(request))
    assigned_to = await _assigned_to(request, service, segment)
    missing = [no for no in wanted if not numbers.in_pool(service.pool, no)]
    if missing:
        raise _error(NOT_IN_POOL, help=f"{', '.join(missing)} not found",
                     message=f"Phone number not found: {', '.join(missing)}")
    try:
        async with service.exclusive():
            rows = await service.store.provision(wanted, assigned_to, service.now(),
                                                 subaccount(request), {})
    except Busy:
        raise _error(CONCURRENT) from None
    except Conflict as exc:
        raise _error(ALREADY_ASSIGNED, help=f"Already assigned: {', '.join(exc.numbers)}."
                     ) from None
    return web.json_response({"assigned_to": assigned_to,
                              "phone_numbers": [number_json(r) for r in rows]})


async def _release(request: web.Request, segment: str) -> web.Response:
    service = inventory(request)
    wanted = _body_numbers(await json_body(request))
    assigned_to = await _assigned_to(request, service, segment)
    try:
        async with service.exclusive():
            count = await service.store.release(wanted, assigned_to, service.now(),
                                                subaccount_id=subaccount(request))
    except Busy:
        raise _error(CONCURRENT) from None
    if count == 0:
        raise _error(NONE_ASSIGNED, help=f"None of the numbers are assigned to {assigned_to}. "
                     "No phone numbers could be released.")
    return web.Response(status=204)


def _mover(segment: str) -> Handler:
    async def move(request: web.Request) -> web.Response:
        return await _move(request, segment)
    move.__name__ = f"move_numbers_{segment.lower()}"
    return move


async def _move(request: web.Request, segment: str) -> web.Response:
    service = inventory(request)
    body = await json_body(request)
    wanted = _body_numbers(body)
    assigned_to = await _assigned_to(request, service, segment)
    app_id, sub = body.get("app_id"), body.get("subaccount_id")
    if app_id is not None and app_id != context(request).app_id:
        raise ApiError.validation("app_id", f"must be this application's ID "
                                  f"({context(request).app_id})")
    if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int | str)
                            or not str(sub).isdigit()):
        raise ApiError.validation("subaccount_id", "must be a Sub Account ID (an integer)")
    target = 0 if app_id is not None else (int(sub) if sub is not None else None)
    if target:  # the Sub Account moved to must exist (404801, 404802)
        await existing_subaccount(request, str(target))
    try:
        async with service.exclusive():
            moved = await service.store.move(wanted, assigned_to, target, service.now(),
                                             owner=subaccount(request))
    except Busy:
        raise _error(CONCURRENT) from None
    out: list[dict[str, Any]] = []
    for no in wanted:
        item: dict[str, Any] = {"no": no, "formatted": numbers.formatted(no)}
        if no not in moved:
            item["error"] = f"{no} does not exist in your application"
        out.append(item)
    return web.json_response(out)


for _segment, _path, _params in ((CALL_FLOWS, "/PhoneNumbers/Move", ()),
                                 (CALL_FLOWS, "/PhoneNumbers/Move/CallFlows", ()),
                                 (PARKING_LOT, "/PhoneNumbers/Move/ParkingLot", ()),
                                 ("Trunks", "/PhoneNumbers/Move/Trunks/{trunk_id}",
                                  (TRUNK_ID,))):
    _handler = _mover(_segment)
    if _path == "/PhoneNumbers/Move":
        _handler.__name__ = "move_numbers"
    routes.route("PUT", _path, summary=f"Move numbers (to {_segment}, and to a sub account)",
                 params=_params, body=MOVE_BODY, body_required=True,
                 responses={200: {"type": "array", "items": {"type": "object"}}})(_handler)


@routes.route("PUT", "/PhoneNumbers/{phone_number}", summary="Update a provisioned number",
              params=(PHONE_NUMBER,), body=UPDATE_BODY, body_required=True,
              responses={200: NUMBER_SCHEMA})
async def update_number(request: web.Request) -> web.Response:
    """description, caller_id_name (at most 15 characters) and port_out_pin (at most 10
    alphanumerics; null removes it)."""
    no = _path_number(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    changes: dict[str, Any] = {}
    for name in EDITABLE:
        if name not in body:
            continue
        value = body[name]
        if name == "port_out_pin" and value is None:
            changes[name] = None
            continue
        if not isinstance(value, str):
            raise ApiError.validation(name, "must be a string")
        if name == "caller_id_name" and len(value) > 15:
            raise ApiError.validation(name, "has at most 15 characters")
        if name == "port_out_pin" and (not value.isalnum() or len(value) > 10):
            raise ApiError.validation(name, "must be alphanumeric, at most 10 characters "
                                      "(null removes it; an empty string does not)")
        changes[name] = value
    held = await inventory(request).store.get_number(no)
    row = None
    if held is not None and owns(request, held):
        row = await inventory(request).store.update_number(no, changes,
                                                           InventoryService.now())
    if row is None:
        raise _error(NOT_HELD, help=f"{no} does not exist in your application.")
    return web.json_response(number_json(row))
