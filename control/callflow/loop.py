"""The call flow loop: init_call → actions → live_call → actions … → end_call.

Theory of operation: the switch asks the callback for actions before it answers
(`init_call`), answers unless the first action is REJECT, runs the actions, and asks
again with `live_call` whenever they run out. REDIRECT changes where later callbacks go;
the REST API may replace the running actions (inject, Collect) through `replace()`.
Errors follow the spec's Call Flow Loop table: the caller hears the table's message
(when it has one), the call ends, and the code reaches `end_call` and the call log.
`end_call` is sent by the session once the SIP leg is gone, to the callback target in
force at that time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

from control.callflow.actions import Action, Outcome
from control.callflow.client import CallbackClient
from control.callflow.context import FlowContext
from control.callflow.errors import CallbackEnded, CallFlowError, NoActions, outbound_error
from control.callflow.expressions import ExpressionError
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.payload import callback_fields
from control.callflow.port import CallPort
from control.callflow.template import apply_template, flatten
from control.callflow.variables import FlowVariables
from control.calls import Call, Direction
from control.flowconfig import CallbackTarget, CallFlowConfig

log = logging.getLogger("voxswitch.callflow")

# Pre-connect 204 ends the call before answer; 603 Decline says "not taking this call".
DECLINE = (603, "Decline")
# Pre-connect callback failure (400900 has no phone message): the caller is refused.
CALLBACK_FAILED = (500, "Callback Failed")
RING_PERIOD_S = 6.0  # one North American ring cycle, for answer_on_ring


class Replaced(Exception):
    """The running actions were replaced from outside (REST); run the new ones."""

    def __init__(self, actions: list[Action], once: CallbackTarget | None = None) -> None:
        super().__init__()
        self.actions = actions
        self.once = once


class CallFlowLoop:
    def __init__(self, call: Call, port: CallPort, client: CallbackClient,
                 config: CallFlowConfig) -> None:
        self.call = call
        self.port = port
        self.client = client
        self.config = config
        self.target: CallbackTarget = config.callback
        self.failover: CallbackTarget | None = config.callback_failover
        self.answer_on_ring = config.answer_on_ring
        self.vars = FlowVariables(call)
        self.ctx = FlowContext(port=port, vars=self.vars, host=self)
        self._task: asyncio.Task[Outcome] | None = None
        self._pending: Replaced | None = None
        self._webhooks: set[asyncio.Task[Any]] = set()
        self._queued: list[Action] | None = None
        # REST Collect: the next live_call goes to this target once, then as before
        self._once: CallbackTarget | None = None
        self._init_done = False  # outbound error codes differ on and after init_call

    async def run(self) -> None:
        """Drive the call until its flow ends; never raises for flow errors."""
        try:
            await self._run()
        except CallbackEnded:
            log.info("callflow.ended_by_204", extra={"call_id": self.call.id})
            await self._end(DECLINE)
        except CallFlowError as exc:
            await self._fail(exc)
        except ExpressionError as exc:
            await self._fail(NoActions(f"expression failed: {exc}"))

    async def _run(self) -> None:
        actions = await self._fetch("init_call")
        self._init_done = True
        if actions[0].type == "REJECT":
            await Interpreter(self.ctx).run(actions[:1])
            return
        if self.answer_on_ring > 1 and not self.port.answered:
            await self.port.sleep((self.answer_on_ring - 1) * RING_PERIOD_S)
        if self.port.ended:
            return
        await self.port.answer()
        while not self.port.ended:
            queued, self._queued = self._queued, None
            # actions injected while no response was running go first
            if queued is not None and (await self._run_actions(queued) is Outcome.END
                                       or self.port.ended):
                return
            if await self._run_actions(actions) is Outcome.END or self.port.ended:
                return
            if self._queued is not None:
                actions = []
            elif self._once is not None:
                once, self._once = self._once, None
                actions = await self._fetch("live_call", once)
            else:
                actions = await self._fetch("live_call")

    async def _run_actions(self, actions: list[Action]) -> Outcome:
        """Run a response; when REST replaces it midway, run the replacement instead."""
        while True:
            self._task = asyncio.ensure_future(Interpreter(self.ctx).run(actions))
            try:
                return await self._task
            except asyncio.CancelledError:
                pending, self._pending = self._pending, None
                if pending is None or self.port.ended:
                    raise
                actions, self._once = pending.actions, pending.once
            finally:
                self._task = None

    def replace(self, actions: list[Action], once: CallbackTarget | None = None) -> bool:
        """Stop the running actions and run `actions` instead (REST inject, Collect).

        When they run out, live_call follows as usual (to `once`, a single time, when
        given). Between responses (a callback in flight) they are queued to run first.
        False once the call has ended."""
        if self.port.ended:
            return False
        if self._task is None or self._task.done():
            self._queued = (self._queued or []) + actions
            self._once = once or self._once
            return True
        self._pending = Replaced(actions, once)
        self.ctx.collecting = False
        self._task.cancel()
        return True

    async def _fetch(self, kind: str, once: CallbackTarget | None = None) -> list[Action]:
        body = callback_fields(self.call, kind)
        raw = await self.client.fetch_actions(
            once or self.target, None if once else self.failover, body,
            connected=self.port.answered, call_id=self.call.id,
        )
        if self.config.is_template:
            raw = apply_template(raw, flatten(body))
        return compile_actions(raw)

    # ---- FlowHost --------------------------------------------------------------------

    def redirect(self, url: str, method: str | None, headers: dict[str, str] | None,
                 content_type: str | None) -> None:
        new_url = urljoin(self.target.url, url)
        self.target = replace(
            self.target, url=new_url, method=method or self.target.method,
            headers=dict(headers) if headers is not None else self.target.headers,
            content_type=content_type or self.target.content_type)
        log.info("callflow.redirect", extra={"call_id": self.call.id, "url": new_url,
                                             "method": self.target.method})

    async def webhook(self, params: dict[str, Any], data: Any, blocking: bool
                      ) -> tuple[bool, Any]:
        tgt = replace(
            self.target,
            url=urljoin(self.target.url, params["url"]) if params.get("url") else
            self.target.url,
            method=str(params.get("method") or self.target.method).upper(),
            content_type=params.get("content_type") or self.target.content_type,
            headers=params["headers"] if params.get("headers") is not None else
            self.target.headers,
            timeout=float(params["timeout"]))
        body = callback_fields(self.call, "webhook")
        body.update(is_webhook=True, event_name=params["event_name"], webhook_data=data)
        send = self.client.webhook(tgt, body, self.call.id)
        if blocking:
            return await send
        task = asyncio.ensure_future(send)
        self._webhooks.add(task)
        task.add_done_callback(self._webhooks.discard)
        return True, None

    # ---- ending ----------------------------------------------------------------------

    async def _end(self, pre_connect: tuple[int, str]) -> None:
        if self.port.ended:
            return
        if self.port.answered:
            await self.port.hangup()
        else:
            await self.port.reject(*pre_connect)

    async def _fail(self, exc: CallFlowError) -> None:
        code, spoken = exc.code, exc.spoken()
        if self.call.direction is Direction.OUTBOUND:
            code, spoken = outbound_error(exc, after_init=self._init_done)
        self.call.fail(code, exc.message)
        log.warning("callflow.error", extra={"call_id": self.call.id, "error_code": code,
                                             "error": exc.message})
        if self.port.ended:
            return
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

    async def send_failed_call(self, call: Call) -> None:
        """failed_call for `call` (a call this flow dialled, or this one when it never
        connected), to the callback target in force."""
        await self.client.notify(self.target, callback_fields(call, "failed_call"), call.id)
