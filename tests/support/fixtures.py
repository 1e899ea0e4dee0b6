"""pytest fixtures for integration tests. Load them as a plugin, in tests/conftest.py:

    pytest_plugins = ["tests.support.fixtures"]

(importing the fixture functions by name works too, but ruff flags every test argument
that shadows them as F811). The harness's own tests also name the plugin themselves.

Every fixture keeps its files under the test's tmp_path and stops what it started.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from media.engine import MediaEngine
from tests.support import ports
from tests.support.baresip import BaresipRunner
from tests.support.callback_app import CallbackApp
from tests.support.capture import Capture
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, running_switch

SwitchFactory = Callable[..., Awaitable[RunningSwitch]]


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    """A MediaEngine on any free ports; its clock is not started (tests call `tick`)."""
    eng = MediaEngine(port_range=(0, 0))
    yield eng
    await eng.stop()


@pytest.fixture
def free_udp_port() -> int:
    """A free UDP (and TCP) port on 127.0.0.1."""
    return ports.free_udp_port()


@pytest_asyncio.fixture
async def callback_app() -> AsyncIterator[CallbackApp]:
    """A started CallbackApp; script it with `callback_app.set_script(...)`."""
    async with CallbackApp() as app:
        yield app


@pytest.fixture
def sipp_runner(tmp_path: Path) -> SippRunner:
    """Runs SIPp scenarios (`await sipp_runner.run(...)`, `async with sipp_runner.uas()`)."""
    return SippRunner(tmp_path)


@pytest.fixture
def baresip_runner(tmp_path: Path) -> BaresipRunner:
    """Starts baresip phones (`async with baresip_runner.start(...)`, `.call(...)`)."""
    return BaresipRunner(tmp_path)


@pytest_asyncio.fixture
async def capture(tmp_path: Path) -> AsyncIterator[Capture]:
    """An unstarted tshark Capture into tmp_path/capture.pcapng; stopped at teardown."""
    async with Capture(tmp_path) as cap:
        yield cap


@pytest_asyncio.fixture
async def switch(tmp_path: Path) -> AsyncIterator[SwitchFactory]:
    """Factory: `sw = await switch(default_callback=app.url)` starts the switch under test;
    every switch started is stopped (SIGTERM, kill after 8 s) and must exit 0."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(default_callback: str | None = None, extra_args: Sequence[str] = (),
                        **kwargs: object) -> RunningSwitch:
            nonlocal count
            count += 1
            name = "voxswitch" if count == 1 else f"voxswitch{count}"
            return await stack.enter_async_context(running_switch(
                tmp_path, default_callback, extra_args, name=name, **kwargs))  # type: ignore[arg-type]

        yield start
