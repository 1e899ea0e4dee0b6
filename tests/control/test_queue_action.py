"""The QUEUE action on stand-in calls (real engine channels, no ticks): offer (blocking and
async), poll, poll_connect and remove, their events, what each flow does next, the
variables and callback fields a poll_connect sets, and the params it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from control.callflow.actions import Outcome
from control.callflow.context import FlowContext
from control.callflow.errors import NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.payload import callback_fields
from control.callflow.variables import FlowVariables
from control.calls import Call, CallStatus, Direction, HangupEnd
from control.queues import LeaveReason, QueuedCall, QueueService
from media.channel import Channel
from media.engine import MediaEngine
from tests.support.udp import until

SCOPE = ("app", 0)
ASYNC: dict[str, Any] = {"async": True}  # a Python keyword, so passed as **ASYNC


class Host:
    def redirect(self, url: str, method: str | None, headers: dict[str, str] | None,
                 content_type: str | None) -> None:
        pass

    async def webhook(self, params: dict[str, Any], data: Any, blocking: bool
                      ) -> tuple[bool, Any]:
        return True, None


class QueuePort:
    """A stand-in call: CallPort and QueueMember over a real engine channel."""

    def __init__(self, call_id: str, channel: Channel | None, no: str) -> None:
        self.call = Call(id=call_id, direction=Direction.INBOUND, caller_no=no,
                         api_no="+19495551212", app_id="app")
        self.channel = channel
        self.answered = True
        self.said: list[str] = []

    @property
    def ended(self) -> bool:
        return not self.call.is_live

    def hang_up(self) -> None:
        """The far end hangs up (as the session marks its call ended)."""
        self.call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)

    def media_channel(self) -> Channel | None:
        return self.channel

    async def audio(self, url: str) -> np.ndarray:
        return np.full(800, 5, dtype=np.int16)

    async def answer(self) -> None:
        pass

    async def reject(self, status: int, reason: str) -> None:
        self.call.mark_ended(CallStatus.FAILED, HangupEnd.API)

    async def hangup(self) -> None:
        self.call.mark_ended(CallStatus.COMPLETED, HangupEnd.API)

    async def speech(self, text: str, *, voice: str | None, language: str | None,
                     gender: str | None) -> np.ndarray:
        self.said.append(text)
        return np.ones(8, dtype=np.int16)

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        return True

    async def send_dtmf(self, digits: str, *, delay_ms: float, dash_ms: float) -> bool:
        return True

    async def sleep(self, seconds: float, *, stop_on_key: bool = False) -> None:
        await asyncio.sleep(seconds)

    def stop_audio(self) -> None:
        pass

    def pending_digit(self) -> bool:
        return False

    async def next_digit(self, timeout: float) -> str | None:
        return None

    def clear_digits(self) -> None:
        pass


class Flow:
    """One call running a list of actions in the background."""

    def __init__(self, port: QueuePort, service: QueueService | None,
                 actions: list[dict[str, Any]]) -> None:
        self.port = port
        self.ctx = FlowContext(port=port, vars=FlowVariables(port.call), host=Host(),
                               queues=service)
        self.task = asyncio.ensure_future(Interpreter(self.ctx).run(compile_actions(actions)))

    def var(self, name: str = "$lastQueuePollConnectCall") -> Any:
        return self.ctx.vars.get(name)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
def service(engine: MediaEngine) -> QueueService:
    return QueueService(engine)


@pytest.fixture
def port(engine: MediaEngine) -> Callable[[], Any]:
    count = iter(range(100, 1000))

    async def make() -> QueuePort:
        n = next(count)
        return QueuePort(f"{n}@1", await engine.open_channel(), f"+1714555{n:04d}")

    return make


def say(text: str) -> dict[str, Any]:
    return {"type": "SAY", "params": {"text": text}}


def queue(name: str = "sales", events: dict[str, Any] | None = None,
          **params: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "QUEUE", "params": {"name": name, **params}}
    if events:
        action["events"] = events
    return action


ALL_EVENTS = {e: [say(e)] for e in ("on_enter", "on_enter_error_max_calls",
                                    "on_enter_error")}


async def queued(service: QueueService, flow: Flow) -> QueuedCall:
    await until(lambda: service.queued(flow.port.call.id) is not None)
    entry = service.queued(flow.port.call.id)
    assert entry is not None
    return entry


def queued_ids(service: QueueService, name: str = "sales") -> list[str]:
    return [e.call.id for e in service.get(SCOPE, name).entries]


# ---- offer --------------------------------------------------------------------------------


async def test_offer_waits_with_hold_music_until_polled(service: QueueService,
                                                        port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue(events=ALL_EVENTS), say("after")])
    entry = await queued(service, flow)
    assert caller.said == ["on_enter"]
    await until(lambda: caller.channel.is_playing)  # the hold music
    assert not flow.task.done()
    service.poll(SCOPE, "sales")
    assert await flow.task is Outcome.NEXT
    assert caller.said == ["on_enter", "after"] and entry.reason is LeaveReason.POLLED
    assert not caller.channel.is_playing


@pytest.mark.parametrize("release", ["remove", "delete"])
async def test_a_removed_or_released_call_goes_on(service: QueueService,
                                                  port: Callable[[], Any],
                                                  release: str) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue(), say("after")])
    entry = await queued(service, flow)
    if release == "remove":
        service.remove(SCOPE, "sales", caller.call.id)
    else:
        service.delete(SCOPE, "sales")
    assert await flow.task is Outcome.NEXT and caller.said == ["after"]
    assert entry.reason in (LeaveReason.REMOVED, LeaveReason.QUEUE_DELETED)


async def test_async_offer_goes_on_and_stays_queued(service: QueueService,
                                                    port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue(events=ALL_EVENTS, **ASYNC), say("next")])
    assert await flow.task is Outcome.NEXT
    assert caller.said == ["on_enter", "next"]
    entry = service.queued(caller.call.id)
    assert entry is not None and not entry.left
    service.poll(SCOPE, "sales")
    assert entry.reason is LeaveReason.POLLED


async def test_max_calls_runs_the_error_handlers(service: QueueService,
                                                 port: Callable[[], Any]) -> None:
    first, late = await port(), await port()
    f1 = Flow(first, service, [queue(max_calls=1)])
    await queued(service, f1)
    f2 = Flow(late, service, [queue(events=ALL_EVENTS, max_calls=1), say("next")])
    assert await f2.task is Outcome.NEXT
    assert late.said == ["on_enter_error_max_calls", "on_enter_error", "next"]
    assert queued_ids(service) == [first.call.id]
    await f1.stop()


async def test_hanging_up_while_queued_ends_the_flow_and_leaves(
        service: QueueService, port: Callable[[], Any]) -> None:
    a, b, c = await port(), await port(), await port()
    flows = [Flow(p, service, [queue(), say("never")]) for p in (a, b, c)]
    for f in flows:
        await queued(service, f)
    b.hang_up()
    assert await flows[1].task is Outcome.END and b.said == []
    assert queued_ids(service) == [a.call.id, c.call.id]
    assert b.call.queue_visits[0]["reason"] == "hung_up"
    for f in (flows[0], flows[2]):
        await f.stop()


async def test_a_stopped_flow_leaves_the_queue(service: QueueService,
                                               port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue()])
    entry = await queued(service, flow)
    await flow.stop()  # REST inject replacing the flow
    assert entry.reason is LeaveReason.FLOW_STOPPED
    assert queued_ids(service) == []


async def test_goto_out_of_on_enter_leaves(service: QueueService,
                                           port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [
        queue(events={"on_enter": [{"type": "GOTO", "params": {"label": "out"}}]}),
        say("skipped"),
        {"type": "LABEL", "name": "out"},
        say("out"),
    ])
    assert await flow.task is Outcome.NEXT
    assert caller.said == ["out"] and queued_ids(service) == []
    assert caller.call.queue_visits[0]["reason"] == "flow_stopped"


async def test_hangup_in_on_enter_ends_the_flow(service: QueueService,
                                                port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue(events={"on_enter": [{"type": "HANGUP"}]}),
                                  say("never")])
    assert await flow.task is Outcome.END
    assert queued_ids(service) == [] and caller.call.queue_visits[0]["reason"] == "hung_up"


async def test_interpolated_name(service: QueueService, port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [{"$q": "'vip'"}, queue(name="${q}-line")])
    await queued(service, flow)
    assert queued_ids(service, "vip-line") == [caller.call.id]
    await flow.stop()


# ---- poll, poll_connect, remove -------------------------------------------------------------


async def test_poll_releases_the_head_call(service: QueueService,
                                           port: Callable[[], Any]) -> None:
    a, b, poller = await port(), await port(), await port()
    fa = Flow(a, service, [queue(), say("a goes on")])
    await queued(service, fa)
    fb = Flow(b, service, [queue()])
    await queued(service, fb)
    fp = Flow(poller, service, [queue(event="poll", events=ALL_EVENTS), say("polled")])
    assert await fp.task is Outcome.NEXT and poller.said == ["polled"]
    assert await fa.task is Outcome.NEXT and a.said == ["a goes on"]
    assert queued_ids(service) == [b.call.id]
    await fb.stop()


@pytest.mark.parametrize("event", ["poll", "poll_connect", "remove"])
async def test_errors_run_on_enter_error(service: QueueService, port: Callable[[], Any],
                                         event: str) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue(event=event, events=ALL_EVENTS), say("next")])
    assert await flow.task is Outcome.NEXT  # the queue does not exist
    assert caller.said == ["on_enter_error", "next"]
    other = await port()
    service.offer(SCOPE, "sales", other)
    service.poll(SCOPE, "sales")
    flow = Flow(caller, service, [queue(event=event, events=ALL_EVENTS), say("next")])
    assert await flow.task is Outcome.NEXT  # it exists, empty, without this call
    assert caller.said == ["on_enter_error", "next"] * 2


async def test_poll_connect_bridges_and_both_flows_go_on(service: QueueService,
                                                         port: Callable[[], Any]) -> None:
    caller, second, agent = await port(), await port(), await port()
    fc = Flow(caller, service, [queue(), say("caller: ${$lastQueuePollConnectCall.id}")])
    await queued(service, fc)
    fs = Flow(second, service, [queue()])
    await queued(service, fs)
    fa = Flow(agent, service, [queue(event="poll_connect", events=ALL_EVENTS),
                               say("agent: ${$lastQueuePollConnectCall.no}"),
                               {"type": "PAUSE", "params": {"seconds": 60}}])
    assert await fc.task is Outcome.NEXT
    await until(lambda: len(agent.said) == 1)
    assert caller.said == [f"caller: {agent.call.id}"]
    assert agent.said == [f"agent: {caller.call.caller_no}"]  # no on_enter for a poll
    assert fc.var() == {"id": agent.call.id, "no": agent.call.caller_no}
    assert fa.var() == {"id": caller.call.id, "no": caller.call.caller_no}
    assert caller.channel.bridged_to is agent.channel
    assert queued_ids(service) == [second.call.id]
    body = callback_fields(caller.call, "live_call")
    assert body["last_queue_poll_connect_call"] == {"id": agent.call.id,
                                                    "no": agent.call.caller_no}
    assert callback_fields(agent.call, "end_call")["last_queue_poll_connect_call"] == {
        "id": caller.call.id, "no": caller.call.caller_no}
    assert callback_fields(second.call, "live_call")["last_queue_poll_connect_call"] is None
    caller.hang_up()  # the bridge goes; the agent's flow is still in its PAUSE
    assert agent.channel.bridged_to is None and not fa.task.done()
    await fa.stop()
    await fs.stop()


async def test_async_offered_caller_gets_the_variable_too(service: QueueService,
                                                          port: Callable[[], Any]) -> None:
    caller, agent = await port(), await port()
    fc = Flow(caller, service, [queue(**ASYNC)])
    assert await fc.task is Outcome.NEXT
    fa = Flow(agent, service, [queue(event="poll_connect")])
    assert await fa.task is Outcome.NEXT
    assert fc.var() == {"id": agent.call.id, "no": agent.call.caller_no}


async def test_remove_takes_this_call_out(service: QueueService,
                                          port: Callable[[], Any]) -> None:
    caller = await port()
    flow = Flow(caller, service, [queue(**ASYNC), say("queued"),
                                  queue(event="remove", events=ALL_EVENTS), say("out")])
    assert await flow.task is Outcome.NEXT
    assert caller.said == ["queued", "out"]
    assert queued_ids(service) == []
    assert caller.call.queue_visits[0]["reason"] == "removed"


# ---- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params, problem", [
    ({"max_calls": -1}, "max_calls"),
    ({"name": "bad name"}, "name"),
])
async def test_bad_params_fail_the_flow(service: QueueService, port: Callable[[], Any],
                                        params: dict[str, Any], problem: str) -> None:
    flow = Flow(await port(), service, [queue(**params)])
    with pytest.raises(NoActions, match=problem):
        await flow.task


@pytest.mark.parametrize("params", [{"event": "dequeue"}, {"async": "yes"},
                                    {"max_calls": "ten"}, {}])
def test_params_are_checked_before_running(params: dict[str, Any]) -> None:
    action = queue(**params)
    if not params:
        del action["params"]["name"]
    with pytest.raises(NoActions):
        compile_actions([action])


def test_every_event_is_an_action_list() -> None:
    [action] = compile_actions([queue(events=ALL_EVENTS)])
    assert set(action.children) == {f"events.{e}" for e in ALL_EVENTS}


async def test_a_switch_without_queues_fails_the_flow(port: Callable[[], Any]) -> None:
    flow = Flow(await port(), None, [queue()])
    with pytest.raises(NoActions, match="no queues"):
        await flow.task
