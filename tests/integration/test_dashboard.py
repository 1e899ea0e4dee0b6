"""The web dashboard in headless Chromium against a real switch and real SIPp callers.

What is judged is what a user sees and what the callers hear: the page signs in with the
API key (and refuses a wrong one), a SIPp call shows up live without a reload, its detail
shows the call's timeline, and its Hang up button ends it (SIPp receives the BYE; the call
log says completed). In a conference of two SIPp callers streaming 400 and 700 Hz, the
page's Mute button silences one for the other, judged by decoding the RTP the switch sent
(tshark capture). Screenshots of each view are written under tmp_path; with
VOXSWITCH_SCREENSHOTS=DIR (`make screenshots`) they are copied to DIR (docs/ in the repo).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_conference_audio import (
    call_ids,
    hang_up,
    heard,
    received_by_port,
    start_sipp,
    until_count,
)
from tests.support.browser import chromium, signed_in_page
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

ROOM = "dash-room"
MUTE_SETTLE_S = 0.5  # from the REST answer to the mix leaving the muted caller out
WINDOW_S = 1.5


def save_screenshot(path: Path) -> None:
    """Keep a copy of `path` where `make screenshots` asked for one."""
    assert path.stat().st_size > 10_000, f"{path} is too small to be a screenshot"
    target = os.environ.get("VOXSWITCH_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


async def call_log(sw: RunningSwitch, call_id: str, timeout: float = 15.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with rest(sw) as http:
        while True:
            async with http.get(f"/v1/History/Logs/Calls/{call_id}") as resp:
                if resp.status == 200:
                    return dict(await resp.json())
            assert loop.time() < deadline, f"no call log for {call_id}"
            await asyncio.sleep(0.2)


def conference_flow(req: CallbackRequest) -> Any:
    if req.type == "init_call":
        if str(req.fields.get("api_no")) == "2000":  # the caller the dashboard watches
            return [{"type": "SAY", "params": {"text": "Welcome to the dashboard test."}},
                    {"type": "PAUSE", "params": {"seconds": 60}}, {"type": "HANGUP"}]
        return [{"type": "CONFERENCE", "params": {"name": ROOM}}, {"type": "HANGUP"}]
    if req.type == "live_call":
        return [{"type": "HANGUP"}]
    return Reply(json={})


async def test_the_login_refuses_a_wrong_key_and_accepts_the_switchs_own(
    switch: SwitchFactory, tmp_path: Path,
) -> None:
    sw = await switch()
    async with chromium(tmp_path) as browser:
        page = await browser.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        await page.goto(sw.http_url + "/")
        await page.fill("#login-key", "not-the-key")
        await page.click("#login-submit")
        await page.wait_for_function(
            "document.querySelector('#login-error').textContent.includes('not this switch')")
        assert await page.is_hidden("#app")
        await page.fill("#login-key", sw.api_key)
        await page.click("#login-submit")
        await page.wait_for_selector("#stream-state.live", timeout=15_000)
        assert await page.is_hidden("#login")
        # the configuration view lists the simulator's numbers, from its REST table
        await page.click("#tabs button[data-tab=config]")
        await page.locator("#simulator-table tbody tr").nth(9).wait_for(timeout=10_000)
        rows = await page.locator("#simulator-table tbody tr").all_text_contents()
        assert any("voicemail" in r and "+1555010" in r for r in rows), rows
        assert page_errors == []
        # the address `make run` prints signs in by itself and drops the key from the bar
        page2 = await browser.new_page()
        await page2.goto(f"{sw.http_url}/#key={sw.api_key}")
        await page2.wait_for_selector("#stream-state.live", timeout=15_000)
        assert "key=" not in page2.url


async def test_a_live_call_appears_shows_its_timeline_and_the_hang_up_button_ends_it(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path,
) -> None:
    callback_app.set_script(conference_flow)
    sw = await switch(default_callback=callback_app.url)
    async with chromium(tmp_path) as browser:
        page = await signed_in_page(browser, sw.http_url, sw.api_key)
        assert await page.locator("#calls-empty").is_visible()
        peer = start_sipp(sipp_runner, sw, tmp_path, "2000", 400, timeout=45)
        init = await callback_app.wait_for("init_call", timeout=15)
        call_id = str(init.fields["call_id"])
        row = page.locator(f'#calls-table tr[data-call-id="{call_id}"]')
        await row.wait_for(timeout=10_000)  # pushed by the live stream: no reload
        await page.wait_for_function(
            f"document.querySelector('#calls-table tr[data-call-id=\"{call_id}\"] .status')"
            ".textContent === 'live-in-progress'")
        assert await page.locator("#count-calls").text_content() == "1"
        await row.click()
        await page.wait_for_selector("#call-detail:not([hidden])")
        timeline = page.locator("#timeline li")
        await page.wait_for_function(
            "[...document.querySelectorAll('#timeline li .summary')]"
            ".some(e => e.textContent.includes('INVITE'))", timeout=10_000)
        kinds = set(await page.locator("#timeline li .kind").all_text_contents())
        assert {"sip", "callback", "action"} <= kinds, kinds
        assert await timeline.count() >= 4
        shot = tmp_path / "dashboard-calls.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)

        # record two seconds of it from the page's buttons
        await page.click("#act-record-start")
        await page.wait_for_selector("#flash:has-text('Start recording: done')")
        await asyncio.sleep(2.0)
        await page.click("#act-record-stop")
        await page.wait_for_selector("#flash:has-text('Stop recording: done')")

        await page.click("#act-hangup")
        result = await asyncio.wait_for(peer.task, timeout=20)
        result.assert_ok()  # the scenario ends only on the switch's BYE
        await row.wait_for(state="detached", timeout=10_000)
        log = await call_log(sw, call_id)
        assert log["status"] == "completed" and log["hangup_end"] == "api", log

        await page.click("#tabs button[data-tab=logs]")
        logged = page.locator(f'#logs-table tr[data-call-id="{call_id}"]')
        await logged.wait_for(timeout=10_000)
        assert "completed" in (await logged.text_content() or "")
        shot = tmp_path / "dashboard-logs.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)

        # the recording plays in the page: about the two seconds between the buttons
        await page.click("#tabs button[data-tab=recordings]")
        rec = page.locator(f'#recordings-table tr:has-text("{call_id}") button[data-action=play]')
        await rec.wait_for(timeout=10_000)
        await page.wait_for_function(
            f"!document.querySelector('#recordings-table tr[data-recording]') || "
            f"[...document.querySelectorAll('#recordings-table tr')].some(r => "
            f"r.textContent.includes('{call_id}') && r.textContent.includes('completed'))",
            timeout=10_000)
        await rec.click()
        length = await page.wait_for_function(
            "(() => { const p = document.querySelector('#player');"
            " return p.readyState >= 1 && isFinite(p.duration) ? p.duration : 0; })()",
            timeout=10_000)
        assert 1.0 < await length.json_value() < 4.0

        # and so does what each side heard (the audio tap of the finished call)
        await page.click("#tabs button[data-tab=calls]")
        await page.click("#tap-load")
        tap = await page.wait_for_function(
            "(() => { const a = document.querySelector('#tap audio');"
            " return a && a.readyState >= 1 && isFinite(a.duration) ? a.duration : 0; })()",
            timeout=10_000)
        heard_s = await tap.json_value()
        # the whole call, answer to hang-up (and at least the two recorded seconds)
        assert heard_s > 2.0 and abs(heard_s - log["connected_time"] / 1000) < 0.5, (
            heard_s, log["connected_time"])
        assert page.errors == []  # type: ignore[attr-defined]


async def test_the_mute_button_silences_a_participant_for_the_others(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path,
) -> None:
    callback_app.set_script(conference_flow)
    sw = await switch(default_callback=callback_app.url)
    ports = {"a": free_rtp_port(), "b": free_rtp_port()}
    async with Capture(tmp_path, "dashboard") as cap, chromium(tmp_path) as browser:
        await cap.start(list(ports.values()), duration=60)
        peers = {"a": start_sipp(sipp_runner, sw, tmp_path, "1001", 400, media_port=ports["a"]),
                 "b": start_sipp(sipp_runner, sw, tmp_path, "1002", 700, media_port=ports["b"])}
        await until_count(sw, 2)
        ids = call_ids(callback_app)
        a_id = ids["1001"]
        page = await signed_in_page(browser, sw.http_url, sw.api_key)
        await page.click("#tabs button[data-tab=conferences]")
        mute = page.locator(f'[data-conference="{ROOM}"] tr[data-call-id="{a_id}"] '
                            'button[data-action=mute]')
        await mute.wait_for(timeout=10_000)
        before = time.time()
        await asyncio.sleep(WINDOW_S + 0.3)
        shot = tmp_path / "dashboard-conference.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)
        clicked = time.time()
        await mute.click()
        # the row is redrawn from the live stream with the switch's own state
        await page.locator(f'[data-conference="{ROOM}"] tr[data-call-id="{a_id}"] '
                           'button[data-action=unmute]').wait_for(timeout=10_000)
        muted_seen = time.time()
        async with rest(sw) as http, http.get("/v1/LiveCalls/Conferences") as resp:
            parts = (await resp.json())["conferences"][0]["participants"]
        assert {p["call"]["id"]: p["muted"] for p in parts}[a_id] is True, parts
        await asyncio.sleep(MUTE_SETTLE_S + WINDOW_S + 0.3)
        await hang_up(sw, ids.values())
        for peer in peers.values():
            (await asyncio.wait_for(peer.task, timeout=30)).assert_ok()
        pcap = await cap.stop()
    got = received_by_port(pcap, ports.values())
    b_before = heard(got[ports["b"]].window(before, clicked), "b before the click")
    b_after = heard(got[ports["b"]].window(muted_seen + MUTE_SETTLE_S,
                                           muted_seen + MUTE_SETTLE_S + WINDOW_S),
                    "b after the click")
    a_after = heard(got[ports["a"]].window(muted_seen + MUTE_SETTLE_S,
                                           muted_seen + MUTE_SETTLE_S + WINDOW_S),
                    "a after the click")
    assert b_before == {400}, b_before
    assert b_after == set(), b_after  # a is muted: b hears nobody
    assert a_after == {700}, a_after  # the muted caller still hears the room


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_the_pages_webrtc_phone_is_heard_by_a_sipp_participant_and_hears_it(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    tmp_path: Path, codec: str,
) -> None:
    from tests.support.browser import tone_wav

    callback_app.set_script(conference_flow)
    sw = await switch(default_callback=callback_app.url)
    port = free_rtp_port()
    mic = tone_wav(tmp_path / "mic-1000.wav", 1000)
    async with Capture(tmp_path, "webrtc") as cap, chromium(tmp_path, fake_audio=mic) as browser:
        await cap.start([port], duration=60)
        peer = start_sipp(sipp_runner, sw, tmp_path, "1002", 700, media_port=port)
        await until_count(sw, 1)
        page = await signed_in_page(browser, sw.http_url, sw.api_key)
        await page.click("#tabs button[data-tab=phone]")
        await page.check("input[name=target][value=conference]")
        await page.fill("#phone-conference", ROOM)
        await page.select_option("#phone-codec", codec)
        await page.click("#phone-call")
        await page.wait_for_function(
            "document.querySelector('#phone-state').textContent === 'in call'", timeout=20_000)
        await until_count(sw, 2)
        joined = time.time()
        shown = await page.locator("#phone-call-id").text_content() or ""
        assert codec.lower() in shown.lower(), shown
        # what the page hears: the strongest bin of the far end's audio through WebAudio
        peak = await page.evaluate("""async () => {
            const ctx = new AudioContext();
            await ctx.resume();
            const remote = document.querySelector('#phone-audio').srcObject;
            const src = ctx.createMediaStreamSource(remote);
            const an = ctx.createAnalyser();
            an.fftSize = 8192;
            src.connect(an);
            await new Promise(r => setTimeout(r, 1500));
            const bins = new Float32Array(an.frequencyBinCount);
            an.getFloatFrequencyData(bins);
            let best = 0;
            for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
            return {hz: best * ctx.sampleRate / an.fftSize, db: bins[best]};
        }""")
        assert abs(peak["hz"] - 700) < 15 and peak["db"] > -60, peak
        await asyncio.sleep(WINDOW_S + 0.5)
        shot = tmp_path / "dashboard-phone.png"
        await page.screenshot(path=str(shot))
        if codec == "opus":
            save_screenshot(shot)
        await page.click("#phone-hangup")
        await page.wait_for_function(
            "document.querySelector('#phone-state').textContent === 'idle'")
        await until_count(sw, 1)
        await hang_up(sw, call_ids(callback_app).values())
        (await asyncio.wait_for(peer.task, timeout=30)).assert_ok()
        pcap = await cap.stop()
    got = received_by_port(pcap, [port])[port]
    sipp_heard = heard(got.window(joined + 0.5, joined + 0.5 + WINDOW_S),
                       "the SIPp participant while the page was in the room")
    assert sipp_heard == {1000}, sipp_heard


async def test_print_dashboard_prints_a_signed_in_address_after_the_ready_line(
    switch: SwitchFactory,
) -> None:
    sw = await switch(extra_args=["--print-dashboard"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(sw.process.stdout.lines) < 2:
        assert loop.time() < deadline, sw.process.stdout.lines
        await asyncio.sleep(0.05)
    ready, line = sw.process.stdout.lines[:2]
    assert ready.startswith("voxswitch ready ")
    assert line == f"voxswitch dashboard {sw.http_url}/#key={sw.api_key}", line
    async with rest(sw) as http, http.get("/") as resp:
        assert resp.status == 200 and "voxswitch" in await resp.text()
