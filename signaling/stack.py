"""The asyncio SIP stack: transports + transaction layer + the UAS and UAC cores.

Glue in the aioquic `asyncio/protocol.py` manner: bytes from the transports are parsed
and fed to the `TransactionLayer`; `pump()` then drains the layer (messages to the
transports, events to the cores below) and re-arms the one `loop.call_at` timer on the
earliest deadline of the layer and of the sessions. The UAS core is small: validation
(§8.2, `validate.check_request`), OPTIONS (§11.2), CANCEL (§9.2), routing in-dialog
requests to their session by dialog ID (§12.2.2) and creating a `ServerSession` for each
new INVITE after sending 100 Trying. The UAC core is `invite()`, which builds and starts
a `ClientSession`, plus the routing of responses to it: by client transaction, and by
Call-ID and From tag for a 2xx whose transaction is gone (§13.2.2.4).

Given a `Registrar` and a `DigestAuthenticator`, the UAS core also answers REGISTER
(§10.3: authenticate, authorise the AOR, then the registrar's bindings; their expiry rides
on the same timer); given a MESSAGE handler, it hands it each MESSAGE (RFC 3428) and sends
the response it returns at once. `message()` sends a MESSAGE and waits for its final
response, answering one digest challenge per realm.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from email.utils import formatdate

from .auth import CHALLENGE_HEADERS, Credentials, DigestClient
from .authserver import DigestAuthenticator
from .client import ClientSession
from .dialog import DialogId
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
from .headers import NameAddr, Via, new_branch, new_call_id, new_tag
from .message import Headers, Request, Response, SipParseError, make_response, parse_message
from .registrar import Registrar
from .sdp import SessionDescription
from .session import ServerSession, SessionState
from .transaction import (
    Event,
    LocalProtocolError,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    is_ip_literal,
    response_destination,
    server_key,
)
from .transport import TcpTransport, UdpTransport, open_transports
from .uri import URI
from .validate import check_request

log = logging.getLogger("voxswitch.signaling.stack")

ALLOWED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"})
KNOWN = ALLOWED | frozenset(
    {"REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "PRACK", "UPDATE"}
)
ALLOW_HEADER = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
SDP_ONLY = frozenset({"application/sdp"})
# SIP INFO carries DTMF in these (the de-facto application/dtmf-relay and RFC 2976 kin).
INFO_TYPES = frozenset({"application/dtmf-relay", "application/dtmf", "application/sdp"})
TRANSPORT_NAMES = frozenset({"udp", "tcp"})
# RFC 3428 MESSAGE bodies we take; a MESSAGE's final response must come at once (§7).
MESSAGE_TYPES = frozenset({"text/plain"})
MESSAGE_TIMEOUT_S = 32.0  # bound on waiting for a MESSAGE's final response (Timer F)

Session = ServerSession | ClientSession
# An inbound MESSAGE handler: the request and its source in, the response to send out.
MessageHandler = Callable[[Request, Destination], Response]
WireObserver = Callable[[str, Request | Response, Destination], None]


class InvalidTarget(ValueError):
    """`invite()` was given a target or proxy it cannot call (malformed, not SIP, sips,
    an unknown transport)."""


class SipStack:
    """A SIP user agent on one host: UDP and TCP, INVITE sessions both ways for the app."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_invite: Callable[[ServerSession], None],
        user_agent: str = "voxswitch/0.1",
        t1: float = 0.5,
        advertise: str | None = None,
        registrar: Registrar | None = None,
        authenticator: DigestAuthenticator | None = None,
        on_message: MessageHandler | None = None,
    ) -> None:
        self.host = host
        self.udp_port = port
        self.tcp_port = port
        self.user_agent = user_agent
        # The address put in Via and Contact; a wildcard bind needs a real one.
        self.advertise = advertise or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
        config = TimerConfig(t1=t1)
        self.t1, self.t2 = config.t1, config.t2
        self.layer = TransactionLayer(config)
        self._on_invite = on_invite
        self._port = port
        self._udp: UdpTransport | None = None
        self._tcp: TcpTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[ServerSession, TransactionKey] = {}
        self._dialogs: dict[DialogId, Session] = {}
        self._invites: dict[TransactionKey, ServerSession] = {}
        self._bye_owners: dict[TransactionKey, ServerSession] = {}
        self._clients: dict[ClientSession, None] = {}  # live outgoing calls, in order
        self._client_tx: dict[TransactionKey, ClientSession] = {}
        self._client_calls: dict[tuple[str, str], ClientSession] = {}  # Call-ID, From tag
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        # REGISTER (§10.3) when a registrar is given, digest-authenticated by
        # `authenticator`; MESSAGE (RFC 3428) when a handler is given.
        self.registrar = registrar
        self.authenticator = authenticator
        self._on_message = on_message
        extra = {"REGISTER"} if registrar is not None else set()
        extra |= {"MESSAGE"} if on_message is not None else set()
        self.allowed = ALLOWED | frozenset(extra)
        self.allow_header = ", ".join(
            [*ALLOW_HEADER.split(", "), *sorted(extra, key=("REGISTER", "MESSAGE").index)])
        self._requests: dict[TransactionKey, asyncio.Future[Response | str]] = {}
        # Told of every message as it goes out ("out") or comes in parsed ("in"), with
        # the peer: the application's call timelines. It must not raise or block.
        self.on_wire: WireObserver | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._udp, self._tcp = await open_transports(self.host, self._port, self._receive)
        self._tcp.on_connect_failed = self._connect_failed
        self.udp_port, self.tcp_port = self._udp.port, self._tcp.port
        log.info(
            "sip listening on %s udp:%d tcp:%d",
            self.host,
            self.udp_port,
            self.tcp_port,
            extra={"host": self.host, "udp_port": self.udp_port, "tcp_port": self.tcp_port},
        )

    async def stop(self) -> None:
        """End live sessions (BYE / 503, best effort), flush, close the sockets."""
        for task in list(self._tasks):
            task.cancel()
        for session in list(self._sessions):
            session.stop()
        for client in list(self._clients):
            client.stop()
        self.pump()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            await self._tcp.close()
        self._udp = self._tcp = None
        await asyncio.sleep(0)  # let the transports' close callbacks run

    @property
    def sessions(self) -> list[ServerSession]:
        return list(self._sessions)

    @property
    def clients(self) -> list[ClientSession]:
        """The outgoing calls not terminated yet."""
        return list(self._clients)

    # ---- the UAC core ------------------------------------------------------------------------

    def invite(
        self,
        target: str,
        *,
        from_user: str,
        from_display: str | None = None,
        sdp: bytes | None,
        proxy: str | None = None,
        credentials: Credentials | None = None,
        transport: str = "udp",
        headers: Sequence[tuple[str, str]] = (),
    ) -> ClientSession:
        """Place a call: send an INVITE to `target` and return its session at once.

        `target` (`sip:user@host[:port][;transport=tcp]`) is the Request-URI and To.
        The INVITE goes to `proxy` (`sip:host[:port][;transport=...]`, also put in a
        loose Route, §8.1.2) when given, else to the target's host and port (5060 by
        default); that URI's transport parameter wins over `transport`. A host name is
        looked up with the loop's getaddrinfo (A records only: no RFC 3263 NAPTR/SRV);
        a failed lookup ends the call with CallFailed(408). From is `from_display`
        <sip:from_user@our advertised host> with a fresh tag; `sdp` is our offer (None:
        a late offer, answered in the ACK through `on_reoffer`). `credentials` answer
        401/407 challenges; `headers` are added to the INVITE as given. Raises
        InvalidTarget for a target or proxy that cannot be called.
        """
        if self._loop is None:
            raise RuntimeError("the stack is not started")
        uri = _parse_target(target, "target")
        hop = _parse_target(proxy, "proxy") if proxy else uri
        transport = (hop.transport or transport).lower()
        if transport not in TRANSPORT_NAMES:
            raise InvalidTarget(f"unsupported transport {transport!r} (udp or tcp)")
        if not from_user:
            raise ValueError("from_user must not be empty")
        route = []
        if proxy:
            params: dict[str, str | None] = {**hop.params, "lr": None}
            route.append(f"<{URI(hop.scheme, host=hop.host, port=hop.port, params=params)}>")
        local = NameAddr(from_display, URI("sip", user=from_user, host=self.advertise),
                         {"tag": new_tag()})
        session = ClientSession(
            self, uri, local=local, call_id=new_call_id(self.advertise), transport=transport,
            sdp=sdp, route=route, credentials=credentials, headers=headers)
        self._clients[session] = None
        self._client_calls[(session.call_id, session.local_tag)] = session
        log.info("outgoing call %s to %s", session.call_id, target,
                 extra={"call_id": session.call_id, "target": target, "via": str(hop)})
        port = hop.port or 5060
        if is_ip_literal(hop.host):
            session.start(Destination(transport, hop.host.strip("[]"), port))
            self.pump()
        else:
            task = self._loop.create_task(self._resolve(session, hop.host, port, transport))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return session

    async def _resolve(self, session: ClientSession, host: str, port: int,
                       transport: str) -> None:
        assert self._loop is not None
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
        try:
            infos = await self._loop.getaddrinfo(host, port, family=family, type=kind)
            address = str(infos[0][4][0])
        except (OSError, IndexError) as exc:
            session.start_failed(f"DNS lookup of {host} failed: {exc}")
        else:
            session.start(Destination(transport, address, port))
        self.pump()

    # ---- SessionHost -------------------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None, "the stack is not started"
        return self._loop.time()

    def respond(self, response: Response, destination: Destination,
                request: Request | None = None) -> None:
        try:
            sent = self.layer.send_response(response, self.now(), request)
        except LocalProtocolError:
            # The transaction already holds a final response the session did not send;
            # the session must not crash over it, nor take the stack down with it.
            log.exception("response refused by its transaction",
                          extra={"status": response.status, "call_id": response.call_id})
            return
        if not sent:
            # The transaction is gone (2xx retransmissions after Timer L): send it bare.
            self.layer.send_stateless(response, destination)

    def send_request(
        self, session: Session, request: Request, destination: Destination
    ) -> TransactionKey:
        tcp = self._tcp
        if (
            destination.transport == "tcp"
            and tcp is not None
            and destination.addr not in tcp.connections
            and session.remote_addr in tcp.connections
        ):
            # Reuse the connection the dialog came in on (RFC 5923 habit): peers behind
            # NAT or that do not listen on their Contact are still reachable.
            destination = Destination("tcp", *session.remote_addr)
        key = self.layer.send_request(request, destination, self.now())
        if isinstance(session, ClientSession):
            self._client_tx[key] = session
        else:
            self._bye_owners[key] = session
        return key

    def send_stateless(self, message: Request, destination: Destination) -> None:
        self.layer.send_stateless(message, destination)

    def abandon(self, key: TransactionKey) -> None:
        self.layer.abandon(key)

    def local_via(self, transport: str) -> Via:
        port = self.tcp_port if transport == "tcp" else self.udp_port
        params: dict[str, str | None] = {"branch": new_branch(), "rport": None}
        return Via(transport.upper(), self.advertise, port, params)

    def local_contact(self, transport: str) -> str:
        if transport == "tcp":
            return f"<sip:{self.advertise}:{self.tcp_port};transport=tcp>"
        return f"<sip:{self.advertise}:{self.udp_port}>"

    def server_header(self) -> str:
        return self.user_agent

    def dialog_created(self, session: Session) -> None:
        assert session.dialog is not None
        self._dialogs[session.dialog.id] = session

    def session_ended(self, session: Session) -> None:
        if session.dialog is not None:
            self._dialogs.pop(session.dialog.id, None)
        if isinstance(session, ClientSession):
            self._clients.pop(session, None)
            call = (session.call_id, session.local_tag)
            if self._loop is None:
                self._client_calls.pop(call, None)
            else:
                # Linger 64*T1: a 2xx that comes after we gave up (Timer B, no final
                # response after CANCEL) must still be ACKed and ended with BYE.
                self._loop.call_later(64 * self.t1, self._forget_call, call, session)
            return
        key = self._sessions.pop(session, None)
        if key is not None:
            self._invites.pop(key, None)

    def _forget_call(self, call: tuple[str, str], session: ClientSession) -> None:
        if self._client_calls.get(call) is session:
            del self._client_calls[call]

    # ---- the shuttle -------------------------------------------------------------------------

    def pump(self) -> None:
        """Drain the transaction layer: send its messages, handle its events, re-arm."""
        if self._pumping:
            return  # re-entered from an event handler: the outer loop drains the rest
        self._pumping = True
        try:
            while True:
                sent = self._send_all()
                event = self.layer.next_event()
                if event is None:
                    if not sent:
                        break
                    continue
                try:
                    self._dispatch(event)
                except Exception:
                    log.exception("error handling %s", type(event).__name__)
        finally:
            self._pumping = False
        self._arm_timer()

    def _send_all(self) -> bool:
        outgoing = self.layer.messages_to_send()
        for message, destination in outgoing:
            data = message.encode()
            if destination.transport == "tcp":
                if self._tcp is not None:
                    self._tcp.send(data, destination.addr)
            elif self._udp is not None:
                self._udp.send(data, destination.addr)
            self._observe("out", message, destination)
            log.debug(
                "sip sent %s",
                _first_line(message),
                extra={"dest": destination.addr, "transport": destination.transport},
            )
        return bool(outgoing)

    def _arm_timer(self) -> None:
        if self._loop is None or self._udp is None:
            return
        deadlines = [self.layer.get_timer(), *(s.get_timer() for s in self._sessions),
                     *(c.get_timer() for c in self._clients)]
        if self.registrar is not None:
            deadlines.append(self.registrar.get_timer())
        deadline = min((d for d in deadlines if d is not None), default=None)
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        # call_at may fire a hair early (clock resolution): count it as on time.
        now = max(self.now(), self._timer_at or 0.0)
        self._timer = self._timer_at = None
        try:
            self.layer.handle_timer(now)
            if self.registrar is not None:
                for gone in self.registrar.handle_timer(now):
                    log.info("registration expired: %s at %s", gone.aor, gone.uri,
                             extra={"aor": gone.aor, "contact": str(gone.uri)})
            due: list[Session] = [*self._sessions, *self._clients]
            for session in due:
                deadline = session.get_timer()
                if deadline is not None and deadline <= now:
                    session.handle_timer(now)
        except Exception:
            log.exception("error in timer handling")
        self.pump()

    def _observe(self, direction: str, message: Request | Response,
                 peer: Destination) -> None:
        if self.on_wire is None:
            return
        try:
            self.on_wire(direction, message, peer)
        except Exception:  # an observer's bug must not cost the call its signalling
            log.exception("wire observer failed", extra={"call_id": message.call_id})

    def _connect_failed(self, destination: Destination, error: str) -> None:
        self.layer.transport_failed(destination, error)
        self.pump()

    def _receive(self, data: bytes, source: Destination) -> None:
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._parse_failed(exc, source)
            return
        except Exception:
            log.exception("parser crashed", extra={"source": source.addr})
            return
        self._observe("in", message, source)
        try:
            if isinstance(message, Request):
                _stamp_via(message, source)
            self.layer.receive(message, source, self.now())
        except Exception:
            log.exception("error receiving message", extra={"source": source.addr})
        self.pump()

    def _parse_failed(self, exc: SipParseError, source: Destination) -> None:
        partial = exc.partial
        log.warning(
            "unparseable sip message from %s:%s: %s",
            *source.addr,
            exc.reason,
            extra={"source": source.addr, "error": exc.reason, "answered": partial is not None},
        )
        if not isinstance(partial, Request) or partial.method == "ACK":
            return  # nothing to answer with, or an ACK, which is never answered
        try:
            _stamp_via(partial, source)
            response = make_response(partial, exc.status_code, exc.reason)
            response.headers.add("Server", self.user_agent)
            self.layer.send_stateless(response, response_destination(partial, source))
        except Exception:
            log.exception("could not answer an unparseable request")
        self.pump()

    # ---- the UAS core ------------------------------------------------------------------------

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, CancelReceived):
            self._on_cancel(event)
        elif isinstance(event, ResponseReceived):
            self._on_response(event)
        elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            pending = self._requests.pop(event.key, None)
            if pending is not None and not pending.done():
                pending.set_result(_failure_reason(event))
            client = self._client_tx.get(event.key)
            if client is not None:
                client.transaction_failed(event.key, _failure_reason(event))
            owner = self._bye_owners.get(event.key)
            if owner is not None:
                owner.bye_completed()
        elif isinstance(event, TransactionTerminated):
            self._requests.pop(event.key, None)
            self._bye_owners.pop(event.key, None)
            self._client_tx.pop(event.key, None)

    def _on_response(self, event: ResponseReceived) -> None:
        response = event.response
        if event.key is None:
            # A 2xx to an INVITE whose transaction is gone: the call's, by Call-ID and
            # From tag (the To tag may be a new fork's).
            client = self._client_calls.get((response.call_id, response.from_.tag or ""))
            if client is not None:
                client.receive_response(response, None)
            return
        pending = self._requests.get(event.key)
        if pending is not None:
            if response.status >= 200 and not pending.done():
                pending.set_result(response)
            return
        client = self._client_tx.get(event.key)
        if client is not None:
            client.receive_response(response, event.key)
            return
        owner = self._bye_owners.get(event.key)
        if owner is not None and response.status >= 200:
            owner.bye_completed()

    def _reply(self, request: Request, status: int, reason: str | None = None) -> None:
        self._send_response(make_response(request, status, reason), request)

    def _send_response(self, response: Response, request: Request) -> None:
        if "Server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        if not self.layer.send_response(response, self.now(), request):
            log.warning("no transaction for response %s", response.status)

    def _on_request(self, event: RequestReceived) -> None:
        request = event.request
        if request.method == "ACK":
            session = self._dialogs.get(DialogId.of_incoming(request))
            if session is not None:
                session.receive_ack(request)
            return  # stray ACKs are absorbed
        accept = {"INFO": INFO_TYPES, "MESSAGE": MESSAGE_TYPES}.get(request.method, SDP_ONLY)
        problem = check_request(request, allowed=self.allowed, known=KNOWN, accept=accept)
        if problem is not None:
            self._send_response(problem, request)
            return
        if request.method == "OPTIONS":
            self._send_response(self._capabilities(request), request)
        elif request.method == "REGISTER":
            self._register(request, event.source)
        elif request.method == "MESSAGE":
            self._message(request, event.source)  # in a dialog or not (RFC 3428 §4)
        elif request.to.tag:
            session = self._dialogs.get(DialogId.of_incoming(request))
            if session is None:
                self._reply(request, 481)
            else:
                session.receive_request(request)
        elif request.method == "INVITE":
            self._new_session(request, event.source)
        else:
            self._reply(request, 481)  # BYE or INFO outside any dialog

    def _capabilities(self, request: Request) -> Response:
        """§11.2: what we would answer to an INVITE, minus the session."""
        headers = [
            ("Allow", self.allow_header),
            ("Accept", "application/sdp, text/plain" if self._on_message else "application/sdp"),
            ("Accept-Encoding", "identity"),
            ("Accept-Language", "en"),
            ("Supported", ""),
        ]
        return make_response(request, 200, headers=headers)

    # ---- REGISTER (§10.3) and MESSAGE (RFC 3428) ----------------------------------------

    def _register(self, request: Request, source: Destination) -> None:
        assert self.registrar is not None
        to_user = request.to.uri.user
        if self.authenticator is not None:
            decision = self.authenticator.check(request, source.host, self.now())
            if decision.response is not None:
                log.info("register %s from %s:%s: %d (%s)", to_user, *source.addr,
                         decision.response.status, decision.reason,
                         extra={"aor": to_user, "source": source.addr,
                                "status": decision.response.status})
                self._send_response(decision.response, request)
                return
            user = decision.user
        else:
            user = to_user
        if not user or user != to_user:
            # §10.3 step 5: an authenticated user registers only its own AOR
            self._reply(request, 403, "Forbidden")
            return
        response = self.registrar.register(request, user, self.now(), source)
        if response.status == 200:
            response.headers.add("Date", formatdate(usegmt=True))  # §10.3 step 8
        log.info("register %s from %s:%s: %d %s", user, *source.addr, response.status,
                 response.reason, extra={"aor": user, "source": source.addr,
                                         "status": response.status,
                                         "contacts": response.headers.getall("Contact")})
        self._send_response(response, request)

    def _message(self, request: Request, source: Destination) -> None:
        assert self._on_message is not None
        try:
            response = self._on_message(request, source)
        except Exception:
            log.exception("on_message failed", extra={"call_id": request.call_id})
            response = make_response(request, 500)
        self._send_response(response, request)

    async def message(
        self,
        target: str,
        body: bytes,
        *,
        from_user: str,
        to: str | None = None,
        content_type: str = "text/plain;charset=UTF-8",
        proxy: str | None = None,
        credentials: Credentials | None = None,
        transport: str = "udp",
        timeout: float = MESSAGE_TIMEOUT_S,
    ) -> tuple[int, str]:
        """Send a MESSAGE (RFC 3428) and return the (status, reason) of its final
        response; 408 when none came (Timer F, or `timeout`), 503 when the transport
        failed or the host did not resolve. `target` is the Request-URI, `to` the To
        (default: the target); `proxy`, `credentials` and `transport` as for `invite`.
        Raises InvalidTarget for a target or proxy that cannot be reached."""
        if self._loop is None:
            raise RuntimeError("the stack is not started")
        uri = _parse_target(target, "target")
        hop = _parse_target(proxy, "proxy") if proxy else uri
        transport = (hop.transport or transport).lower()
        if transport not in TRANSPORT_NAMES:
            raise InvalidTarget(f"unsupported transport {transport!r} (udp or tcp)")
        destination = await self._destination(hop, transport)
        if isinstance(destination, str):
            return 503, destination
        route_params: dict[str, str | None] = {**hop.params, "lr": None}
        route = f"<{URI(hop.scheme, host=hop.host, port=hop.port, params=route_params)}>"
        local = NameAddr(None, URI("sip", user=from_user, host=self.advertise),
                         {"tag": new_tag()})
        call_id = new_call_id(self.advertise)
        digest = DigestClient(credentials) if credentials is not None else None
        try:
            async with asyncio.timeout(timeout):
                return await self._send_message(
                    uri, body, destination, local, call_id, to, content_type,
                    route if proxy else None, transport, digest)
        except TimeoutError:
            return 408, f"no final response within {timeout:g} s"

    async def _send_message(self, uri: URI, body: bytes, destination: Destination,
                            local: NameAddr, call_id: str, to: str | None,
                            content_type: str, route: str | None, transport: str,
                            digest: DigestClient | None) -> tuple[int, str]:
        auth: list[tuple[str, str]] = []
        for cseq in range(1, 4):
            headers = Headers()
            headers.add("Via", str(self.local_via(transport)))
            headers.add("Max-Forwards", "70")
            headers.add("From", str(local))
            headers.add("To", to if to is not None else f"<{uri}>")
            headers.add("Call-ID", call_id)
            headers.add("CSeq", f"{cseq} MESSAGE")
            if route is not None:
                headers.add("Route", route)
            headers.add("User-Agent", self.user_agent)
            for name, value in auth:
                headers.add(name, value)
            headers.add("Content-Type", content_type)
            request = Request("MESSAGE", str(uri), headers, body)
            outcome = await self._transact(request, destination)
            if isinstance(outcome, str):
                status = 503 if outcome.startswith("transport") else 408
                return status, outcome
            status = outcome.status
            if status in CHALLENGE_HEADERS and digest is not None and digest.challenged(
                    status, outcome.headers.getall(CHALLENGE_HEADERS[status][0])):
                auth = digest.headers("MESSAGE", str(uri), body)
                continue
            return status, outcome.reason
        return 403, "credentials refused"  # pragma: no cover - challenged thrice

    async def _transact(self, request: Request, destination: Destination) -> Response | str:
        """Run one non-INVITE client transaction: its final response, or why none."""
        assert self._loop is not None
        key = self.layer.send_request(request, destination, self.now())
        future: asyncio.Future[Response | str] = self._loop.create_future()
        self._requests[key] = future
        self.pump()
        try:
            return await future
        finally:
            self._requests.pop(key, None)

    async def _destination(self, hop: URI, transport: str) -> Destination | str:
        """Where `hop` is: its IP literal, or an A lookup (a reason when it fails)."""
        assert self._loop is not None
        port = hop.port or 5060
        if is_ip_literal(hop.host):
            return Destination(transport, hop.host.strip("[]"), port)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
        try:
            infos = await self._loop.getaddrinfo(hop.host, port, family=family, type=kind)
            return Destination(transport, str(infos[0][4][0]), port)
        except (OSError, IndexError) as exc:
            return f"transport error: DNS lookup of {hop.host} failed: {exc}"

    def _new_session(self, invite: Request, source: Destination) -> None:
        try:
            offer = SessionDescription.parse(invite.body) if invite.body else None
        except Exception as exc:  # SdpError by contract; anything else still gets a 400
            self._reply(invite, 400, f"Malformed SDP: {exc}"[:100])
            return
        key = server_key(invite)
        reply_to = response_destination(invite, source)
        session = ServerSession(self, invite, source, reply_to, offer, new_tag())
        self._sessions[session] = key
        self._invites[key] = session
        # 100 Trying at once: the application may take seconds before it rings (§17.2.1).
        self._reply(invite, 100)
        log.info(
            "incoming call %s from %s:%s",
            invite.call_id,
            *source.addr,
            extra={"call_id": invite.call_id, "source": source.addr},
        )
        try:
            self._on_invite(session)
        except Exception:
            log.exception("on_invite failed", extra={"call_id": invite.call_id})
            if session.state is SessionState.EARLY:
                session.reject(500)

    def _on_cancel(self, event: CancelReceived) -> None:
        cancel = event.request
        problem = check_request(cancel, allowed=self.allowed, known=KNOWN)
        if problem is not None:
            self._send_response(problem, cancel)
            return
        if event.invite_key is None:
            self._reply(cancel, 481)
            return
        session = self._invites.get(event.invite_key)
        # §9.2: the 200 for the CANCEL and the 487 for the INVITE share the To tag.
        to_tag = session.local_tag if session is not None else None
        self._send_response(make_response(cancel, 200, to_tag=to_tag), cancel)
        if session is not None:
            session.receive_cancel()
            return
        tx = self.layer.get(event.invite_key)
        if isinstance(tx, ServerTransaction) and tx.state is TransactionState.PROCEEDING:
            self._send_response(make_response(tx.request, 487), tx.request)


def _parse_target(text: str, what: str) -> URI:
    try:
        uri = URI.parse(text.strip())
    except ValueError as exc:
        raise InvalidTarget(f"malformed {what} {text!r}: {exc}") from None
    if uri.scheme == "sips":
        raise InvalidTarget(f"{what} {text!r}: sips needs TLS, which the stack lacks")
    if uri.scheme != "sip" or not uri.host:
        raise InvalidTarget(f"{what} {text!r} is not a sip: URI with a host")
    return uri


def _failure_reason(event: TransactionTimedOut | TransportErrorOccurred) -> str:
    if isinstance(event, TransactionTimedOut):
        return f"no response: Timer {event.timer}"
    return f"transport error: {event.error}"


def _first_line(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} {message.uri}"
    return f"{message.status} {message.reason}"


def _stamp_via(request: Request, source: Destination) -> None:
    """§18.2.1 / RFC 3581: note the packet's source in the top Via (received, rport)."""
    vias = request.headers.getall("Via")
    top = Via.parse(vias[0])
    changed = False
    if top.host.strip("[]") != source.host:
        top.params["received"] = source.host
        changed = True
    if top.has_rport and top.rport is None:
        top.params["rport"] = str(source.port)
        changed = True
    if changed:
        request.headers.remove("Via")
        for value in reversed([str(top), *vias[1:]]):
            request.headers.prepend("Via", value)
