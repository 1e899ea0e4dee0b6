"""The SMS action against a stand-in messenger: defaults from the call, interpolation,
a refusal that does not end the flow, a switch without messaging."""

from __future__ import annotations

from typing import Any

import pytest

from control.callflow.actions import Outcome
from control.callflow.errors import NoActions
from control.calls import Call
from tests.control.test_interpreter import RecordingPort, context, run


class Messenger:
    def __init__(self, refuse: bool = False) -> None:
        self.sent: list[tuple[str | None, str | None, str]] = []
        self.refuse = refuse

    async def sms(self, call: Call, no: str | None, caller_id_no: str | None,
                  text: str) -> dict[str, Any]:
        if self.refuse:
            raise ValueError("caller_no: not a destination")
        self.sent.append((no, caller_id_no, text))
        return {"message_id": "SMO:1", "status": "accepted"}


async def test_sms_defaults_to_the_caller_and_goes_on() -> None:
    port = RecordingPort()
    ctx = context(port)
    ctx.messaging = messenger = Messenger()
    outcome = await run([
        {"type": "SMS", "params": {"message": "Hi ${callerNo}"}},
        {"type": "SMS", "params": {"message": "x", "no": "alice", "caller_id_no": "+1555"}},
        {"type": "HANGUP"}], port, ctx)
    assert outcome is Outcome.END and ("hangup",) in port.log
    assert messenger.sent == [(None, None, "Hi +17145551212"), ("alice", "+1555", "x")]


async def test_a_refused_message_does_not_end_the_flow() -> None:
    port = RecordingPort()
    ctx = context(port)
    ctx.messaging = Messenger(refuse=True)
    assert await run([{"type": "SMS", "params": {"message": "x"}},
                      {"type": "HANGUP"}], port, ctx) is Outcome.END
    assert ("hangup",) in port.log


async def test_sms_needs_a_message_and_a_messenger() -> None:
    port = RecordingPort()
    with pytest.raises(NoActions, match="message"):
        await run([{"type": "SMS", "params": {"no": "+1"}}], port)
    with pytest.raises(NoActions, match="sends no messages"):
        await run([{"type": "SMS", "params": {"message": "x"}}], port)
