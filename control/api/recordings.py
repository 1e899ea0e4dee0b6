"""Recordings: Start/Pause/Resume/Stop Recording on a live call, and the Recordings
methods under /History (list, by call, one recording, download, delete).

Choices where the spec is silent:
- `GET /History/Recordings/{call_id}` is also one recording's detail: a call id holds an
  `@` (`123456@7890`), a recording id never does, so a segment without one is taken as
  a recording id and answered with that recording object (404002 when there is none).
- Download serves every format of the spec's list (`media.transcode` holds the choices:
  wav as recorded, wavM the mono mixdown, ulw and vox mono, mp3/ogg/aac/au with the
  recording's channels, aac in an MP4 file), transcoded off the event loop on each
  request (nothing cached, so nothing goes stale; the source format is the file itself,
  sent from a handle opened while it is held: no Range); a name outside the list (they are
  case-sensitive, as `wavM` shows) is 400001. A recording still being written is
  400001; a file that can't be transcoded is 500101. A recording uploaded to the
  recording storage (S3) is fetched to a temporary file first; a bucket that fails
  then, or on DELETE, is the spec's Integration error 500501 (the recording stays).
- Pause, Resume and Stop act on all of the call's open recordings and are no-ops when it
  has none; Start without a call, or on a call without media, is 404404.
- The list accepts the example's `call_id` too; `app_id` other than this application's
  matches nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError
from control.api.history import date_range
from control.api.liveactions import MESSAGE_SCHEMA, body_object, live_control, message_items
from control.api.query import choice_param, int_param, json_body, phone_param
from control.api.routing import RouteTable, Schema, query
from control.calls import CallControl, iso
from control.objectstore import ObjectStoreError
from control.recordings import UNSAVED, RecordingRefused, RecordingService, recording_json
from media.transcode import FORMATS, TranscodeError

log = logging.getLogger("voxswitch.api.recordings")

routes = RouteTable("Recordings")

MAX_RECORDINGS = 1000
DIRECTIONS = ("inbound", "outbound")

START_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "group": {"type": "string", "description": "default: the caller's number"},
        "pre_message": {**MESSAGE_SCHEMA, "description": "Played before recording starts."},
        "message": {**MESSAGE_SCHEMA, "description": "Played once recording has started."},
    },
}
RECORDING_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        **{name: {"type": "string"} for name in ("id", "app_id", "group", "caller_no",
                                                  "call_id", "name", "status")},
        "subaccount_id": {"type": "integer"},
        "start_time": {"type": "string", "format": "date-time"},
        "end_time": {"type": ["string", "null"], "format": "date-time"},
        "duration": {"type": "integer", "description": "milliseconds"},
        "channels": {"type": "integer",
                     "description": "2: caller left, what it heard right; 1: a message"},
        "storage": {"enum": ["local", "s3"],
                    "description": "where the file is: the data dir, or the S3 bucket"},
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "recordings": {"type": "array", "items": RECORDING_SCHEMA},
        "is_truncated": {"type": "boolean"},
    },
}
_DATE = {"type": "string", "format": "date-time"}
LIST_PARAMS = (
    query("begin_date", _DATE, "Inclusive; default one hour before now."),
    query("end_date", _DATE, "Exclusive; default now."),
    query("group", {"type": "string"}, "The group given by RECORD or Start Recording."),
    query("app_id", {"type": "string"}),
    query("subaccount_id", {"type": "integer", "minimum": 0}),
    query("call_no", {"type": "string"}, "The originating caller's number."),
    query("direction", {"enum": list(DIRECTIONS)}, "Omit for both."),
    query("call_id", {"type": "string"}),
)


def _service(request: web.Request) -> RecordingService:
    service = context(request).recordings
    if service is None:
        raise ApiError.not_supported()
    return service


def _control(request: web.Request) -> CallControl:
    control = live_control(request)
    _service(request)
    return control


# ---- LiveCalls/{call_id}/Actions/Recording -------------------------------------------


@routes.route(
    "POST",
    "/LiveCalls/{call_id}/Actions/Recording/Start",
    summary="Start a new recording of a live call",
    body=START_SCHEMA,
    responses={204: None},
)
async def start_recording(request: web.Request) -> web.Response:
    """Stereo: the caller on the left, what the caller hears on the right."""
    control = _control(request)
    body = body_object(await json_body(request, required=False))
    group = body.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise ApiError.validation("group", "must be a non-empty string")
    pre = message_items(body.get("pre_message"), "pre_message")
    message = message_items(body.get("message"), "message")
    try:
        await control.start_recording(group, pre, message)
    except RecordingRefused:
        raise ApiError.live_call_not_found(request.match_info["call_id"]) from None
    return web.Response(status=204)


async def _recording_action(request: web.Request, what: str) -> web.Response:
    control = _control(request)
    await control.recording(what)
    return web.Response(status=204)


@routes.route("POST", "/LiveCalls/{call_id}/Actions/Recording/Pause",
              summary="Pause the recordings of a live call", responses={204: None})
async def pause_recording(request: web.Request) -> web.Response:
    """Nothing is written while paused: the recording is shorter by the paused time."""
    return await _recording_action(request, "pause")


@routes.route("POST", "/LiveCalls/{call_id}/Actions/Recording/Resume",
              summary="Resume the paused recordings of a live call", responses={204: None})
async def resume_recording(request: web.Request) -> web.Response:
    return await _recording_action(request, "resume")


@routes.route("POST", "/LiveCalls/{call_id}/Actions/Recording/Stop",
              summary="Stop and save the recordings of a live call", responses={204: None})
async def stop_recording(request: web.Request) -> web.Response:
    """Answered once the files are complete."""
    return await _recording_action(request, "stop")


# ---- History/Recordings ---------------------------------------------------------------


def _listing(rows: list[dict[str, Any]], truncated: bool) -> web.Response:
    return web.json_response({"recordings": [recording_json(r) for r in rows],
                              "is_truncated": truncated})


@routes.route(
    "GET",
    "/History/Recordings",
    summary="List recordings (at most 1,000; is_truncated says when more matched)",
    params=LIST_PARAMS,
    responses={200: LIST_SCHEMA},
)
async def list_recordings(request: web.Request) -> web.Response:
    """Recordings that started in [begin_date, end_date), oldest first."""
    ctx = context(request)
    service = _service(request)
    begin, end = date_range(request)
    wanted = int_param(request, "subaccount_id", None, lo=0)
    app_id = request.query.get("app_id") or None
    # the main account may ask for a sub-account's; a sub-account sees only its own
    own = subaccount(request)
    if (app_id is not None and app_id != ctx.app_id) or (own and wanted not in (None, own)):
        return _listing([], False)
    rows, truncated = await service.storage.list_recordings(
        begin, end,
        subaccount_id=own if wanted is None else wanted,
        call_id=request.query.get("call_id") or None,
        group=request.query.get("group") or None,
        caller_no=phone_param(request, "call_no"),
        direction=choice_param(request, "direction", DIRECTIONS, None),
        limit=MAX_RECORDINGS,
    )
    return _listing(rows, truncated)


@routes.route(
    "GET",
    "/History/Recordings/{call_id}",
    summary="The recordings of one call (or, given a recording id, that recording)",
    responses={200: {"oneOf": [LIST_SCHEMA, RECORDING_SCHEMA]}},
)
async def call_recordings(request: web.Request) -> web.Response:
    service = _service(request)
    key = request.match_info["call_id"]
    if "@" not in key:
        return web.json_response(recording_json(await _row(request, service, key)))
    rows, truncated = await service.storage.list_recordings(
        call_id=key, limit=MAX_RECORDINGS, subaccount_id=subaccount(request))
    return _listing(rows, truncated)


async def _row(request: web.Request, service: RecordingService,
               recording_id: str) -> dict[str, Any]:
    row = await service.storage.get_recording(recording_id)
    if row is None or row["status"] == UNSAVED:  # a message not saved yet
        raise ApiError.recording_not_found(recording_id)
    if row["subaccount_id"] != subaccount(request):  # another account's: never existed
        raise ApiError.recording_not_found(recording_id)
    return row


@routes.route(
    "GET",
    "/History/Recordings/{id}/{format}",
    summary="Download a recording: ulw, vox, mp3, wav, wavM (mono mixdown), ogg, aac, au",
    responses={200: {"type": "string", "format": "binary"}},
)
async def download_recording(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    fmt = request.match_info["format"]
    spec = FORMATS.get(fmt)
    if spec is None:
        raise ApiError.validation("format", f"must be one of {', '.join(FORMATS)}")
    row = await _row(request, service, request.match_info["id"])
    if row["status"] == "recording":
        raise ApiError.validation("id", "is still recording: download it once it has stopped")
    if row["status"] != "completed":
        raise ApiError.recording_not_found(row["id"])
    headers = {
        "Content-Type": spec.content_type,
        "Content-Disposition": f'attachment; filename="{row["id"]}.{spec.extension}"',
        "X-Recording-Start": iso(row["start_time"]) or "",
    }
    try:
        # the local file, or a copy fetched from the bucket, for as long as it is read
        async with service.store.local_file(row["id"]) as path:
            # opened while held: an upload that removes the file meanwhile, or the
            # fetched copy's removal, leaves what is being sent readable
            body = (await asyncio.to_thread(path.open, "rb")
                    if spec.is_source(row["channels"]) else await service.export(path, fmt))
    except FileNotFoundError:
        raise ApiError.recording_not_found(row["id"]) from None
    except ObjectStoreError as exc:
        raise _bucket_failed(row["id"], "downloaded", exc) from None
    except TranscodeError as exc:
        log.error("recording.transcode_failed", extra={"recording_id": row["id"],
                                                       "format": fmt, "error": str(exc)})
        raise ApiError.storage(f"The recording could not be converted to {fmt}.") from None
    return web.Response(body=body, headers=headers)


def _bucket_failed(recording_id: str, what: str, exc: ObjectStoreError) -> ApiError:
    log.warning("recording.storage_failed", extra={"recording_id": recording_id,
                                                   "error_code": exc.code, "error": str(exc)})
    return ApiError.integration_storage(
        f"The recording could not be {what}: the recording storage answered {exc}.")


@routes.route(
    "DELETE",
    "/History/Recordings/{id}",
    summary="Delete a recording (stopping it first if it is still recording)",
    responses={204: None},
)
async def delete_recording(request: web.Request) -> web.Response:
    recording_id = request.match_info["id"]
    row = await _service(request).storage.get_recording(recording_id)
    if row is not None and row["subaccount_id"] != subaccount(request):
        raise ApiError.recording_not_found(recording_id)
    try:
        deleted = await _service(request).delete(recording_id)
    except ObjectStoreError as exc:
        raise _bucket_failed(recording_id, "deleted", exc) from None
    if not deleted:
        raise ApiError.recording_not_found(recording_id)
    return web.Response(status=204)
