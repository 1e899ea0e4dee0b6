"""The call flow loop: init_call → actions → live_call → actions … → end_call.

Theory of operation: the switch asks the callback for actions before it answers
(`init_call`), answers unless the first action is REJECT, runs the actions, and asks
again with `live_call` whenever they run out. Errors follow the spec's Call Flow Loop
table: the caller hears the table's message (when it has one), the call ends, and the
code reaches `end_call` and the call log. `end_call` is sent by the session once the SIP
leg is gone, to the callback target in force at that time.
"""

from __future__ import annotations

import logging
from typing import Any

from control.callflow.client import CallbackClient
from control.callflow.errors import CallbackEnded, CallFlowError
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.payload import callback_fields
from control.callflow.port import CallPort
from control.calls import Call
from control.flowconfig import CallbackTarget, CallFlowConfig

log = logging.getLogger("voxswitch.callflow")

# Pre-connect 204 ends the call before answer; 603 Decline says "not taking this call".
DECLINE = (603, "Decline")
# Pre-connect callback failure (400900 has no phone message): the caller is refused.
CALLBACK_FAILED = (500, "Callback Failed")
RING_PERIOD_S = 6.0  # one North American ring cycle, for answer_on_ring


class CallFlowLoop:
    def __init__(self, call: Call, port: CallPort, client: CallbackClient,
                 config: CallFlowConfig) -> None:
        self.call = call
        self.port = port
        self.client = client
        self.target: CallbackTarget = config.callback
        self.failover: CallbackTarget | None = config.callback_failover
        self.answer_on_ring = config.answer_on_ring

    async def run(self) -> None:
        """Drive the call until its flow ends; never raises for flow errors."""
        try:
            await self._run()
        except CallbackEnded:
            log.info("callflow.ended_by_204", extra={"call_id": self.call.id})
            await self._end(DECLINE)
        except CallFlowError as exc:
            await self._fail(exc)

    async def _run(self) -> None:
        actions = await self._fetch("init_call")
        if actions[0].type == "REJECT":
            await Interpreter(self.port).run(actions[:1])
            return
        if self.answer_on_ring > 1:
            await self.port.sleep((self.answer_on_ring - 1) * RING_PERIOD_S)
        if self.port.ended:
            return
        await self.port.answer()
        while not self.port.ended:
            await Interpreter(self.port).run(actions)
            if self.port.ended:
                return
            actions = await self._fetch("live_call")

    async def _fetch(self, kind: str) -> list[Any]:
        body = callback_fields(self.call, kind)
        raw = await self.client.fetch_actions(
            self.target, self.failover, body, connected=self.port.answered,
            call_id=self.call.id,
        )
        return compile_actions(raw)

    async def _end(self, pre_connect: tuple[int, str]) -> None:
        if self.port.ended:
            return
        if self.port.answered:
            await self.port.hangup()
        else:
            await self.port.reject(*pre_connect)

    async def _fail(self, exc: CallFlowError) -> None:
        self.call.fail(exc.code, exc.message)
        log.warning("callflow.error", extra={"call_id": self.call.id, "error_code": exc.code,
                                             "error": exc.message})
        if self.port.ended:
            return
        spoken = exc.spoken()
        if spoken is None:
            await self._end(CALLBACK_FAILED)
            return
        try:
            await self.port.answer()
            pcm = await self.port.speech(spoken, voice=None, language=None, gender=None)
            await self.port.play(pcm)
        except Exception:
            # The error message is best effort: the call must still end cleanly.
            log.exception("callflow.error_message_failed", extra={"call_id": self.call.id})
        await self._end(CALLBACK_FAILED)

    async def send_end_call(self) -> None:
        await self.client.notify(self.target, callback_fields(self.call, "end_call"),
                                 self.call.id)
