"""A call's timeline and audio tap: GET /LiveCalls/{call_id}/Timeline and .../Audio.

Both answer for live calls and for finished ones while their timeline is kept (`[taps]
keep_s`, `max_calls`); after that, or for a call of another account, the LiveCalls 404.
"""

from __future__ import annotations

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import LIVE_CALL_NOT_FOUND, ApiError
from control.api.query import choice_param, int_param
from control.api.routing import RouteTable, Schema, query
from control.taps import SIDES
from control.timeline import Timeline

routes = RouteTable("LiveCalls")

EVENT_KINDS = ("sip", "callback", "action", "digit", "detection", "recording",
               "conference", "bridge", "queue", "call")
TIMELINE_SCHEMA: Schema = {
    "type": "object",
    "description": "voxswitch extension: every event of the call, in order",
    "properties": {
        "call_id": {"type": "string"},
        "live": {"type": "boolean"},
        "started": {"type": "string", "format": "date-time"},
        "dropped": {"type": "integer",
                    "description": "the oldest events dropped past the per-call bound"},
        "events": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "at": {"type": "string", "format": "date-time"},
                "ms": {"type": "integer", "description": "since the call started"},
                "kind": {"enum": list(EVENT_KINDS)},
                "summary": {"type": "string"},
                "seq": {"type": "integer",
                        "description": "its number in the timeline, from 0: events may "
                                       "share a millisecond"},
            },
            "additionalProperties": True,
        }},
    },
}


def _timeline(request: web.Request) -> Timeline:
    call_id = request.match_info["call_id"]
    store = context(request).timelines
    timeline = store.get(call_id) if store is not None else None
    if timeline is None or timeline.subaccount_id != subaccount(request):
        raise ApiError.from_preset(
            LIVE_CALL_NOT_FOUND,
            help=f"No timeline for call {call_id!r}: the ID is wrong, or the call ended "
            "longer ago than the switch keeps timelines ([taps] keep_s).")
    return timeline


@routes.route(
    "GET",
    "/LiveCalls/{call_id}/Timeline",
    summary="Every event of a call so far: SIP, callbacks, actions, digits, media",
    params=(query("since_ms", {"type": "integer", "minimum": 0},
                  "Only events after this many milliseconds since the call started "
                  "(for polling: pass the last event's ms)."),),
    responses={200: TIMELINE_SCHEMA},
)
async def get_timeline(request: web.Request) -> web.Response:
    timeline = _timeline(request)
    since = int_param(request, "since_ms", None)
    return web.json_response(timeline.view(since))


@routes.route(
    "GET",
    "/LiveCalls/{call_id}/Audio",
    summary="What each side of a call heard, as a WAV (8 kHz, 16-bit)",
    params=(query("side", {"enum": list(SIDES)},
                  "caller: what the caller sent (the switch heard); switch: what the "
                  "switch sent (the caller heard). Absent: both, in stereo, caller "
                  "left, switch right."),),
    responses={200: None},
)
async def get_audio(request: web.Request) -> web.Response:
    timeline = _timeline(request)
    side = choice_param(request, "side", SIDES, None)
    taps = context(request).taps
    data = await taps.wav(timeline.call_id, side) if taps is not None else None
    if data is None:
        why = ("audio taps are off ([taps] audio = false)" if taps is None or not taps.enabled
               else "the call had no media, or its tap could not be written")
        raise ApiError.from_preset(LIVE_CALL_NOT_FOUND,
                                   help=f"No audio for call {timeline.call_id!r}: {why}.")
    channels = "caller" if side == "caller" else "switch" if side == "switch" \
        else "left=caller right=switch"
    return web.Response(body=data, content_type="audio/wav", headers={
        "X-Voxswitch-Channels": channels,
        "Content-Disposition": f'inline; filename="{_file_name(timeline.call_id, side)}"'})


def _file_name(call_id: str, side: str | None) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in call_id)
    return f"{stem}{'-' + side if side else ''}.wav"
