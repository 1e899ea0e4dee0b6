"""Events of the SIP transaction layer and of INVITE sessions.

Frozen dataclasses, named in the past tense for what happened (h11 style). The transaction
layer (`transaction.TransactionLayer.next_event`) yields the first group; a `ServerSession`
(incoming call) hands the second group to the application through its `on_event`
callback, and a `ClientSession` (outgoing call) the third group plus `ByeReceived`,
`InfoReceived`, `ReinviteReceived` and `SessionTerminated` of the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Request, Response
    from .sdp import SessionDescription


@dataclass(frozen=True)
class Destination:
    """Where a message came from or goes to: transport ("udp"|"tcp"), host, port."""

    transport: str
    host: str
    port: int

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True)
class TransactionKey:
    """Matches messages to a transaction (RFC 3261 §17.1.3 client, §17.2.3 server).

    Client keys leave `sent_by` empty: the branch was chosen by us and is unique.
    """

    branch: str
    method: str
    sent_by: str = ""
    server: bool = False


# ---- transaction layer ---------------------------------------------------------------------


@dataclass(frozen=True)
class RequestReceived:
    """A new request for the TU; `key` is None for requests outside any transaction
    (an ACK for a 2xx, §17.1.1.3 / §13.2.2.4)."""

    request: Request
    source: Destination
    key: TransactionKey | None


@dataclass(frozen=True)
class CancelReceived:
    """A CANCEL (its own non-INVITE server transaction `key`) and the INVITE server
    transaction it matches per §9.2, or None when none matches (the TU answers 481)."""

    request: Request
    source: Destination
    key: TransactionKey
    invite_key: TransactionKey | None


@dataclass(frozen=True)
class ResponseReceived:
    """A response for the TU; `key` is None for a stray 2xx to an INVITE whose client
    transaction is gone (the UAC core must still ACK it, §13.2.2.4)."""

    response: Response
    key: TransactionKey | None


@dataclass(frozen=True)
class TransactionTimedOut:
    """Timer B or F (client: no final response) or H (server: no ACK) fired."""

    key: TransactionKey
    timer: str


@dataclass(frozen=True)
class TransactionTerminated:
    key: TransactionKey


@dataclass(frozen=True)
class TransportErrorOccurred:
    key: TransactionKey
    error: str


# ---- INVITE server session (application facing) ------------------------------------------


@dataclass(frozen=True)
class CallCancelled:
    """The caller sent CANCEL before our final response; 487 has been sent (§9.2)."""


@dataclass(frozen=True)
class CallAcked:
    """The ACK for our 2xx arrived: the dialog is confirmed. `answer` is the SDP the
    ACK carried when the INVITE had no offer (our 200 was the offer)."""

    answer: SessionDescription | None = None


@dataclass(frozen=True)
class AckTimedOut:
    """No ACK for our 2xx within 64*T1 (§13.3.1.4); a BYE has been sent."""


@dataclass(frozen=True)
class ByeReceived:
    request: Request


@dataclass(frozen=True)
class InfoReceived:
    request: Request


@dataclass(frozen=True)
class ReinviteReceived:
    """A re-INVITE was answered 200: `offer` is the peer's (None for an offerless
    re-INVITE, whose answer comes in the ACK) and `answer` the SDP we sent."""

    offer: SessionDescription | None
    answer: SessionDescription | None


@dataclass(frozen=True)
class SessionTerminated:
    """The session is over; always the last event of a session. `reason`:

    - "remote bye": the peer sent BYE;
    - "local bye": our BYE (`hangup()` after the answer) got its response or timed out;
    - "cancelled": a server session's caller sent CANCEL; a client session ended after
      our `cancel()`/`hangup()` before the answer (487, any other final response, or a
      2xx that we ACKed and then ended with BYE);
    - "rejected": a server session answered with a final non-2xx (`reject()`);
    - "failed": a client session's INVITE got a final non-2xx, no response (Timer B),
      a transport error, or a challenge it could not answer (see `CallFailed`);
    - "ack timeout": the ACK for our 2xx (to the INVITE or a re-INVITE) never came;
    - "stack stopped": `SipStack.stop()` ended the session.
    """

    reason: str


# ---- INVITE client session (application facing) ------------------------------------------


@dataclass(frozen=True)
class CallProgressed:
    """A provisional response 101-199 to our INVITE (100 Trying is not reported).
    `sdp` is the SDP it carried (183 with SDP: early media), None when it had none or
    the SDP did not parse."""

    status: int
    reason: str
    sdp: SessionDescription | None = None


@dataclass(frozen=True)
class CallAnswered:
    """The first 2xx to our INVITE; the ACK has been sent already (§13.2.2.4).

    `sdp` is the peer's answer (the SDP of the 2xx, or that of an earlier 18x when the
    2xx has none), or its offer when our INVITE had none (our answer, from `on_reoffer`,
    went in the ACK). `sdp_error` says why there is no usable session description: the
    SDP did not parse, or there was none, or the late offer could not be answered. The
    call is up all the same: the application decides, and normally hangs up (BYE).
    """

    sdp: SessionDescription | None
    sdp_error: str | None = None


@dataclass(frozen=True)
class CallFailed:
    """Our INVITE ended without a call: a final response 300-699 (`status` and `reason`
    as received; 3xx are not followed), 487 after our CANCEL (also when the 2xx won the
    race: ACKed, then BYE sent), 408 when no response came (Timer B), the transport
    failed or no final response followed our CANCEL (the `reason` says which), 503 when
    the stack stopped. 401/407 come here when they could not be answered."""

    status: int
    reason: str
