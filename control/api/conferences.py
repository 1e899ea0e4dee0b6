"""Conferences: list and view live conferences and participants, and steer participants.

Join and JoinToWhisper inject a CONFERENCE action into the call's flow (with the REST
defaults: mute 1, unmute 2, exit #), so a joined caller behaves exactly like one that a
callback sent to the conference, and its flow goes on when it leaves. Leave, Mute,
Unmute, Hold and Resume act on the participant at once; their `message` plays to that
participant only (after leaving, for Leave).

Choice where the spec is silent: View Participant Detail answers with the participant
object (the property table) and also holds it in a one-item `participants` array (the
example), so clients written against either read it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError, ErrorPreset
from control.api.liveactions import MESSAGE_SCHEMA, message_items
from control.api.query import json_body
from control.api.routing import RouteTable, Schema
from control.calls import Call
from control.conferences import (
    Conference,
    ConferenceService,
    ExitReason,
    Participant,
    Scope,
    parse_keys,
    valid_name,
)

routes = RouteTable("Conferences")

CONFERENCE_NOT_FOUND = ErrorPreset(
    404,
    404701,
    "Not Found",
    "The conference may have been empty too long and destroyed.",
    "The requested conference was not found.",
)
PARTICIPANT_NOT_FOUND = ErrorPreset(
    404,
    404702,
    "Not Found",
    "The participant may not be in the conference any longer.",
    "The requested conference participant was not found.",
)
REST_KEYS = {"mute_on_key": "1", "unmute_on_key": "2", "exit_on_key": "#"}

PARTICIPANT_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The participant id (not the call id)."},
        "call": {"type": "object", "properties": {"id": {"type": "string"},
                                                  "no": {"type": "string"}}},
        "muted": {"type": "boolean"},
        "on_hold": {"type": "boolean"},
        "start_on_join": {"type": "boolean"},
        "hold_on_join": {"type": "boolean"},
        "end_on_exit": {"type": "boolean"},
        "hold_on_exit": {"type": "boolean"},
    },
}
CONFERENCE_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"enum": ["in-progress", "on-hold"]},
        "num_participants": {"type": "integer"},
        "participants": {"type": "array", "items": PARTICIPANT_SCHEMA},
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {"conferences": {"type": "array", "items": CONFERENCE_SCHEMA}},
}
PARTICIPANT_DETAIL_SCHEMA: Schema = {
    **PARTICIPANT_SCHEMA,
    "properties": {**PARTICIPANT_SCHEMA["properties"],
                   "participants": {"type": "array", "items": PARTICIPANT_SCHEMA}},
}
_NAME: Schema = {"type": "string", "description": "Letters, digits, dashes, underscores."}
_KEY: Schema = {"type": "string", "pattern": "^[0-9#*]+$"}
JOIN_SCHEMA: Schema = {
    "type": "object",
    "required": ["conference_name"],
    "properties": {
        "conference_name": _NAME,
        "message": MESSAGE_SCHEMA,
        "mute_on_key": {**_KEY, "default": "1"},
        "unmute_on_key": {**_KEY, "default": "2"},
        "exit_on_key": {**_KEY, "default": "#"},
        "max_participants": {"type": "number", "minimum": 1},
        "hold_audio": {"type": "string", "description": "Audio URL played while on hold."},
    },
}
WHISPER_SCHEMA: Schema = {
    "type": "object",
    "required": ["conference_name", "target_call"],
    "properties": {
        **{k: v for k, v in JOIN_SCHEMA["properties"].items()
           if k not in ("max_participants", "hold_audio")},
        "target_call": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}, "message": MESSAGE_SCHEMA},
        },
    },
}
PARTICIPANT_ACTION_SCHEMA: Schema = {
    "type": "object",
    "required": ["conference_name"],
    "properties": {"conference_name": _NAME, "message": MESSAGE_SCHEMA},
}


def conference_not_found(what: str) -> ApiError:
    return ApiError.from_preset(CONFERENCE_NOT_FOUND,
                                help=f"No live conference {what}: it may have ended.")


def participant_not_found(what: str) -> ApiError:
    return ApiError.from_preset(PARTICIPANT_NOT_FOUND,
                                help=f"No participant {what}: it may have left.")


def _scope(request: web.Request) -> Scope:
    return (context(request).app_id, subaccount(request))


def _service(request: web.Request) -> ConferenceService | None:
    return context(request).conferences


def _conference(request: web.Request) -> Conference:
    conf_id = request.match_info["conf_id"]
    service = _service(request)
    conference = service.get(_scope(request), conf_id) if service else None
    if conference is None:
        raise conference_not_found(repr(conf_id))
    return conference


def _live_call(request: web.Request) -> Call:
    call_id = request.match_info["call_id"]
    call = context(request).registry.get_live(call_id)
    if call is None or call.control is None:
        raise ApiError.live_call_not_found(call_id)
    return call


async def _body(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    return body


def _name(body: dict[str, Any]) -> str:
    name = valid_name(body.get("conference_name"))
    if name is None:
        raise ApiError.validation("conference_name", "is required: letters, digits, "
                                  "dashes and underscores")
    return name


def _find(request: web.Request, name: str) -> Conference:
    service = _service(request)
    conference = service.find(_scope(request), name) if service else None
    if conference is None:
        raise conference_not_found(repr(name))
    return conference


def _participant(conference: Conference, call_id: str) -> Participant:
    p = conference.by_call(call_id)
    if p is None:
        raise participant_not_found(f"for call {call_id!r} in {conference.name!r}")
    return p


# ---- views ------------------------------------------------------------------------------


@routes.route("GET", "/LiveCalls/Conferences", summary="List live conferences",
              responses={200: LIST_SCHEMA})
async def list_conferences(request: web.Request) -> web.Response:
    service = _service(request)
    found = service.conferences(_scope(request)) if service else []
    return web.json_response({"conferences": [c.view() for c in found]})


@routes.route("GET", "/LiveCalls/Conferences/{conf_id}", summary="View a conference",
              responses={200: CONFERENCE_SCHEMA})
async def view_conference(request: web.Request) -> web.Response:
    return web.json_response(_conference(request).view())


@routes.route("GET", "/LiveCalls/Conferences/{conf_id}/Participants/{part_id}",
              summary="View a conference participant",
              responses={200: PARTICIPANT_DETAIL_SCHEMA})
async def view_participant(request: web.Request) -> web.Response:
    conference = _conference(request)
    part_id = request.match_info["part_id"]
    p = conference.participants.get(part_id)
    if p is None:
        raise participant_not_found(f"{part_id!r} in {conference.name!r}")
    view = p.view()
    return web.json_response({**view, "participants": [view]})


# ---- joining ----------------------------------------------------------------------------


def _join_params(body: dict[str, Any], name: str) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    for key, default in REST_KEYS.items():
        value = body.get(key, default)
        try:
            params[key] = parse_keys(value) or "off"
        except ValueError:
            raise ApiError.validation(key, "must be a key combination of 0-9, # and *"
                                      ) from None
    message = message_items(body.get("message"), "message")
    if message:
        params["message"] = message
    return params


@routes.route("POST", "/LiveCalls/{call_id}/Actions/Conference/Join",
              summary="Place a caller into a conference", body=JOIN_SCHEMA,
              body_required=True, responses={204: None})
async def join_conference(request: web.Request) -> web.Response:
    """The conference is created when it does not exist; the caller's flow goes on when
    it leaves."""
    call = _live_call(request)
    body = await _body(request)
    params = _join_params(body, _name(body))
    limit = body.get("max_participants")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit >= 1:
            raise ApiError.validation("max_participants", "must be a number of at least 1")
        params["max_participants"] = limit
    hold_audio = body.get("hold_audio")
    if hold_audio is not None:
        if not isinstance(hold_audio, str) or not hold_audio.strip():
            raise ApiError.validation("hold_audio", "must be an audio URL")
        params["hold_audio"] = hold_audio
    assert call.control is not None
    await call.control.inject([{"type": "CONFERENCE", "params": params}])
    return web.Response(status=204)


@routes.route("POST", "/LiveCalls/{call_id}/Actions/Conference/JoinToWhisper",
              summary="Place a caller into a conference to listen and whisper to one member",
              body=WHISPER_SCHEMA, body_required=True, responses={204: None})
async def join_conference_to_whisper(request: web.Request) -> web.Response:
    """The whisperer hears the conference and is heard by the target call only."""
    call = _live_call(request)
    body = await _body(request)
    name = _name(body)
    params = _join_params(body, name)
    target = body.get("target_call")
    if not isinstance(target, dict) or not isinstance(target.get("id"), str) \
            or not target["id"].strip():
        raise ApiError.validation("target_call.id", "is required: the call id to whisper to")
    if target["id"] == call.id:
        raise ApiError.validation("target_call.id", "must be another call than the whisperer")
    target_message = message_items(target.get("message"), "target_call.message")
    target_p = _participant(_find(request, name), target["id"])
    params["whisper_to"] = target_p.call.id
    target_p.tell(target_message)
    assert call.control is not None
    await call.control.inject([{"type": "CONFERENCE", "params": params}])
    return web.Response(status=204)


# ---- steering participants --------------------------------------------------------------


async def _steer(request: web.Request) -> tuple[Participant, list[str] | None]:
    call = _live_call(request)
    body = await _body(request)
    name = _name(body)
    message = message_items(body.get("message"), "message")
    return _participant(_find(request, name), call.id), message


def _steering_route(what: str, summary: str) -> Any:
    return routes.route("POST", f"/LiveCalls/{{call_id}}/Actions/Conference/{what}",
                        summary=summary, body=PARTICIPANT_ACTION_SCHEMA, body_required=True,
                        responses={204: None})


@_steering_route("Leave", "Make a participant leave its conference")
async def leave_conference(request: web.Request) -> web.Response:
    """The message plays after leaving; the participant's flow then goes on."""
    p, message = await _steer(request)
    p.conference.leave(p, ExitReason.REST, message)
    return web.Response(status=204)


@_steering_route("Mute", "Mute a conference participant")
async def mute_participant(request: web.Request) -> web.Response:
    p, message = await _steer(request)
    p.conference.set_muted(p, True, message)
    return web.Response(status=204)


@_steering_route("Unmute", "Unmute a conference participant")
async def unmute_participant(request: web.Request) -> web.Response:
    p, message = await _steer(request)
    p.conference.set_muted(p, False, message)
    return web.Response(status=204)


@_steering_route("Hold", "Put a conference participant on hold")
async def hold_participant(request: web.Request) -> web.Response:
    """The participant hears hold music (its hold_audio, else the built-in music)."""
    p, message = await _steer(request)
    p.conference.set_on_hold(p, True, message)
    return web.Response(status=204)


@_steering_route("Resume", "Take a conference participant off hold")
async def resume_participant(request: web.Request) -> web.Response:
    p, message = await _steer(request)
    p.conference.set_on_hold(p, False, message)
    return web.Response(status=204)
