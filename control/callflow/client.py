"""HTTP side of the callback loop: send a callback, apply failover, size limits, parse.

The spec's rules (Callback Response): any non-2xx tries `callback_failover`; 204 ends the
call; responses over the soft limit (31.415 KB) are logged, over the hard limit (81 KB,
measured on the JSON with all whitespace removed) are an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp.client_proto import ResponseHandler

from control.callflow import payload
from control.callflow.ccml import parse_ccml
from control.callflow.errors import (
    CallbackEnded,
    CallbackFailed,
    CallbackFailedPreConnect,
    CallbackTimeout,
    CallFlowError,
    NoActions,
    ResponseTooLarge,
)
from control.flowconfig import CallbackTarget

log = logging.getLogger("voxswitch.callback")
T = TypeVar("T")

Observer = Callable[[str, float], None]
"""Told of each HTTP attempt: its outcome (`OUTCOMES`) and seconds taken (`/metrics`)."""


@dataclass(frozen=True)
class AttemptReport:
    """One HTTP attempt for a call, for its timeline (`CallbackClient` `trace`)."""

    call_id: str
    kind: str  # the callback's type (init_call, live_call, end_call) or WEBHOOK event
    method: str
    url: str
    status: int | None
    outcome: str  # one of OUTCOMES
    latency_ms: int
    error: str | None = None
    actions: list[str] | None = None  # the types of the actions a 2xx returned


Tracer = Callable[[AttemptReport], None]
OUTCOMES = ("ok", "http_error", "timeout", "connection_error", "bad_response", "cancelled",
            "error")

SOFT_LIMIT = int(31.415 * 1024)
HARD_LIMIT = 81 * 1024
# The limits are on the body without whitespace, so a body may be longer than the hard
# limit on the wire; past this many raw bytes it is refused whatever its whitespace.
READ_LIMIT = HARD_LIMIT * 10
READ_CHUNK = 64 * 1024
_WS = re.compile(rb"\s+")


@dataclass
class Attempt:
    """What happened on one HTTP attempt, for the log and the error message."""

    url: str
    status: int | None = None
    error: str | None = None
    timed_out: bool = False

    @property
    def answered(self) -> bool:
        """A 2xx whose body arrived whole (or was cut by us at a limit)."""
        return self.status is not None and 200 <= self.status < 300 and self.error is None


@dataclass(frozen=True)
class Body:
    """A response body read up to the limits: `complete` is False when reading stopped at
    a limit, so `raw` is only its first part."""

    raw: bytes
    complete: bool


async def read_bounded(content: aiohttp.StreamReader, *, limit: int = HARD_LIMIT,
                       raw_limit: int = READ_LIMIT) -> Body:
    """Read a whole body, piece by piece as it arrives, stopping as soon as it is over
    `limit` bytes without whitespace or over `raw_limit` bytes in all.

    One `read(n)` returns whatever has arrived (a chunk, a TCP segment), not n bytes, so a
    body that comes in pieces must be read until EOF.
    """
    chunks: list[bytes] = []
    size = minimised = 0
    while True:
        chunk = await content.read(READ_CHUNK)
        if not chunk:
            return Body(b"".join(chunks), complete=True)
        chunks.append(chunk)
        size += len(chunk)
        minimised += minimised_size(chunk)
        if minimised > limit or size > raw_limit:
            return Body(b"".join(chunks), complete=False)


class CallbackClient:
    """Sends callback requests for calls; one per switch, sharing an HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, user_agent: str = "voxswitch",
                 observe: Observer | None = None, trace: Tracer | None = None) -> None:
        self._session = session
        self._user_agent = user_agent
        self._observe = observe
        self._trace = trace

    async def fetch_actions(
        self,
        target: CallbackTarget,
        failover: CallbackTarget | None,
        body: dict[str, Any],
        *,
        connected: bool,
        call_id: str,
    ) -> list[dict[str, Any]]:
        """Send `body` and return the actions of the first 2xx response.

        Raises the Call Flow Loop error the spec gives for what went wrong, or
        CallbackEnded on 204.
        """

        def actions_of(status: int, ctype: str, got: Body) -> list[dict[str, Any]]:
            if status == 204:
                raise CallbackEnded()
            if not got.complete:
                raise ResponseTooLarge(
                    f"callback response is over the hard limit of {HARD_LIMIT} bytes "
                    f"(stopped reading after {len(got.raw)} bytes)")
            return parse_actions(got.raw, ctype, call_id)

        attempts: list[Attempt] = []
        for tgt in (target, failover):
            if tgt is None:
                continue
            attempt = Attempt(url=tgt.url)
            attempts.append(attempt)
            result = await self._send(tgt, body, attempt, call_id, actions_of)
            if result is not None:
                return result
        summary = "; ".join(_describe(a) for a in attempts)
        if attempts and attempts[-1].timed_out:
            raise CallbackTimeout(f"callback request timed out: {summary}")
        if connected:
            raise CallbackFailed(f"callback failed: {summary}")
        raise CallbackFailedPreConnect(f"callback failed: {summary}")

    async def notify(self, target: CallbackTarget, body: dict[str, Any], call_id: str) -> None:
        """Send a callback whose answer does not matter (end_call); failures are logged."""
        attempt = Attempt(url=target.url)
        await self._send(target, body, attempt, call_id, lambda *_: True)
        if not attempt.answered:
            log.warning("callback.notify_failed", extra={"call_id": call_id,
                                                         "detail": _describe(attempt)})

    async def webhook(self, target: CallbackTarget, body: dict[str, Any], call_id: str
                      ) -> tuple[bool, Any]:
        """Send a WEBHOOK request: (2xx?, the JSON response body or None)."""

        def json_of(_status: int, ctype: str, got: Body) -> tuple[bool, Any]:
            if not got.complete:
                log.warning("webhook.too_large", extra={"call_id": call_id,
                                                        "event_name": body.get("event_name"),
                                                        "limit": HARD_LIMIT})
                return True, None
            if "json" not in ctype.lower() or not got.raw.strip():
                return True, None
            try:
                return True, json.loads(got.raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                log.warning("webhook.bad_json", extra={"call_id": call_id, "error": str(exc)})
                return True, None

        attempt = Attempt(url=target.url)
        result = await self._send(target, body, attempt, call_id, json_of)
        if result is None:
            log.warning("webhook.failed", extra={"call_id": call_id,
                                                 "event_name": body.get("event_name"),
                                                 "detail": _describe(attempt)})
            return False, None
        return result

    async def _send(
        self, tgt: CallbackTarget, body: dict[str, Any], attempt: Attempt, call_id: str,
        use: Callable[[int, str, Body], T],
    ) -> T | None:
        """Send one request; `use(status, content type, body)` of a 2xx answer, or None
        (with `attempt` saying why) when there is none.

        `use` runs while the connection is still held, so that when it refuses the body
        (raises) the connection is closed rather than pooled: a server whose body was
        not what it said (a Content-Length shorter than what it sent, say) may have left
        bytes on it that the next request would read as its answer.
        """
        headers = {"User-Agent": self._user_agent, **tgt.headers}
        url = tgt.url
        data: bytes | None = None
        if tgt.method == "GET":
            url = _with_query(url, payload.flatten_for_query(body))
        else:
            data = payload.encode(body, tgt.content_type)
            headers["Content-Type"] = tgt.content_type
        # The total timeout covers the body too: a server that stops sending mid-body
        # (or promises more than it sends) times out instead of holding the call.
        timeout = aiohttp.ClientTimeout(total=tgt.timeout)
        got = Body(b"", complete=True)
        outcome = "error"  # an exception not caught below (a bug, say)
        result: T | None = None
        refused: str | None = None  # why a 2xx's body was not usable
        started = time.perf_counter()
        try:
            async with self._session.request(
                tgt.method, url, data=data, headers=headers, timeout=timeout,
                allow_redirects=True,
            ) as resp:
                attempt.status = resp.status
                conn = _protocol_of(resp)
                got = await read_bounded(resp.content)
                if not attempt.answered:
                    outcome = "http_error"
                    return None
                try:
                    result = use(resp.status, resp.headers.get("Content-Type", ""), got)
                    outcome = "ok"
                    return result
                except CallbackEnded:
                    outcome = "ok"  # 204: the answer is to end the call
                    raise
                except CallFlowError as exc:
                    outcome = "bad_response"
                    refused = str(exc)
                    # No await since the read, so nobody else can have taken it yet.
                    if conn is not None:
                        conn.close()
                    raise
                finally:
                    if not got.complete:
                        resp.close()  # the unread rest is still on the connection
        except TimeoutError:
            outcome = "timeout"
            attempt.timed_out = True
            attempt.error = f"no response within {tgt.timeout:g} s"
        except aiohttp.ClientPayloadError as exc:
            outcome = "bad_response"
            attempt.error = f"body cut short after HTTP {attempt.status}: {exc}"
        except aiohttp.ClientError as exc:
            outcome = "connection_error"
            attempt.error = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            outcome = "cancelled"  # the call went first
            raise
        finally:
            if self._observe is not None:
                self._observe(outcome, time.perf_counter() - started)
            if self._trace is not None:
                self._report(call_id, body, tgt, attempt, outcome, started, result, refused)
            log.info("callback.sent", extra={"call_id": call_id, "type": body.get("type"),
                                             "url": tgt.url, "status": attempt.status,
                                             "error": attempt.error, "bytes": len(got.raw)})
        return None


    def _report(self, call_id: str, body: dict[str, Any], tgt: CallbackTarget,
                attempt: Attempt, outcome: str, started: float, result: object,
                refused: str | None) -> None:
        assert self._trace is not None
        actions = None
        if isinstance(result, list):
            actions = [str(a.get("type")) for a in result if isinstance(a, dict)]
        report = AttemptReport(
            call_id=call_id, kind=str(body.get("type") or body.get("event_name") or "webhook"),
            method=tgt.method, url=tgt.url, status=attempt.status, outcome=outcome,
            latency_ms=round((time.perf_counter() - started) * 1000),
            error=attempt.error or refused, actions=actions)
        try:
            self._trace(report)
        except Exception:  # the timeline's bug must not fail the call's callback
            log.exception("callback.trace_failed", extra={"call_id": call_id})


def _protocol_of(resp: aiohttp.ClientResponse) -> ResponseHandler | None:
    """The response's connection, even once it is back in the pool.

    aiohttp pools a connection as soon as the body is in, which for a short body is
    before `request()` returns (`resp.connection` is None by then); only this private
    attribute still names it. Without it (a future aiohttp) nothing is closed, and a
    lying server costs at worst the next callback to it.
    """
    proto = getattr(resp, "_protocol", None)
    return proto if isinstance(proto, ResponseHandler) else None


def _with_query(url: str, fields: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(fields)
    return urlunsplit(parts._replace(query=query))


def _describe(a: Attempt) -> str:
    if a.error is not None:
        return f"{a.url}: {a.error}"
    return f"{a.url} answered HTTP {a.status}"


def minimised_size(raw: bytes) -> int:
    return len(_WS.sub(b"", raw))


def is_ccml(content_type: str, raw: bytes) -> bool:
    """XML media types (application/xml, text/xml, …+xml) are CCML; so is a body that
    opens with `<` when the type is not JSON (a static file served as text/plain)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return True
    return "json" not in media and raw.lstrip()[:1] == b"<"


def parse_actions(raw: bytes, content_type: str, call_id: str = "") -> list[dict[str, Any]]:
    """Parse a callback response body, JSON or CCML, into its list of actions.

    The size limits apply to both, measured on the body with all whitespace removed.
    """
    size = minimised_size(raw)
    if size > HARD_LIMIT:
        raise ResponseTooLarge(
            f"callback response is {size} bytes minimised, over the hard limit of "
            f"{HARD_LIMIT} bytes"
        )
    if size > SOFT_LIMIT:
        log.warning("callback.soft_limit", extra={"call_id": call_id, "bytes": size,
                                                  "soft_limit": SOFT_LIMIT})
    if is_ccml(content_type, raw):
        return parse_ccml(raw)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NoActions(f"callback response is not valid JSON: {exc}") from None
    actions = doc.get("actions") if isinstance(doc, dict) else None
    if not isinstance(actions, list) or not actions:
        raise NoActions("callback response has no 'actions' array with at least one action")
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            raise NoActions(f"action {i} is not an object")
    return actions


__all__ = ["CallFlowError", "CallbackClient", "minimised_size", "parse_actions"]
