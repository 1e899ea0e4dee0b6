"""HTTP side of the callback loop: send a callback, apply failover, size limits, parse.

The spec's rules (Callback Response): any non-2xx tries `callback_failover`; 204 ends the
call; responses over the soft limit (31.415 KB) are logged, over the hard limit (81 KB,
measured on the JSON with all whitespace removed) are an error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

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

SOFT_LIMIT = int(31.415 * 1024)
HARD_LIMIT = 81 * 1024
# Read at most this much of a body; anything longer is over the hard limit whatever its
# whitespace, since minimising cannot shrink it below a tenth.
READ_LIMIT = HARD_LIMIT * 10
_WS = re.compile(rb"\s+")


@dataclass
class Attempt:
    """What happened on one HTTP attempt, for the log and the error message."""

    url: str
    status: int | None = None
    error: str | None = None
    timed_out: bool = False


class CallbackClient:
    """Sends callback requests for calls; one per switch, sharing an HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, user_agent: str = "voxswitch") -> None:
        self._session = session
        self._user_agent = user_agent

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
        attempts: list[Attempt] = []
        for tgt in (target, failover):
            if tgt is None:
                continue
            attempt = Attempt(url=tgt.url)
            attempts.append(attempt)
            result = await self._send(tgt, body, attempt, call_id)
            if result is not None:
                status, ctype, raw = result
                if status == 204:
                    raise CallbackEnded()
                return parse_actions(raw, ctype, call_id)
        summary = "; ".join(_describe(a) for a in attempts)
        if attempts and attempts[-1].timed_out:
            raise CallbackTimeout(f"callback request timed out: {summary}")
        if connected:
            raise CallbackFailed(f"callback failed: {summary}")
        raise CallbackFailedPreConnect(f"callback failed: {summary}")

    async def notify(self, target: CallbackTarget, body: dict[str, Any], call_id: str) -> None:
        """Send a callback whose answer does not matter (end_call); failures are logged."""
        attempt = Attempt(url=target.url)
        await self._send(target, body, attempt, call_id)
        if attempt.status is None or not 200 <= attempt.status < 300:
            log.warning("callback.notify_failed", extra={"call_id": call_id,
                                                         "detail": _describe(attempt)})

    async def webhook(self, target: CallbackTarget, body: dict[str, Any], call_id: str
                      ) -> tuple[bool, Any]:
        """Send a WEBHOOK request: (2xx?, the JSON response body or None)."""
        attempt = Attempt(url=target.url)
        result = await self._send(target, body, attempt, call_id)
        if result is None:
            log.warning("webhook.failed", extra={"call_id": call_id,
                                                 "event_name": body.get("event_name"),
                                                 "detail": _describe(attempt)})
            return False, None
        _, ctype, raw = result
        if "json" not in ctype.lower() or not raw.strip():
            return True, None
        try:
            return True, json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("webhook.bad_json", extra={"call_id": call_id, "error": str(exc)})
            return True, None

    async def _send(
        self, tgt: CallbackTarget, body: dict[str, Any], attempt: Attempt, call_id: str
    ) -> tuple[int, str, bytes] | None:
        headers = {"User-Agent": self._user_agent, **tgt.headers}
        url = tgt.url
        data: bytes | None = None
        if tgt.method == "GET":
            url = _with_query(url, payload.flatten_for_query(body))
        else:
            data = payload.encode(body, tgt.content_type)
            headers["Content-Type"] = tgt.content_type
        timeout = aiohttp.ClientTimeout(total=tgt.timeout)
        try:
            async with self._session.request(
                tgt.method, url, data=data, headers=headers, timeout=timeout,
                allow_redirects=True,
            ) as resp:
                attempt.status = resp.status
                raw = await resp.content.read(READ_LIMIT + 1)
                ctype = resp.headers.get("Content-Type", "")
        except TimeoutError:
            attempt.timed_out = True
            attempt.error = f"no response within {tgt.timeout:g} s"
        except aiohttp.ClientError as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        log.info("callback.sent", extra={"call_id": call_id, "type": body.get("type"),
                                         "url": tgt.url, "status": attempt.status,
                                         "error": attempt.error})
        if attempt.status is not None and 200 <= attempt.status < 300:
            return attempt.status, ctype, raw
        return None


def _with_query(url: str, fields: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(fields)
    return urlunsplit(parts._replace(query=query))


def _describe(a: Attempt) -> str:
    if a.status is not None:
        return f"{a.url} answered HTTP {a.status}"
    return f"{a.url}: {a.error}"


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
