"""SIP dialogs (RFC 3261 §12), sans-I/O.

A dialog is the peer-to-peer relationship an INVITE creates: identified by Call-ID plus
the two tags (§12), it holds the state needed to build requests inside it (route set,
remote target, local CSeq) and to vet the peer's (remote CSeq ordering, §12.2.2).
`Dialog.uas` builds it from an INVITE and our tagged response (§12.1.1), `Dialog.uac`
from our INVITE and the peer's response (§12.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .headers import NameAddr, Via, split_list
from .message import Headers, Request, Response
from .uri import URI


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class DialogId:
    """Call-ID, local tag, remote tag (§12)."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_incoming(cls, message: Request | Response) -> DialogId:
        """The ID a request from the peer names: its To tag is ours (§12.2.2)."""
        return cls(message.call_id, message.to.tag or "", message.from_.tag or "")


def _split_all(values: list[str]) -> list[str]:
    # Comma-joined header values (§7.3.1) become one entry each.
    return [item for value in values for item in split_list(value)]


def _contact_uri(message: Request | Response) -> URI | None:
    contacts = _split_all(message.headers.getall("Contact"))
    if not contacts:
        return None
    return NameAddr.parse(contacts[0]).uri


class Dialog:
    """One dialog's state. Mutated only through its methods."""

    def __init__(
        self,
        *,
        id: DialogId,
        local: NameAddr,
        remote: NameAddr,
        remote_target: URI,
        route_set: list[str],
        local_seq: int | None,
        remote_seq: int | None,
        secure: bool = False,
        state: DialogState = DialogState.CONFIRMED,
    ) -> None:
        self.id = id
        self.local = local  # our From in requests we send (carries the local tag)
        self.remote = remote  # their To in requests we send (carries the remote tag)
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.state = state

    @classmethod
    def uas(cls, request: Request, response: Response) -> Dialog:
        """§12.1.1: from the request and our response carrying the To tag (1xx or 2xx)."""
        # An RFC 2543 peer may leave Contact out (RFC 4475 §3.4 inv2543 must still be
        # served): its From address is then the only target it gave us.
        target = _contact_uri(request) or request.from_.uri
        local = response.to
        if not local.tag:
            raise ValueError("can't create a dialog: the response has no To tag")
        return cls(
            id=DialogId(request.call_id, local.tag, request.from_.tag or ""),
            local=local,
            remote=request.from_,
            remote_target=target,
            route_set=_split_all(request.headers.getall("Record-Route")),
            local_seq=None,  # §12.1.1: empty until we send a request
            remote_seq=request.cseq.seq,
            secure=request.ruri.scheme == "sips",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    @classmethod
    def uac(cls, request: Request, response: Response) -> Dialog:
        """§12.1.2: from our request and the peer's tagged response (1xx or 2xx)."""
        target = _contact_uri(response) or request.ruri
        remote = response.to
        records = _split_all(response.headers.getall("Record-Route"))
        return cls(
            id=DialogId(request.call_id, request.from_.tag or "", remote.tag or ""),
            local=request.from_,
            remote=remote,
            remote_target=target,
            route_set=list(reversed(records)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.ruri.scheme == "sips",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    # -- requests we send (§12.2.1.1)
    def create_request(
        self,
        method: str,
        *,
        via: Via,
        contact: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """A request inside the dialog; `via` is our top Via with a fresh branch.

        `cseq` is a CSeq number to use instead of the next one: the ACK for a 2xx carries
        its INVITE's (§13.2.2.4) and does not advance the local sequence.
        """
        if self.state is DialogState.TERMINATED:
            raise ValueError(f"can't create {method} in state {self.state.name}")
        if cseq is None:
            self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
            cseq = self.local_seq
        ruri, routes = self._request_uri_and_routes()
        hdrs = Headers()
        hdrs.add("Via", str(via))
        hdrs.add("Max-Forwards", "70")
        hdrs.add("From", str(self.local))
        hdrs.add("To", str(self.remote))
        hdrs.add("Call-ID", self.id.call_id)
        hdrs.add("CSeq", f"{cseq} {method}")
        for route in routes:
            hdrs.add("Route", route)
        if contact is not None:
            hdrs.add("Contact", contact)
        for name, value in headers or ():
            hdrs.add(name, value)
        if content_type is not None:
            hdrs.add("Content-Type", content_type)
        hdrs.add("Content-Length", str(len(body)))
        return Request(method, ruri, hdrs, body)

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return str(self.remote_target), []
        first = NameAddr.parse(self.route_set[0]).uri
        if "lr" in first.params:
            return str(self.remote_target), list(self.route_set)
        # Strict routing (RFC 2543 proxies): the first route becomes the Request-URI and
        # the remote target goes last in Route (§12.2.1.1).
        return str(first), [*self.route_set[1:], f"<{self.remote_target}>"]

    def next_hop(self) -> URI:
        """The URI whose host/port/transport the request is sent to (§8.1.2)."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri
        return self.remote_target

    # -- requests the peer sends (§12.2.2)
    def check_remote_request(self, request: Request) -> int | None:
        """Vet and record the CSeq of an in-dialog request: 500 when it is out of order
        (lower than the remote sequence number), otherwise None. ACK and CANCEL carry
        their INVITE's number and are not checked."""
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500
        self.remote_seq = seq
        return None

    def refresh_target(self, message: Request | Response) -> None:
        """A target refresh request (re-INVITE) that succeeded replaces the remote
        target with its Contact (§12.2.2, §12.2.1.2)."""
        target = _contact_uri(message)
        if target is not None:
            self.remote_target = target

    def confirm(self) -> None:
        if self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED
