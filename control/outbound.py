"""An outbound call: a ClientSession (our INVITE) that, once answered, runs a call flow
(Dials/Connect, DIAL) or is bridged by its owner (TRANSFER's far leg).

Theory of operation. `run()` opens the media channel, sends the INVITE with our offer
and waits for the far end, at most the dial's `timeout` (then CANCEL). Its events move
the call on: 18x → live-ringing (a 183's SDP configures the channel at once, so early
media flows: an owner bridging this leg hears the far end's ringback or announcement);
2xx → live-in-progress, the channel takes the answer, the call flow starts with
`init_call` (outbound calls are answered before their first callback) and
`max_call_time` is armed (with `detection`, answering-machine detection starts first;
"preconnect" holds init_call until it decides); a final non-2xx ends the call with the
Call Status table's status for it. The far end's BYE, ours, or the owner's hang-up end
it as for any call.

Final statuses (the spec's Call Status table; the SIP codes are the issue's choice):
486/600 → busy; 480/408, no response, or the ring timeout → no-answer; 487 after a CANCEL
of ours for any other reason (the parent hung up, REST End) → canceled; other 3xx-6xx
and transport failures → failed; answered, then ended → completed.

A call that never connected gets no init_call and no end_call; `failed_call` goes to the
parent call's callback target when it has one (DIAL), else to the flow's own target
(Dials/Connect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from control.calls import Call, CallStatus, HangupEnd
from control.detection import DetectionRefused
from control.dialing import DialRequest, Route
from control.flowconfig import CallFlowConfig
from control.session import CallSession
from signaling import events as sev
from signaling.sdp import SdpError, SessionDescription, negotiate_answer
from signaling.sdp import offer as sdp_offer

if TYPE_CHECKING:
    from control.services import SwitchServices
    from signaling.client import ClientSession

log = logging.getLogger("voxswitch.outbound")

BUSY = (486, 600)
NO_ANSWER = (480, 408)
PRECONNECT_WAIT_S = 5.0  # most a "preconnect" detection holds the flow's first callback


def status_for_failure(sip_status: int, *, cancelled_by_us: bool, timed_out: bool,
                       reason: str = "") -> CallStatus:
    """The final status of an outbound call that ended with SIP `sip_status`.

    The stack reports a destination it could not reach (TCP refused, DNS) as a local
    408 whose reason says so: that is a failure, not a far end that did not answer."""
    if timed_out:
        return CallStatus.NO_ANSWER
    if sip_status == 487 and cancelled_by_us:
        return CallStatus.CANCELED
    if sip_status in BUSY:
        return CallStatus.BUSY
    if sip_status == 408 and ("transport error" in reason or "lookup" in reason):
        return CallStatus.FAILED
    if sip_status in NO_ANSWER:
        return CallStatus.NO_ANSWER
    return CallStatus.FAILED


class OutboundSession(CallSession):
    """Places one call and runs it to its end."""

    def __init__(self, switch: SwitchServices, call: Call, config: CallFlowConfig | None,
                 route: Route, request: DialRequest) -> None:
        super().__init__(switch, call, config)
        self.route = route
        self.request = request
        self.client: ClientSession | None = None
        self._offer: SessionDescription | None = None
        self._connected = asyncio.Event()  # answered, or ended without an answer
        self._cancelled = False
        self._timed_out = False
        self._max_time: asyncio.TimerHandle | None = None
        self._expiry: asyncio.Future[None] | None = None
        # Owners (TRANSFER) learn when the far end's media starts and when it answers.
        self.on_early_media: list[Callable[[OutboundSession], None]] = []
        self.on_answered: list[Callable[[OutboundSession], None]] = []

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Dial, wait for the far end, run the flow, clean up; never raises."""
        try:
            if not await self._dial():
                return
            await self._wait_for_answer()
            if not self._answered:
                return
            self._arm_max_call_time()
            await self._detect()
            await self._run_flow()
        except Exception:
            self._crashed()
        finally:
            if self._max_time is not None:
                self._max_time.cancel()
            await self._finish()

    async def _detect(self) -> None:
        """DIAL / Dials/Connect `detection`: "full" analyses the answered call beside its
        flow (callbacks carry `detection` once decided); "preconnect" also holds the
        flow's first callback until the first decision, at most PRECONNECT_WAIT_S."""
        mode = self.request.detection
        if mode not in ("preconnect", "full") or self.ended:
            return
        try:
            detection = self.switch.detection.start(self)
        except DetectionRefused as exc:
            log.warning("outbound.detection_refused", extra={"call_id": self.call.id,
                                                             "error": str(exc)})
            return
        if mode == "preconnect":
            waiting = {asyncio.ensure_future(detection.decided.wait()),
                       asyncio.ensure_future(self._ended.wait())}
            try:
                await asyncio.wait(waiting, timeout=PRECONNECT_WAIT_S,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiting:
                    w.cancel()
            log.info("outbound.preconnect_detection", extra={
                "call_id": self.call.id, "detection": detection.result,
                "decision_ms": detection.decision_ms})

    async def _dial(self) -> bool:
        if not await self._open_channel():
            self._mark_ended(CallStatus.FAILED, HangupEnd.API)
            return False
        if self.ended:
            return False  # hung up (the parent, REST) before anything was sent
        assert self.channel is not None
        self._offer = sdp_offer(local_host=self.channel.local_host,
                                local_port=self.channel.local_port,
                                session_id=self._sdp_session_id,
                                session_version=self._sdp_version)
        try:
            self.client = self.switch.stack.invite(
                self.route.target, from_user=self.request.caller_id_no,
                sdp=str(self._offer).encode(), proxy=self.route.proxy,
                credentials=self.route.credentials)
        except ValueError as exc:
            log.info("outbound.invalid_target", extra={"call_id": self.call.id,
                                                       "target": self.route.target,
                                                       "error": str(exc)})
            self.call.fail(400, f"cannot dial {self.request.no!r}: {exc}")
            self._mark_ended(CallStatus.FAILED, HangupEnd.API)
            return False
        self.leg = self.client
        self.call.sip_call_id = self.client.call_id
        timelines = getattr(self.switch, "timelines", None)
        if timelines is not None and self.timeline is not None:
            timelines.link_sip(self.timeline, self.client.call_id)  # its INVITE too
        self.client.on_reoffer = self._on_reoffer
        self.client.on_event = self._on_sip_event
        return True

    async def _wait_for_answer(self) -> None:
        waiting = {asyncio.ensure_future(self._connected.wait()),
                   asyncio.ensure_future(self._ended.wait())}
        try:
            await asyncio.wait(waiting, timeout=self.request.timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiting:
                w.cancel()
        if not self._answered and not self.ended:
            log.info("outbound.no_answer", extra={"call_id": self.call.id,
                                                  "timeout_s": self.request.timeout})
            self._timed_out = True
            self._cancel()
            await self._ended.wait()

    def _arm_max_call_time(self) -> None:
        loop = asyncio.get_running_loop()

        def expire() -> None:
            log.info("outbound.max_call_time", extra={"call_id": self.call.id,
                                                      "max_call_time_s":
                                                      self.request.max_call_time})
            self._expiry = asyncio.ensure_future(self.end())

        self._max_time = loop.call_later(self.request.max_call_time, expire)

    def _cancel(self) -> None:
        self._cancelled = True
        if self.client is not None:
            self.client.cancel()

    # ---- SIP events ------------------------------------------------------------------

    def _on_sip_event(self, event: object) -> None:
        if isinstance(event, sev.CallProgressed):
            self.call.mark_ringing()
            if event.sdp is not None and not self._answered:
                self._take_answer(event.sdp, early=True)
        elif isinstance(event, sev.CallAnswered):
            self._on_answered(event)
        elif isinstance(event, sev.CallFailed):
            self.call.sip_response_code = event.status
            status = status_for_failure(event.status, cancelled_by_us=self._cancelled,
                                        timed_out=self._timed_out, reason=event.reason)
            if status is CallStatus.FAILED:
                self.call.fail(event.status, f"the far end answered {event.status} "
                                             f"{event.reason}".strip())
            self._end_status = status
            self._mark_ended(status, HangupEnd.CALLER)
        elif isinstance(event, sev.ByeReceived):
            self._mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
        elif isinstance(event, sev.InfoReceived):
            self._on_info(event.request)
        elif isinstance(event, sev.SessionTerminated):
            if self._answered:
                status = CallStatus.COMPLETED
            elif self._timed_out:
                status = CallStatus.NO_ANSWER
            elif self._cancelled:
                status = CallStatus.CANCELED
            else:
                status = self._end_status or CallStatus.FAILED
            self._mark_ended(status, HangupEnd.CALLER)
        if self.ended:
            self._connected.set()
            if self.channel is not None:
                self.channel.stop_audio()

    def _take_answer(self, sdp: SessionDescription, *, early: bool) -> bool:
        assert self._offer is not None
        try:
            self.media = negotiate_answer(self._offer, sdp)
        except (SdpError, ValueError) as exc:
            log.info("outbound.answer_refused", extra={"call_id": self.call.id,
                                                       "early": early, "detail": str(exc)})
            if not early:
                self.call.fail(488, f"unusable SDP answer from the far end: {exc}")
            return False
        self._configure_channel(self.media)
        if early:
            for hook in list(self.on_early_media):
                hook(self)
        return True

    def _on_answered(self, event: sev.CallAnswered) -> None:
        usable = self.media is not None  # from early media
        if event.sdp is not None:
            usable = self._take_answer(event.sdp, early=False)
        elif event.sdp_error is not None:
            self.call.fail(488, f"unusable SDP answer from the far end: {event.sdp_error}")
            usable = False
        if not usable:
            # The far end is up but we cannot talk to it: hang up (it has been ACKed).
            if self.call.error_code is None:
                self.call.fail(488, "the far end answered without a usable SDP answer")
            assert self.client is not None
            self.client.hangup()
            self._end_status = CallStatus.FAILED
            self._mark_ended(CallStatus.FAILED, HangupEnd.API)
            return
        self._answered = True
        self.call.mark_connected()
        self._connected.set()
        log.info("call.answered", extra={"call_id": self.call.id, "direction": "outbound",
                                         "codec": self.media.codec.name if self.media
                                         else None})
        for hook in list(self.on_answered):
            hook(self)

    # ---- CallPort --------------------------------------------------------------------

    async def answer(self) -> None:
        """Outbound calls are answered by the far end; nothing to do."""

    async def reject(self, status: int, reason: str | None,
                     final: CallStatus | None = None) -> None:
        """A flow cannot refuse a call the far end answered: it hangs up instead."""
        await self.hangup()

    async def hangup(self) -> None:
        """BYE once answered; CANCEL while it rings (canceled)."""
        if self.ended:
            return
        if self.channel is not None:
            self.channel.stop_audio()
        if self._answered:
            assert self.client is not None
            self.client.hangup()
            self._mark_ended(CallStatus.COMPLETED, HangupEnd.API)
            return
        self._cancel()
        if self.client is None:
            self._mark_ended(CallStatus.CANCELED, HangupEnd.API)

    async def shutdown(self) -> None:
        await self._stop_flow()
        await self.hangup()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ended.wait(), 2.0)

    async def _send_final_callback(self) -> None:
        if self.call.connect_time is not None:
            await super()._send_final_callback()
            return
        # Never connected: failed_call, to whoever asked for the call.
        parent = self.switch.find_session(self.call.parent_call_id) \
            if self.call.parent_call_id else None
        loop = (parent.loop if parent is not None else None) or self.loop
        if loop is not None:
            await loop.send_failed_call(self.call)
