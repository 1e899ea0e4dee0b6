"""The INVITE server session: the UAS usage of a dialog (RFC 3261 §13.3, §14.2, §15).

Theory of operation
-------------------
The stack creates a `ServerSession` for each new INVITE (after 100 Trying has gone out)
and hands it to the application's `on_invite`. The application drives it with `ring()`,
`progress(sdp)` (183, early media), `answer(sdp)`, `reject(status)` and `hangup()`, and
learns what the peer did through `on_event` (events from `events.py`). States:

    EARLY --answer--> ANSWERED --ACK--> CONFIRMED --hangup--> TERMINATING --> TERMINATED
      |                  |                 |  (BYE from the peer, or its ACK never came)
      +-- reject / CANCEL / hangup --------+----------------------------------> TERMINATED

The session owns what the UAS core adds on top of the transactions: the retransmission
of its 2xx until the ACK arrives (§13.3.1.4: T1 doubling up to T2, give up after 64*T1
and send BYE), the dialog (§12.1.1), the remote CSeq check (§12.2.2), re-INVITE offer/
answer (§14.2), and CANCEL → 487 (§9.2). It never touches a socket: it talks to its host
(the stack) through the narrow `SessionHost` interface, takes time from `host.now()` and
exposes its one deadline through `get_timer()` / `handle_timer(now)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import Enum
from typing import Protocol, TypeVar

from .delivery import EventDelivery, answer_reoffer
from .dialog import Dialog
from .dtmf_info import DtmfInfoError, parse_dtmf_info
from .events import (
    AckTimedOut,
    ByeReceived,
    CallAcked,
    CallCancelled,
    Destination,
    InfoReceived,
    ReinviteReceived,
    SessionTerminated,
    TransactionKey,
)
from .headers import Via
from .message import Request, Response, make_response
from .retransmit import Due, Pending2xx
from .sdp import SessionDescription
from .transaction import is_ip_literal

log = logging.getLogger("voxswitch.signaling.session")

SDP = "application/sdp"


class SessionError(Exception):
    """The application asked for something the session's state does not allow."""


class SessionState(Enum):
    EARLY = "early"  # INVITE received, no final response yet
    ANSWERED = "answered"  # our 2xx sent, waiting for the ACK
    CONFIRMED = "confirmed"  # ACK received
    TERMINATING = "terminating"  # our BYE is in flight
    TERMINATED = "terminated"


S = TypeVar("S", contravariant=True)


class UsageHost(Protocol[S]):
    """What an INVITE session (of type S, server or client usage) needs from the stack."""

    t1: float
    t2: float

    def now(self) -> float: ...

    def respond(self, response: Response, destination: Destination,
                request: Request | None = None) -> None: ...

    def send_request(self, session: S, request: Request, destination: Destination
                     ) -> TransactionKey: ...

    def local_via(self, transport: str) -> Via: ...

    def local_contact(self, transport: str) -> str: ...

    def server_header(self) -> str: ...

    def dialog_created(self, session: S) -> None: ...

    def session_ended(self, session: S) -> None: ...

    def pump(self) -> None: ...


SessionHost = UsageHost["ServerSession"]


def _parse_sdp(message: Request) -> SessionDescription | None:
    if not message.body:
        return None
    return SessionDescription.parse(message.body)


class ServerSession(EventDelivery):
    """One incoming call. Attributes are read-only for the application except the two
    callbacks `on_event` and `on_reoffer`."""

    def __init__(
        self,
        host: SessionHost,
        invite: Request,
        source: Destination,
        reply_to: Destination,
        offer: SessionDescription | None,
        local_tag: str,
    ) -> None:
        self.invite = invite
        self.transport = source.transport
        self.remote_addr = source.addr
        self.call_id = invite.call_id
        self.state = SessionState.EARLY
        self.offer = offer
        self.remote_sdp = offer  # the peer's latest session description
        self.local_sdp: bytes | None = None  # ours, as last sent
        self.dialog: Dialog | None = None
        self.local_tag = local_tag
        self.on_reoffer: Callable[[SessionDescription], SessionDescription] | None = None
        EventDelivery.__init__(self)
        self._host = host
        self._reply_to = reply_to
        self._rung = False
        self._bye_after_ack = False
        # The 2xx the UAS core retransmits until its ACK (§13.3.1.4); None when idle.
        self._pending_2xx: Pending2xx | None = None
        self._terminated = asyncio.Event()

    def __repr__(self) -> str:
        return f"<ServerSession {self.call_id} {self.state.name}>"

    # ---- application interface ------------------------------------------------------------

    def ring(self) -> None:
        """Send 180 Ringing (creates the early dialog)."""
        if not self._check_state("ring", SessionState.EARLY):
            return
        response = self._response(180)
        self._rung = True
        if self.dialog is None:
            self.dialog = Dialog.uas(self.invite, response)
            self._host.dialog_created(self)
        self._send(response)

    def progress(self, sdp: bytes | None = None) -> None:
        """Send 183 Session Progress, with `sdp` for early media (an announcement or
        ringback before the answer); the 200 should then carry the same SDP (RFC 3264)."""
        if not self._check_state("progress", SessionState.EARLY):
            return
        body = sdp or b""
        response = self._response(183, body=body, content_type=SDP if body else None)
        if body:
            self.local_sdp = body
        if self.dialog is None:
            self.dialog = Dialog.uas(self.invite, response)
            self._host.dialog_created(self)
        self._send(response)

    def answer(self, sdp: bytes) -> None:
        """Send 200 OK with `sdp` (our answer, or our offer when the INVITE had none)."""
        if not self._check_state("answer", SessionState.EARLY):
            return
        response = self._response(200, body=sdp, content_type=SDP)
        self.local_sdp = sdp
        self.dialog = Dialog.uas(self.invite, response)
        self._host.dialog_created(self)
        self.state = SessionState.ANSWERED
        self._start_2xx(response)  # before sending: the send re-arms the stack's timer
        self._send(response)

    def reject(self, status: int, reason: str | None = None) -> None:
        """Send a final non-2xx response (486, 404, 488, 603, ...) and end the session."""
        if not 300 <= status <= 699:
            raise SessionError(f"can't reject with status {status}")
        if not self._check_state("reject", SessionState.EARLY):
            return
        self._send(self._response(status, reason))
        self._terminate("rejected")

    def hangup(self) -> None:
        """End the call whatever its state; idempotent.

        EARLY: 603 Decline once ringing, 480 Temporarily Unavailable before. ANSWERED: the
        BYE waits for the ACK or its timeout (§15: no BYE before the ACK). CONFIRMED: BYE.
        """
        if self.state is SessionState.EARLY:
            self.reject(603 if self._rung else 480)
        elif self.state is SessionState.ANSWERED:
            self._bye_after_ack = True
        elif self.state is SessionState.CONFIRMED:
            self._send_bye()
            self._host.pump()

    async def wait_terminated(self) -> None:
        await self._terminated.wait()

    # ---- driven by the stack ----------------------------------------------------------------

    def get_timer(self) -> float | None:
        return None if self._pending_2xx is None else self._pending_2xx.deadline

    def handle_timer(self, now: float) -> None:
        pending = self._pending_2xx
        if pending is None:
            return
        due = pending.due(now, self._host.t2)
        if due is Due.GIVE_UP:
            self._ack_timed_out()
        elif due is Due.RETRANSMIT:
            self._host.respond(pending.response, self._reply_to, pending.request)

    def receive_cancel(self) -> bool:
        """A CANCEL matched our INVITE transaction (§9.2); True if it cancelled the call.
        The stack has answered the CANCEL itself."""
        if self.state is not SessionState.EARLY:
            return False  # a final response went out already: the CANCEL has no effect
        self._send(self._response(487))
        self._emit(CallCancelled())
        self._terminate("cancelled")
        return True

    def receive_ack(self, ack: Request) -> None:
        pending = self._pending_2xx
        if pending is None or not pending.acked_by(ack):
            return  # a retransmitted ACK, or one for an INVITE we already forgot
        self._pending_2xx = None
        answer = self._sdp_or_none(ack)
        if answer is not None:
            self.remote_sdp = answer
        if self.state is SessionState.ANSWERED:
            self.state = SessionState.CONFIRMED
            self._emit(CallAcked(answer))
        if self._bye_after_ack:
            self._send_bye()

    def receive_request(self, request: Request) -> None:
        """An in-dialog request other than ACK and CANCEL (§12.2.2)."""
        assert self.dialog is not None
        if self.dialog.check_remote_request(request) is not None:
            self._reply(request, 500, "CSeq Out of Order")
            return
        method = request.method
        if method == "BYE":
            self._receive_bye(request)
        elif method == "INVITE":
            self._receive_reinvite(request)
        elif method == "INFO":
            if request.body:
                try:
                    parse_dtmf_info(request.content_type or "", request.body)
                except DtmfInfoError as exc:
                    # An unreadable digit is the peer's fault: say so (RFC 6086 §4.2).
                    self._reply(request, exc.status_code, str(exc)[:80])
                    return
            self._reply(request, 200)
            self._emit(InfoReceived(request))
        else:
            self._reply(request, 405)

    def bye_completed(self) -> None:
        """Our BYE's transaction ended: final response, timeout or transport error."""
        if self.state is SessionState.TERMINATING:
            self._terminate("local bye")

    def stop(self) -> None:
        """The stack is shutting down: 503 an unanswered call, BYE an answered one."""
        if self.state is SessionState.EARLY:
            self._send(self._response(503))
        elif self.state in (SessionState.ANSWERED, SessionState.CONFIRMED):
            self._send_bye()
        self._terminate("stack stopped")

    # ---- internals ----------------------------------------------------------------------------

    def _check_state(self, action: str, *allowed: SessionState) -> bool:
        if self.state in allowed:
            return True
        if self.state is SessionState.TERMINATED:
            # The call ended under the application's feet (CANCEL, BYE): not its bug.
            log.info("ignoring %s on terminated session", action, extra={"call_id": self.call_id})
            return False
        raise SessionError(f"can't {action} in state {self.state.name}")

    def _response(
        self,
        status: int,
        reason: str | None = None,
        *,
        request: Request | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        headers = [("Server", self._host.server_header())]
        if 100 < status < 300:
            headers.append(("Contact", self._host.local_contact(self.transport)))
        if status in (405, 501):
            headers.append(("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"))
        return make_response(
            request or self.invite,
            status,
            reason,
            to_tag=self.local_tag,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def _send(self, response: Response, request: Request | None = None) -> None:
        self._host.respond(response, self._reply_to, request)
        self._host.pump()

    def _reply(self, request: Request, status: int, reason: str | None = None) -> None:
        self._send(self._response(status, reason, request=request), request)

    def _sdp_or_none(self, message: Request) -> SessionDescription | None:
        try:
            return _parse_sdp(message)
        except ValueError as exc:
            log.warning("unparseable SDP: %s", exc, extra={"call_id": self.call_id})
            return None

    def _start_2xx(self, response: Response) -> None:
        self._pending_2xx = Pending2xx.start(response, self.invite, now=self._host.now(),
                                             t1=self._host.t1,
                                             reliable=self.transport != "udp")

    def _ack_timed_out(self) -> None:
        # §13.3.1.4: no ACK for 64*T1 — the session is over; a BYE tells the peer.
        self._pending_2xx = None
        self._emit(AckTimedOut())
        if self.state is SessionState.ANSWERED or self._bye_after_ack:
            self._send_bye()
        self._terminate("ack timeout")

    def _send_bye(self) -> None:
        assert self.dialog is not None
        request = self.dialog.create_request("BYE", via=self._host.local_via(self.transport))
        request.headers.add("User-Agent", self._host.server_header())
        self.state = SessionState.TERMINATING
        self._host.send_request(self, request, self._next_hop())

    def _next_hop(self) -> Destination:
        assert self.dialog is not None
        uri = self.dialog.next_hop()
        transport = (uri.transport or self.transport).lower()
        if is_ip_literal(uri.host):
            return Destination(transport, uri.host.strip("[]"), uri.port or 5060)
        return Destination(self.transport, *self.remote_addr)  # names are never resolved

    def _receive_bye(self, request: Request) -> None:
        self._reply(request, 200)
        if self.state is SessionState.TERMINATING:
            self._terminate("local bye")  # both sides hung up at once
            return
        if self.state is SessionState.EARLY:
            # §15.1.2: a BYE on the early dialog ends the INVITE with 487.
            self._send(self._response(487))
        self._pending_2xx = None
        self._emit(ByeReceived(request))
        self._terminate("remote bye")

    def _receive_reinvite(self, request: Request) -> None:
        if self.state is not SessionState.CONFIRMED:
            # §14.2: an INVITE while the previous one is unfinished.
            response = self._response(500, request=request)
            response.headers.add("Retry-After", "1")
            self._send(response)
            return
        reoffer = answer_reoffer(request.body, self.local_sdp, self.on_reoffer, self.call_id)
        if reoffer.status != 200:
            self._reply(request, reoffer.status)  # the dialog and session stay as they were
            return
        offer, answer = reoffer.offer, reoffer.answer
        if offer is not None:
            self.remote_sdp = offer
        body = str(answer).encode() if answer is not None else b""
        response = self._response(
            200, request=request, body=body, content_type=SDP if body else None
        )
        self.local_sdp = body or self.local_sdp
        assert self.dialog is not None
        self.dialog.refresh_target(request)
        self._start_2xx(response)
        self._send(response)
        self._emit(ReinviteReceived(offer, answer))

    def _terminate(self, reason: str) -> None:
        if self.state is SessionState.TERMINATED:
            return
        self.state = SessionState.TERMINATED
        self._pending_2xx = None
        if self.dialog is not None:
            self.dialog.terminate()
        self._host.session_ended(self)
        self._emit(SessionTerminated(reason))
        self._terminated.set()
