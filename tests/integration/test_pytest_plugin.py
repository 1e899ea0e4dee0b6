"""The pytest plugin shipped with the package (control.testkit.plugin), as a user meets it.

The documented example (docs/examples/test_my_call_flow.py) runs in a pytest of its own,
from a directory outside this repository (no conftest, no pytest configuration of ours:
the plugin arrives through its `pytest11` entry point, as in a user's project), and must
pass; a test that expects a tone the flow never plays must fail with a message that says
what was expected and what was heard. The plugin's fixtures also load in this suite, so
the last tests use them directly: a DIAL to the phone's own URI, the REST client, a
number's own call flow.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from control.testkit.callbacks import CallbackServer
from control.testkit.phone import CallStatus, Phone
from control.testkit.procs import ManagedProcess, run_process
from control.testkit.switchproc import SwitchClient
from media.tones import tone
from tests.support.audio import write_wav

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "test_my_call_flow.py"
RUN_TIMEOUT_S = 240.0

FAILING = '''
import pytest

pytestmark = pytest.mark.asyncio


async def test_menu_plays_a_beep(voxswitch, voxswitch_callbacks, voxswitch_phone):
    voxswitch_callbacks.script([{"type": "SAY", "params": {"text": "Hello there."}}])
    call = await voxswitch_phone.dial("+15551230000")
    await call.hears_tone(1400, min_s=0.3, timeout=8)
'''


async def run_user_pytest(project: Path, *args: str) -> tuple[ManagedProcess, str]:
    """`python -m pytest ARGS` in `project`, as a user would run it there."""
    # The child is a user's pytest, not a worker of ours: none of our pytest settings.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST")}
    proc = await run_process(
        "user-pytest", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--basetemp", str(project / "tmp"), *args],
        project / "logs", RUN_TIMEOUT_S, cwd=project, env=env)
    output = proc.stdout.text + "\n" + proc.stderr.text
    return proc, output


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
async def test_the_documented_example_passes(tmp_path: Path) -> None:
    project = tmp_path / "my-voice-app"
    (project / "tests").mkdir(parents=True)
    shutil.copy(EXAMPLE, project / "tests" / EXAMPLE.name)
    proc, output = await run_user_pytest(project, "tests")
    assert proc.returncode == 0, output
    assert "2 passed" in output, output
    # the phone kept what it heard, for a developer to listen to
    wavs = list((project / "tmp").rglob("voxswitch-phone/call1-heard.wav"))
    assert len(wavs) == 2, wavs


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
async def test_a_tone_never_played_fails_with_what_was_heard(tmp_path: Path) -> None:
    project = tmp_path / "my-voice-app"
    project.mkdir()
    (project / "test_beep.py").write_text(FAILING)
    proc, output = await run_user_pytest(project, "test_beep.py")
    assert proc.returncode == 1, output
    assert "1 failed" in output, output
    assert "expected a 1400 Hz tone (±42 Hz) of at least 0.3 s" in output, output
    assert "not heard before the call ended" in output, output
    lines = [line for line in output.splitlines() if line.startswith("E ")]
    heard = next(line for line in lines if "heard since 0.00 s:" in line)
    assert "speech" in heard and "tone" not in heard, heard
    assert "hung up by the far end" in output, output
    wav = next(line for line in lines if "recording of everything heard:" in line)
    assert Path(wav.split(": ", 1)[1].strip()).is_file(), wav


async def test_a_dial_to_the_phone_reaches_it_and_both_calls_hear_each_other(
        voxswitch: SwitchClient, voxswitch_callbacks: CallbackServer,
        voxswitch_phone: Phone, tmp_path: Path) -> None:
    @voxswitch_callbacks.handler
    def flow(body: dict[str, Any]) -> Any:
        if body["type"] in ("end_call", "failed_call"):
            return None
        room = {"type": "CONFERENCE", "params": {"name": "two-phones"}}
        if body["type"] == "init_call" and body.get("direction") == "inbound":
            # DIAL places the second call and goes on: both calls meet in a conference
            return [{"type": "DIAL", "params": {"no": voxswitch_phone.uri, "timeout": 20}},
                    {**room, "params": {**room["params"], "end_on_exit": True}}]
        if body["type"] == "init_call":
            return [room]  # the dialled call's own flow
        return [{"type": "HANGUP"}]

    caller = await voxswitch_phone.dial("+15551230000")
    callee = await voxswitch_phone.incoming(timeout=15)
    assert callee.direction == "in" and callee.status is CallStatus.ANSWERED
    live = await voxswitch.api("GET", "/v1/LiveCalls")
    assert isinstance(live, dict) and live, live
    wav = write_wav(tmp_path / "tone.wav", tone(700, 1.0, rate=16000), rate=16000)
    await callee.play(wav)  # one way, from a sound file ...
    await caller.hears_tone(700, min_s=0.6)
    await caller.send_tone(1100, 1.0)  # ... and the other
    await callee.hears_tone(1100, min_s=0.6)
    await caller.hangup()
    await callee.wait_hangup(timeout=10)
    assert caller.status is CallStatus.ENDED and callee.status is CallStatus.ENDED


@pytest.mark.voxswitch(default_callback=False, api_key="plugin-key",
                       args=["--log-level", "debug"])
async def test_a_number_routed_to_the_callback_server(
        voxswitch: SwitchClient, voxswitch_callbacks: CallbackServer,
        voxswitch_phone: Phone) -> None:
    voxswitch_callbacks.script([{"type": "PLAY",
                                 "params": {"url": voxswitch_callbacks.tone_url(900, 0.8)}}])
    await voxswitch.route_number("+15557770000", voxswitch_callbacks.url)
    call = await voxswitch_phone.dial("+15557770000")
    await call.hears_tone(900, min_s=0.5)
    await call.wait_hangup()
    init = voxswitch_callbacks.last("init_call")
    assert init["api_no"] == "+15557770000", init
    end = await voxswitch_callbacks.wait_for("end_call")
    assert end["status"] == "completed", end
    # the marker's options reached the switch
    assert voxswitch.api_key == "plugin-key"
    assert voxswitch.running.logged('"level": "debug"'), voxswitch.logs()
    with pytest.raises(AssertionError, match=r"GET /v1/CallFlows/Configurations/PhoneNumbers/"
                                             r"%2B15550000000 answered 404 \(expected 200"):
        await voxswitch.api("GET", "/v1/CallFlows/Configurations/PhoneNumbers/%2B15550000000")


async def test_a_rejected_call_is_failed_with_its_status(
        voxswitch: SwitchClient, voxswitch_callbacks: CallbackServer,
        voxswitch_phone: Phone) -> None:
    voxswitch_callbacks.script([{"type": "REJECT", "params": {"reason": "busy"}}])
    with pytest.raises(AssertionError, match=r"the call was not answered: call call1 \(out\) "
                                             r"failed; final response 486 Busy Here"):
        await voxswitch_phone.dial("+15551230000")
    call = await voxswitch_phone.dial("+15551230000", wait_answer=False)
    await call.wait_hangup()
    assert call.status is CallStatus.FAILED and not call.answered
    assert (call.final_status, call.end_reason) == (486, "failed")
