"""A scripted callback server for call-flow tests: a real aiohttp server on 127.0.0.1 that
answers the switch's callbacks from a script or a handler and records every request.

    callbacks.script([{"type": "SAY", "params": {"text": "Hi"}}], then=[{"type": "HANGUP"}])
    callbacks.handler(lambda body: [...] if body["type"] == "init_call" else None)
    end = await callbacks.wait_for("end_call")

It also serves audio for PLAY (`audio_url`, `tone_url`), so a test needs no file server.
A handler that raises answers 500 (the switch then runs its failover and error path, as
with a real app that crashes) and the error is kept in `errors`; the plugin fails the
test with it at teardown, so a bug in a test's handler is never silent.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import json
import logging
import traceback
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

log = logging.getLogger("voxswitch.testkit.callbacks")

HOST = "127.0.0.1"
PATH = "/callflow"
Actions = Sequence[Mapping[str, Any]]
Body = dict[str, Any]
Handler = Callable[[Body], Any | Awaitable[Any]]
HANGUP: list[dict[str, Any]] = [{"type": "HANGUP"}]
# Callbacks that report instead of asking for actions: answered {} by a script.
REPORTS = frozenset({"end_call", "failed_call"})


class CallbackServer:
    """`await start()`, point the switch at `url`, script it, read `requests`."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.port = 0
        self.requests: list[Body] = []  # every callback body, in arrival order
        self.errors: list[str] = []  # tracebacks of handlers that raised
        self._handler: Handler = _default_handler
        self._audio: dict[str, bytes] = {}
        self._names = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The callback URL to configure (the Default call flow, or a number's)."""
        return self.base_url + PATH

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", PATH, self._callback)
        app.router.add_route("GET", "/audio/{name}", self._serve_audio)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- scripting --------------------------------------------------------------------------

    def script(self, actions: Actions, then: Actions | None = None) -> None:
        """Answer every call's init_call with `actions` and every later callback that asks
        for actions (live_call, webhooks) with `then` (default: HANGUP)."""
        first, later = list(actions), list(then) if then is not None else HANGUP

        def handler(body: Body) -> Any:
            if body.get("type") in REPORTS:
                return {}
            return first if body.get("type") == "init_call" else later

        self._handler = handler

    def steps(self, *replies: Actions | Mapping[str, Any]) -> None:
        """Answer the callbacks that ask for actions with `replies` in order (an action
        list, or a whole response body), the last one again for any after it."""
        if not replies:
            raise ValueError("steps() needs at least one reply")
        queue = list(replies)

        def handler(body: Body) -> Any:
            if body.get("type") in REPORTS:
                return {}
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self._handler = handler

    def handler(self, fn: Handler) -> Handler:
        """Answer every callback with `fn(body)` (sync or async): an action list, a whole
        response body (dict), or None for an empty `{}`. Usable as a decorator."""
        self._handler = fn
        return fn

    # ---- audio for PLAY ---------------------------------------------------------------------

    def audio_url(self, data: bytes, name: str | None = None) -> str:
        """Serve a sound file's bytes (WAV, MP3, …) for a PLAY action; its URL."""
        name = name or f"audio{next(self._names)}.wav"
        self._audio[name] = data
        return f"{self.base_url}/audio/{name}"

    def tone_url(self, freq: float, seconds: float, *, level_dbm0: float = -10.0) -> str:
        """A WAV of a `freq` Hz sine lasting `seconds`, served for PLAY; its URL."""
        from media.tones import tone  # numpy: only when a test asks for a tone

        pcm = tone(freq, seconds, level_dbm0=level_dbm0)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(pcm.astype("<i2").tobytes())
        name = f"tone-{freq:g}hz-{seconds:g}s-{next(self._names)}.wav"
        return self.audio_url(buf.getvalue(), name)

    # ---- what was received ------------------------------------------------------------------

    def of_type(self, kind: str) -> list[Body]:
        """The bodies of the callbacks of one `type` (init_call, live_call, end_call, …)."""
        return [r for r in self.requests if r.get("type") == kind]

    def last(self, kind: str | None = None) -> Body:
        """The latest callback body (of `kind`); AssertionError when there is none."""
        found = self.of_type(kind) if kind else self.requests
        if not found:
            raise AssertionError(f"no {kind or 'callback'} request received; got "
                                 f"{self._summary()}")
        return found[-1]

    def digits(self, name: str | None = None) -> str | None:
        """The digits of the COLLECT named `name` (any, when None) in the latest callback
        that reports key presses; None when none does."""
        for body in reversed(self.requests):
            presses = body.get("key_presses")
            if isinstance(presses, list):
                for press in reversed(presses):
                    if isinstance(press, dict) and (name is None or press.get("name") == name):
                        return str(press.get("digits", ""))
        return None

    async def wait_for(self, kind: str = "end_call", *, timeout: float = 10.0,
                       where: Callable[[Body], bool] | None = None) -> Body:
        """The first callback of `kind` (and matching `where`), waiting up to `timeout`."""

        def found() -> Body | None:
            for body in self.requests:
                if body.get("type") == kind and (where is None or where(body)):
                    return body
            return None

        async def wait() -> Body:
            async with self._changed:
                while (body := found()) is None:
                    await self._changed.wait()
                return body

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {kind} callback within {timeout:g} s; got "
                                 f"{self._summary()}") from None

    def _summary(self) -> str:
        if not self.requests:
            return "no callbacks at all"
        return ", ".join(str(r.get("type", "?")) for r in self.requests)

    # ---- serving ----------------------------------------------------------------------------

    async def _callback(self, request: web.Request) -> web.Response:
        body = await _read_body(request)
        self.requests.append(body)
        async with self._changed:
            self._changed.notify_all()
        try:
            reply = self._handler(body)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception:
            error = traceback.format_exc()
            self.errors.append(error)
            log.error("callback handler raised", extra={"callback": body.get("type")})
            return web.json_response({"error": "the test's callback handler raised",
                                      "traceback": error}, status=500)
        if reply is None:
            reply = {}
        if not isinstance(reply, Mapping):
            reply = {"actions": list(reply)}
        return web.json_response(dict(reply))

    async def _serve_audio(self, request: web.Request) -> web.Response:
        data = self._audio.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound(text=f"no audio named {request.match_info['name']!r}")
        return web.Response(body=data, content_type="audio/wav")


def _default_handler(body: Body) -> Any:
    # Nothing scripted yet: a call that arrives hangs up rather than waiting on a test.
    return {} if body.get("type") in REPORTS else HANGUP


async def _read_body(request: web.Request) -> Body:
    """The callback's fields whatever its encoding: JSON, form or the query string."""
    fields: Body = dict(request.query)
    if not request.can_read_body:
        return fields
    text = await request.text()
    ctype = request.content_type
    if ctype == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            return {**fields, "_body": text}
        return {**fields, **data} if isinstance(data, dict) else {**fields, "_body": data}
    if ctype == "application/x-www-form-urlencoded":
        return {**fields, **dict(parse_qsl(text, keep_blank_values=True))}
    return {**fields, "_body": text}
