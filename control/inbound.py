"""An inbound call: a ServerSession (the caller's INVITE) running its number's call flow.

The switch rings at once, runs the flow (`init_call` first, which decides whether and
when to answer), answers with our SDP answer, or with our offer when the INVITE had none
(late offer, RFC 3261 §13.2.1: the ACK then carries the answer).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from control.calls import Call, CallStatus, HangupEnd
from control.flowconfig import CallFlowConfig
from control.session import CallSession
from signaling import events as sev
from signaling.sdp import NotAcceptable, SdpError, SessionDescription, negotiate_answer
from signaling.sdp import offer as sdp_offer
from signaling.session import ServerSession

if TYPE_CHECKING:
    from control.services import SwitchServices

log = logging.getLogger("voxswitch.session")


class InboundSession(CallSession):
    """Runs one inbound call from INVITE to end_call."""

    def __init__(self, switch: SwitchServices, sip: ServerSession, call: Call,
                 config: CallFlowConfig) -> None:
        super().__init__(switch, call, config)
        self.sip = sip
        self.leg = sip
        self._answer_sdp: SessionDescription | None = None
        self._late_offer: SessionDescription | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Set up media, run the flow, and clean up; never raises."""
        self.sip.on_event = self._on_sip_event
        self.sip.on_reoffer = self._on_reoffer
        try:
            if not await self._prepare_media():
                return
            if self.ended:
                return  # cancelled while its configuration and media were being set up
            self.sip.ring()
            self.call.mark_ringing()
            await self._run_flow()
        except Exception:
            self._crashed()
        finally:
            await self._finish()

    async def _prepare_media(self) -> bool:
        if not await self._open_channel():
            await self.reject(503, "No Media Ports Available")
            return False
        assert self.channel is not None
        offer = self.sip.offer
        if offer is None:
            # Late offer (RFC 3261 §13.2.1): our 200 carries the offer and the ACK the
            # answer, so media is configured only when the ACK arrives.
            self._late_offer = sdp_offer(
                local_host=self.channel.local_host, local_port=self.channel.local_port,
                session_id=self._sdp_session_id, session_version=self._sdp_version)
            self._answer_sdp = self._late_offer
            return True
        try:
            self._answer_sdp, self.media = self._negotiate(offer)
        except NotAcceptable as exc:
            log.info("session.sdp_not_acceptable", extra={"call_id": self.call.id,
                                                           "detail": str(exc)})
            self.sip.reject(488, "Not Acceptable Here")
            self.call.fail(488, f"no common codec: {exc}")
            self._mark_ended(CallStatus.FAILED, HangupEnd.API)
            return False
        return True

    # ---- SIP events ------------------------------------------------------------------

    def _on_sip_event(self, event: object) -> None:
        if isinstance(event, sev.CallCancelled):
            self._end_status = CallStatus.CANCELED
            self._mark_ended(CallStatus.CANCELED, HangupEnd.CALLER)
        elif isinstance(event, sev.ByeReceived):
            self._mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
        elif isinstance(event, sev.CallAcked) and self._late_offer is not None:
            self._on_late_answer(event.answer)
        elif isinstance(event, sev.AckTimedOut):
            self.call.fail(408, "no ACK for our 200 OK")
            self._mark_ended(CallStatus.COMPLETED, HangupEnd.API)
        elif isinstance(event, sev.InfoReceived):
            self._on_info(event.request)
        elif isinstance(event, sev.ReinviteReceived):
            log.info("session.reinvite", extra={"call_id": self.call.id,
                                                "direction": self.media.direction
                                                if self.media else None})
        elif isinstance(event, sev.SessionTerminated):
            if self._answered:
                status = CallStatus.COMPLETED
            elif event.reason == "cancelled":
                status = CallStatus.CANCELED
            else:  # the stack stopped, or a transport gave up, before any answer
                status = self._end_status or CallStatus.FAILED
            self._mark_ended(status, HangupEnd.CALLER)
        if self._ended.is_set() and self.channel is not None:
            self.channel.stop_audio()

    def _on_late_answer(self, sdp: SessionDescription | None) -> None:
        assert self._late_offer is not None
        try:
            if sdp is None:
                raise SdpError("the ACK carried no SDP answer to our offer")
            self.media = negotiate_answer(self._late_offer, sdp)
        except (SdpError, ValueError) as exc:
            log.info("session.late_answer_refused", extra={"call_id": self.call.id,
                                                           "detail": str(exc)})
            self.call.fail(488, f"unusable SDP answer in the ACK: {exc}")
            self.sip.hangup()
            self._mark_ended(CallStatus.FAILED, HangupEnd.API)
            return
        self._configure_channel(self.media)

    # ---- CallPort --------------------------------------------------------------------

    async def answer(self) -> None:
        if self._answered or self.ended:
            return
        assert self._answer_sdp is not None
        if self.media is not None:
            self._configure_channel(self.media)
        self.sip.answer(str(self._answer_sdp).encode())
        self._answered = True
        self.call.mark_connected()
        log.info("call.answered", extra={
            "call_id": self.call.id, "late_offer": self._late_offer is not None,
            "codec": self.media.codec.name if self.media else None})

    async def reject(self, status: int, reason: str | None,
                     final: CallStatus | None = None) -> None:
        """Refuse the unanswered call with SIP `status`; its final status is `final`, by
        default busy for 486/600 and failed otherwise (REJECT, callback failures)."""
        if self._answered or self.ended:
            return
        self.call.sip_response_code = status
        if final is None:
            final = CallStatus.BUSY if status in (486, 600) else CallStatus.FAILED
        self._end_status = final
        self._mark_ended(final, HangupEnd.API)
        self.sip.reject(status, reason)

    async def hangup(self) -> None:
        """Hang up: BYE once answered; before that the switch hangs up on a ringing call,
        which the Call Status table calls canceled."""
        if self.ended:
            return
        if self.channel is not None:
            self.channel.stop_audio()
        if self._answered:
            self.sip.hangup()
            self._mark_ended(CallStatus.COMPLETED, HangupEnd.API)
        else:
            await self.reject(480, "Temporarily Unavailable", CallStatus.CANCELED)
