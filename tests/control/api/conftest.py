"""Fixtures for the API tests: the `/v1` sub-app on 127.0.0.1 over a real Storage and
a real CallRegistry holding real Calls."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.calls import Call, CallRegistry, CallStatus, Direction, utcnow
from control.storage import Storage

API_KEY = "test-key-0123456789"
APP_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ERROR_FIELDS = {"ref_id", "status", "code", "message", "help", "user_message"}


@dataclass
class RecordingControl:
    """Stands in for the call session (SIP leg + media) behind `CallControl`."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def hangup(self, message: list[str] | None = None) -> None:
        self.calls.append(("hangup", message))

    async def end(self) -> None:
        self.calls.append(("end", None))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> CallRegistry:
    return CallRegistry(clock=clock)


@pytest.fixture
def ctx(registry: CallRegistry, storage: Storage) -> ApiContext:
    return ApiContext(api_key=API_KEY, registry=registry, storage=storage, app_id=APP_ID)


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    # mounted exactly as the switch mounts it
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"X-API-Key": API_KEY}


MakeCall = Callable[..., Call]


@pytest.fixture
def make_call(registry: CallRegistry) -> MakeCall:
    """Add a live Call to the registry; `connected_s` backdates its connection."""

    def make(
        call_id: str,
        caller_no: str = "+17145551212",
        api_no: str = "+19495551212",
        connected_s: float | None = None,
        register: bool = True,
    ) -> Call:
        call = Call(
            id=call_id,
            direction=Direction.INBOUND,
            caller_no=caller_no,
            api_no=api_no,
            app_id=APP_ID,
            control=RecordingControl(),
        )
        call.status = CallStatus.RINGING
        if connected_s is not None:
            call.mark_connected()
            # Call reads the monotonic clock itself; backdate the reading it took
            call._t_connect = time.monotonic() - connected_s
            call.connect_time = utcnow() - timedelta(seconds=connected_s)
        if register:
            registry.add(call)
        return call

    return make


def assert_error(body: dict[str, Any], status: int, code: int) -> None:
    assert set(body) == ERROR_FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert len(body["ref_id"]) == 32
    assert all(isinstance(body[k], str) for k in ERROR_FIELDS - {"status", "code"})


@pytest.fixture
def check_error() -> Callable[[dict[str, Any], int, int], None]:
    return assert_error
