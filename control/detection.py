"""Answering-machine detection for calls: what DETECT, DIAL's `detection` and REST
LeaveVoiceMail share.

One `CallDetection` per call runs a `media.detection` watch on the call's media channel
from the first time anyone asks for it; later users share it (a DIAL with `detection`
starts it at answer, a DETECT in the flow then waits on the same analysis). It keeps:

- `result`: the class last decided (fax, live_person, voicemail, unknown); the call's
  `detection` field follows it, so callbacks, LiveCalls and the call log carry it;
- `decided`: set at the first decision;
- `voicemail`: set when voicemail is decided, first or as the later correction from
  live_person the spec describes;
- `ready`: set when a voicemail is ready to record (its beep has ended, or its greeting
  has when there is no beep), with `beep_end_ms`;
- `done`: set when the watch ends (after READY, FAX, its horizon, or the channel closing).

Choices where the spec is silent:
- The watch's horizon is `HORIZON_S` of audio: a greeting longer than that is not waited
  for (READY is sent at the horizon once voicemail was decided).
- A call without media cannot be analysed: `DetectionRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from control.calls import Call
from media.detection import AmdEvent, AmdEventKind, DetectionMonitor
from media.dsp.amd import FRAME_MS

if TYPE_CHECKING:
    from control.recordings import RecordedCall

log = logging.getLogger("voxswitch.detection")

HORIZON_S = 45.0
RESULTS = ("fax", "live_person", "voicemail", "unknown")


class DetectionRefused(Exception):
    """Detection could not start: the call has ended or has no media."""


class CallDetection:
    """The detection running (or run) on one call."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.result = "unknown"
        self.beep_end_ms: int | None = None
        self.decision_ms: int | None = None
        self.decided = asyncio.Event()
        self.voicemail = asyncio.Event()
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self._watch: Any = None
        self._deadlines: list[tuple[float, asyncio.Future[None]]] = []
        self._on_deadline: Callable[[], None] | None = None  # the service's tick hook
        # Told of every event after the state above is updated (DETECT's correction).
        self.listeners: list[Callable[[AmdEvent], None]] = []

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    @property
    def audio_ms(self) -> int:
        """Audio analysed so far (20 ms ticks since the watch began)."""
        return 0 if self._watch is None else int(self._watch.frames) * FRAME_MS

    async def until_audio_ms(self, ms: float) -> None:
        """Until `ms` of audio have been analysed or the watch has ended (checked on the
        engine's tick by the service, so in audio time)."""
        if self.audio_ms >= ms or self.done.is_set():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._deadlines.append((ms, waiter))
        if self._on_deadline is not None:
            self._on_deadline()
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._deadlines.remove((ms, waiter))

    def _check_deadlines(self) -> None:
        now, ended = self.audio_ms, self.done.is_set()
        for ms, waiter in self._deadlines:
            if (ended or now >= ms) and not waiter.done():
                waiter.set_result(None)

    def on_event(self, event: AmdEvent) -> None:
        kind = event.kind
        if kind in (AmdEventKind.CLOSED, AmdEventKind.READY) or kind.value in RESULTS:
            log.info("detection.event", extra={"call_id": self.call.id, "event": kind.value,
                                               "at_ms": event.at_ms,
                                               "beep_end_ms": event.beep_end_ms})
        if kind.value in RESULTS:
            self.result = kind.value
            self.call.detection = kind.value
            if not self.decided.is_set():
                self.decision_ms = event.at_ms
                self.decided.set()
            if kind is AmdEventKind.VOICEMAIL:
                self.voicemail.set()
            if kind is AmdEventKind.FAX:
                self.done.set()
        elif kind is AmdEventKind.READY:
            self.beep_end_ms = event.beep_end_ms
            self.ready.set()
            self.done.set()
        elif kind is AmdEventKind.CLOSED:
            self.done.set()
        for listener in tuple(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("detection.listener_failed", extra={"call_id": self.call.id})
        if self.done.is_set():
            self.decided.set()  # nobody waits for a decision that will never come

    def cancel(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self.done.set()
        self.decided.set()

    async def wait_ready(self) -> bool:
        """Until the voicemail is ready to record or the watch ends; True when ready."""
        ready = asyncio.ensure_future(self.ready.wait())
        done = asyncio.ensure_future(self.done.wait())
        try:
            await asyncio.wait({ready, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            done.cancel()
        return self.ready.is_set()


class DetectionService:
    """The switch's detections, one per call. While a detection has audio-time deadlines
    waiting (`until_audio_ms`), an engine detect hook checks them each tick."""

    def __init__(self, engine: Any, **config: Any) -> None:
        self._engine = engine
        self._monitor = DetectionMonitor(engine, **config)
        self._calls: dict[str, CallDetection] = {}
        self._hooked = False

    def get(self, call: Call) -> CallDetection | None:
        return self._calls.get(call.id)

    def start(self, member: RecordedCall, *, horizon_s: float = HORIZON_S) -> CallDetection:
        """The call's detection, started now unless it already runs (or ran)."""
        call = member.call
        found = self._calls.get(call.id)
        if found is not None:
            return found
        channel = member.media_channel()
        if call.end_time is not None or channel is None or channel._slot < 0:
            raise DetectionRefused(f"call {call.id} has no media to analyse")
        det = CallDetection(call)
        det._watch = self._monitor.watch(channel, det.on_event, max_s=horizon_s)
        det._on_deadline = self._hook
        self._calls[call.id] = det
        log.info("detection.started", extra={"call_id": call.id, "horizon_s": horizon_s})
        return det

    def forget(self, call: Call) -> None:
        """The call has ended: stop its watch and drop it."""
        det = self._calls.pop(call.id, None)
        if det is not None:
            det.cancel()
            det._check_deadlines()

    @property
    def active(self) -> int:
        return sum(1 for d in self._calls.values() if d.running)

    def _hook(self) -> None:
        if not self._hooked:
            self._engine.add_detect_hook(self._on_tick)
            self._hooked = True

    def _on_tick(self, channels: Any, pcm_in: Any) -> None:
        waiting = [d for d in self._calls.values() if d._deadlines]
        for det in waiting:
            det._check_deadlines()
        if not waiting:
            self._engine.remove_detect_hook(self._on_tick)
            self._hooked = False
