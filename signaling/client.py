"""The INVITE client session: the UAC usage of a dialog (RFC 3261 §13.2, §9.1, §15, §22).

Theory of operation
-------------------
`SipStack.invite()` creates a `ClientSession` and starts it once it knows where to send:
our INVITE, with our SDP offer, goes out in a client INVITE transaction. The session
follows the responses and tells the application through `on_event` (events from
`events.py`). States:

    CALLING --1xx--> PROCEEDING --2xx: ACK--> CONFIRMED --hangup: BYE--> TERMINATING --> TERMINATED
      |  ^              |                        |  (BYE from the peer)              ^
      |  +- 401/407: the INVITE again, with credentials (new transaction)            |
      +-----+-- 3xx-6xx, Timer B, transport error ------+------------------------------+
      cancel(): CANCELLING; the CANCEL goes out with the first 1xx (§9.1), then 487 ends it;
      a 2xx that wins the race is ACKed and ended with BYE (TERMINATING, "cancelled").

What the UAC core adds on top of the transactions lives here: the ACK for each 2xx,
built in the dialog and sent again for every retransmission of it (§13.2.2.4; the ACK for
a non-2xx is the transaction's, §17.1.1.3); the dialog (§12.1.2); CANCEL (§9.1) with its
64*T1 wait for the final response; digest authentication (§22.2, `auth.DigestClient`);
2xx responses from other forks (ACK, then BYE); and the UAS side of the dialog: BYE,
re-INVITE (answered through `on_reoffer`, its 2xx retransmitted until the ACK,
§13.3.1.4) and INFO from the peer. Like `ServerSession` it never touches a socket: it
talks to the stack through `ClientHost`, takes time from `host.now()` and exposes its one
deadline through `get_timer()` / `handle_timer(now)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Protocol

from .auth import CHALLENGE_HEADERS, Credentials, DigestClient
from .delivery import EventDelivery, answer_reoffer
from .dialog import Dialog
from .dtmf_info import DtmfInfoError, parse_dtmf_info
from .events import (
    ByeReceived,
    CallAnswered,
    CallFailed,
    CallProgressed,
    Destination,
    InfoReceived,
    ReinviteReceived,
    SessionTerminated,
    TransactionKey,
)
from .headers import NameAddr
from .message import Headers, Request, Response, make_response
from .retransmit import Due, Pending2xx
from .sdp import NotAcceptable, SdpError, SessionDescription
from .session import SessionError, UsageHost
from .transaction import is_ip_literal, same_hop_request
from .uri import URI

log = logging.getLogger("voxswitch.signaling.client")

SDP = "application/sdp"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
AUTH_HEADERS = ("authorization", "proxy-authorization")

__all__ = ["ClientHost", "ClientSession", "ClientState", "SessionError", "make_cancel"]


class ClientState(Enum):
    CALLING = "calling"  # INVITE sent (or about to be), no provisional response yet
    PROCEEDING = "proceeding"  # a provisional response arrived
    CANCELLING = "cancelling"  # cancel() called: CANCEL sent, or held until a 1xx
    CONFIRMED = "confirmed"  # a 2xx arrived and was ACKed
    TERMINATING = "terminating"  # our BYE is in flight
    TERMINATED = "terminated"


_EARLY = (ClientState.CALLING, ClientState.PROCEEDING, ClientState.CANCELLING)


class ClientHost(UsageHost["ClientSession"], Protocol):
    """What a client session needs from the stack: what a server session does, and
    stateless sends (ACK for a 2xx) and forgetting a transaction (after CANCEL)."""

    def send_stateless(self, message: Request, destination: Destination) -> None: ...

    def abandon(self, key: TransactionKey) -> None: ...


def make_cancel(invite: Request, user_agent: str | None = None) -> Request:
    """CANCEL for `invite` (§9.1): its To as sent (no tag)."""
    return same_hop_request(invite, "CANCEL", invite.headers.get("To") or "", user_agent)


def _parse_sdp(message: Request | Response) -> SessionDescription | None:
    return SessionDescription.parse(message.body) if message.body else None


class ClientSession(EventDelivery):
    """One outgoing call. Attributes are read-only for the application except the two
    callbacks `on_event` and `on_reoffer`.

    `on_reoffer(offer) -> answer` answers a re-INVITE's offer (without it: 488), and the
    offer of the 2xx when our INVITE had none (the answer goes in the ACK).
    """

    def __init__(
        self,
        host: ClientHost,
        target: URI,
        *,
        local: NameAddr,
        call_id: str,
        transport: str,
        sdp: bytes | None,
        route: Sequence[str] = (),
        credentials: Credentials | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        if not local.tag:
            raise ValueError("the From of our INVITE needs a tag")
        self.target = target
        self.call_id = call_id
        self.transport = transport
        self.local = local
        self.local_tag = local.tag
        self.remote_addr: tuple[str, int] = ("", 0)  # where the INVITE went
        self.state = ClientState.CALLING
        self.local_sdp = sdp  # ours, as last sent
        self.remote_sdp: SessionDescription | None = None  # the peer's latest (early or final)
        self.final_status: int | None = None
        self.final_reason: str | None = None
        self.invite: Request | None = None  # the latest INVITE sent
        self.dialog: Dialog | None = None
        self.on_reoffer: Callable[[SessionDescription], SessionDescription] | None = None
        EventDelivery.__init__(self)
        self._host = host
        self._remote = NameAddr(None, target)
        self._route = list(route)
        self._extra_headers = list(headers)
        self._credentials = credentials
        self._auth = DigestClient(credentials) if credentials else None
        self._bye_auth = DigestClient(credentials) if credentials else None
        self._cseq = 0
        self._destination: Destination | None = None
        self._invite_key: TransactionKey | None = None
        self._bye_key: TransactionKey | None = None
        self._bye: Request | None = None
        self._provisional = False  # a 1xx arrived for the current INVITE
        self._cancel_sent = False
        self._cancel_deadline: float | None = None
        self._ack: Request | None = None
        self._ack_to: Destination | None = None
        self._end_reason = "local bye"
        # The 2xx to a re-INVITE, retransmitted until its ACK (§13.3.1.4); None when idle.
        self._pending_2xx: Pending2xx | None = None
        self._terminated = asyncio.Event()

    def __repr__(self) -> str:
        return f"<ClientSession {self.call_id} {self.state.name}>"

    # ---- application interface ------------------------------------------------------------

    def cancel(self) -> None:
        """Give up on the call before it is answered (§9.1); idempotent.

        The CANCEL goes out once a provisional response has arrived (at once if one
        has); the call then ends with `CallFailed(487, ...)` and "cancelled". A final
        response that comes first is acted on: a non-2xx ends the call with its status,
        a 2xx is ACKed and ended with BYE, and reported as 487.
        """
        if self.state in (ClientState.CANCELLING, ClientState.TERMINATING,
                          ClientState.TERMINATED):
            return
        if self.state is ClientState.CONFIRMED:
            raise SessionError(f"can't cancel in state {self.state.name}")
        self.state = ClientState.CANCELLING
        if self._provisional:
            self._send_cancel()
        self._host.pump()

    def hangup(self) -> None:
        """End the call whatever its state; idempotent: CANCEL before the answer,
        BYE after it."""
        if self.state in _EARLY:
            self.cancel()
        elif self.state is ClientState.CONFIRMED:
            self._end_reason = "local bye"
            self._send_bye()
            self._host.pump()

    def send_info(self, body: bytes, content_type: str = "application/dtmf-relay") -> None:
        """Send INFO in the dialog (RFC 6086), e.g. a DTMF digit as dtmf-relay."""
        if self.state is not ClientState.CONFIRMED:
            raise SessionError(f"can't send INFO in state {self.state.name}")
        assert self.dialog is not None
        request = self.dialog.create_request(
            "INFO", via=self._host.local_via(self.transport), body=body,
            content_type=content_type, headers=[("User-Agent", self._host.server_header())])
        self._host.send_request(self, request, self._next_hop(self.dialog))
        self._host.pump()

    async def wait_terminated(self) -> None:
        await self._terminated.wait()

    # ---- driven by the stack ----------------------------------------------------------------

    def start(self, destination: Destination) -> None:
        """Send the INVITE to `destination` (the proxy, or the target's address)."""
        self._destination = destination
        self.remote_addr = destination.addr
        if self.state is ClientState.CANCELLING:
            self._fail(487, "Request Terminated (cancelled before the INVITE was sent)")
            return
        if self.state is ClientState.CALLING and self.invite is None:
            self._send_invite()

    def start_failed(self, reason: str) -> None:
        """No destination could be found for the INVITE (DNS)."""
        if self.state in _EARLY:
            self._fail(408, f"Request Timeout ({reason})")

    def get_timer(self) -> float | None:
        deadlines = [self._cancel_deadline]
        if self._pending_2xx is not None:
            deadlines.append(self._pending_2xx.deadline)
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self._cancel_deadline is not None and now >= self._cancel_deadline:
            # §9.1: no final response 64*T1 after the CANCEL: the INVITE is cancelled.
            self._cancel_deadline = None
            if self.state is ClientState.CANCELLING:
                if self._invite_key is not None:
                    self._host.abandon(self._invite_key)
                self._fail(408, "Request Timeout (no final response after CANCEL)")
        pending = self._pending_2xx
        if pending is None:
            return
        due = pending.due(now, self._host.t2)
        if due is Due.GIVE_UP:
            self._ack_timed_out()
        elif due is Due.RETRANSMIT:
            assert self._destination is not None
            self._host.respond(pending.response, self._destination, pending.request)

    def receive_response(self, response: Response, key: TransactionKey | None) -> None:
        """A response to one of our requests; `key` is None for a 2xx retransmission
        whose INVITE transaction is gone (§13.2.2.4)."""
        method = response.cseq.method
        if method == "INVITE":
            if key is None or key == self._invite_key:
                self._invite_response(response)
        elif key is not None and key == self._bye_key:
            self._bye_response(response)
        # CANCEL (200 or 481) and INFO responses change nothing: the INVITE's final
        # response, or its absence, decides.

    def transaction_failed(self, key: TransactionKey, reason: str) -> None:
        """A client transaction of ours timed out or hit a transport error."""
        if key == self._invite_key and self.state in _EARLY:
            self._fail(408, f"Request Timeout ({reason})")
        elif key == self._bye_key:
            self.bye_completed()

    def bye_completed(self) -> None:
        if self.state is ClientState.TERMINATING:
            self._terminate(self._end_reason)

    def receive_ack(self, ack: Request) -> None:
        """The ACK for our 2xx to a re-INVITE."""
        pending = self._pending_2xx
        if pending is None or not pending.acked_by(ack):
            return
        self._pending_2xx = None
        answer = self._sdp_or_none(ack)
        if answer is not None:
            self.remote_sdp = answer

    def receive_request(self, request: Request) -> None:
        """An in-dialog request from the peer other than ACK (§12.2.2)."""
        assert self.dialog is not None
        if self.dialog.check_remote_request(request) is not None:
            self._reply(request, 500, "CSeq Out of Order")
            return
        if request.method == "BYE":
            self._reply(request, 200)
            if self.state is not ClientState.TERMINATING:
                self._pending_2xx = None
                self._emit(ByeReceived(request))
                self._end_reason = "remote bye"
            self._terminate(self._end_reason)  # both sides hung up at once: ours stands
        elif request.method == "INVITE":
            self._receive_reinvite(request)
        elif request.method == "INFO":
            self._receive_info(request)
        else:
            self._reply(request, 405)

    def stop(self) -> None:
        """The stack is shutting down: CANCEL (best effort) or BYE, and end."""
        if self.state in _EARLY:
            if self._provisional and not self._cancel_sent:
                self._send_cancel()
            self._set_final(503, "Service Unavailable (stack stopped)")
            self._emit(CallFailed(503, "Service Unavailable (stack stopped)"))
        elif self.state is ClientState.CONFIRMED:
            self._send_bye()
        self._terminate("stack stopped")

    # ---- the INVITE transaction -------------------------------------------------------------

    def _send_invite(self, auth: Sequence[tuple[str, str]] = ()) -> None:
        assert self._destination is not None
        self._cseq += 1
        self.invite = self._build_invite(auth)
        self._provisional = False
        if self.state is ClientState.PROCEEDING:
            self.state = ClientState.CALLING
        self._invite_key = self._host.send_request(self, self.invite, self._destination)
        self._host.pump()

    def _build_invite(self, auth: Sequence[tuple[str, str]]) -> Request:
        headers = Headers()
        headers.add("Via", str(self._host.local_via(self.transport)))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local))
        headers.add("To", str(self._remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self._cseq} INVITE")
        for route in self._route:
            headers.add("Route", route)
        headers.add("Contact", self._host.local_contact(self.transport))
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", self._host.server_header())
        for name, value in [*auth, *self._extra_headers]:
            headers.add(name, value)
        body = self.local_sdp or b""
        if body:
            headers.add("Content-Type", SDP)
        headers.add("Content-Length", str(len(body)))
        return Request("INVITE", str(self.target), headers, body)

    def _invite_response(self, response: Response) -> None:
        if self.invite is None or response.cseq.seq != self.invite.cseq.seq:
            return  # for a challenged INVITE whose transaction is still draining
        if response.status < 200:
            self._provisional_received(response)
        elif response.status < 300:
            self._success(response)
        else:
            self._failure(response)

    def _provisional_received(self, response: Response) -> None:
        if self.state not in _EARLY:
            return
        self._provisional = True
        if self.state is ClientState.CALLING:
            self.state = ClientState.PROCEEDING
        elif self.state is ClientState.CANCELLING and not self._cancel_sent:
            self._send_cancel()
        if response.status == 100:
            return
        sdp = self._sdp_or_none(response)
        if sdp is not None:
            self.remote_sdp = sdp
        self._emit(CallProgressed(response.status, response.reason, sdp))

    def _success(self, response: Response) -> None:
        dialog = self.dialog
        if dialog is not None:
            if response.to.tag == dialog.id.remote_tag:
                self._resend_ack()  # a retransmission: our ACK was lost (§13.2.2.4)
            else:
                self._end_fork(response)
            return
        if self.state not in _EARLY:
            self._end_fork(response)  # a 2xx after we gave up waiting for one
            return
        assert self.invite is not None
        self._cancel_deadline = None
        self.dialog = dialog = Dialog.uac(self.invite, response)
        self._host.dialog_created(self)
        sdp, error, answer = self._answered_sdp(response)
        self._send_ack(dialog, answer)
        if self.state is ClientState.CANCELLING:
            # The 2xx won the race with our CANCEL (or came before we could send it):
            # ACK it, then BYE (§15), and report the call as cancelled.
            reason = "Request Terminated (answered after CANCEL)"
            self._set_final(487, reason)
            self._emit(CallFailed(487, reason))
            self._end_reason = "cancelled"
            self._send_bye()
            self._host.pump()
            return
        self._set_final(response.status, response.reason)
        self.state = ClientState.CONFIRMED
        self._emit(CallAnswered(sdp, error))
        self._host.pump()

    def _failure(self, response: Response) -> None:
        if self.state not in _EARLY:
            return
        status = response.status
        auth = self._auth
        if status in CHALLENGE_HEADERS and auth and self.state is not ClientState.CANCELLING:
            values = response.headers.getall(CHALLENGE_HEADERS[status][0])
            if auth.challenged(status, values):
                self._retry_with_credentials()
                return
            log.info("not answering %d: %s", status, auth.refusal,
                     extra={"call_id": self.call_id})
        self._fail(status, response.reason)

    def _retry_with_credentials(self) -> None:
        assert self._auth is not None and self.invite is not None
        auth = self._auth.headers("INVITE", str(self.target), self.local_sdp or b"")
        self._send_invite(auth)

    def _answered_sdp(
        self, response: Response
    ) -> tuple[SessionDescription | None, str | None, bytes]:
        """The 2xx's session description, why it is unusable, and the ACK's body."""
        try:
            sdp = _parse_sdp(response)
        except SdpError as exc:
            log.warning("unparseable SDP in the %d: %s", response.status, exc,
                        extra={"call_id": self.call_id})
            return None, f"unparseable SDP in the {response.status}: {exc}", b""
        if self.local_sdp is None:
            return self._answer_late_offer(sdp)
        if sdp is None:
            if self.remote_sdp is not None:
                return self.remote_sdp, None, b""  # the 18x's SDP stands (a common habit)
            return None, f"no SDP answer in the {response.status}", b""
        self.remote_sdp = sdp
        return sdp, None, b""

    def _answer_late_offer(
        self, offer: SessionDescription | None
    ) -> tuple[SessionDescription | None, str | None, bytes]:
        # Our INVITE had no offer: the 2xx carries it and the ACK our answer (§13.2.1).
        if offer is None:
            return None, "no SDP offer in the 2xx to an offerless INVITE", b""
        self.remote_sdp = offer
        if self.on_reoffer is None:
            return offer, "no on_reoffer to answer the offer in the 2xx", b""
        try:
            answer = self.on_reoffer(offer)
        except NotAcceptable as exc:
            return offer, f"offer in the 2xx not acceptable: {exc}", b""
        except Exception:
            log.exception("on_reoffer failed", extra={"call_id": self.call_id})
            return offer, "on_reoffer failed", b""
        self.local_sdp = bytes(answer)
        return offer, None, self.local_sdp

    def _send_ack(self, dialog: Dialog, body: bytes) -> None:
        # §13.2.2.4: built like any in-dialog request, but with the INVITE's CSeq number
        # and its credentials; sent outside any transaction, again for each 2xx copy.
        assert self.invite is not None
        auth = [(n, v) for n, v in self.invite.headers.items() if n.lower() in AUTH_HEADERS]
        self._ack = dialog.create_request(
            "ACK", via=self._host.local_via(self.transport), cseq=self.invite.cseq.seq,
            body=body, content_type=SDP if body else None, headers=auth)
        self._ack_to = self._next_hop(dialog)
        self._host.send_stateless(self._ack, self._ack_to)

    def _resend_ack(self) -> None:
        if self._ack is not None and self._ack_to is not None:
            self._host.send_stateless(self._ack, self._ack_to)
            self._host.pump()

    def _end_fork(self, response: Response) -> None:
        """A 2xx we do not want (another fork, or too late): ACK it, then BYE (§13.2.2.4)."""
        assert self.invite is not None
        fork = Dialog.uac(self.invite, response)
        via = self._host.local_via(self.transport)
        ack = fork.create_request("ACK", via=via, cseq=self.invite.cseq.seq)
        self._host.send_stateless(ack, self._next_hop(fork))
        bye = fork.create_request("BYE", via=self._host.local_via(self.transport),
                                  headers=[("User-Agent", self._host.server_header())])
        self._host.send_request(self, bye, self._next_hop(fork))
        self._host.pump()

    def _send_cancel(self) -> None:
        assert self.invite is not None and self._destination is not None
        self._cancel_sent = True
        self._cancel_deadline = self._host.now() + 64 * self._host.t1
        cancel = make_cancel(self.invite, self._host.server_header())
        self._host.send_request(self, cancel, self._destination)

    def _fail(self, status: int, reason: str) -> None:
        cancelled = self.state is ClientState.CANCELLING
        self._cancel_deadline = None
        self._set_final(status, reason)
        self._emit(CallFailed(status, reason))
        self._terminate("cancelled" if cancelled else "failed")

    def _set_final(self, status: int, reason: str) -> None:
        self.final_status, self.final_reason = status, reason

    # ---- BYE --------------------------------------------------------------------------------

    def _send_bye(self, auth: Sequence[tuple[str, str]] = ()) -> None:
        assert self.dialog is not None
        headers = [("User-Agent", self._host.server_header()), *auth]
        request = self.dialog.create_request(
            "BYE", via=self._host.local_via(self.transport), headers=headers)
        self.state = ClientState.TERMINATING
        self._bye = request
        self._bye_key = self._host.send_request(self, request, self._next_hop(self.dialog))

    def _bye_response(self, response: Response) -> None:
        status = response.status
        if status < 200:
            return
        if status in CHALLENGE_HEADERS and self._bye_auth is not None and self._bye:
            values = response.headers.getall(CHALLENGE_HEADERS[status][0])
            if self._bye_auth.challenged(status, values):
                self._send_bye(self._bye_auth.headers("BYE", self._bye.uri))
                self._host.pump()
                return
        self.bye_completed()

    def _next_hop(self, dialog: Dialog) -> Destination:
        uri = dialog.next_hop()
        transport = (uri.transport or self.transport).lower()
        if is_ip_literal(uri.host):
            return Destination(transport, uri.host.strip("[]"), uri.port or 5060)
        assert self._destination is not None
        return self._destination  # names are not resolved in the dialog: the first hop

    # ---- requests from the peer -------------------------------------------------------------

    def _receive_info(self, request: Request) -> None:
        if request.body:
            try:
                parse_dtmf_info(request.content_type or "", request.body)
            except DtmfInfoError as exc:
                self._reply(request, exc.status_code, str(exc)[:80])
                return
        self._reply(request, 200)
        self._emit(InfoReceived(request))

    def _receive_reinvite(self, request: Request) -> None:
        if self.state is not ClientState.CONFIRMED or self._pending_2xx is not None:
            # §14.2: an INVITE while the previous one is unfinished.
            response = self._response(request, 500)
            response.headers.add("Retry-After", "1")
            self._send(response, request)
            return
        reoffer = answer_reoffer(request.body, self.local_sdp, self.on_reoffer, self.call_id)
        if reoffer.status != 200:
            self._reply(request, reoffer.status)  # the dialog and session stay as they were
            return
        offer, answer = reoffer.offer, reoffer.answer
        if offer is not None:
            self.remote_sdp = offer
        body = bytes(answer) if answer is not None else b""
        response = self._response(request, 200, body=body)
        self.local_sdp = body or self.local_sdp
        assert self.dialog is not None
        self.dialog.refresh_target(request)
        self._start_2xx(response, request)
        self._send(response, request)
        self._emit(ReinviteReceived(offer, answer))

    def _start_2xx(self, response: Response, request: Request) -> None:
        self._pending_2xx = Pending2xx.start(response, request, now=self._host.now(),
                                             t1=self._host.t1,
                                             reliable=self.transport != "udp")

    def _ack_timed_out(self) -> None:
        # §13.3.1.4: no ACK for our 2xx to the re-INVITE for 64*T1: end with BYE.
        self._pending_2xx = None
        if self.state is ClientState.CONFIRMED:
            self._end_reason = "ack timeout"
            self._send_bye()
            self._host.pump()

    def _response(self, request: Request, status: int, reason: str | None = None, *,
                  body: bytes = b"") -> Response:
        headers = [("Server", self._host.server_header())]
        if 100 < status < 300:
            headers.append(("Contact", self._host.local_contact(self.transport)))
        if status == 405:
            headers.append(("Allow", ALLOW))
        return make_response(request, status, reason, headers=headers, body=body,
                             content_type=SDP if body else None)

    def _reply(self, request: Request, status: int, reason: str | None = None) -> None:
        self._send(self._response(request, status, reason), request)

    def _send(self, response: Response, request: Request) -> None:
        assert self._destination is not None
        self._host.respond(response, self._destination, request)
        self._host.pump()

    # ---- common ------------------------------------------------------------------------------

    def _sdp_or_none(self, message: Request | Response) -> SessionDescription | None:
        try:
            return _parse_sdp(message)
        except SdpError as exc:
            log.warning("unparseable SDP: %s", exc, extra={"call_id": self.call_id})
            return None

    def _terminate(self, reason: str) -> None:
        if self.state is ClientState.TERMINATED:
            return
        self.state = ClientState.TERMINATED
        self._pending_2xx = None
        self._cancel_deadline = None
        if self.dialog is not None:
            self.dialog.terminate()
        self._host.session_ended(self)
        self._emit(SessionTerminated(reason))
        self._terminated.set()
