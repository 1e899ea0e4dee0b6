"""Callback responses that arrive in pieces, end to end: a SIPp caller, the real switch,
and a callback app that streams its body in small chunked writes with pauses (as any
streaming framework or slow link does). What the flow runs, what the caller hears and
what `end_call` reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from control.callflow.client import HARD_LIMIT, SOFT_LIMIT, minimised_size
from control.callflow.errors import SORRY
from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.calls import sipp_call_heard
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner

HANGUP = {"type": "HANGUP"}
STREAMED = {"chunk": 4096, "chunk_delay": 0.01}


def counting_actions(count: int) -> list[dict[str, Any]]:
    """`count` assignments that each add one to $n, padded to ~140 bytes apiece, then a
    WEBHOOK reporting $n: the hook says how many of them ran."""
    pad = "/*" + "p" * 115 + "*/"
    return [{"$n": "0"},
            *({"$n": f"$n + 1 {pad} /* {i} */"} for i in range(count)),
            {"type": "WEBHOOK", "params": {"event_name": "count", "webhook_data": "${n}",
                                           "url": "hooks", "await_response": True}}]


def size_of(actions: list[dict[str, Any]]) -> int:
    return minimised_size(json.dumps({"actions": actions}).encode())


async def end_call_of(app: CallbackApp) -> dict[str, Any]:
    return (await app.wait_for(type="end_call", timeout=30)).fields


def heard_seconds(tmp_path: Path, text: str) -> float:
    wav = audio.tts_wav(text, tmp_path / "expected.wav", voice="en-us+f3")
    return audio.speech_like(audio.read_wav(wav)[0])[0]


async def test_a_streamed_70kb_response_runs_every_action(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    actions = counting_actions(500)
    assert SOFT_LIMIT < size_of(actions) < HARD_LIMIT
    assert size_of(actions) > 65 * 1024

    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions([*actions, HANGUP], **STREAMED)
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url + "voice")
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    fields = await end_call_of(callback_app)
    assert fields["error_code"] is None, fields["error"]
    hooks = [r.fields["webhook_data"] for r in callback_app.requests if r.path == "/hooks"]
    assert hooks == ["500"]
    assert sw.logged("callback.soft_limit"), sw.logs()


async def test_a_streamed_30kb_response_warns_and_runs(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    actions = counting_actions(240)
    assert SOFT_LIMIT < size_of(actions) < 1.2 * SOFT_LIMIT
    callback_app.set_script({"init_call": Reply.actions([*actions, HANGUP], **STREAMED),
                             "end_call": Reply(json={})}, default=Reply(json={}))
    sw = await switch(default_callback=callback_app.url + "voice")
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    fields = await end_call_of(callback_app)
    assert fields["error_code"] is None and fields["status"] == "completed"
    assert [r.fields["webhook_data"] for r in callback_app.requests
            if r.path == "/hooks"] == ["240"]
    assert sw.logged("callback.soft_limit"), sw.logs()


async def test_a_streamed_90kb_response_is_413900_and_the_caller_hears_it(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    actions = counting_actions(650)
    assert size_of(actions) > HARD_LIMIT
    callback_app.set_script({"init_call": Reply.actions(actions, **STREAMED),
                             "end_call": Reply(json={})}, default=Reply(json={}))
    sw = await switch(default_callback=callback_app.url + "voice")
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    want = heard_seconds(tmp_path, SORRY.format(code=413900))
    active = audio.speech_like(heard.pcm)[0]
    assert abs(active - want) <= 0.2 * want, (active, want)
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 413900
    assert not [r for r in callback_app.requests if r.path == "/hooks"]


async def test_a_gzip_streamed_response_runs(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    actions = counting_actions(300)
    callback_app.set_script({"init_call": Reply.actions([*actions, HANGUP], gzip=True,
                                                        chunk=512, chunk_delay=0.005),
                             "end_call": Reply(json={})}, default=Reply(json={}))
    sw = await switch(default_callback=callback_app.url + "voice")
    (await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")).assert_ok()
    fields = await end_call_of(callback_app)
    assert fields["error_code"] is None, fields["error"]
    assert [r.fields["webhook_data"] for r in callback_app.requests
            if r.path == "/hooks"] == ["300"]


async def test_a_live_call_response_dropped_mid_body_is_400901(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    actions = counting_actions(300)
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"seconds": 0.2}}]),
        "live_call": Reply.actions(actions, **STREAMED, drop_after=size_of(actions) // 3),
        "end_call": Reply(json={})}, default=Reply(json={}))
    sw = await switch(default_callback=callback_app.url + "voice")
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_wait_bye.xml", service="1000")
    heard.result.assert_ok()
    want = heard_seconds(tmp_path, SORRY.format(code=400901))
    assert abs(audio.speech_like(heard.pcm)[0] - want) <= 0.2 * want
    fields = await end_call_of(callback_app)
    assert fields["error_code"] == 400901
    assert "body cut short" in fields["error"]
    assert not [r for r in callback_app.requests if r.path == "/hooks"]
    assert not sw.logged("Traceback"), sw.logs()
