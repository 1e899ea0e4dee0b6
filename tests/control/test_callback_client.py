"""The callback client against a real aiohttp callback server on 127.0.0.1."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from control.callflow.client import HARD_LIMIT, CallbackClient, minimised_size, parse_actions
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
from tests.support.ports import free_tcp_port

SAY = {"actions": [{"type": "SAY", "params": {"text": "hi"}}]}
Handler = Callable[[web.Request], Any]


class Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.handlers: dict[str, Handler] = {}
        self.server: TestServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "path": request.path,
                "method": request.method,
                "headers": dict(request.headers),
                "query": dict(request.query),
                "body": body,
            }
        )
        return await self.handlers[request.path](request)


@pytest_asyncio.fixture
async def srv() -> AsyncIterator[Server]:
    s = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    s.server = TestServer(app, host="127.0.0.1")
    await s.server.start_server()
    yield s
    await s.server.close()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[CallbackClient]:
    async with aiohttp.ClientSession() as session:
        yield CallbackClient(session, "voxswitch-test")


def target(srv: Server, path: str, **kw: Any) -> CallbackTarget:
    return CallbackTarget(url=srv.url(path), **kw)


async def test_post_json_returns_actions_and_sends_headers(
    srv: Server, client: CallbackClient
) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response(SAY)

    srv.handlers["/cb"] = ok
    tgt = target(srv, "/cb", headers={"X-Custom": "v"})
    actions = await client.fetch_actions(
        tgt, None, {"type": "init_call", "call_id": "1@2"}, connected=False, call_id="1@2"
    )
    assert actions == SAY["actions"]
    req = srv.requests[0]
    assert req["method"] == "POST"
    assert req["headers"]["X-Custom"] == "v"
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == {"type": "init_call", "call_id": "1@2"}


async def test_get_sends_query_string_with_key_presses(srv: Server, client: CallbackClient) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response(SAY)

    srv.handlers["/cb"] = ok
    body = {
        "type": "live_call",
        "key_presses": [{"name": "menu", "digits": "12", "history": ["3"]}],
        "session_data": None,
    }
    await client.fetch_actions(
        target(srv, "/cb", method="GET"), None, body, connected=True, call_id="x"
    )
    q = srv.requests[0]["query"]
    assert q["type"] == "live_call"
    assert q["key_presses.menu"] == "12"
    assert "history" not in "".join(q)


async def test_failover_is_used_on_non_2xx(srv: Server, client: CallbackClient) -> None:
    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=503)

    async def ok(_: web.Request) -> web.Response:
        return web.json_response(SAY)

    srv.handlers["/main"], srv.handlers["/backup"] = fail, ok
    actions = await client.fetch_actions(
        target(srv, "/main"), target(srv, "/backup"), {}, connected=False, call_id="x"
    )
    assert actions == SAY["actions"]
    assert [r["path"] for r in srv.requests] == ["/main", "/backup"]


@pytest.mark.parametrize(
    ("connected", "error"), [(False, CallbackFailedPreConnect), (True, CallbackFailed)]
)
async def test_non_2xx_everywhere_is_400900_before_answer_and_400901_after(
    srv: Server, client: CallbackClient, connected: bool, error: type[Exception]
) -> None:
    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=500)

    srv.handlers["/main"] = srv.handlers["/backup"] = fail
    with pytest.raises(error, match="answered HTTP 500") as info:
        await client.fetch_actions(
            target(srv, "/main"), target(srv, "/backup"), {}, connected=connected, call_id="x"
        )
    assert info.value.code == (400901 if connected else 400900)  # type: ignore[attr-defined]


async def test_timeout_is_4001(srv: Server, client: CallbackClient) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response(SAY)

    srv.handlers["/cb"] = slow
    with pytest.raises(CallbackTimeout, match="no response within 1 s") as info:
        await client.fetch_actions(
            target(srv, "/cb", timeout=1.0), None, {}, connected=False, call_id="x"
        )
    assert info.value.code == 4001


async def test_204_ends_the_call(srv: Server, client: CallbackClient) -> None:
    async def empty(_: web.Request) -> web.Response:
        return web.Response(status=204)

    srv.handlers["/cb"] = empty
    with pytest.raises(CallbackEnded):
        await client.fetch_actions(target(srv, "/cb"), None, {}, connected=True, call_id="x")


async def test_oversize_response_is_413900(srv: Server, client: CallbackClient) -> None:
    big = {"actions": [{"type": "SAY", "params": {"text": "x" * (HARD_LIMIT + 10)}}]}

    async def huge(_: web.Request) -> web.Response:
        return web.json_response(big)

    srv.handlers["/cb"] = huge
    with pytest.raises(ResponseTooLarge) as info:
        await client.fetch_actions(target(srv, "/cb"), None, {}, connected=True, call_id="x")
    assert info.value.code == 413900


def test_size_is_measured_without_whitespace() -> None:
    pretty = json.dumps(SAY, indent=8).encode()
    assert minimised_size(pretty) == len(json.dumps(SAY, separators=(",", ":")).replace(" ", ""))
    padded = b" " * (HARD_LIMIT * 2) + json.dumps(SAY).encode()
    assert parse_actions(padded, "application/json") == SAY["actions"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"{}", "no 'actions' array"),
        (b'{"actions": []}', "no 'actions' array"),
        (b'{"actions": [42]}', "action 0 is not an object"),
        (b'[{"type": "SAY"}]', "no 'actions' array"),
    ],
)
def test_bad_bodies_are_400902(raw: bytes, message: str) -> None:
    with pytest.raises(NoActions, match=message) as info:
        parse_actions(raw, "application/json")
    assert info.value.code == 400902


async def _answer_say(_: web.Request) -> web.Response:
    return web.json_response(SAY)


async def _answer_204(_: web.Request) -> web.Response:
    return web.Response(status=204)


async def _answer_500(_: web.Request) -> web.Response:
    return web.Response(status=500)


async def _answer_garbage(_: web.Request) -> web.Response:
    return web.Response(body=b"{not json", content_type="application/json")


async def _answer_late(_: web.Request) -> web.Response:
    await asyncio.sleep(1)
    return web.json_response(SAY)


@pytest.mark.parametrize(("handler", "outcome"), [
    (_answer_say, "ok"),
    (_answer_204, "ok"),
    (_answer_500, "http_error"),
    (_answer_garbage, "bad_response"),
    (_answer_late, "timeout"),
])
async def test_each_attempt_is_observed_with_its_outcome_and_latency(
    srv: Server, handler: Handler, outcome: str
) -> None:
    seen: list[tuple[str, float]] = []
    srv.handlers["/cb"] = handler
    async with aiohttp.ClientSession() as session:
        observed = CallbackClient(session, observe=lambda o, s: seen.append((o, s)))
        with contextlib.suppress(CallbackEnded, CallFlowError):
            await observed.fetch_actions(target(srv, "/cb", timeout=0.3), None, {},
                                         connected=True, call_id="x")
    assert [o for o, _ in seen] == [outcome]
    assert 0 < seen[0][1] < 2


async def test_a_refused_connection_is_observed_as_connection_error() -> None:
    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        observed = CallbackClient(session, observe=lambda o, _s: seen.append(o))
        await observed.notify(CallbackTarget(url=f"http://127.0.0.1:{free_tcp_port()}/cb"),
                              {}, "x")
    assert seen == ["connection_error"]
