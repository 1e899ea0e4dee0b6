"""The switch's metrics registry read directly, and GET /metrics with and without a key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from control.calls import Call, Direction
from control.metrics import PATH, add_route
from control.settings import HostPort, Settings, load
from control.switch import Switch

KEY = "metrics-key-0123"


def make_switch(tmp_path: Path, name: str) -> Switch:
    return Switch(Settings(sip_listen=HostPort("127.0.0.1", 0),
                           http_listen=HostPort("127.0.0.1", 0), rtp_ports=(0, 0),
                           data_dir=tmp_path / name, api_key=KEY))


def samples(sw: Switch) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = sw.metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def call(call_id: str, direction: Direction) -> Call:
    return Call(id=call_id, direction=direction, caller_no="+17145551212",
                api_no="+19495551212", app_id="voxswitch")


def test_two_switches_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    a, b = make_switch(tmp_path, "a"), make_switch(tmp_path, "b")
    first, second = call("c1", Direction.INBOUND), call("c2", Direction.OUTBOUND)
    a.registry.add(first)
    a.registry.add(second)
    a.metrics.observe_callback("ok", 0.02)
    a.metrics.observe_callback("timeout", 5.0)
    got = samples(a)
    assert got[("voxswitch_live_calls", (("direction", "inbound"),))] == 1
    assert got[("voxswitch_live_calls", (("direction", "outbound"),))] == 1
    assert got[("voxswitch_callbacks_total", (("outcome", "timeout"),))] == 1
    assert got[("voxswitch_callback_duration_seconds_count", ())] == 2
    a.registry.ended(first)
    got = samples(a)
    assert got[("voxswitch_live_calls", (("direction", "inbound"),))] == 0
    assert got[("voxswitch_calls_started_total", (("direction", "inbound"),))] == 1
    other = samples(b)  # nothing of a's shows in b
    assert other[("voxswitch_calls_started_total", (("direction", "inbound"),))] == 0
    assert other[("voxswitch_callback_duration_seconds_count", ())] == 0
    assert other[("voxswitch_callbacks_total", (("outcome", "ok"),))] == 0


def test_a_call_added_twice_is_started_once(tmp_path: Path) -> None:
    sw = make_switch(tmp_path, "a")
    c = call("c1", Direction.INBOUND)
    sw.registry.add(c)
    sw.registry.add(c)
    assert samples(sw)[("voxswitch_calls_started_total", (("direction", "inbound"),))] == 1


@pytest_asyncio.fixture(params=[False, True], ids=["open", "key-required"])
async def http(request: pytest.FixtureRequest, tmp_path: Path
               ) -> AsyncIterator[tuple[bool, TestClient[web.Request, web.Application]]]:
    required: bool = request.param
    app = web.Application()
    add_route(app, make_switch(tmp_path, "a").metrics, KEY if required else None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield required, client


async def test_metrics_need_the_key_only_when_configured(
        http: tuple[bool, TestClient[web.Request, web.Application]]) -> None:
    required, client = http
    resp = await client.get(PATH)
    assert resp.status == (401 if required else 200)
    resp = await client.get(PATH, headers={"X-API-Key": "wrong"})
    assert resp.status == (401 if required else 200)
    resp = await client.get(PATH, headers={"X-API-Key": KEY})
    assert resp.status == 200
    assert "voxswitch_engine_ticks_total" in await resp.text()


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("0", False),
                                               ("off", False)])
def test_metrics_require_key_from_the_environment(raw: str, expected: bool) -> None:
    settings = load(None, {"VOXSWITCH_METRICS_REQUIRE_KEY": raw}, {})
    assert settings.metrics_require_key is expected
