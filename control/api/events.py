"""`GET /LiveEvents`: the live view as server-sent events, for the dashboard.

A documented extension (the spec has no push channel). Each event is the whole live
picture of the account: its live calls, conferences with participants and queues with
their callers. It is sent when the stream opens and again whenever that picture changes,
sampled every `SAMPLE_S`; a comment line every `KEEPALIVE_S` keeps proxies from closing
an idle stream. Whole snapshots rather than deltas: a client that missed events (a
dropped connection, a background tab) is right again with the next one, and at lab sizes
(hundreds of calls) a snapshot is a few kilobytes.

`connected_time` grows every millisecond, so it is replaced by `connected_at` (epoch ms
of the answer, from which the page counts); otherwise every sample would be a change.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from control.api.context import context, subaccount
from control.api.query import int_param
from control.api.routing import RouteTable, Schema, query

routes = RouteTable("Live Events")

SAMPLE_S = 0.25
KEEPALIVE_S = 15.0
MAX_EVENTS = 1_000_000  # `max_events` bounds a stream (tests, scripts); default: unbounded

SNAPSHOT_SCHEMA: Schema = {
    "type": "object",
    "description": "One `live` event's data.",
    "properties": {
        "calls": {"type": "array", "items": {"type": "object"},
                  "description": "View Live Call Detail objects, with connected_at (epoch "
                                 "ms of the answer, null before) instead of connected_time."},
        "conferences": {"type": "array", "items": {"type": "object"}},
        "queues": {"type": "array", "items": {"type": "object"},
                   "description": "The queue object plus its calls (List Queued Calls)."},
    },
}


def snapshot(request: web.Request) -> dict[str, Any]:
    """The account's live picture, without the parts that change every instant."""
    ctx = context(request)
    scope = (ctx.app_id, subaccount(request))
    calls = []
    for call in ctx.registry.live():
        view = call.live_view()
        del view["connected_time"]
        answered = call.connect_time
        view["connected_at"] = int(answered.timestamp() * 1000) if answered else None
        calls.append(view)
    calls.sort(key=lambda v: str(v.get("id")))
    conferences = [c.view() for c in ctx.conferences.conferences(scope)] \
        if ctx.conferences else []
    queues = []
    for queue in (ctx.queues.queues(scope) if ctx.queues else []):
        listed = queue.calls_view()
        for entry in listed["calls"]:
            entry.pop("hold_time", None)  # the page counts from queued_on
        listed.pop("hold_times", None)
        queues.append({**queue.view(), "calls": listed["calls"]})
    return {"calls": calls, "conferences": conferences, "queues": queues}


@routes.route(
    "GET",
    "/LiveEvents",
    summary="Live calls, conferences and queues as server-sent events (voxswitch)",
    params=(query("max_events", {"type": "integer", "minimum": 1},
                  "end the stream after this many events"),),
    responses={200: SNAPSHOT_SCHEMA},
)
async def live_events(request: web.Request) -> web.StreamResponse:
    """text/event-stream of `live` events, each a whole snapshot: one at once, then one
    on every change."""
    limit = int_param(request, "max_events", MAX_EVENTS, lo=1) or MAX_EVENTS
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: pass events through as they come
    })
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    sent, last, idle_since = 0, None, time.monotonic()
    try:
        while sent < limit:
            snap = snapshot(request)
            data = json.dumps(snap, default=str)
            if data != last:
                await response.write(f"event: live\ndata: {data}\n\n".encode())
                last, sent, idle_since = data, sent + 1, time.monotonic()
            elif time.monotonic() - idle_since >= KEEPALIVE_S:
                await response.write(b": keepalive\n\n")
                idle_since = time.monotonic()
            if sent < limit:
                await asyncio.sleep(SAMPLE_S)
    except ConnectionResetError:
        # the page went away (closed tab, reconnect): nothing to finish
        return response
    await response.write_eof()
    return response
