"""RECORDMESSAGE: record a message of the caller, play it back, discard or save it.

`start` records the caller (mono) and waits until the caller presses `finish_on_key`
(`any` key by default), has been silent for `timeout` seconds (voice activity, not raw
energy: `media.vad`), or `max_recording_time` seconds have been recorded; the flow then
goes on. `play` plays the call's last message to the caller, `discard` deletes it and
`save` saves it: it joins the call's `recordings` under the action's name, like RECORD's,
and `events.on_save` runs. As the spec's note says, a message is also saved when the
call ends before a `discard`. `events.on_error` runs when an action fails: `start` on a
call without media, `play` or `save` with no message, a storage error.

Choices where the spec is silent (see also `control.recordings`):
- Keys pressed before `start` don't end the message; the finishing key press itself is
  not kept for a later COLLECT, and its in-band tone is cut from the message's end
  (`media.dsp.dtmf.key_tail`).
- A message that is not saved or discarded is replaced (discarded) by the next `start`.
- `discard` without an unsaved message (none, or already saved) is a no-op, not an
  error; `save` of a saved message succeeds again (and runs on_save again).
- `timeout` and `max_recording_time` are counted in audio time (20 ms ticks).
- Out-of-range numbers (1–3600, 1–60) and a bad `action` or `finish_on_key` are the
  Call Flow Loop's 400902, like every other malformed action.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path

import numpy as np

from control.callflow.context import Action, ActionSpec, FlowContext, Outcome, Param
from control.callflow.errors import NoActions
from control.callflow.port import CallPort
from control.recordings import RecordedCall, RecordingRefused, RecordingService
from control.storage import StorageError

log = logging.getLogger("voxswitch.callflow.recordmessage")

ACTIONS = ("start", "play", "discard", "save")
KEYS = ("any", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "#", "*")
MAX_RECORDING_TIME = (1, 3600)
TIMEOUT = (1, 60)


def _number(action: Action, ctx: FlowContext, name: str, bounds: tuple[int, int]) -> float:
    value = ctx.param(action, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    lo, hi = bounds
    if isinstance(value, bool) or not lo <= number <= hi:
        raise NoActions(f"{action.where()}: param '{name}' is {value!r}; valid: {lo} to {hi}")
    return number


def _choice(action: Action, ctx: FlowContext, name: str, accepted: tuple[str, ...]) -> str:
    value = str(ctx.param(action, name)).strip().lower()
    if value not in accepted:
        raise NoActions(f"{action.where()}: param '{name}' is {value!r}; accepted: "
                        f"{', '.join(accepted)}")
    return value


async def run(action: Action, ctx: FlowContext) -> Outcome:
    port, service = ctx.port, ctx.recordings
    if service is None or not isinstance(port, RecordedCall):
        raise NoActions(f"{action.where()}: this switch records no messages")
    what = _choice(action, ctx, "action", ACTIONS)
    finish = _choice(action, ctx, "finish_on_key", KEYS)
    max_s = _number(action, ctx, "max_recording_time", MAX_RECORDING_TIME)
    timeout_s = _number(action, ctx, "timeout", TIMEOUT)
    if port.ended:
        return Outcome.END
    call = port.call
    try:
        if what == "start":
            group = ctx.param(action, "group")
            ok = await _record(ctx.port, port, service, action.name,
                               None if group in (None, "") else str(group),
                               finish, max_s, timeout_s)
        elif what == "play":
            ok = await _play(ctx.port, service, port)
        elif what == "discard":
            await service.discard_message(call)
            ok = True
        else:
            ok = await service.save_message(call) is not None
            if ok and await ctx.run_events(action, ("on_save",)) is Outcome.END:
                return Outcome.END
    except (RecordingRefused, StorageError) as exc:
        log.warning("recordmessage.failed", extra={"call_id": call.id, "action": what,
                                                   "error": str(exc)})
        ok = False
    if not ok and await ctx.run_events(action, ("on_error",)) is Outcome.END:
        return Outcome.END
    return Outcome.END if port.ended else Outcome.NEXT


async def _record(port: CallPort, member: RecordedCall, service: RecordingService,
                  name: str | None, group: str | None, finish: str, max_s: float,
                  timeout_s: float) -> bool:
    port.clear_digits()
    message = await service.start_message(member, group, name, timeout_s=timeout_s,
                                          max_s=max_s)
    keyed = asyncio.ensure_future(_finish_key(port, finish))
    try:
        await asyncio.wait((keyed, message.ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        keyed.cancel()
    pressed = keyed.result() if keyed.done() and not keyed.cancelled() else None
    stopped = await service.stop_message(member.call, "key" if pressed else "ended",
                                         key=pressed)
    log.info("recordmessage.recorded", extra={
        "call_id": member.call.id, "recording_id": message.id, "ended_by": message.ended.result(),
        "duration_ms": stopped.duration_ms if stopped else 0})
    return stopped is not None and not stopped.failed


async def _finish_key(port: CallPort, finish: str) -> str | None:
    """The finishing key once pressed; None when the call ends first."""
    while not port.ended:
        key = await port.next_digit(3600.0)
        if key is not None and (finish == "any" or key == finish):
            return key
    return None


async def _play(port: CallPort, service: RecordingService, member: RecordedCall) -> bool:
    message = service.last_message(member.call)
    if message is None:
        return False
    pcm = await asyncio.to_thread(_read_mono, message.path)
    if pcm is None:
        return False
    await port.play(pcm)
    return True


def _read_mono(path: Path) -> np.ndarray | None:
    try:
        with wave.open(str(path), "rb") as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
    except (OSError, EOFError, wave.Error):
        return None


SPEC = ActionSpec("RECORDMESSAGE", run, {
    "action": Param((str,), "start", ACTIONS),
    "finish_on_key": Param((str, int), "any"),
    "group": Param((str, int), None),
    "max_recording_time": Param((int, float, str), 30),
    "timeout": Param((int, float, str), 5),
}, interpolated=frozenset({"action", "group", "finish_on_key", "max_recording_time",
                           "timeout"}),
    children=((("events", "on_save"), None), (("events", "on_error"), None)))
