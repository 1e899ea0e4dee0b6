"""Queues: list and view call queues and their calls, peek, poll, remove and delete.

The methods act on the same `QueueService` the QUEUE action uses: a call polled, removed
or released by a deleted queue here goes on with its call flow, exactly as after a QUEUE
poll. Poll long-polls an empty queue for up to 15 seconds and returns the moment a call
is offered (404713 when none came); it answers 404711 at once for a queue that does not
exist. Peek and Poll answer with the queued call object, `position` being the call's
position when it was taken (1, the head).
"""

from __future__ import annotations

from aiohttp import web

from control.api.context import context, subaccount
from control.api.errors import ApiError
from control.api.routing import RouteTable, Schema
from control.queues import (
    POLL_TIMEOUT_S,
    CallNotQueued,
    Queue,
    QueueEmpty,
    QueueError,
    QueueNotFound,
    QueueService,
    Scope,
    valid_name,
)

routes = RouteTable("Queues")

QUEUE_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "hold_times": {
            "type": "object",
            "properties": {"estimated": {
                "type": "number",
                "description": "Seconds a call offered now can expect to wait."}},
        },
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {"queues": {"type": "array", "items": QUEUE_SCHEMA}},
}
QUEUED_CALL_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "call": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "no": {"type": "string"},
                           "caller_id_no": {"type": "string"}},
        },
        "queued_on": {"type": "string", "format": "date-time"},
        "hold_time": {"type": "number", "description": "Seconds queued."},
        "position": {"type": "integer", "minimum": 1, "description": "1 is the head."},
    },
}
CALLS_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "calls": {"type": "array", "items": QUEUED_CALL_SCHEMA,
                  "description": "Sorted from first to last."},
        "queue_name": {"type": "string"},
        "hold_times": {
            "type": "object",
            "description": "Current hold times (seconds) of the queued calls; 0 when none.",
            "properties": {"average": {"type": "number"}, "least": {"type": "number"},
                           "greatest": {"type": "number"}},
        },
    },
}
_QUEUE_PATH = "/LiveCalls/Queues/{queue_name}"


def _api_error(exc: QueueError) -> ApiError:
    if isinstance(exc, CallNotQueued):
        return ApiError.queued_call_not_found()
    if isinstance(exc, QueueEmpty):
        return ApiError.queue_empty()
    return ApiError.queue_not_found()


def _target(request: web.Request) -> tuple[QueueService, Scope, str]:
    """The service, the scope and the queue name of the path; 404711 when it names no
    possible queue or the switch runs none."""
    service = context(request).queues
    name = valid_name(request.match_info["queue_name"])
    if service is None or name is None:
        raise ApiError.queue_not_found()
    return service, (context(request).app_id, subaccount(request)), name


def _queue(request: web.Request) -> Queue:
    service, scope, name = _target(request)
    queue = service.find(scope, name)
    if queue is None:
        raise ApiError.queue_not_found()
    return queue


@routes.route("GET", "/LiveCalls/Queues", summary="List call queues",
              responses={200: LIST_SCHEMA})
async def list_queues(request: web.Request) -> web.Response:
    service = context(request).queues
    found = service.queues((context(request).app_id, subaccount(request))) if service else []
    return web.json_response({"queues": [q.view() for q in found]})


@routes.route("GET", _QUEUE_PATH, summary="View queue details",
              responses={200: QUEUE_SCHEMA})
async def view_queue(request: web.Request) -> web.Response:
    return web.json_response(_queue(request).view())


@routes.route("GET", _QUEUE_PATH + "/Calls", summary="List queued calls",
              responses={200: CALLS_SCHEMA})
async def list_queued_calls(request: web.Request) -> web.Response:
    return web.json_response(_queue(request).calls_view())


@routes.route("GET", _QUEUE_PATH + "/Calls/{call_id}", summary="View queued call detail",
              responses={200: QUEUED_CALL_SCHEMA})
async def view_queued_call(request: web.Request) -> web.Response:
    entry = _queue(request).by_call(request.match_info["call_id"])
    if entry is None:
        raise ApiError.queued_call_not_found()
    return web.json_response(entry.view())


@routes.route("GET", _QUEUE_PATH + "/Peek", summary="Peek at the next call in a queue",
              responses={200: QUEUED_CALL_SCHEMA})
async def peek_queue(request: web.Request) -> web.Response:
    """The head call; it stays queued."""
    service, scope, name = _target(request)
    try:
        entry = service.peek(scope, name)
    except QueueError as exc:
        raise _api_error(exc) from None
    return web.json_response(entry.view())


@routes.route("GET", _QUEUE_PATH + "/Poll", summary="Poll the next call from a queue",
              responses={200: QUEUED_CALL_SCHEMA})
async def poll_queue(request: web.Request) -> web.Response:
    """Takes the head call, which goes on with its call flow; on an empty queue waits
    up to 15 s for one to be offered (404713 when none is)."""
    service, scope, name = _target(request)
    try:
        entry = await service.wait_poll(scope, name, POLL_TIMEOUT_S)
    except QueueError as exc:
        raise _api_error(exc) from None
    return web.json_response(entry.view())


@routes.route("DELETE", _QUEUE_PATH + "/Calls/{call_id}", summary="Remove a queued call",
              responses={204: None})
async def remove_queued_call(request: web.Request) -> web.Response:
    """Whatever its position; the call goes on with its call flow."""
    service, scope, name = _target(request)
    try:
        service.remove(scope, name, request.match_info["call_id"])
    except QueueError as exc:
        raise _api_error(exc) from None
    return web.Response(status=204)


@routes.route("DELETE", _QUEUE_PATH, summary="Delete a queue",
              responses={200: QUEUE_SCHEMA})
async def delete_queue(request: web.Request) -> web.Response:
    """Its calls go on with their call flows; the deleted queue's details."""
    service, scope, name = _target(request)
    try:
        view = service.delete(scope, name)
    except QueueNotFound:
        raise ApiError.queue_not_found() from None
    return web.json_response(view)
