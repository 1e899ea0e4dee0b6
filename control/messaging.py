"""SMS over SIP: messages in and out as SIP MESSAGE (RFC 3428), with the spec's message
objects, statuses, status webhooks and STOP/START opt-outs.

Outbound (`POST /Messages`, `POST /Dials/SMS`, the SMS action): `send` validates, stores
the message as `accepted` and returns it at once; a task then moves it on, sending the
status webhook (when one was given) at each step:

    accepted → queued → sending → delivered    the far end answered 200
                                → sent         202 Accepted: an intermediary took it
                                → undelivered  a final 3xx-6xx (error_code: the status)
                      → failed                 no route, not registered, no response,
                                               a transport error (error_code 404/480/408/503)
                      → opt-out                the far end sent STOP earlier

Where a message goes is `route`: a registered softphone of the destination (see
`control.softphones`), else `trunk_route` (the trunks' hook: a number of ours assigned to
`Trunks/{id}` goes to that trunk's inbound destination, see `TrunkCalls.message_route`),
else what a call to the destination would use (`control.dialing.route_for`:
SIP URIs directly, numbers through `[outbound] proxy`).

Inbound (`receive`, called by the SIP stack for each MESSAGE): the request is answered at
once — 200 when the text is taken, 400 for an empty or undecodable body, 413 over 1600
characters, 404 without a number — and a task stores it as `received`; a message for a
number the trunks take (`trunk_route`) is passed on to the trunk's destination, from its
sender (`forwarded`: where, and the far end's answer); any other applies STOP/START
and sends the number's `sms` callback (the configuration's `callback_sms`, else its
`callback`; the matching failover). When the callback answers with actions, its SMS
actions are sent as replies (from the number to the sender, unless they say otherwise);
other actions have no call to run on and are ignored, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from control.callflow.client import CallbackClient
from control.callflow.errors import CallbackEnded, CallFlowError
from control.calls import Call, iso, utcnow
from control.dialing import DialError, NoRoute, Route, route_for
from control.flowconfig import CallbackTarget, CallFlowConfig
from control.messagestore import MessageStore
from control.settings import Settings
from control.softphones import Softphones
from signaling.events import Destination
from signaling.message import Request, Response, make_response
from signaling.stack import InvalidTarget

log = logging.getLogger("voxswitch.messaging")

MAX_TEXT = 1600
GSM7_PART, UCS2_PART = 152, 66  # the spec's characters per billed part
STATUSES = ("accepted", "queued", "sending", "sent", "failed", "delivered", "undelivered",
            "opt-out", "receiving", "received")
FINAL = frozenset({"sent", "failed", "delivered", "undelivered", "opt-out", "received"})
STOP_WORDS = frozenset({"STOP"})
START_WORDS = frozenset({"START"})
CLOSE_GRACE_S = 2.0
# how SipStack.message says that no response came (Timer F, time_to_live, transport)
LOCAL_FAILURES = ("no response", "no final response", "transport error")
# GSM 03.38 default alphabet (basic set and extension table), for num_parts
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")

SendMessage = Callable[..., Awaitable[tuple[int, str]]]
ConfigLookup = Callable[[str], Awaitable[CallFlowConfig | None]]
SubAccountLookup = Callable[[str], Awaitable[int]]  # a number's Sub Account (0: the main)
# (api_no, destination) -> the trunk route for a message, or None when no trunk takes it
TrunkRoute = Callable[[str, str], Awaitable[Route | None]]


class MessageRefused(ValueError):
    """A message request that cannot be accepted; `field` names the bad parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OutboundMessage:
    """A validated message to send."""

    caller_no: str  # the destination (far end)
    api_no: str  # who it is from (our number)
    text: str
    external_id: str | None = None
    external_group_id: str | None = None
    time_to_live: int | None = None  # milliseconds
    status_webhook: str | None = None
    subaccount_id: int = 0


class Messenger(Protocol):
    """What the SMS action needs (control.callflow.context.FlowContext.messaging)."""

    async def sms(self, call: Call, no: str | None, caller_id_no: str | None,
                  text: str) -> dict[str, Any]: ...


def message_log(record: dict[str, Any]) -> dict[str, Any]:
    """A message as a call log of type sms (History/Logs/Calls?type=sms)."""
    final = record["status"] in FINAL
    return {
        "id": record["message_id"], "call_id": record["message_id"], "parent_call_id": None,
        "api_no": record["api_no"], "caller_no": record["caller_no"],
        "start_time": record["created_on"],
        "end_time": record["updated_on"] if final else None,
        "app_id": record["app_id"], "subaccount_id": record["subaccount_id"], "type": "sms",
        "direction": record["direction"], "hangup_end": None, "duration": 0,
        "status": record["status"], "error": record["error"],
        "error_code": record["error_code"], "detection": None, "connect_time_billed": 0,
        "connect_time_sec": 0,
        "origin_api": "Dials_SMS" if record["direction"] == "outbound" else "CallFlows",
        "text_message": record["text_message"], "config": record.get("config"), "sip": {},
        "charge": record.get("charge") or {"total": 0.0},
        "service": "programmable_messaging", "lrn": None,
    }


def num_parts(text: str) -> int:
    size = GSM7_PART if all(c in _GSM7 for c in text) else UCS2_PART
    return max(1, math.ceil(len(text) / size))


def new_message_id(direction: str) -> str:
    return ("SMO:" if direction == "outbound" else "SMI:") + str(uuid.uuid4())


def check_text(text: Any, field: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise MessageRefused(field, "is required: the message's text")
    if len(text) > MAX_TEXT:
        raise MessageRefused(field, f"is {len(text)} characters; at most {MAX_TEXT}")
    return text


class MessagingService:
    """Sends and receives messages; one per switch."""

    def __init__(self, settings: Settings, store: MessageStore, softphones: Softphones,
                 send: SendMessage, config_of: ConfigLookup,
                 callbacks: Callable[[], CallbackClient]) -> None:
        self.settings = settings
        self.store = store
        self.softphones = softphones
        self._send = send
        self._config_of = config_of
        self._callbacks = callbacks
        self.trunk_route: TrunkRoute | None = None  # the trunks' hook (see module doc)
        # whose an inbound message is: its number's Sub Account (the switch: the inventory)
        self.subaccount_of: SubAccountLookup | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- outbound --------------------------------------------------------------------

    async def route(self, api_no: str, destination: str) -> Route:
        """Where a message to `destination` goes; DialError (NoRoute) when nowhere."""
        found = self.softphones.locate(destination)
        if found is not None:
            return found
        if self.trunk_route is not None:
            found = await self.trunk_route(api_no, destination)
            if found is not None:
                return found
        return route_for(destination, self.settings)

    async def send(self, message: OutboundMessage) -> dict[str, Any]:
        """Store `message` as accepted and start delivering it; its record."""
        check_text(message.text, "text_message")
        try:
            await self.route(message.api_no, message.caller_no)
        except NoRoute:
            pass  # fails in delivery, with its status and webhook
        except DialError as exc:
            raise MessageRefused("caller_no", exc.message) from None
        now = utcnow()
        record = self._outbound_record(message, now)
        await self.store.save(record, now)
        log.info("sms.accepted", extra={"message_id": record["message_id"],
                                        "caller_no": message.caller_no,
                                        "api_no": message.api_no})
        self._spawn(self._deliver(message, record, now), record["message_id"])
        return dict(record)

    async def sms(self, call: Call, no: str | None, caller_id_no: str | None,
                  text: str) -> dict[str, Any]:
        """The SMS action: from the call's number to its caller unless told otherwise."""
        return await self.send(OutboundMessage(
            caller_no=no or call.caller_no, api_no=caller_id_no or call.api_no,
            text=check_text(text, "message"), subaccount_id=call.subaccount_id))

    def _outbound_record(self, m: OutboundMessage, now: datetime) -> dict[str, Any]:
        message_id = new_message_id("outbound")
        return {
            "service": "programmable_messaging", "type": "sms",
            "message_id": message_id, "created_on": iso(now), "updated_on": iso(now),
            "app_id": self.settings.app_id, "subaccount_id": m.subaccount_id,
            "caller_no": m.caller_no, "api_no": m.api_no, "direction": "outbound",
            "status": "accepted", "error": None, "error_code": None,
            "text_message": m.text, "external_id": m.external_id,
            "external_group_id": m.external_group_id, "num_parts": num_parts(m.text),
            "charge": {"total": 0.0}, "time_to_live": m.time_to_live,
            "uri": f"/v1/Messages/{message_id}", "config": None,
            "status_webhook": {"url": m.status_webhook} if m.status_webhook else None,
        }

    async def _deliver(self, m: OutboundMessage, record: dict[str, Any],
                       created: datetime) -> None:
        await self._set(record, created, m, "queued")
        if await self.store.opted_out(m.subaccount_id, m.caller_no):
            await self._set(record, created, m, "opt-out",
                            error=f"{m.caller_no} replied STOP; it takes messages again "
                                  "after it sends START")
            return
        try:
            route = await self.route(m.api_no, m.caller_no)
        except DialError as exc:
            code = 480 if "not registered" in exc.message else 404
            await self._set(record, created, m, "failed", code, exc.message)
            return
        await self._set(record, created, m, "sending")
        timeout = m.time_to_live / 1000 if m.time_to_live else None
        try:
            kwargs: dict[str, Any] = {"from_user": m.api_no, "proxy": route.proxy,
                                      "credentials": route.credentials}
            if timeout is not None:
                kwargs["timeout"] = timeout
            status, reason = await self._send(route.target, m.text.encode("utf-8"),
                                              **kwargs)
        except InvalidTarget as exc:
            await self._set(record, created, m, "failed", 404, str(exc))
            return
        log.info("sms.answered", extra={"message_id": record["message_id"],
                                        "target": route.target, "status": status,
                                        "reason": reason})
        if status == 200:
            await self._set(record, created, m, "delivered")
        elif 200 <= status < 300:
            await self._set(record, created, m, "sent")
        elif reason.startswith(LOCAL_FAILURES):  # the stack's: no answer came at all
            await self._set(record, created, m, "failed", status, reason)
        else:
            await self._set(record, created, m, "undelivered", status, reason)

    async def _set(self, record: dict[str, Any], created: datetime, m: OutboundMessage,
                   status: str, error_code: int | None = None,
                   error: str | None = None) -> None:
        record.update(status=status, updated_on=iso(utcnow()), error_code=error_code,
                      error=error)
        await self.store.save(record, created)
        log.info("sms.status", extra={"message_id": record["message_id"], "status": status,
                                      "error_code": error_code, "error": error})
        if m.status_webhook:
            body = {k: record[k] for k in (
                "service", "type", "app_id", "subaccount_id", "api_no", "caller_no",
                "direction", "message_id", "updated_on", "uri", "external_group_id",
                "external_id", "num_parts", "error", "error_code", "status")}
            await self._callbacks().notify(CallbackTarget(m.status_webhook), body,
                                           record["message_id"])

    # ---- inbound ---------------------------------------------------------------------

    def receive(self, request: Request, source: Destination) -> Response:
        """Answer an inbound MESSAGE at once; store it and run its callback after."""
        try:
            text = _text_of(request)
        except MessageRefused as exc:
            log.warning("sms.inbound_refused", extra={"sip_call_id": request.call_id,
                                                      "source": source.addr,
                                                      "error": exc.message})
            status = 413 if exc.field == "length" else 400
            return make_response(request, status, exc.message[:100])
        api_no = request.ruri.user or request.to.uri.user
        if not api_no:
            return make_response(request, 404, "Not Found (no number in the Request-URI)")
        sender = request.from_.uri
        caller_no = sender.user or sender.host
        now = utcnow()
        record = {
            "service": "programmable_messaging", "type": "sms",
            "message_id": new_message_id("inbound"), "created_on": iso(now),
            "updated_on": iso(now), "app_id": self.settings.app_id, "subaccount_id": 0,
            "caller_no": caller_no, "api_no": api_no, "direction": "inbound",
            "status": "received", "error": None, "error_code": None,
            "text_message": text, "external_id": None, "external_group_id": None,
            "num_parts": None, "charge": {"total": 0.0}, "time_to_live": None,
            "uri": "", "config": None, "status_webhook": None,
            "sip_forwarded_for": source.host,
        }
        record["uri"] = f"/v1/Messages/{record['message_id']}"
        log.info("sms.received", extra={"message_id": record["message_id"],
                                        "caller_no": caller_no, "api_no": api_no,
                                        "sip_call_id": request.call_id})
        self._spawn(self._inbound(record, now), str(record["message_id"]))
        return make_response(request, 200)

    async def _inbound(self, record: dict[str, Any], now: datetime) -> None:
        if self.trunk_route is not None:
            route = await self.trunk_route(record["caller_no"], record["api_no"])
            if route is not None:  # a trunk's number: its PBX takes it, not a callback
                await self._relay(record, route, now)
                return
        if self.subaccount_of is not None:
            record["subaccount_id"] = await self.subaccount_of(record["api_no"])
        config = await self._config_of(record["api_no"])
        record["config"] = config.to_api() if config is not None else None
        await self.store.save(record, now)
        word = record["text_message"].strip().upper()
        sub = record["subaccount_id"]
        if word in STOP_WORDS:
            await self.store.opt_out(sub, record["caller_no"], now)
            log.info("sms.opt_out", extra={"caller_no": record["caller_no"]})
        elif word in START_WORDS and await self.store.opt_in(sub, record["caller_no"]):
            log.info("sms.opt_in", extra={"caller_no": record["caller_no"]})
        if config is None:
            log.info("sms.no_callback", extra={"message_id": record["message_id"],
                                               "api_no": record["api_no"]})
            return
        target, failover = (config.callback_sms, config.callback_sms_failover) \
            if config.callback_sms is not None else (config.callback, config.callback_failover)
        body = self._callback_body(record, config)
        try:
            actions = await self._callbacks().fetch_actions(
                target, failover, body, connected=True, call_id=record["message_id"])
        except CallbackEnded:
            return
        except CallFlowError as exc:
            if "no 'actions'" not in exc.message and "not valid JSON" not in exc.message:
                log.warning("sms.callback_failed", extra={
                    "message_id": record["message_id"], "error": exc.message})
            return
        await self._replies(record, actions)

    async def _relay(self, record: dict[str, Any], route: Route, now: datetime) -> None:
        """Pass an inbound message for a trunk's number on to the trunk's destination,
        from its sender; the record keeps where it went and the far end's answer."""
        record["forwarded"] = {"target": route.target, "status_code": None, "reason": None}
        await self.store.save(record, now)
        try:
            status, reason = await self._send(
                route.target, record["text_message"].encode("utf-8"),
                from_user=record["caller_no"], proxy=route.proxy,
                credentials=route.credentials)
        except InvalidTarget as exc:
            status, reason = 404, str(exc)
        record["forwarded"].update(status_code=status, reason=reason)
        record["updated_on"] = iso(utcnow())
        await self.store.save(record, now)
        log.info("sms.forwarded", extra={"message_id": record["message_id"],
                                         "target": route.target, "status": status,
                                         "reason": reason})

    def _callback_body(self, record: dict[str, Any], config: CallFlowConfig) -> dict[str, Any]:
        geo = ("region", "country", "timezone", "postal_code", "city", "latitude",
               "longitude", "lata", "rate_center")
        body: dict[str, Any] = {k: record[k] for k in (
            "service", "type", "app_id", "subaccount_id", "api_no", "caller_no", "error",
            "error_code")}
        body.update({f"api_no_{g}": None for g in geo})
        body.update({f"caller_no_{g}": None for g in geo})
        body.update({k: record[k] for k in ("direction",)})
        body["custom_data"] = config.custom_data
        body["session_data"] = {}
        body.update({k: record[k] for k in (
            "message_id", "external_group_id", "external_id", "created_on", "num_parts",
            "uri", "text_message", "status")})
        body["sip_forwarded_for"] = record.get("sip_forwarded_for")
        return body

    async def _replies(self, record: dict[str, Any], actions: list[dict[str, Any]]) -> None:
        for i, action in enumerate(actions):
            kind = str(action.get("type", "")).upper()
            raw = action.get("params")
            params: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if kind != "SMS":
                log.warning("sms.action_ignored", extra={
                    "message_id": record["message_id"], "index": i, "type": kind,
                    "why": "an SMS callback has no call to run it on"})
                continue
            try:
                await self.send(OutboundMessage(
                    caller_no=str(params.get("no") or record["caller_no"]),
                    api_no=str(params.get("caller_id_no") or record["api_no"]),
                    text=check_text(params.get("message"), "message")))
            except MessageRefused as exc:
                log.warning("sms.reply_refused", extra={"message_id": record["message_id"],
                                                        "index": i, "error": str(exc)})

    # ---- lookups and lifecycle -------------------------------------------------------

    async def get(self, message_id: str) -> dict[str, Any] | None:
        record = await self.store.get(message_id)
        if record is not None:
            record.pop("sip_forwarded_for", None)
        return record

    def _spawn(self, coro: Awaitable[None], message_id: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sms.task_failed", extra={"message_id": message_id})

        task = asyncio.create_task(guarded(), name=f"sms-{message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let messages under way finish (briefly), then stop."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE_S)
        for task in list(self._tasks):
            task.cancel()


def _text_of(request: Request) -> str:
    """The MESSAGE's text/plain body as text (validation already took the type)."""
    if not request.body.strip():
        raise MessageRefused("body", "Empty MESSAGE body")
    charset = "utf-8"
    for param in (request.content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or "utf-8"
    try:
        text = request.body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise MessageRefused("body", f"Body is not {charset} text") from None
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        raise MessageRefused("body", "Body holds control characters")
    if len(text) > MAX_TEXT:
        raise MessageRefused("length", f"Message too long ({len(text)} characters; at most "
                                       f"{MAX_TEXT})")
    return text


__all__ = ["MessageRefused", "MessagingService", "Messenger", "OutboundMessage"]
