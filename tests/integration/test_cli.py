"""The client commands against a real switch: `voxswitch calls` shows a live SIPp call,
`voxswitch hangup` ends it, an unknown id is the 404404 line and exit 1."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, voxswitch_argv

LONG_PAUSE = Reply.actions([{"type": "PAUSE", "params": {"seconds": 30}}])


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def voxswitch(*argv: str, env: dict[str, str] | None = None,
                    cwd: Path | None = None) -> Ran:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOXSWITCH_")}
    proc = await asyncio.create_subprocess_exec(
        *voxswitch_argv(), *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**base, **(env or {})}, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


def at(sw: RunningSwitch) -> list[str]:
    return ["--url", sw.http_url, "--api-key", sw.api_key]


async def wait_in_table(sw: RunningSwitch, timeout: float = 10) -> list[str]:
    """The `voxswitch calls` row of the one call, once it is in progress."""
    async def poll() -> list[str]:
        while True:
            ran = await voxswitch("calls", *at(sw))
            assert ran.code == 0, ran.err
            rows = [line.split() for line in ran.out.splitlines()[1:]]
            if rows and rows[0][4:5] == ["live-in-progress"]:
                return rows[0]
            await asyncio.sleep(0.2)
    return await asyncio.wait_for(poll(), timeout)


async def test_calls_then_hangup(switch: SwitchFactory, callback_app: CallbackApp,
                                 sipp_runner: SippRunner) -> None:
    callback_app.set_script({"init_call": LONG_PAUSE, "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    call = asyncio.create_task(sipp_runner.run(
        "uac_wait_bye.xml", sw.sip_udp, service="+17145551212",
        params={"BYE_TIMEOUT_MS": 30000}, timeout=40))

    row = await wait_in_table(sw)
    call_id = row[0]
    assert row[1:5] == ["inbound", "sipp", "+17145551212", "live-in-progress"]
    raw = await voxswitch("calls", "--json", *at(sw))
    assert raw.code == 0 and [c["id"] for c in json.loads(raw.out)["calls"]] == [call_id]

    ran = await voxswitch("hangup", call_id, *at(sw))
    assert (ran.code, ran.out) == (0, f"hung up {call_id}\n"), ran.err
    (await call).assert_ok()
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["call_id"] == call_id and end.fields["status"] == "completed"
    ran = await voxswitch("calls", *at(sw))
    assert (ran.code, ran.out) == (0, "no live calls\n")


async def test_dial_rings_a_sip_uas_with_session_data(
        switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner) -> None:
    callback_app.set_script({"init_call": Reply.actions([
        {"type": "PAUSE", "params": {"seconds": 0.5}}, {"type": "HANGUP"}]),
        "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url)
    async with sipp_runner.uas("uas_answer.xml", rtp_echo=False, calls=1) as uas:
        ran = await voxswitch("dial", uas.uri("bob"), "--from", "+17145550100",
                              "--session-data", '{"name": "Bob"}', *at(sw))
        assert ran.code == 0, ran.err
        head, _, call_id = ran.out.strip().rpartition(": call ")
        assert head == f"dialling {uas.uri('bob')} from +17145550100" and call_id
        init = await callback_app.wait_for(type="init_call", timeout=15)
        (await uas.finish()).assert_ok()
    assert (init.fields["call_id"], init.fields["session_data"]) == (call_id, {"name": "Bob"})
    ran = await voxswitch("dial", "", "--from", "+17145550100", *at(sw))
    assert ran.code == 1 and ran.err.startswith("voxswitch: 400001 Validation Error: call.no")


async def test_conf_list_show_mute_kick(switch: SwitchFactory, callback_app: CallbackApp,
                                        sipp_runner: SippRunner) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions([{"type": "CONFERENCE", "params": {"name": "lab-room"}}])
        if req.type == "live_call":  # after the kick the flow goes on
            return Reply.actions([{"type": "HANGUP"}])
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    call = asyncio.create_task(sipp_runner.run(
        "uac_wait_bye.xml", sw.sip_udp, service="1000", params={"BYE_TIMEOUT_MS": 30000},
        timeout=40))

    async def listed() -> list[str]:
        while True:
            ran = await voxswitch("conf", "list", *at(sw))
            assert ran.code == 0, ran.err
            rows = [line.split() for line in ran.out.splitlines()[1:]]
            if rows and rows[0][-1] == "1":
                return rows[0]
            await asyncio.sleep(0.2)
    row = await asyncio.wait_for(listed(), 15)
    assert row[0] == "lab-room" and row[2] == "in-progress"
    shown = await voxswitch("conf", "show", "lab-room", *at(sw))
    assert shown.code == 0, shown.err
    part_id, call_id = shown.out.splitlines()[2].split()[:2]

    ran = await voxswitch("conf", "mute", "lab-room", part_id, *at(sw))
    assert (ran.code, ran.out) == (0, f"Mute: call {call_id} in lab-room\n"), ran.err
    raw = json.loads((await voxswitch("conf", "show", "lab-room", "--json", *at(sw))).out)
    assert raw["participants"][0]["muted"] is True
    ran = await voxswitch("conf", "kick", "lab-room", call_id, *at(sw))
    assert (ran.code, ran.out) == (0, f"Leave: call {call_id} in lab-room\n"), ran.err
    (await call).assert_ok()
    await callback_app.wait_for(type="live_call", timeout=15)
    ran = await voxswitch("conf", "show", "lab-room", *at(sw))
    assert ran.code == 1 and ran.err.startswith("voxswitch: 404701 Not Found")


async def test_unknown_call_is_the_404404_line(switch: SwitchFactory) -> None:
    sw = await switch()
    ran = await voxswitch("hangup", "1@1", *at(sw))
    assert ran.code == 1 and ran.out == ""
    assert ran.err.startswith("voxswitch: 404404 Not Found: ") and ran.err.count("\n") == 1


async def test_key_from_the_data_dir_and_url_from_the_environment(
        switch: SwitchFactory, tmp_path: Path) -> None:
    sw = await switch(api_key=None)  # serve makes a key and keeps it in its data dir
    ran = await voxswitch("calls", "--data-dir", str(sw.data_dir),
                          env={"VOXSWITCH_URL": sw.http_url})
    assert (ran.code, ran.out) == (0, "no live calls\n"), ran.err
    ran = await voxswitch("calls", "--url", sw.http_url, "--api-key", "wrong")
    assert ran.code == 1 and ran.err.startswith("voxswitch: 401001 Failed Authentication")


async def test_no_switch_says_where_it_tried(tmp_path: Path) -> None:
    ran = await voxswitch("calls", "--url", "http://127.0.0.1:9", "--api-key", "k")
    assert ran.code == 1
    assert "http://127.0.0.1:9" in ran.err and "voxswitch serve" in ran.err
