"""A scripted Voxology-style callback server: records every request, answers per test.

    async with CallbackApp(script={"init_call": Reply.actions([{"type": "HANGUP"}])}) as app:
        ... switch with default_callback=app.url ...
        end = await app.wait_for(type="end_call", timeout=15)
        assert end.fields["status"] == "completed"

A script is one of:
- a callable `(CallbackRequest) -> Reply | dict | list | None` (may be async);
- a dict keyed by callback `type` (init_call, live_call, end_call, failed_call) whose values
  are a reply or a list of replies consumed in order (the last one repeats);
- a list of replies consumed in arrival order (then `default`).
A reply is a `Reply`, a dict (sent as JSON with status 200) or a list (taken as the actions
of `{"actions": [...]}`). None falls back to `default`.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

HOST = "127.0.0.1"


@dataclass
class Reply:
    """How to answer one callback: status, body (JSON, raw text or bytes), headers, delay.

    `chunk` > 0 streams the body with chunked transfer coding, `chunk` bytes per write and
    `chunk_delay` seconds between writes (a framework that streams, a slow link); `gzip`
    sends it gzip-encoded (streamed the same way when `chunk` is set); `drop_after` closes
    the connection once that many bytes of a streamed body are out.
    """

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk: int = 0
    chunk_delay: float = 0.0
    gzip: bool = False
    drop_after: int | None = None

    @classmethod
    def actions(cls, actions: Sequence[Mapping[str, Any]], **kwargs: Any) -> Reply:
        """200 with `{"actions": [...]}`."""
        return cls(json={"actions": list(actions)}, **kwargs)

    @classmethod
    def ccml(cls, xml: str, **kwargs: Any) -> Reply:
        """An XML (CCML) body with Content-Type application/xml."""
        return cls(body=xml, content_type="application/xml", **kwargs)

    @classmethod
    def huge(cls, size: int, actions: Sequence[Mapping[str, Any]] = (),
             **kwargs: Any) -> Reply:
        """Valid JSON of exactly `size` bytes: the actions plus a long `comments` string."""
        head = json.dumps({"actions": list(actions), "comments": ""}, separators=(",", ":"))
        if size < len(head):
            raise ValueError(f"size {size} < minimal body {len(head)}")
        body = head[:-2] + "x" * (size - len(head)) + head[-2:]
        return cls(body=body, content_type="application/json", **kwargs)

    def payload(self) -> tuple[bytes | None, str | None]:
        """The body's bytes (before any gzip) and its content type."""
        if self.json is not None:
            return json.dumps(self.json).encode(), self.content_type or "application/json"
        body = self.body.encode() if isinstance(self.body, str) else self.body
        return body, self.content_type

    def to_response(self) -> web.Response:
        headers = dict(self.headers)
        body, ctype = self.payload()
        if ctype:
            headers.setdefault("Content-Type", ctype)
        if self.gzip and body is not None:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(status=self.status, body=body, headers=headers)

    async def send(self, request: web.Request) -> web.StreamResponse:
        """Answer `request`: in one piece, or streamed chunk by chunk when `chunk` is set."""
        if not self.chunk:
            return self.to_response()
        body, ctype = self.payload()
        data = body or b""
        headers = dict(self.headers)
        if ctype:
            headers.setdefault("Content-Type", ctype)
        if self.gzip:
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        resp = web.StreamResponse(status=self.status, headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        end = len(data) if self.drop_after is None else min(self.drop_after, len(data))
        for start in range(0, end, self.chunk):
            if start and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            await resp.write(data[start:min(start + self.chunk, end)])
        if self.drop_after is not None and request.transport is not None:
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp


@dataclass
class CallbackRequest:
    """One request as the app received it."""

    index: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    content_type: str
    body: Any  # dict for JSON objects, XML and forms; other JSON values as parsed; else None
    arrived: float  # loop.time() at arrival
    wall: float  # time.time() at arrival

    @property
    def fields(self) -> dict[str, Any]:
        """The callback's fields, wherever they came: a body object, else the query string."""
        if isinstance(self.body, dict):
            return self.body
        return dict(self.query)

    @property
    def type(self) -> str | None:
        value = self.fields.get("type")
        return str(value) if value is not None else None

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")


def _xml_to_value(elem: ET.Element) -> Any:
    children = list(elem)
    if not children:
        return (elem.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = _xml_to_value(child)
        if child.tag in out:
            if not isinstance(out[child.tag], list):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON, XML (element tree to nested dicts, root dropped) or form bodies; else None."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        if "json" in content_type:
            return json.loads(text)
        if "xml" in content_type:
            root = ET.fromstring(text)
            value = _xml_to_value(root)
            return value if isinstance(value, dict) else {root.tag: value}
        if "x-www-form-urlencoded" in content_type:
            return dict(parse_qsl(text, keep_blank_values=True))
    except (ValueError, ET.ParseError):
        return None
    return None


ReplyLike = Reply | Mapping[str, Any] | Sequence[Any] | None
ScriptFn = Callable[[CallbackRequest], ReplyLike | Awaitable[ReplyLike]]
# dict values: a reply or a list of replies; list items: replies
Script = ScriptFn | Mapping[str, Any] | list[Any] | None


def as_reply(value: ReplyLike, default: Reply) -> Reply:
    if value is None:
        return default
    if isinstance(value, Reply):
        return value
    if isinstance(value, Mapping):
        return Reply(json=dict(value))
    return Reply.actions(list(value))


class CallbackApp:
    """aiohttp server on 127.0.0.1:0; every path is a callback endpoint."""

    def __init__(self, script: Script = None, default: Reply | None = None) -> None:
        self.script = list(script) if isinstance(script, list) else script
        self.default = default or Reply.actions([{"type": "HANGUP"}])
        self.requests: list[CallbackRequest] = []
        self.errors: list[str] = []
        self._per_type: dict[str, int] = {}
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    def set_script(self, script: Script, default: Reply | None = None) -> None:
        """Replace the script (and the default reply) of a running app."""
        self.script = list(script) if isinstance(script, list) else script
        self._per_type.clear()
        if default is not None:
            self.default = default

    @property
    def url(self) -> str:
        """Base URL; any path under it is answered the same way (see `request.path`)."""
        if not self._port:
            raise RuntimeError("CallbackApp not started")
        return f"http://{HOST}:{self._port}/"

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> CallbackApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        arrived, wall = loop.time(), time.time()
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        record = CallbackRequest(
            index=len(self.requests), method=request.method, path=request.path,
            query=dict(request.query), headers=dict(request.headers), raw=raw,
            content_type=ctype, body=parse_body(raw, ctype), arrived=arrived, wall=wall)
        self.requests.append(record)
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
        try:
            reply = await self._choose(record)
        except Exception as exc:  # a broken script must show up in the test, not vanish
            self.errors.append(f"request {record.index} ({record.type}): {exc!r}")
            return web.Response(status=500, text=f"callback script error: {exc!r}")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return await reply.send(request)

    async def _choose(self, record: CallbackRequest) -> Reply:
        script = self.script
        if script is None:
            return self.default
        if callable(script):
            value = script(record)
            if inspect.isawaitable(value):
                value = await value
            return as_reply(value, self.default)
        if isinstance(script, list):
            return as_reply(script.pop(0) if script else None, self.default)
        entry = script.get(record.type or "")
        if isinstance(entry, list) and not isinstance(entry, Reply):
            n = self._per_type.get(record.type or "", 0)
            self._per_type[record.type or ""] = n + 1
            if not entry:
                return self.default
            return as_reply(entry[min(n, len(entry) - 1)], self.default)
        return as_reply(entry, self.default)

    def of_type(self, type: str) -> list[CallbackRequest]:
        return [r for r in self.requests if r.type == type]

    async def wait_for(self, type: str | None = None,
                       predicate: Callable[[CallbackRequest], bool] | None = None,
                       timeout: float = 10.0, count: int = 1) -> CallbackRequest:
        """The `count`-th request (already received or still to come) of `type` that also
        satisfies `predicate`; AssertionError listing what did arrive after `timeout` s."""
        assert self._changed is not None, "CallbackApp not started"

        def matches() -> list[CallbackRequest]:
            return [r for r in self.requests
                    if (type is None or r.type == type) and (predicate is None or predicate(r))]

        async def wait() -> CallbackRequest:
            assert self._changed is not None
            async with self._changed:
                while len(found := matches()) < count:
                    await self._changed.wait()
                return found[count - 1]

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [(r.method, r.path, r.type) for r in self.requests]
            raise AssertionError(
                f"no callback #{count} of type {type!r} within {timeout} s; got {seen}; "
                f"script errors: {self.errors}") from None
