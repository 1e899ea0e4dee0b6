"""REST against a switch with a live SIPp call: the LiveCalls view, HangUp, End Call, logs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support import audio
from tests.support.callback_app import CallbackApp, Reply
from tests.support.calls import sipp_call_heard
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

LONG_PAUSE = Reply.actions([{"type": "PAUSE", "params": {"seconds": 30}}])
FAREWELL = "Goodbye from the operator."


async def get_json(sw: RunningSwitch, path: str, status: int = 200) -> Any:
    async with rest(sw) as http, http.get(path) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def wait_live(sw: RunningSwitch, count: int = 1, timeout: float = 10) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            body: dict[str, Any] = await get_json(sw, "/v1/LiveCalls")
            if body["total_calls"] >= count and all(
                    c["status"] == "live-in-progress" for c in body["calls"]):
                return body
            await asyncio.sleep(0.1)
    return await asyncio.wait_for(poll(), timeout)


async def test_live_calls_view_then_hangup_with_message(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({"init_call": LONG_PAUSE, "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = asyncio.create_task(sipp_call_heard(
        sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="+17145551212",
        params={"BYE_TIMEOUT_MS": 30000}, timeout=40))

    live = await wait_live(sw)
    assert live["total_calls"] == 1
    (entry,) = live["calls"]
    assert entry["no"] == "sipp" and entry["caller_id_no"] == "+17145551212"
    assert entry["status"] == "live-in-progress"
    assert live["longest_call"]["id"] == live["shortest_call"]["id"] == entry["id"]
    detail = await get_json(sw, f"/v1/LiveCalls/{entry['id']}")
    assert detail["id"] == entry["id"] and detail["status"] == "live-in-progress"
    filtered = await get_json(sw, "/v1/LiveCalls?filter_on_nos=+19995550000")
    assert filtered["total_calls"] == 0 and filtered["calls"] == []

    async with rest(sw) as http:
        async with http.post(f"/v1/LiveCalls/{entry['id']}/Actions/HangUp",
                             json={"message": [FAREWELL]}) as resp:
            assert resp.status == 204, await resp.text()

    heard = await call
    heard.result.assert_ok()
    active = audio.speech_like(heard.pcm)[0]
    want = audio.speech_like(audio.read_wav(
        audio.tts_wav(FAREWELL, tmp_path / "want.wav", voice="en-us+f3"))[0])[0]
    assert abs(active - want) <= 0.25 * want, (active, want)

    end = await callback_app.wait_for(type="end_call")
    assert end.fields["call_id"] == entry["id"] and end.fields["status"] == "completed"
    ended = await get_json(sw, f"/v1/LiveCalls/{entry['id']}")
    assert ended["status"] == "completed"
    assert (await get_json(sw, "/v1/LiveCalls"))["total_calls"] == 0
    logs = await get_json(sw, "/v1/History/Logs/Calls")
    assert [log["call_id"] for log in logs["logs"]] == [entry["id"]]
    assert logs["logs"][0]["hangup_end"] == "api"


async def test_delete_ends_the_call_at_once(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script({"init_call": LONG_PAUSE, "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = asyncio.create_task(sipp_runner.run(
        "uac_wait_bye.xml", sw.sip_udp, service="1000", params={"BYE_TIMEOUT_MS": 30000},
        timeout=40))
    live = await wait_live(sw)
    call_id = live["calls"][0]["id"]
    async with rest(sw) as http, http.delete(f"/v1/LiveCalls/{call_id}") as resp:
        assert resp.status == 204
    result = await call
    result.assert_ok()
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["status"] == "completed"
    assert end.fields["connect_time_sec"] < 20


async def test_unknown_call_is_404404(switch: SwitchFactory) -> None:
    sw = await switch()
    body = await get_json(sw, "/v1/LiveCalls/1@1", status=404)
    assert body["code"] == 404404 and body["status"] == 404
    async with rest(sw) as http, http.post("/v1/LiveCalls/1@1/Actions/HangUp", json={}) as r:
        assert r.status == 404 and (await r.json())["code"] == 404404


async def test_a_number_configuration_wins_over_the_default(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(lambda req: Reply(json={}) if req.type == "end_call"
                            else Reply.actions([{"type": "HANGUP"}]))
    sw = await switch(default_callback=callback_app.url + "default")
    async with rest(sw) as http:
        async with http.put("/v1/CallFlows/Configurations/PhoneNumbers/%2B17145551212",
                            json={"callback": {"url": callback_app.url + "sales"},
                                  "custom_data": {"team": "sales"}}) as resp:
            assert resp.status == 200, await resp.text()
    # the Request-URI user 17145551212 matches the E.164 configuration +17145551212
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="17145551212")).assert_ok()
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="2000")).assert_ok()
    await callback_app.wait_for(type="end_call", count=2)
    inits = callback_app.of_type("init_call")
    assert [r.path for r in inits] == ["/sales", "/default"]
    assert inits[0].fields["custom_data"] == {"team": "sales"}
