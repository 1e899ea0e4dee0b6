"""Registrar (a voxswitch extension; the spec has no such methods): the users lab
softphones REGISTER as, and where they are registered.

- `GET /Registrar/Users`: every user, from the settings file (`source: "settings"`) and
  put here (`"api"`), with whether it is registered and its contacts; never a password.
- `GET /Registrar/Users/{user}`: one of them; 404002 when there is none.
- `PUT /Registrar/Users/{user}` `{"password": "..."}`: create (201) or replace (200) a
  user. A user of the settings file may be put too: the one put here takes its place until
  it is deleted. A new password drops the user's registrations (they used the old one).
- `DELETE /Registrar/Users/{user}`: delete a user put here, and its registrations;
  400001 for a user of the settings file (remove it there), 404002 for none.
- `GET /Registrar/Registrations[?user=alice]`: the live bindings: user, contact,
  seconds left (`expires`) and when that is (`expires_on`), q, where the REGISTER came
  from and its User-Agent.

Errors are the spec's body: 400001 naming the field, 404002 for an unknown user.
"""

from __future__ import annotations

from aiohttp import web

from control.api.context import context
from control.api.errors import ApiError, ErrorPreset
from control.api.query import json_body
from control.api.routing import RouteTable, Schema, query
from control.softphones import Softphones, UserError, user_to_api

routes = RouteTable("Registrar")

USER_NOT_FOUND = ErrorPreset(404, 404002, "Not Found",
                             "No registrar user has this name.",
                             "The requested user was not found.")
_STR = {"type": "string"}
_NULL_STR = {"type": ["string", "null"]}
USER_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "user": _STR,
        "source": {"enum": ["settings", "api"]},
        "registered": {"type": "boolean"},
        "contacts": {"type": "array", "items": _STR},
        "created_on": _NULL_STR,
        "updated_on": _NULL_STR,
    },
}
PUT_SCHEMA: Schema = {
    "type": "object",
    "required": ["password"],
    "properties": {"password": {**_STR, "minLength": 1, "maxLength": 256,
                                "description": "the digest password (never shown back)"}},
}
REGISTRATION_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "user": _STR, "contact": _STR,
        "expires": {"type": "integer", "description": "seconds left"},
        "expires_on": {"type": "string", "format": "date-time"},
        "q": {"type": "number"}, "source": _STR, "user_agent": _NULL_STR,
    },
}


def _softphones(request: web.Request) -> Softphones:
    softphones = context(request).softphones
    if softphones is None:
        raise ApiError.not_supported()
    return softphones


def _not_found(user: str) -> ApiError:
    return ApiError.from_preset(USER_NOT_FOUND, help=f"No registrar user {user!r}.")


@routes.route("GET", "/Registrar/Users", summary="voxswitch: list the registrar's users",
              responses={200: {"type": "object", "properties": {
                  "users": {"type": "array", "items": USER_SCHEMA}}}})
async def list_registrar_users(request: web.Request) -> web.Response:
    """Users of the settings file and users put over REST, by name."""
    phones = _softphones(request)
    return web.json_response({"users": [user_to_api(u, phones.bindings(u.username))
                                        for u in phones.users()]})


@routes.route("GET", "/Registrar/Users/{user}", summary="voxswitch: view a registrar user",
              responses={200: USER_SCHEMA})
async def get_registrar_user(request: web.Request) -> web.Response:
    """Whether the user is registered, and where; never its password."""
    phones = _softphones(request)
    name = request.match_info["user"]
    user = phones.user(name)
    if user is None:
        raise _not_found(name)
    return web.json_response(user_to_api(user, phones.bindings(name)))


@routes.route("PUT", "/Registrar/Users/{user}",
              summary="voxswitch: create or replace a registrar user",
              body=PUT_SCHEMA, body_required=True, responses={200: USER_SCHEMA,
                                                              201: USER_SCHEMA})
async def put_registrar_user(request: web.Request) -> web.Response:
    """201 for a new user, 200 when one is replaced; a new password drops the user's
    registrations."""
    phones = _softphones(request)
    name = request.match_info["user"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object with a password")
    try:
        created = await phones.put_user(name, body.get("password"))
    except UserError as exc:
        raise ApiError.validation(exc.field, exc.message) from None
    user = phones.user(name)
    assert user is not None
    return web.json_response(user_to_api(user, phones.bindings(name)),
                             status=201 if created else 200)


@routes.route("DELETE", "/Registrar/Users/{user}",
              summary="voxswitch: delete a registrar user and its registrations",
              responses={200: USER_SCHEMA})
async def delete_registrar_user(request: web.Request) -> web.Response:
    """Only users put over REST; a user of the settings file is removed there."""
    phones = _softphones(request)
    name = request.match_info["user"]
    try:
        gone = await phones.delete_user(name)
    except UserError as exc:
        raise ApiError.validation(exc.field, exc.message) from None
    if gone is None:
        raise _not_found(name)
    still = phones.user(name)  # the settings file's, if it has one of that name
    return web.json_response(user_to_api(still or gone, phones.bindings(name)))


@routes.route("GET", "/Registrar/Registrations",
              summary="voxswitch: the softphones registered now",
              params=(query("user", _STR, "Only this user's."),),
              responses={200: {"type": "object", "properties": {
                  "registrations": {"type": "array", "items": REGISTRATION_SCHEMA}}}})
async def list_registrations(request: web.Request) -> web.Response:
    """Live bindings, by user and best contact first."""
    phones = _softphones(request)
    user = request.query.get("user") or None
    return web.json_response({"registrations": [
        phones.binding_to_api(b) for b in phones.bindings(user)]})
