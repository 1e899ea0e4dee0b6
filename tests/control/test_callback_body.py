"""Callback response bodies as real servers send them: streamed in pieces with pauses,
gzip-encoded, with a Content-Length that lies, or cut off mid-body. Each is read whole or
refused with the spec's code, and none holds the call past the callback's timeout."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from control.callflow.client import HARD_LIMIT, SOFT_LIMIT, CallbackClient, minimised_size
from control.callflow.errors import (
    CallbackFailed,
    CallbackFailedPreConnect,
    CallbackTimeout,
    NoActions,
    ResponseTooLarge,
)
from control.flowconfig import CallbackTarget
from tests.support.callback_app import CallbackApp, Reply
from tests.support.rawhttp import RawHttpServer, RawReply


def say_actions(count: int) -> list[dict[str, Any]]:
    return [{"type": "SAY", "params": {"text": f"Item number {i} of {count}, " + "la" * 40}}
            for i in range(count)]


def body_of(actions: list[dict[str, Any]]) -> bytes:
    return json.dumps({"actions": actions}).encode()


SEVENTY_KB = say_actions(500)
assert SOFT_LIMIT < minimised_size(body_of(SEVENTY_KB)) < HARD_LIMIT


@pytest_asyncio.fixture
async def client() -> AsyncIterator[CallbackClient]:
    async with aiohttp.ClientSession() as session:
        yield CallbackClient(session, "voxswitch-test")


@pytest_asyncio.fixture
async def app() -> AsyncIterator[CallbackApp]:
    async with CallbackApp() as a:
        yield a


async def fetch(client: CallbackClient, url: str, *, timeout: float = 5.0,
                failover: str | None = None, connected: bool = True) -> list[dict[str, Any]]:
    backup = CallbackTarget(url=failover, timeout=timeout) if failover else None
    return await client.fetch_actions(CallbackTarget(url=url, timeout=timeout), backup,
                                      {"type": "live_call"}, connected=connected,
                                      call_id="1@2")


@pytest.mark.parametrize("chunk", [4096, 1000, 7])
async def test_a_body_streamed_in_pieces_is_read_whole(
    client: CallbackClient, app: CallbackApp, chunk: int,
) -> None:
    delay = 0.002 if chunk > 100 else 0.0
    app.set_script([Reply.actions(SEVENTY_KB, chunk=chunk, chunk_delay=delay)])
    assert await fetch(client, app.url) == SEVENTY_KB


async def test_a_streamed_body_over_the_soft_limit_is_logged_and_used(
    client: CallbackClient, app: CallbackApp, caplog: pytest.LogCaptureFixture,
) -> None:
    actions = say_actions(240)  # about 30 KB without whitespace
    assert SOFT_LIMIT < minimised_size(body_of(actions)) < 2 * SOFT_LIMIT
    app.set_script([Reply.actions(actions, chunk=4096, chunk_delay=0.01)])
    with caplog.at_level(logging.WARNING, logger="voxswitch.callback"):
        assert await fetch(client, app.url) == actions
    assert [r.msg for r in caplog.records] == ["callback.soft_limit"]


async def test_a_streamed_body_over_the_hard_limit_is_413900(
    client: CallbackClient, app: CallbackApp,
) -> None:
    actions = say_actions(680)  # about 90 KB without whitespace
    assert minimised_size(body_of(actions)) > HARD_LIMIT
    app.set_script([Reply.actions(actions, chunk=4096, chunk_delay=0.005)])
    with pytest.raises(ResponseTooLarge, match="over the hard limit") as info:
        await fetch(client, app.url)
    assert info.value.code == 413900


async def test_reading_stops_once_past_the_hard_limit(
    client: CallbackClient, app: CallbackApp,
) -> None:
    # 50 MB that would take minutes at this pace: refused as soon as 81 KB are in.
    app.set_script([Reply(body=b"x" * (50 << 20), content_type="application/json",
                          chunk=16384, chunk_delay=0.001)])
    with pytest.raises(ResponseTooLarge, match=r"stopped reading after \d+ bytes") as info:
        await fetch(client, app.url, timeout=20)
    read = int(str(info.value).rsplit("after ", 1)[1].split()[0])
    assert HARD_LIMIT < read < HARD_LIMIT + 128 * 1024


@pytest.mark.parametrize("chunk", [0, 512])
async def test_a_gzip_body_is_decoded_and_measured_decoded(
    client: CallbackClient, app: CallbackApp, chunk: int,
) -> None:
    app.set_script([Reply.actions(SEVENTY_KB, gzip=True, chunk=chunk)])
    assert await fetch(client, app.url) == SEVENTY_KB
    assert app.requests[0].headers.get("Accept-Encoding", "").find("gzip") >= 0


async def test_a_gzip_bomb_is_413900_without_inflating_it_all(
    client: CallbackClient, app: CallbackApp,
) -> None:
    bomb = b'{"actions": [], "x": "' + b"y" * (20 << 20) + b'"}'  # 20 MB, 20 KB zipped
    app.set_script([Reply(body=bomb, content_type="application/json", gzip=True)])
    with pytest.raises(ResponseTooLarge):
        await fetch(client, app.url, timeout=20)


async def test_a_content_length_shorter_than_the_body_is_400902_and_the_rest_is_dropped(
    client: CallbackClient,
) -> None:
    body = body_of(say_actions(3))
    first = RawReply.lying_length(body, declared=len(body) - 25, hold=True, late_rest=0.5)
    good = RawReply.lying_length(body, declared=len(body))
    async with RawHttpServer([first, good]) as raw:
        with pytest.raises(NoActions, match="not valid JSON") as info:
            await fetch(client, raw.url)
        assert info.value.code == 400902
        # The 25 bytes still to come on that connection must not be read as the next
        # answer: the next request goes out before they arrive, on a new connection.
        assert await fetch(client, raw.url) == say_actions(3)
        assert len(raw.requests) == 2


async def test_a_body_longer_than_its_content_length_in_one_segment_is_a_failed_callback(
    client: CallbackClient, app: CallbackApp,
) -> None:
    # aiohttp reads the excess as the next response's status line and refuses the answer.
    body = body_of(say_actions(3))
    app.set_script([Reply.actions(say_actions(1))])
    async with RawHttpServer([RawReply.lying_length(body, declared=len(body) - 25)]) as raw:
        with pytest.raises(CallbackFailed, match="Bad status line") as info:
            await fetch(client, raw.url)
        assert info.value.code == 400901
        assert await fetch(client, raw.url, failover=app.url) == say_actions(1)


@pytest.mark.parametrize(("connected", "error", "code"), [
    (True, CallbackFailed, 400901), (False, CallbackFailedPreConnect, 400900)])
async def test_a_content_length_longer_than_the_body_then_close_is_a_failed_callback(
    client: CallbackClient, connected: bool, error: type[Exception], code: int,
) -> None:
    body = body_of(say_actions(3))
    async with RawHttpServer([RawReply.lying_length(body, declared=len(body) + 500)]) as raw:
        with pytest.raises(error, match="body cut short after HTTP 200") as info:
            await fetch(client, raw.url, connected=connected)
    assert info.value.code == code  # type: ignore[attr-defined]


async def test_a_content_length_longer_than_the_body_then_silence_times_out(
    client: CallbackClient,
) -> None:
    body = body_of(say_actions(3))
    reply = RawReply.lying_length(body, declared=len(body) + 500, hold=True)
    async with RawHttpServer([reply]) as raw:
        with pytest.raises(CallbackTimeout, match="no response within 1 s") as info:
            await fetch(client, raw.url, timeout=1.0)
    assert info.value.code == 4001


async def test_a_connection_dropped_mid_body_is_a_failed_callback(
    client: CallbackClient,
) -> None:
    body = body_of(SEVENTY_KB)
    async with RawHttpServer([RawReply.dropped(body, after=len(body) // 2)]) as raw:
        with pytest.raises(CallbackFailed, match="body cut short") as info:
            await fetch(client, raw.url)
    assert info.value.code == 400901


async def test_a_connection_dropped_mid_body_tries_the_failover(
    client: CallbackClient, app: CallbackApp,
) -> None:
    app.set_script([Reply.actions(say_actions(2))])
    body = body_of(SEVENTY_KB)
    async with RawHttpServer([RawReply.dropped(body, after=10_000)]) as raw:
        assert await fetch(client, raw.url, failover=app.url) == say_actions(2)
    assert len(app.requests) == 1
