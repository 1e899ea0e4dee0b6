"""GET /metrics on the real switch while a SIPp call comes and goes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support import audio
from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(sw: RunningSwitch) -> Samples:
    """Every sample of `/metrics`, fetched without an API key (as Prometheus does)."""
    async with aiohttp.ClientSession() as http, http.get(sw.http_url + "/metrics") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_follow_a_call(switch: SwitchFactory, callback_app: CallbackApp,
                                     sipp_runner: SippRunner, tmp_path: Path) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"seconds": 2}},
                                    {"type": "HANGUP"}]),
    })
    sw = await switch(default_callback=callback_app.url)
    before = await scrape(sw)
    assert value(before, "voxswitch_live_calls", direction="inbound") == 0
    assert value(before, "voxswitch_conferences") == 0
    assert value(before, "voxswitch_recordings_open") == 0
    started = value(before, "voxswitch_calls_started_total", direction="inbound")
    callbacks = value(before, "voxswitch_callback_duration_seconds_count")

    tone = audio.to_ulaw_file(audio.sine(1000.0, 3.0, level=-12.0), tmp_path / "tone.ulaw")
    call = asyncio.create_task(sipp_runner.run("uac_wait_bye.xml", sw.sip_udp,
                                               service="1000", audio_file=tone))
    during = before
    for _ in range(100):
        during = await scrape(sw)
        if value(during, "voxswitch_live_calls", direction="inbound") == 1 \
                and value(during, "voxswitch_rtp_receiving_channels") >= 1:
            break
        await asyncio.sleep(0.05)
    assert value(during, "voxswitch_live_calls", direction="inbound") == 1
    assert value(during, "voxswitch_rtp_receiving_channels") >= 1
    assert value(during, "voxswitch_media_channels") >= 1
    assert value(during, "voxswitch_calls_started_total", direction="inbound") == started + 1

    (await call).assert_ok()
    after = await scrape(sw)
    for _ in range(40):  # the end_call callback may still be on its way
        if value(after, "voxswitch_live_calls", direction="inbound") == 0 and \
                value(after, "voxswitch_callback_duration_seconds_count") >= callbacks + 2:
            break
        await asyncio.sleep(0.05)
        after = await scrape(sw)
    assert value(after, "voxswitch_live_calls", direction="inbound") == 0
    assert value(after, "voxswitch_calls_started_total", direction="inbound") == started + 1
    assert value(after, "voxswitch_calls_started_total", direction="outbound") == 0
    # init_call, then end_call: two attempts, both answered
    assert value(after, "voxswitch_callback_duration_seconds_count") >= callbacks + 2
    assert value(after, "voxswitch_callbacks_total", outcome="ok") >= 2
    assert value(after, "voxswitch_callbacks_total", outcome="timeout") == 0
    assert value(after, "voxswitch_engine_ticks_total") > value(before,
                                                                "voxswitch_engine_ticks_total")
    assert value(after, "voxswitch_rtp_packets_lost") >= 0
