"""Every stderr line logged for a call carries its call_id, in both log formats.

A real SIPp call (test_timeline.py's: SAY, COLLECT two RFC 4733 digits, HANGUP). The
lines picked are events known to belong to the call, including the stack's `sip sent`
debug lines for the 180, the INVITE's 200 and the BYE: those are logged by the SIP layer,
which knows nothing of call ids, from the call's own tasks (ring, answer, hang up), so
only the call's bound context can tag them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.integration.test_timeline import pytestmark, tapped_call
from tests.support.callback_app import CallbackApp
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner

__all__ = ["pytestmark"]  # root-only, as the timeline tests: SIPp plays pcaps

PER_CALL = ("call.new", "action.start", "callback.sent", "call.answered", "call.digit",
            "call.ended")
# sent from the call's tasks; the 100 Trying and the BYE's 200 come from the receive path
CALL_TASK_SIP = ("sip sent 180 Ringing", "sip sent 200 OK", "sip sent BYE")
TEXT_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) (DEBUG|INFO|WARNING|ERROR)\s+(\S+)(.*)$")


def window(lines: list[Any], start: int, end: int) -> list[Any]:
    return lines[start:end + 1]


async def test_json_lines_of_a_call_carry_its_call_id(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path,
                             extra_args=["--log-level", "DEBUG"])
    records = []
    for line in call.sw.process.stderr.lines:
        if line.startswith("{"):
            records.append(json.loads(line))
    events = [r["event"] for r in records]
    start = next(i for i, r in enumerate(records)
                 if r["event"] == "call.new" and r.get("call_id") == call.call_id)
    end = next(i for i, r in enumerate(records)
               if r["event"] == "call.ended" and r.get("call_id") == call.call_id)
    between = window(records, start, end)
    picked = [r for r in between if r["event"] in PER_CALL]
    assert {r["event"] for r in picked} == set(PER_CALL), events
    assert all(r.get("call_id") == call.call_id for r in picked), \
        [r for r in picked if r.get("call_id") != call.call_id]
    for first_line in CALL_TASK_SIP:
        sent = next((r for r in between if r["event"].startswith(first_line)), None)
        assert sent is not None, (first_line, [r["event"] for r in between])
        assert sent.get("call_id") == call.call_id, sent


async def test_text_format_is_readable_and_ends_with_the_call_id(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    call = await tapped_call(switch, callback_app, sipp_runner, tmp_path,
                             extra_args=["--log-format", "text"])
    lines = [line for line in call.sw.process.stderr.lines if TEXT_LINE.match(line)]
    assert lines and not any(line.startswith("{") for line in call.sw.process.stderr.lines)
    ours = [line for line in lines if line.endswith(f" call_id={call.call_id}")]
    found = {TEXT_LINE.match(line)[3] for line in ours}  # type: ignore[index]
    assert set(PER_CALL) <= found, sorted(found)
    new = next(line for line in ours if " call.new " in line)
    assert "api_no=1000" in new and "caller_no=sipp" in new, new
    # every line of those events names the call, and only at the end
    for line in lines:
        m = TEXT_LINE.match(line)
        assert m is not None
        if m[3] in PER_CALL:
            assert line.endswith(f" call_id={call.call_id}"), line
            assert line.count(" call_id=") == 1, line
