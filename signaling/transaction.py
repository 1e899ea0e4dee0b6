"""SIP transactions (RFC 3261 §17), sans-I/O.

Theory of operation
-------------------
A transaction is a request plus the responses to it, up to and including the final one,
with the retransmission rules that make that exchange reliable over UDP. Four state
machines exist (§17.1.1 client INVITE, §17.1.2 client non-INVITE, §17.2.1 server INVITE,
§17.2.2 server non-INVITE); the INVITE ones include the RFC 6026 "Accepted" state, so that
2xx retransmissions and INVITE retransmissions after a 2xx are handled without a new
transaction being created.

Everything is driven the aioquic way: the owner feeds messages with `receive(msg, source,
now)`, API calls (`send_request`, `send_response`), and `handle_timer(now)` once the deadline
from `get_timer()` has passed; it then drains `messages_to_send()` (message plus
destination) and `next_event()`. Time is always a parameter; nothing here touches a socket
or a clock. Reliable transports (TCP) skip the retransmission timers (A, E, G) and the
wait-for-retransmission timers (D, I, J, K are zero), as §17 prescribes.

`TransactionLayer` holds the transactions keyed by `TransactionKey` and matches incoming
messages to them: responses by top Via branch + CSeq method (§17.1.3), requests by branch +
sent-by + method with ACK matching its INVITE (§17.2.3); a CANCEL gets its own transaction
and is reported with the key of the INVITE transaction it targets (§9.2).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum

from .events import (
    CancelReceived,
    Destination,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from .headers import Via
from .message import Headers, Request, Response, make_response

Message = Request | Response
Event = (
    RequestReceived
    | CancelReceived
    | ResponseReceived
    | TransactionTimedOut
    | TransactionTerminated
    | TransportErrorOccurred
)

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7: branches of RFC 3261 elements start with it


class LocalProtocolError(Exception):
    """Our own misuse of a transaction (h11 naming): a bug in the TU, not the peer's."""


@dataclass(frozen=True)
class TimerConfig:
    """§17.1.1.1 timer values. `trying` is the §17.2.1 200 ms after which the server INVITE
    transaction sends 100 Trying itself (None: never); `d` is Timer D (≥ 32 s over UDP)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0
    trying: float | None = 0.2


class TransactionState(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"  # RFC 6026
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


# ---- matching helpers ------------------------------------------------------------------------


def sent_by(via: Via) -> str:
    return f"{via.host.lower()}:{via.port or 5060}"


def _branch_or_2543(message: Message) -> str:
    branch = message.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return branch
    # RFC 2543 peers have no usable branch (§17.2.3 last paragraphs): fall back to the
    # dialog-identifying fields that an ACK or CANCEL shares with its INVITE.
    from_tag = message.from_.tag or ""
    return f"2543:{message.call_id};{from_tag};{message.cseq.seq};{branch}"


def server_key(request: Request) -> TransactionKey:
    """§17.2.3: branch + sent-by + method, where an ACK matches the INVITE."""
    method = "INVITE" if request.method == "ACK" else request.method
    return TransactionKey(_branch_or_2543(request), method, sent_by(request.top_via), True)


def client_key(message: Message) -> TransactionKey:
    """§17.1.3: our branch in the top Via + the CSeq method."""
    return TransactionKey(message.branch or "", message.cseq.method)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def response_destination(request: Request, source: Destination) -> Destination:
    """Where responses to `request` go (§18.2.2, RFC 3581).

    TCP: back over the connection it came on. UDP with rport: the packet's source.
    UDP with an IP-literal sent-by: the source IP and the Via port (default 5060).
    Otherwise the packet's source too: names are never resolved here.
    """
    if source.transport != "udp":
        return source
    via = request.top_via
    if via.has_rport or not is_ip_literal(via.host):
        return source
    return Destination("udp", source.host, via.port or 5060)


# ---- transactions ----------------------------------------------------------------------------


class Transaction:
    """Common machinery: named timers with absolute deadlines, output and event queues."""

    initial_state = TransactionState.TERMINATED

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        destination: Destination,
        config: TimerConfig,
    ) -> None:
        self.key = key
        self.request = request
        self.destination = destination
        self.config = config
        self.reliable = destination.transport != "udp"
        self.state = self.initial_state
        self.last_response: Response | None = None
        self._timers: dict[str, float] = {}
        self._outgoing: list[Message] = []
        self._events: deque[Event] = deque()

    # -- drained by the owner
    def get_timer(self) -> float | None:
        return min(self._timers.values(), default=None)

    def messages_to_send(self) -> list[Message]:
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- inputs
    def start(self, now: float) -> None:
        pass

    def receive(self, message: Message, now: float) -> None:
        raise NotImplementedError

    def handle_timer(self, now: float) -> None:
        # Fire due timers in deadline order; a handler may arm a timer that is already due
        # (the zero-length D/I/J/K of reliable transports), hence the loop.
        while self._timers:
            name, deadline = min(self._timers.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._timers[name]
            getattr(self, f"_timer_{name}")(now)

    def transport_error(self, error: str) -> None:
        """§17.1.4 / §17.2.4: a transport failure ends the transaction and informs the TU."""
        if self.state is not TransactionState.TERMINATED:
            self._events.append(TransportErrorOccurred(self.key, error))
            self._terminate()

    # -- helpers
    def _send(self, message: Message) -> None:
        self._outgoing.append(message)

    def _set_timer(self, name: str, deadline: float) -> None:
        self._timers[name] = deadline

    def _cancel_timers(self, *names: str) -> None:
        for name in names:
            self._timers.pop(name, None)

    def _illegal(self, what: str) -> LocalProtocolError:
        return LocalProtocolError(f"can't handle {what} in state {self.state.name}")

    def _timeout(self, timer: str) -> None:
        self._events.append(TransactionTimedOut(self.key, timer))
        self._terminate()

    def _terminate(self, now: float = 0.0) -> None:
        if self.state is not TransactionState.TERMINATED:
            self.state = TransactionState.TERMINATED
            self._timers.clear()
            self._events.append(TransactionTerminated(self.key))

    # Timers that just end the transaction: D, I, J, K, L, M.
    _timer_D = _timer_I = _timer_J = _timer_K = _timer_L = _timer_M = _terminate


def same_hop_request(invite: Request, method: str, to: str,
                     user_agent: str | None = None) -> Request:
    """A request that travels the INVITE's own hop (its ACK for a non-2xx, its CANCEL):
    the INVITE's Request-URI, top Via alone (same branch), Route set, From, Call-ID and
    CSeq number, with `method` and the To header `to`."""
    headers = Headers()
    headers.add("Via", str(invite.top_via))
    for route in invite.headers.getall("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", to)
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.seq} {method}")
    if user_agent:
        headers.add("User-Agent", user_agent)
    headers.add("Content-Length", "0")
    return Request(method, invite.uri, headers)


def make_ack(invite: Request, response: Response) -> Request:
    """ACK for a non-2xx final response (§17.1.1.3); To from the response (it carries
    the tag)."""
    return same_hop_request(invite, "ACK", response.headers.get("To") or "")


class ClientInviteTransaction(Transaction):
    """§17.1.1 (figure 5) with RFC 6026's Accepted state. Timers A, B, D, M."""

    initial_state = TransactionState.CALLING

    def start(self, now: float) -> None:
        self._send(self.request)
        if not self.reliable:
            self._interval_a = self.config.t1
            self._set_timer("A", now + self._interval_a)
        self._set_timer("B", now + 64 * self.config.t1)

    def receive(self, message: Message, now: float) -> None:
        assert isinstance(message, Response)
        status, state = message.status, self.state
        if state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            self._cancel_timers("A", "B")  # B only runs in Calling (§17.1.1.2)
            self._events.append(ResponseReceived(message, self.key))
            if status < 200:
                self.state = TransactionState.PROCEEDING
            elif status < 300:
                # RFC 6026 §8.4: stay around for Timer M to pass 2xx retransmissions up.
                self.state = TransactionState.ACCEPTED
                self._set_timer("M", now + 64 * self.config.t1)
            else:
                self.state = TransactionState.COMPLETED
                self._ack = make_ack(self.request, message)
                self._send(self._ack)
                self._set_timer("D", now + (0.0 if self.reliable else self.config.d))
        elif state is TransactionState.ACCEPTED:
            if 200 <= status < 300:
                self._events.append(ResponseReceived(message, self.key))
        elif state is TransactionState.COMPLETED and status >= 300:
            self._send(self._ack)  # a retransmitted final response: ACK again, TU not told

    def _timer_A(self, now: float) -> None:
        # Timer A doubles without the T2 cap that non-INVITE Timer E has (§17.1.1.2).
        self._send(self.request)
        self._interval_a *= 2
        self._set_timer("A", now + self._interval_a)

    def _timer_B(self, now: float) -> None:
        self._timeout("B")


class ClientNonInviteTransaction(Transaction):
    """§17.1.2 (figure 6). Timers E, F, K."""

    initial_state = TransactionState.TRYING

    def start(self, now: float) -> None:
        self._send(self.request)
        if not self.reliable:
            self._interval_e = self.config.t1
            self._set_timer("E", now + self._interval_e)
        self._set_timer("F", now + 64 * self.config.t1)

    def receive(self, message: Message, now: float) -> None:
        assert isinstance(message, Response)
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return  # Completed absorbs retransmitted finals
        self._events.append(ResponseReceived(message, self.key))
        if message.status < 200:
            self.state = TransactionState.PROCEEDING
        else:
            self.state = TransactionState.COMPLETED
            self._cancel_timers("E", "F")
            self._set_timer("K", now + (0.0 if self.reliable else self.config.t4))

    def _timer_E(self, now: float) -> None:
        self._send(self.request)
        if self.state is TransactionState.TRYING:
            self._interval_e = min(2 * self._interval_e, self.config.t2)
        else:
            self._interval_e = self.config.t2  # Proceeding: every T2
        self._set_timer("E", now + self._interval_e)

    def _timer_F(self, now: float) -> None:
        self._timeout("F")


class ServerTransaction(Transaction):
    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        destination: Destination,
        config: TimerConfig,
        source: Destination,
    ) -> None:
        super().__init__(key, request, destination, config)
        self.source = source

    def send(self, response: Response, now: float) -> None:
        raise NotImplementedError


class ServerInviteTransaction(ServerTransaction):
    """§17.2.1 (figure 7) with RFC 6026's Accepted state. Timers G, H, I, L and the
    200 ms "Trying" timer."""

    initial_state = TransactionState.PROCEEDING

    def start(self, now: float) -> None:
        if self.config.trying is not None:
            self._set_timer("trying", now + self.config.trying)

    def receive(self, message: Message, now: float) -> None:
        assert isinstance(message, Request)
        state = self.state
        if message.method == "INVITE":
            # A retransmission: repeat the latest response (Proceeding: the provisional,
            # Completed: the final). Accepted absorbs it (RFC 6026 §7.1): the TU
            # retransmits the 2xx on its own schedule.
            in_repeat_state = state in (TransactionState.PROCEEDING, TransactionState.COMPLETED)
            if in_repeat_state and self.last_response is not None:
                self._send(self.last_response)
        elif message.method == "ACK":
            if state is TransactionState.COMPLETED:
                self.state = TransactionState.CONFIRMED
                self._cancel_timers("G", "H")
                self._set_timer("I", now + (0.0 if self.reliable else self.config.t4))
            elif state is TransactionState.ACCEPTED:
                # An ACK for the 2xx that reused the INVITE's branch: the TU's business.
                self._events.append(RequestReceived(message, self.source, None))

    def send(self, response: Response, now: float) -> None:
        status, state = response.status, self.state
        retransmit_2xx = state is TransactionState.ACCEPTED and 200 <= status < 300
        if state is not TransactionState.PROCEEDING and not retransmit_2xx:
            raise self._illegal(f"sending {status}")
        self._cancel_timers("trying")
        self.last_response = response
        self._send(response)
        if status < 200 or retransmit_2xx:
            return
        if status < 300:
            self.state = TransactionState.ACCEPTED
            self._set_timer("L", now + 64 * self.config.t1)
        else:
            self.state = TransactionState.COMPLETED
            if not self.reliable:
                self._interval_g = self.config.t1
                self._set_timer("G", now + self._interval_g)
            self._set_timer("H", now + 64 * self.config.t1)

    def _timer_trying(self, now: float) -> None:
        # §17.2.1: the TU has not sent a provisional response within 200 ms.
        if self.state is TransactionState.PROCEEDING and self.last_response is None:
            self.last_response = make_response(self.request, 100)
            self._send(self.last_response)

    def _timer_G(self, now: float) -> None:
        assert self.last_response is not None
        self._send(self.last_response)
        self._interval_g = min(2 * self._interval_g, self.config.t2)
        self._set_timer("G", now + self._interval_g)

    def _timer_H(self, now: float) -> None:
        self._timeout("H")  # the ACK never came (§17.2.1)


class ServerNonInviteTransaction(ServerTransaction):
    """§17.2.2 (figure 8). Timer J."""

    initial_state = TransactionState.TRYING

    def receive(self, message: Message, now: float) -> None:
        # Retransmissions: Trying discards them, later states repeat the last response.
        if self.state is not TransactionState.TRYING and self.last_response is not None:
            self._send(self.last_response)

    def send(self, response: Response, now: float) -> None:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            raise self._illegal(f"sending {response.status}")
        self.last_response = response
        self._send(response)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
        else:
            self.state = TransactionState.COMPLETED
            self._set_timer("J", now + (0.0 if self.reliable else 64 * self.config.t1))


# ---- the layer -------------------------------------------------------------------------------


class TransactionLayer:
    """All transactions of one SIP element: matching, creation and the drain interface."""

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config or TimerConfig()
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._outgoing: list[tuple[Message, Destination]] = []
        self._events: deque[Event] = deque()
        # Deadlines as a lazy heap: an entry is live while its transaction still exists
        # and still has that deadline scheduled; stale entries are skipped when popped.
        self._deadlines: list[tuple[float, int, TransactionKey]] = []
        self._scheduled: dict[TransactionKey, float] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._transactions)

    def get(self, key: TransactionKey) -> Transaction | None:
        return self._transactions.get(key)

    # -- inputs
    def receive(self, message: Message, source: Destination, now: float) -> None:
        if isinstance(message, Request):
            self._receive_request(message, source, now)
        else:
            self._receive_response(message, now)

    def send_request(
        self, request: Request, destination: Destination, now: float
    ) -> TransactionKey:
        """Start a client transaction for `request` (which carries our top Via)."""
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction; use send_stateless")
        key = client_key(request)
        if key in self._transactions:
            raise LocalProtocolError(f"branch {key.branch} already in use")
        tx_class = (
            ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        )
        tx = tx_class(key, request, destination, self.config)
        self._transactions[key] = tx
        tx.start(now)
        self._collect(tx)
        return key

    def send_response(self, response: Response, now: float,
                      request: Request | None = None) -> bool:
        """Hand a response to the server transaction it belongs to; False if none does.

        Pass the `request` it answers when known: a request whose CSeq method differs
        from its own (answered 400) must not be matched by the response's CSeq method,
        which would name another transaction (§17.2.3 keys on the request's method).
        """
        key = server_key(request) if request is not None else self._response_key(response)
        tx = self._transactions.get(key)
        if not isinstance(tx, ServerTransaction) or tx.state is TransactionState.TERMINATED:
            return False
        tx.send(response, now)
        self._collect(tx)
        return True

    def send_stateless(self, message: Message, destination: Destination) -> None:
        """Outside any transaction: ACK for 2xx, 2xx retransmissions by the UAS core."""
        self._outgoing.append((message, destination))

    def transport_error(self, key: TransactionKey, error: str) -> None:
        tx = self._transactions.get(key)
        if tx is not None:
            tx.transport_error(error)
            self._collect(tx)

    def transport_failed(self, destination: Destination, error: str) -> None:
        """The transport could not reach `destination` (a TCP connect failed): every
        client transaction sending there fails (§17.1.4)."""
        for tx in list(self._transactions.values()):
            if not isinstance(tx, ServerTransaction) and tx.destination == destination:
                tx.transport_error(error)
                self._collect(tx)

    def abandon(self, key: TransactionKey) -> None:
        """Destroy a client transaction the TU gave up on: an INVITE whose final response
        never followed our CANCEL (§9.1: after 64*T1)."""
        tx = self._transactions.get(key)
        if tx is not None:
            tx._terminate()
            self._collect(tx)

    def handle_timer(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._scheduled.get(key) != deadline:
                continue  # stale: rescheduled or gone
            del self._scheduled[key]
            tx = self._transactions[key]
            tx.handle_timer(now)
            self._collect(tx)

    # -- outputs
    def get_timer(self) -> float | None:
        heap = self._deadlines
        while heap and self._scheduled.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def messages_to_send(self) -> list[tuple[Message, Destination]]:
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- internals
    def _response_key(self, response: Response) -> TransactionKey:
        # A response copies the request's top Via and CSeq (§8.2.6.2), so it yields the
        # same server key as its request.
        branch = _branch_or_2543(response)
        return TransactionKey(branch, response.cseq.method, sent_by(response.top_via), True)

    def _receive_request(self, request: Request, source: Destination, now: float) -> None:
        key = server_key(request)
        tx = self._transactions.get(key)
        if tx is not None:
            tx.receive(request, now)
            self._collect(tx)
            return
        if request.method == "ACK":
            self._events.append(RequestReceived(request, source, None))
            return
        tx_class = (
            ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        )
        destination = response_destination(request, source)
        new = tx_class(key, request, destination, self.config, source)
        self._transactions[key] = new
        new.start(now)
        if request.method == "CANCEL":
            # §9.2: the CANCEL matches the INVITE with the same branch and sent-by.
            invite_key = replace(key, method="INVITE")
            found = invite_key if invite_key in self._transactions else None
            self._events.append(CancelReceived(request, source, key, found))
        else:
            self._events.append(RequestReceived(request, source, key))
        self._collect(new)

    def _receive_response(self, response: Response, now: float) -> None:
        tx = self._transactions.get(client_key(response))
        if tx is not None and not isinstance(tx, ServerTransaction):
            tx.receive(response, now)
            self._collect(tx)
        elif response.cseq.method == "INVITE" and 200 <= response.status < 300:
            # §17.1.1.2 / RFC 6026: a 2xx whose transaction is gone still goes to the TU.
            self._events.append(ResponseReceived(response, None))
        # Other stray responses are discarded (§18.1.2).

    def _collect(self, tx: Transaction) -> None:
        for message in tx.messages_to_send():
            self._outgoing.append((message, tx.destination))
        while (event := tx.next_event()) is not None:
            self._events.append(event)
        if tx.state is TransactionState.TERMINATED:
            self._transactions.pop(tx.key, None)
            self._scheduled.pop(tx.key, None)
            return
        deadline = tx.get_timer()
        if deadline is None:
            self._scheduled.pop(tx.key, None)
        elif self._scheduled.get(tx.key) != deadline:
            self._scheduled[tx.key] = deadline
            heapq.heappush(self._deadlines, (deadline, next(self._sequence), tx.key))
