"""DETECT: tell a live person from a voicemail system (or a fax) and run the matching
events.

The call's detection (`control.detection`; started here unless DIAL's `detection`
already started it at answer) runs on the caller's audio. DETECT waits for its first
decision, but no longer than `trigger_live_in_ms` after the analysis began, then:

- voicemail: `events.on_voicemail_early` at once, then `events.on_voicemail` once the
  machine is ready to record (its beep has ended, or its greeting when it has no beep);
- live_person, or nothing decided in time: `events.on_live_person`. The analysis goes
  on; should it find a voicemail after all (a long greeting, no pause for a reply), the
  live-person actions, or whatever the flow runs by then, are stopped and the voicemail
  events run instead, as the spec describes;
- fax: no event runs; the flow goes on with `detection` = "fax" for an IF to test.

Then the flow goes on after DETECT. Choices where the spec is silent:
- `trigger_live_in_ms` is 100 to 60000 (out of range: the Call Flow Loop's 400902),
  counted in audio analysed, like every detection time.
- The events marked required are optional here: a missing one runs nothing.
- A call without media (never answered, or already gone) goes on at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from control.detection import CallDetection, DetectionRefused
from control.recordings import RecordedCall
from media.detection import AmdEvent, AmdEventKind

log = logging.getLogger("voxswitch.callflow.detect")

TRIGGER_MS = (100, 60000)
EVENTS = ("on_live_person", "on_voicemail", "on_voicemail_early")
UNTIL_END_S = 24 * 3600.0  # a port sleep this long ends only with the call


def _trigger_s(action: Action, ctx: FlowContext) -> float:
    value = ctx.param(action, "trigger_live_in_ms")
    lo, hi = TRIGGER_MS
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise NoActions(f"{action.where()}: param 'trigger_live_in_ms' is {value!r}; "
                        f"valid: {lo} to {hi}")
    return float(value) / 1000.0


async def run(action: Action, ctx: FlowContext) -> Outcome:
    port, service = ctx.port, ctx.detection
    if service is None or not isinstance(port, RecordedCall):
        raise NoActions(f"{action.where()}: this switch detects nothing")
    trigger_s = _trigger_s(action, ctx)
    if port.ended:
        return Outcome.END
    try:
        det = service.start(port)
    except DetectionRefused as exc:
        log.warning("detect.refused", extra={"call_id": port.call.id, "error": str(exc)})
        return Outcome.NEXT
    if not det.decided.is_set() and not await _until(
            ctx, det.decided.wait(), det.until_audio_ms(trigger_s * 1000.0)):
        return Outcome.END
    if port.ended:
        return Outcome.END
    log.info("detect.decided", extra={"call_id": port.call.id, "result": det.result,
                                      "decision_ms": det.decision_ms,
                                      "timed_out": not det.decided.is_set()})
    if det.voicemail.is_set():
        return await _voicemail(action, ctx, det)
    if det.result == "fax":
        return Outcome.NEXT
    return await _live_person(action, ctx, det)


async def _until(ctx: FlowContext, *waits: Coroutine[Any, Any, Any]) -> bool:
    """Until the first of `waits` is done; False when the call ended first."""
    waiting = {asyncio.ensure_future(w) for w in waits}
    waiting.add(asyncio.ensure_future(ctx.port.sleep(UNTIL_END_S)))  # returns at the end
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiting:
            w.cancel()
    return not ctx.port.ended


async def _live_person(action: Action, ctx: FlowContext, det: CallDetection) -> Outcome:
    if not det.running:
        return await ctx.run_events(action, ("on_live_person",))
    live = asyncio.ensure_future(ctx.run_events(action, ("on_live_person",)))
    corrected = asyncio.ensure_future(det.voicemail.wait())
    try:
        await asyncio.wait({live, corrected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        corrected.cancel()
        if not live.done():
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live
    if not det.voicemail.is_set():
        outcome = live.result()
        if outcome is Outcome.NEXT and det.running:
            _watch_for_correction(action, ctx, det)
        return outcome
    log.info("detect.corrected", extra={"call_id": ctx.port.call.id, "while": "on_live_person"})
    ctx.port.stop_audio()
    return await _voicemail(action, ctx, det)


def _watch_for_correction(action: Action, ctx: FlowContext, det: CallDetection) -> None:
    """After DETECT has returned: a later voicemail decision stops whatever the flow
    runs and runs the voicemail events in its place."""
    resume = replace(action, spec=RESUME)

    def listener(event: AmdEvent) -> None:
        if event.kind is AmdEventKind.VOICEMAIL:
            det.listeners.remove(listener)
            if ctx.port.ended:
                return
            log.info("detect.corrected", extra={"call_id": ctx.port.call.id,
                                                "while": "later actions"})
            ctx.port.stop_audio()
            if not ctx.host.replace([resume]):
                log.info("detect.correction_too_late", extra={"call_id": ctx.port.call.id})
        elif not det.running:
            det.listeners.remove(listener)

    det.listeners.append(listener)


async def _voicemail(action: Action, ctx: FlowContext, det: CallDetection) -> Outcome:
    if await ctx.run_events(action, ("on_voicemail_early",)) is Outcome.END:
        return Outcome.END
    if not det.done.is_set() and not await _until(ctx, det.done.wait()):
        return Outcome.END
    log.info("detect.voicemail_ready", extra={"call_id": ctx.port.call.id,
                                              "ready": det.ready.is_set(),
                                              "beep_end_ms": det.beep_end_ms})
    return await ctx.run_events(action, ("on_voicemail",))


async def _resume(action: Action, ctx: FlowContext) -> Outcome:
    assert ctx.detection is not None
    det = ctx.detection.get(ctx.port.call)
    if det is None:
        return Outcome.NEXT
    return await _voicemail(action, ctx, det)


_CHILDREN = tuple((("events", e), None) for e in EVENTS)
SPEC = ActionSpec("DETECT", run, {
    "trigger_live_in_ms": Param((int, float), 3000),
}, children=_CHILDREN)
# The voicemail half alone: what a later correction runs in the flow's place. Never in
# the registry, so no callback can name it.
RESUME = ActionSpec("DETECT", _resume, SPEC.params, children=_CHILDREN)
