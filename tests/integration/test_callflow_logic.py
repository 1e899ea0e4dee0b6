"""Call-flow logic end to end: COLLECT menus, REDIRECT, callback request formats, template
mapping, interpolation, WEBHOOK, expression errors and FOREACH / GOTO / LABEL / IF.

Key presses come from SIPp as SIP INFO (application/dtmf-relay), sent at fixed times after
the ACK by tests/data/sipp/uac_info_keys.xml, so they are deterministic.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from control.callflow.errors import SORRY
from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.calls import HeardCall, sipp_call_heard
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner, key_steps
from tests.support.switch import RunningSwitch, rest

RATE = 8000
KATE = "en-us+f3"  # espeak-ng voice of the switch's default (Kate)
PROMPT = "Press 1 for sales. Press 2 for service."
DEPARTMENTS = {"sales": "Sales department.", "service": "Service department.",
               "operator": "Please hold for the operator."}

async def put_default(sw: RunningSwitch, callback: dict[str, Any], **extra: Any) -> None:
    async with rest(sw) as http, http.put("/v1/CallFlows/Configurations/Default",
                                          json={"callback": callback, **extra}) as resp:
        assert resp.status == 200, await resp.text()


def spoken_s(tmp_path: Path, text: str) -> float:
    """Active seconds of `text` spoken by espeak-ng with Kate's voice."""
    wav = audio.tts_wav(text, tmp_path / f"want-{abs(hash(text))}.wav", voice=KATE)
    return audio.speech_like(audio.read_wav(wav)[0])[0]


def speech_bursts(pcm: Any, gap_s: float = 1.5, active_db: float = -45.0) -> list[float]:
    """Active seconds of each stretch of sound separated by at least `gap_s` of quiet."""
    bursts: list[float] = []
    last: float | None = None
    for i, level in enumerate(audio.frame_dbfs(pcm)):
        if level < active_db:
            continue
        t = i * audio.FRAME_S
        if last is None or t - last > gap_s:
            bursts.append(0.0)
        bursts[-1] += audio.FRAME_S
        last = t
    return bursts


def tone_file(tmp_path: Path, seconds: float = 1.0) -> Path:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    return audio.write_wav(media / "tone1k.wav", audio.sine(1000.0, seconds, level=-12.0))


async def keyed_call(sipp: SippRunner, sw: RunningSwitch, presses: Sequence[tuple[int, str]],
                     bye_timeout_ms: int = 20000, **kwargs: Any) -> HeardCall:
    return await sipp_call_heard(
        sipp, sw.sip_udp, "uac_info_keys.xml", service="1000",
        params={"KEY_STEPS": key_steps(presses), "BYE_TIMEOUT_MS": bye_timeout_ms},
        timeout=bye_timeout_ms / 1000 + 20, **kwargs)


# --- the spec's COLLECT "Advanced" menu -----------------------------------------------------

MENU_JSON = [
    {"$nextUrl": "'operator.json'"},
    {"type": "LABEL", "name": "PROMPT_MENU_CHOICE"},
    {"type": "COLLECT", "actions": [{"type": "SAY", "params": {"text": PROMPT}}],
     "params": {"num_digits": 1}},
    {"type": "IF", "condition": "! $keyPresses && $collectAttempt < 3",
     "then": [{"type": "GOTO", "params": {"label": "PROMPT_MENU_CHOICE"}}]},
    {"type": "IF", "condition": "$keyPresses=='1'", "then": [{"$nextUrl": "'sales.json'"}]},
    {"type": "IF", "condition": "$keyPresses=='2'", "then": [{"$nextUrl": "'service.json'"}]},
    {"type": "REDIRECT", "params": {"url": "${nextUrl}"}},
]

MENU_CCML = f"""<?xml version="1.0" encoding="UTF-8"?>
<Response name="MainMenu">
  <Set var="$nextUrl" value="'operator.json'"/>
  <Label>PROMPT_MENU_CHOICE</Label>
  <Collect num_digits="1">
    <Say>{PROMPT}</Say>
  </Collect>
  <If condition="! $keyPresses &amp;&amp; $collectAttempt &lt; 3">
    <Then><Goto>PROMPT_MENU_CHOICE</Goto></Then>
  </If>
  <If condition="$keyPresses=='1'">
    <Then><Set var="$nextUrl" value="'sales.json'"/></Then>
  </If>
  <If condition="$keyPresses=='2'">
    <Then><Set var="$nextUrl" value="'service.json'"/></Then>
  </If>
  <Redirect>${{nextUrl}}</Redirect>
</Response>
"""


def menu_script(menu: Reply) -> Any:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "end_call":
            return Reply(json={})
        if req.path == "/ivr/menu.json":
            return menu
        name = req.path.removeprefix("/ivr/").removesuffix(".json")
        if name in DEPARTMENTS:
            return Reply.actions([{"type": "SAY", "params": {"text": DEPARTMENTS[name]}},
                                  {"type": "HANGUP"}])
        return Reply(status=404)
    return script


@pytest.mark.parametrize("menu", [Reply.actions(MENU_JSON), Reply.ccml(MENU_CCML)],
                         ids=["json", "ccml"])
async def test_menu_key_2_during_the_prompt_redirects_to_service(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
    menu: Reply,
) -> None:
    callback_app.set_script(menu_script(menu))
    sw = await switch(default_callback=callback_app.url + "ivr/menu.json")
    heard = await keyed_call(sipp_runner, sw, [(1000, "2")])
    heard.result.assert_ok()
    assert heard.problems == []
    end = await callback_app.wait_for(type="end_call", timeout=20)
    assert [(r.path, r.type) for r in callback_app.requests] == [
        ("/ivr/menu.json", "init_call"), ("/ivr/service.json", "live_call"),
        ("/ivr/service.json", "end_call")]
    live = callback_app.requests[1].fields
    assert [k["digits"] for k in live["key_presses"]] == ["2"]
    assert live["key_presses"][0]["history"] == ["2"]
    assert end.fields["error_code"] is None
    # the prompt was cut short by the key: far less than prompt + service was heard
    prompt_s, service_s = spoken_s(tmp_path, PROMPT), spoken_s(tmp_path, DEPARTMENTS["service"])
    active = audio.speech_like(heard.pcm)[0]
    assert 0.8 * service_s <= active <= prompt_s + service_s - 0.8, (active, prompt_s, service_s)


async def test_menu_without_a_key_prompts_three_times_then_goes_to_the_operator(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script(menu_script(Reply.actions(MENU_JSON)))
    sw = await switch(default_callback=callback_app.url + "ivr/menu.json")
    heard = await keyed_call(sipp_runner, sw, [], bye_timeout_ms=45000)
    heard.result.assert_ok()
    await callback_app.wait_for(type="end_call", timeout=20)
    assert [(r.path, r.type) for r in callback_app.requests] == [
        ("/ivr/menu.json", "init_call"), ("/ivr/operator.json", "live_call"),
        ("/ivr/operator.json", "end_call")]
    live = callback_app.requests[1].fields
    assert [(k["digits"], k["history"]) for k in live["key_presses"]] == [("", [])]
    # three prompts, 5 s (COLLECT's default timeout) apart, then the operator message
    bursts = speech_bursts(heard.pcm, gap_s=2.0)
    prompt_s = spoken_s(tmp_path, PROMPT)
    operator_s = spoken_s(tmp_path, DEPARTMENTS["operator"])
    assert len(bursts) == 4, bursts
    for got in bursts[:3]:
        assert abs(got - prompt_s) <= 0.2 * prompt_s, (bursts, prompt_s)
    assert abs(bursts[3] - operator_s) <= 0.25 * operator_s, (bursts, operator_s)


# --- callback request formats ---------------------------------------------------------------

COLLECT_MENU = Reply.actions([{"name": "menu", "type": "COLLECT",
                               "params": {"num_digits": 2, "timeout": 8000},
                               "actions": [{"type": "SAY",
                                            "params": {"text": "Enter two digits."}}]}])


@pytest.mark.parametrize("callback", [
    {"content_type": "application/json"},
    {"content_type": "application/x-www-form-urlencoded"},
    {"content_type": "application/xml"},
    {"method": "GET"},
], ids=["json", "form", "xml", "get"])
async def test_live_call_after_collect_arrives_in_the_configured_format(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    callback: dict[str, str],
) -> None:
    callback_app.set_script({"init_call": COLLECT_MENU,
                             "live_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    sw = await switch()
    await put_default(sw, {"url": callback_app.url + "voice", **callback},
                      custom_data={"team": "blue"})
    result = (await keyed_call(sipp_runner, sw, [(800, "1"), (300, "2")])).result
    result.assert_ok()
    await callback_app.wait_for(type="end_call", timeout=20)
    assert [r.type for r in callback_app.requests] == ["init_call", "live_call", "end_call"]
    live = callback_app.requests[1]
    fields = live.fields
    assert fields["call_id"] == callback_app.requests[0].fields["call_id"]
    ctype = callback.get("content_type")
    if ctype == "application/json":
        assert live.content_type.startswith("application/json")
        assert fields["key_presses"] == [{"name": "menu", "digits": "12", "history": ["12"]}]
        assert fields["is_webhook"] is False
        assert fields["custom_data"] == {"team": "blue"}
    elif ctype == "application/xml":
        assert live.content_type.startswith("application/xml")
        assert ET.fromstring(live.raw).tag == "Request"
        assert fields["key_presses"] == {"item": {"name": "menu", "digits": "12",
                                                  "history": {"item": "12"}}}
        assert fields["is_webhook"] == "false"
        assert fields["custom_data"] == {"team": "blue"}
    else:
        if ctype is None:
            assert live.method == "GET" and live.raw == b""
            assert fields == live.query
        else:
            assert live.method == "POST"
            assert live.content_type.startswith("application/x-www-form-urlencoded")
        assert fields["key_presses.menu"] == "12"
        assert not [k for k in fields if "history" in k or k == "key_presses"]
        assert fields["is_webhook"] == "false"
        assert fields["custom_data"] == '{"team":"blue"}'
        assert fields["type"] == "live_call"


# --- template mapping -----------------------------------------------------------------------

TEMPLATED = {"name": "{{session_data.firstName|guest}}",
             "nobody": "{{session_data.lastName|guest}}",
             "team": "{{custom_data.team}}", "duration": "{{duration}}"}


@pytest.mark.parametrize("is_template", [True, False], ids=["template", "plain"])
async def test_template_mapping_fills_in_callback_data_only_when_is_template(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    is_template: bool,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "SESSIONDATA", "session_data": {"firstName": "Ann"}},
                                    {"type": "PAUSE", "params": {"seconds": 0.3}}]),
        "live_call": Reply.actions([
            {"type": "WEBHOOK", "params": {"event_name": "tmpl", "webhook_data": TEMPLATED,
                                           "url": "hooks", "await_response": True}},
            {"type": "REDIRECT", "params": {"url": "next?d={{duration}}"}},
            {"type": "HANGUP"}]),
        "end_call": Reply(json={})})
    sw = await switch()
    await put_default(sw, {"url": callback_app.url + "voice"}, custom_data={"team": "blue"},
                      is_template=is_template)
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    end = await callback_app.wait_for(type="end_call", timeout=20)
    live = callback_app.of_type("live_call")[0]
    hook = next(r for r in callback_app.requests if r.path == "/hooks")
    data = hook.fields["webhook_data"]
    if is_template:
        assert data == {"name": "Ann", "nobody": "guest", "team": "blue",
                        "duration": str(live.fields["duration"])}
        assert end.path == "/next" and end.query == {"d": str(live.fields["duration"])}
    else:
        assert data == TEMPLATED
        assert end.path == "/next" and end.query == {"d": "{{duration}}"}


# --- interpolation --------------------------------------------------------------------------

async def test_interpolation_into_say_text_and_play_url(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    wav = tone_file(tmp_path, 1.0)
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "SESSIONDATA", "session_data": {"firstName": "Ann", "file": wav.as_uri()}},
        {"type": "SAY", "params": {"text": "Hello, ${sessionData.firstName}."}},
        {"type": "PLAY", "params": {"url": "${sessionData.file}"}},
        {"type": "HANGUP"}]), "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url,
                      extra_args=["--media-dir", str(wav.parent)])
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    assert (await callback_app.wait_for(type="end_call")).fields["error_code"] is None
    tones = audio.tone_segments(heard.pcm, 1000.0, min_db=-30.0, min_duration=0.5)
    assert len(tones) == 1 and 0.9 <= tones[0][1] - tones[0][0] <= 1.1, tones
    active = audio.speech_like(heard.pcm[: int(tones[0][0] * RATE)])[0]
    want = spoken_s(tmp_path, "Hello, Ann.")
    assert abs(active - want) <= 0.25 * want, (active, want)


# --- WEBHOOK --------------------------------------------------------------------------------

async def test_fire_and_forget_webhook_does_not_hold_up_the_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    ended = asyncio.Event()
    held: list[bool] = []

    async def script(req: CallbackRequest) -> Reply:
        if req.path == "/hooks/slow":
            # answer only once the call has ended: a flow waiting for us would never end
            try:
                await asyncio.wait_for(ended.wait(), 15)
                held.append(False)
            except TimeoutError:
                held.append(True)
            return Reply(json={"ignored": True})
        if req.type == "end_call":
            ended.set()
            return Reply(json={})
        return Reply.actions([
            {"type": "WEBHOOK", "params": {"event_name": "onStart", "url": "hooks/slow",
                                           "webhook_data": {"conferenceName": "my-conf"}}},
            {"type": "PAUSE", "params": {"seconds": 0.5}}, {"type": "HANGUP"}])

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url + "voice")
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    await callback_app.wait_for(type="end_call", timeout=20)
    hook = await callback_app.wait_for(predicate=lambda r: r.path == "/hooks/slow")
    assert hook.method == "POST"
    assert hook.fields["is_webhook"] is True
    assert hook.fields["event_name"] == "onStart"
    assert hook.fields["webhook_data"] == {"conferenceName": "my-conf"}
    assert hook.fields["call_id"] == callback_app.requests[0].fields["call_id"]
    for _ in range(50):
        if held:
            break
        await asyncio.sleep(0.1)
    assert held == [False]


async def test_awaited_webhook_json_reply_is_webhook_data_for_the_next_action(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.path == "/flow/hooks/lookup":
            return Reply(json={"next": "routes/vip.json"})
        if req.type == "end_call":
            return Reply(json={})
        if req.type == "init_call":
            return Reply.actions([
                {"type": "WEBHOOK", "params": {"event_name": "lookup", "url": "hooks/lookup",
                                               "await_response": True}},
                {"type": "REDIRECT", "params": {"url": "${webhookData.next}"}}])
        return Reply.actions([{"type": "HANGUP"}])

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url + "flow/start.json")
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    await callback_app.wait_for(type="end_call", timeout=20)
    assert [(r.path, r.type, r.fields.get("is_webhook")) for r in callback_app.requests] == [
        ("/flow/start.json", "init_call", False),
        ("/flow/hooks/lookup", callback_app.requests[1].type, True),
        ("/flow/routes/vip.json", "live_call", False),
        ("/flow/routes/vip.json", "end_call", False)]
    assert callback_app.requests[1].fields["event_name"] == "lookup"


async def test_webhook_error_runs_on_error(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.path == "/hooks/fail":
            return Reply(status=500, body="boom")
        if req.path == "/hooks/report" or req.type == "end_call":
            return Reply(json={})
        return Reply.actions([
            {"type": "WEBHOOK", "params": {"event_name": "onEnterConference",
                                           "webhook_data": {"conferenceName": "my-conf"},
                                           "url": "hooks/fail", "method": "POST",
                                           "content_type": "application/json"},
             "events": {"on_error": [
                 {"type": "SAY", "params": {"text": "A webhook error occurred."}},
                 {"$webhookData": "{ foo: 'I got no foo' }"}]}},
            {"type": "WEBHOOK", "params": {"event_name": "report", "url": "hooks/report",
                                           "webhook_data": "$webhookData.foo",
                                           "await_response": True}},
            {"type": "HANGUP"}])

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url + "voice")
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    end = await callback_app.wait_for(type="end_call", timeout=20)
    assert [r.path for r in callback_app.requests] == [
        "/voice", "/hooks/fail", "/hooks/report", "/voice"]
    report = callback_app.requests[2].fields
    assert report["event_name"] == "report" and report["webhook_data"] == "I got no foo"
    assert end.fields["error_code"] is None


# --- expression errors ----------------------------------------------------------------------

@pytest.mark.parametrize("expr", ["(function(){while(true){}})()", "1 +* 2"],
                         ids=["runaway", "syntax-error"])
async def test_bad_expression_ends_the_flow_with_400902_and_the_switch_stays_healthy(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
    expr: str,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "end_call":
            return Reply(json={})
        if len(callback_app.of_type("init_call")) == 1:
            return Reply.actions([{"$x": expr}, {"type": "SAY", "params": {"text": "never"}}])
        return Reply.actions([{"type": "PAUSE", "params": {"seconds": 0.3}}, {"type": "HANGUP"}])

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    active = audio.speech_like(heard.pcm)[0]
    want = spoken_s(tmp_path, SORRY.format(code=400902))
    assert abs(active - want) <= 0.2 * want, (active, want)
    fields = (await callback_app.wait_for(type="end_call", timeout=20)).fields
    assert fields["error_code"] == 400902
    assert expr in fields["error"]
    # a second call runs normally
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    second = (await callback_app.wait_for(type="end_call", count=2, timeout=20)).fields
    assert second["error_code"] is None and second["status"] == "completed"
    assert "Traceback" not in sw.logs()


# --- FOREACH, GOTO / LABEL, IF --------------------------------------------------------------

async def run_hook_flow(switch: SwitchFactory, app: CallbackApp, sipp: SippRunner,
                        actions: list[dict[str, Any]]) -> list[CallbackRequest]:
    """Run `actions` (then HANGUP) on one call; the WEBHOOK requests the flow made."""
    def script(req: CallbackRequest) -> Reply:
        if req.path == "/voice" and req.type == "init_call":
            return Reply.actions([*actions, {"type": "HANGUP"}])
        return Reply(json={})

    app.set_script(script)
    sw = await switch(default_callback=app.url + "voice")
    (await sipp.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    end = await app.wait_for(type="end_call", timeout=20)
    assert end.fields["error_code"] is None, end.fields["error"]
    return [r for r in app.requests if r.path == "/hooks"]


def hook(event: str, data: Any) -> dict[str, Any]:
    return {"type": "WEBHOOK", "params": {"event_name": event, "webhook_data": data,
                                          "url": "hooks", "await_response": True}}


async def test_foreach_fires_a_webhook_per_element_in_order(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    hooks = await run_hook_flow(switch, callback_app, sipp_runner, [
        {"$letters": "['a', 'b', 'c']"},
        {"type": "FOREACH", "params": {"iterator": "$letters"},
         "then": [hook("item-${index}", "${val}")]},
        {"$pets": "{cat: 'Whiskers', dog: 'Spot'}"},
        {"type": "FOREACH", "params": {"iterator": "$pets", "valueVar": "$v", "keyVar": "$k"},
         "then": [hook("pet", "The key ${k} has a value of ${v}.")]},
    ])
    assert [(h.fields["event_name"], h.fields["webhook_data"]) for h in hooks] == [
        ("item-0", "a"), ("item-1", "b"), ("item-2", "c"),
        ("pet", "The key cat has a value of Whiskers."),
        ("pet", "The key dog has a value of Spot.")]
    assert all(h.fields["is_webhook"] is True for h in hooks)


async def test_goto_label_loop_with_if_or_else(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    hooks = await run_hook_flow(switch, callback_app, sipp_runner, [
        {"$counter": "0"},
        {"type": "LABEL", "name": "goto_here"},
        {"$counter": "$counter + 1"},
        hook("tick", "${counter}"),
        {"type": "IF", "condition": "$counter < 3",
         "then": [{"type": "GOTO", "params": {"label": "goto_here"}}],
         "orElse": [hook("done", "${counter}")]},
        {"type": "IF", "condition": "$keyPresses == '1' || $counter > 21",
         "then": [hook("then", {"branch": "then"})],
         "orElse": [hook("else", {"branch": "orElse"})]},
    ])
    assert [(h.fields["event_name"], h.fields["webhook_data"]) for h in hooks] == [
        ("tick", "1"), ("tick", "2"), ("tick", "3"), ("done", "3"),
        ("else", {"branch": "orElse"})]
