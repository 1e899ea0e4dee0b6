"""CallFlows configuration methods: the Default and per-number callback configurations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from control.api import pagination
from control.api.context import context, subaccount
from control.api.errors import ApiError
from control.api.query import json_body
from control.api.routing import Param, RouteTable, Schema
from control.flowconfig import (
    CONTENT_TYPES,
    METHODS,
    CallFlowConfig,
    normalize_number,
)
from control.subaccountstore import SubAccountStore, config_key, unscoped_number

routes = RouteTable("CallFlows")

DEFAULT_PATH = "/CallFlows/Configurations/Default"
NUMBERS_PATH = "/CallFlows/Configurations/PhoneNumbers"
NUMBER_PATH = NUMBERS_PATH + "/{phone_number}"

CALLBACK_SCHEMA: Schema = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "method": {"enum": list(METHODS), "default": "POST"},
        "content_type": {"enum": list(CONTENT_TYPES), "default": "application/json"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "timeout": {"type": "number", "minimum": 1, "maximum": 15, "default": 5},
    },
}
_COMMON_PROPERTIES: dict[str, Any] = {
    "callback": CALLBACK_SCHEMA,
    "callback_failover": CALLBACK_SCHEMA,
    "callback_sms": CALLBACK_SCHEMA,
    "callback_sms_failover": CALLBACK_SCHEMA,
    "answer_on_ring": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
    "custom_data": {"type": ["object", "null"]},
}
REQUEST_SCHEMA: Schema = {
    "type": "object",
    "required": ["callback"],
    "properties": _COMMON_PROPERTIES,
}
CONFIG_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "no": {
            "type": "object",
            "properties": {"value": {"type": "string"}, "type": {"type": "string"}},
        },
        **_COMMON_PROPERTIES,
        "created_on": {"type": "string", "format": "date-time"},
        "last_set_on": {"type": "string", "format": "date-time"},
        "updated_on": {"type": "string", "format": "date-time"},
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "callbacks": {"type": "array", "items": CONFIG_SCHEMA},
        "pagination": pagination.SCHEMA,
    },
}
PHONE_NUMBER = Param(
    "phone_number",
    "path",
    {"type": "string"},
    "E.164 number (URL-encode the +: %2B17145551212) or a SIP user name such as 1000.",
)


def _number(request: web.Request) -> str:
    return normalize_number(request.match_info["phone_number"])


def _view(cfg: CallFlowConfig) -> dict[str, Any]:
    """The configuration as the API shows it: a sub-account's key is its bare number."""
    return replace(cfg, number=unscoped_number(cfg.number)).to_api()


async def _put(request: web.Request, number: str | None) -> web.Response:
    body = await json_body(request)
    storage = context(request).storage
    key = config_key(subaccount(request), number)
    existing = await storage.get_config(key)
    cfg = CallFlowConfig.from_request(body, key, existing)
    await storage.put_config(cfg)
    return web.json_response(_view(cfg))


async def _get(request: web.Request, number: str | None) -> web.Response:
    cfg = await context(request).storage.get_config(config_key(subaccount(request), number))
    if cfg is None:
        raise ApiError.config_not_found(number)
    return web.json_response(_view(cfg))


async def _delete(request: web.Request, number: str | None) -> web.Response:
    key = config_key(subaccount(request), number)
    if not await context(request).storage.delete_config(key):
        raise ApiError.config_not_found(number)
    return web.Response(status=204)


@routes.route(
    "PUT",
    DEFAULT_PATH,
    summary="Create or replace the Default call flow configuration",
    body=REQUEST_SCHEMA,
    body_required=True,
    responses={200: CONFIG_SCHEMA},
)
async def put_default_config(request: web.Request) -> web.Response:
    return await _put(request, None)


@routes.route(
    "GET",
    DEFAULT_PATH,
    summary="View the Default call flow configuration",
    responses={200: CONFIG_SCHEMA},
)
async def get_default_config(request: web.Request) -> web.Response:
    return await _get(request, None)


@routes.route(
    "DELETE",
    DEFAULT_PATH,
    summary="Delete the Default call flow configuration",
    responses={204: None},
)
async def delete_default_config(request: web.Request) -> web.Response:
    return await _delete(request, None)


@routes.route(
    "GET",
    NUMBERS_PATH,
    summary="List the call flow configurations of numbers",
    params=pagination.PARAMS,
    responses={200: LIST_SCHEMA},
)
async def list_number_configs(request: web.Request) -> web.Response:
    page = pagination.page_of(request)
    storage, sub = context(request).storage, subaccount(request)
    if sub:
        configs, total = await SubAccountStore(storage).list_configs(sub, page.offset,
                                                                     page.size)
    else:
        configs, total = await storage.list_configs(page.number, page.size)
    return web.json_response(
        {"callbacks": [_view(cfg) for cfg in configs], "pagination": page.body(total)}
    )


@routes.route(
    "PUT",
    NUMBER_PATH,
    summary="Create or replace the call flow configuration of a number",
    params=(PHONE_NUMBER,),
    body=REQUEST_SCHEMA,
    body_required=True,
    responses={200: CONFIG_SCHEMA},
)
async def put_number_config(request: web.Request) -> web.Response:
    return await _put(request, _number(request))


@routes.route(
    "GET",
    NUMBER_PATH,
    summary="View the call flow configuration of a number",
    params=(PHONE_NUMBER,),
    responses={200: CONFIG_SCHEMA},
)
async def get_number_config(request: web.Request) -> web.Response:
    return await _get(request, _number(request))


@routes.route(
    "DELETE",
    NUMBER_PATH,
    summary="Delete the call flow configuration of a number",
    params=(PHONE_NUMBER,),
    responses={204: None},
)
async def delete_number_config(request: web.Request) -> web.Response:
    return await _delete(request, _number(request))
