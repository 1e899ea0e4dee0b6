"""Calls through trunks and the number inventory: where an INVITE goes, and forwarding.

Theory of operation. `TrunkCalls.dispatch` looks at every INVITE before the switch runs a
call flow for it:
- for an outbound trunk (the Request-URI host is a trunk's `outbound.domain`, or a trunk
  without a domain lists the sender's address): a sender the trunk does not list is
  refused 403 (logged), an inactive trunk 403, a trunk at its simultaneous_call_limit
  503; otherwise the dialled number goes to its assignment when it is ours (or to its
  call flow when it has a configuration of its own), else out through the outbound
  proxy (`[outbound] proxy`), with the trunk's max_post_dial_delay;
- for a provisioned number: CallFlows runs its call flow as before, ParkingLot is not
  answered (480, no callback: the spec ignores CallFlows settings for parked numbers),
  Trunks/{id} is forwarded to the trunk's inbound.destination (busy, 486, at its limit);
- anything else (unprovisioned and legacy numbers) is left to the switch, unchanged.

`ForwardSession` is an inbound call that rings its caller while it dials a bare leg with
the dialer (as TRANSFER does), answers the caller when the far end answers and bridges
the two channels in the media engine, then ends each side with the other. A far end that
cannot be reached (failed: 5xx, 4xx, transport errors; no-answer) moves to the trunk's
inbound.failover — another trunk, a number (its assignment, else the outbound proxy), a
SIP URI, or the API (CallFlows runs the number's call flow, ParkingLot parks) — and,
with none left, refuses the caller with the far end's status. Busy is not failed over.
A trunk recording `pre_connect` records the whole call from the first ring.

Messages: `message_route` is the messaging service's `trunk_route` hook; an outbound
MESSAGE to a number assigned to `Trunks/{id}` goes to that trunk's inbound.destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from control import logs
from control.callflow.loop import CallFlowLoop
from control.calls import Call, CallStatus, Direction, new_call_id
from control.dialing import DialError, DialRequest, Route
from control.flowconfig import CallFlowConfig
from control.inbound import InboundSession
from control.inventory import CALL_FLOWS, PARKING_LOT, Assignment, InventoryService
from control.recordings import RecordingRefused
from control.trunks import TWILIO_HEADER, address_allowed, destination_uri, recorded
from media.errors import MediaError

if TYPE_CHECKING:
    from control.dialer import Dialer
    from control.outbound import OutboundSession
    from control.services import SwitchServices
    from signaling.session import ServerSession

log = logging.getLogger("voxswitch.trunks")

RING_TIMEOUT_S = 60.0  # the most a forwarded leg rings
FAILOVER_HOPS = 4  # trunk → trunk → ... at most this many destinations per call
NO_FAILOVER = (CallStatus.BUSY, CallStatus.CANCELED)


@dataclass(frozen=True)
class Target:
    """Where a call goes next: a call flow, the parking lot, a trunk, or a SIP target."""

    kind: str  # "flow", "park", "trunk", "dial"
    number: str = ""
    trunk: dict[str, Any] | None = None
    uri: str = ""  # for "dial": a SIP URI or a number (the outbound proxy)


@dataclass(frozen=True)
class Outcome:
    """How a forwarded leg ended: `done` (bridged, or the caller left) or refused."""

    done: bool
    status: CallStatus = CallStatus.FAILED
    sip_status: int = 503


class TrunkCalls:
    """Routes INVITEs for trunks and provisioned numbers (see the module's docstring)."""

    def __init__(self, switch: SwitchServices, dialer: Dialer,
                 inventory: InventoryService) -> None:
        self._switch = switch
        self._dialer = dialer
        self.inventory = inventory

    async def dispatch(self, sip: ServerSession) -> bool:
        """Handle the INVITE here (True) or leave it to the switch's call flows (False)."""
        invite = sip.invite
        number = invite.ruri.user or ""
        source_ip = sip.remote_addr[0]
        trunk = await self.inventory.outbound_trunk(invite.ruri.host or "", source_ip)
        if trunk is not None:
            await self._outbound(sip, trunk, number, source_ip)
            return True
        assignment = await self.inventory.assignment(number)
        if assignment is None:
            return False
        await self.inventory.store.count_usage(assignment.no)
        if assignment.assigned_to == CALL_FLOWS:
            return False  # as for any number: its configuration, else the Default
        await self._run(sip, await self.target_for(assignment), None)
        return True

    async def message_route(self, api_no: str, destination: str) -> Route | None:
        """Where a MESSAGE to `destination` goes when it is a number of ours assigned to
        `Trunks/{id}`: that trunk's inbound destination, as a call to it would (None for
        any other number, and for an inactive or missing trunk: the message then takes
        the outbound proxy, as before)."""
        assignment = await self.inventory.assignment(destination)
        trunk_id = assignment.trunk_id if assignment is not None else None
        if assignment is None or trunk_id is None:
            return None
        trunk = await self.inventory.store.get_trunk(trunk_id)
        inbound = (trunk or {}).get("inbound") or {}
        if trunk is None or trunk.get("status") != "active" or not inbound.get("destination"):
            return None
        uri = destination_uri(inbound["destination"], assignment.no)
        log.info("trunk.message_route", extra={"trunk_id": trunk_id, "number": assignment.no,
                                               "target": uri, "api_no": api_no})
        return Route(uri, None, None)

    async def target_for(self, assignment: Assignment) -> Target:
        trunk_id = assignment.trunk_id
        if trunk_id is not None:
            trunk = await self.inventory.store.get_trunk(trunk_id)
            if trunk is not None:
                return Target("trunk", assignment.no, trunk=trunk)
            return Target("park", assignment.no)
        if assignment.assigned_to == PARKING_LOT:
            return Target("park", assignment.no)
        return Target("flow", assignment.no)

    async def _outbound(self, sip: ServerSession, trunk: dict[str, Any], number: str,
                        source_ip: str) -> None:
        trunk_id = trunk["trunk_id"]
        headers = {TWILIO_HEADER: sip.invite.headers.get(TWILIO_HEADER) or ""}
        if not address_allowed(trunk, source_ip, headers) or trunk.get("status") != "active":
            log.warning("trunk.refused", extra={"trunk_id": trunk_id, "source_ip": source_ip,
                                                "number": number, "sip_call_id": sip.call_id,
                                                "status": trunk.get("status")})
            sip.reject(403, "Forbidden")
            return
        assignment = await self.inventory.assignment(number)
        if assignment is not None:
            await self.inventory.store.count_usage(assignment.no)
            target = await self.target_for(assignment)
        elif await self._has_own_flow(number):
            target = Target("flow", number)  # a number configured here, never provisioned
        else:
            target = Target("dial", number, uri=number)
        await self._run(sip, target, trunk)

    async def _has_own_flow(self, number: str) -> bool:
        variants = [number]
        if number[1:].isdigit() or number.isdigit():
            variants.append(number[1:] if number.startswith("+") else "+" + number)
        for candidate in variants:
            if candidate and await self._switch.storage.get_config(candidate) is not None:
                return True
        return False

    async def _run(self, sip: ServerSession, target: Target,
                   via: dict[str, Any] | None) -> None:
        switch = self._switch
        invite = sip.invite
        caller = invite.from_.uri
        # the number's Sub Account, else the trunk's: its logs and recordings are theirs
        subaccount_id = await self.inventory.subaccount_of(invite.ruri.user or "") \
            or int((via or {}).get("subaccount_id") or 0)
        call = Call(id=new_call_id(switch.settings.node_id), direction=Direction.INBOUND,
                    subaccount_id=subaccount_id,
                    caller_no=caller.user or caller.host, api_no=invite.ruri.user or "",
                    app_id=switch.settings.app_id, sip_call_id=sip.call_id,
                    sip_domain=switch.settings.sip_domain or invite.ruri.host,
                    sip_forwarded_for=sip.remote_addr[0])
        switch.registry.add(call)
        logs.bind_call(call.id)  # this task is the call's: its lines carry its id
        log.info("call.new", extra={"call_id": call.id, "caller_no": call.caller_no,
                                    "api_no": call.api_no, "sip_call_id": sip.call_id,
                                    "route": target.kind, "via_trunk":
                                    via["trunk_id"] if via else None})
        session = ForwardSession(switch, sip, call, self, target, via)
        switch.sessions.add(session)
        try:
            await session.run()
        finally:
            switch.sessions.discard(session)


class ForwardSession(InboundSession):
    """An inbound call forwarded to a trunk's destination (or any target), with failover."""

    def __init__(self, switch: SwitchServices, sip: ServerSession, call: Call,
                 calls: TrunkCalls, target: Target, via: dict[str, Any] | None) -> None:
        super().__init__(switch, sip, call, None)  # type: ignore[arg-type]
        self._calls = calls
        self._target = target
        self._via = via  # the outbound trunk the INVITE came through
        self._held: list[str] = []  # trunks whose call limit counts this call
        self._recording = False

    async def run(self) -> None:
        self.sip.on_event = self._on_sip_event
        self.sip.on_reoffer = self._on_reoffer
        try:
            if self._via is not None and not await self._take(self._via, 503):
                return
            if not await self._prepare_media():
                return
            if self.ended:
                return
            if self._via is not None and recorded(self._via):
                await self._record()
            self.sip.ring()
            self.call.mark_ringing()
            await self._route(self._target)
        except Exception:
            self._crashed()
        finally:
            for trunk_id in self._held:
                self._calls.inventory.release_call(trunk_id, self.call.id)
            await self._finish()

    async def _take(self, trunk: dict[str, Any], over_limit: int) -> bool:
        """Count the call on `trunk` (and log it there); refuse it over the trunk's limit."""
        inventory = self._calls.inventory
        await inventory.store.add_trunk_call(self.call.id, trunk["trunk_id"],
                                             self.call.start_time)
        if not inventory.acquire(trunk, self.call.id):
            log.info("trunk.call_limit", extra={"call_id": self.call.id,
                                                "trunk_id": trunk["trunk_id"],
                                                "limit": trunk.get("simultaneous_call_limit")})
            if self.channel is None:  # not yet set up: refuse the INVITE as it stands
                self.call.sip_response_code = over_limit
                self._end_status = CallStatus.BUSY if over_limit == 486 else CallStatus.FAILED
                self._mark_ended(self._end_status, None)
                self.sip.reject(over_limit, "Busy Here" if over_limit == 486
                                else "Service Unavailable")
            else:
                await self.reject(over_limit, "Busy Here" if over_limit == 486
                                  else "Service Unavailable")
            return False
        self._held.append(trunk["trunk_id"])
        self.call.service = "sip_trunking"  # its log, and its forwarded legs' (_forward)
        if recorded(trunk):
            await self._record()
        return True

    async def _record(self) -> None:
        if self._recording or self.channel is None:
            return
        try:
            await self.switch.recordings.start(self, None, "trunk")
            self._recording = True
        except RecordingRefused as exc:
            log.warning("trunk.recording_refused", extra={"call_id": self.call.id,
                                                          "error": str(exc)})

    async def _route(self, target: Target | None) -> None:
        hops = 0
        while target is not None and not self.ended:
            hops += 1
            if target.kind == "flow":
                await self._run_number_flow(target.number or self.call.api_no)
                return
            if target.kind == "park":
                log.info("number.parked", extra={"call_id": self.call.id,
                                                 "number": target.number})
                await self.reject(480, "Temporarily Unavailable")
                return
            outcome, failover_from = await self._try(target)
            if outcome.done:
                return
            if outcome.status in NO_FAILOVER or hops >= FAILOVER_HOPS \
                    or failover_from is None:
                await self._refuse(outcome)
                return
            target = await self._failover(failover_from)
            if target is None:
                await self._refuse(outcome)
                return
            log.info("trunk.failover", extra={"call_id": self.call.id,
                                              "trunk_id": failover_from["trunk_id"],
                                              "to": target.kind, "number": target.number,
                                              "uri": target.uri})

    async def _try(self, target: Target) -> tuple[Outcome, dict[str, Any] | None]:
        """Forward to a trunk's destination or dial a SIP target; the outcome and the
        trunk whose failover applies."""
        if target.kind == "trunk":
            trunk = target.trunk
            assert trunk is not None
            if trunk.get("status") != "active":
                return Outcome(False, CallStatus.FAILED, 480), trunk
            if not await self._take(trunk, 486):
                return Outcome(True), None
            uri = destination_uri(trunk["inbound"]["destination"],
                                  target.number or self.call.api_no)
            return await self._forward(uri, None), trunk
        pdd = (self._via or {}).get("outbound", {}).get("max_post_dial_delay")
        return await self._forward(target.uri, pdd), None

    async def _failover(self, trunk: dict[str, Any]) -> Target | None:
        fo = (trunk.get("inbound") or {}).get("failover") or {}
        source, value = fo.get("source"), str(fo.get("value") or "")
        number = self.call.api_no
        if source == "trunk_id":
            other = await self._calls.inventory.store.get_trunk(value)
            return Target("trunk", number, trunk=other) if other else None
        if source == "phone_number":
            assignment = await self._calls.inventory.assignment(value)
            if assignment is not None:
                return await self._calls.target_for(assignment)
            return Target("dial", value, uri=value)
        if source == "sip_uri":
            return Target("dial", number, uri=value)
        if source == "api":
            return Target("flow" if value == CALL_FLOWS else "park", number)
        return None

    async def _refuse(self, outcome: Outcome) -> None:
        status = outcome.sip_status if 400 <= outcome.sip_status < 700 else 503
        if outcome.status is CallStatus.BUSY:
            status = 486
        await self.reject(status, None, outcome.status
                          if outcome.status in (CallStatus.BUSY, CallStatus.NO_ANSWER)
                          else CallStatus.FAILED)

    # ---- forwarding ----------------------------------------------------------------------

    async def _forward(self, to: str, post_dial_delay: float | None) -> Outcome:
        req = DialRequest(no=to, caller_id_no=self.call.caller_no or "anonymous",
                          timeout=RING_TIMEOUT_S, parent_call_id=self.call.id)
        try:
            leg = await self._calls._dialer.dial(req, flow=False)
        except DialError as exc:
            log.info("trunk.no_route", extra={"call_id": self.call.id, "to": to,
                                              "error": str(exc)})
            return Outcome(False, CallStatus.FAILED, 404)
        leg.call.service = self.call.service
        answered = asyncio.Event()
        leg.on_answered.append(lambda _: answered.set())
        if post_dial_delay:
            await self._wait(leg, answered, post_dial_delay)
            if not answered.is_set() and not leg.ended and not self.ended \
                    and leg.call.status is not CallStatus.RINGING:
                log.info("trunk.post_dial_delay", extra={"call_id": self.call.id,
                                                         "leg": leg.call.id,
                                                         "max_post_dial_delay_s":
                                                         post_dial_delay})
                await leg.hangup()
                await leg.wait_finished()
                return Outcome(False, CallStatus.FAILED, 503)
        await self._wait(leg, answered, None)
        if self.ended:  # the caller hung up (CANCEL) while it rang
            await leg.hangup()
            await leg.wait_finished()
            return Outcome(True)
        if not answered.is_set() or leg.ended:
            await leg.wait_finished()
            return Outcome(False, leg.call.status, leg.call.sip_response_code or 503)
        await self._bridge(leg)
        return Outcome(True)

    async def _wait(self, leg: OutboundSession, answered: asyncio.Event,
                    timeout: float | None) -> None:
        waiting = {asyncio.ensure_future(answered.wait()),
                   asyncio.ensure_future(leg.wait_ended()),
                   asyncio.ensure_future(self._ended.wait())}
        try:
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiting:
                w.cancel()

    async def _bridge(self, leg: OutboundSession) -> None:
        await self.answer()
        a, b = self.channel, leg.channel
        bridged = False
        if a is not None and b is not None:
            try:
                self.switch.engine.bridge(a, b)
                bridged = True
            except MediaError as exc:
                log.error("trunk.bridge_failed", extra={"call_id": self.call.id,
                                                        "error": str(exc)})
        log.info("trunk.bridged", extra={"call_id": self.call.id, "leg": leg.call.id,
                                         "bridged": bridged})
        if bridged:
            waiting = {asyncio.ensure_future(leg.wait_ended()),
                       asyncio.ensure_future(self._ended.wait())}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiting:
                    w.cancel()
            if a is not None and not a.closed:
                self.switch.engine.unbridge(a)
        if not self.ended:
            await self.hangup()
        if not leg.ended:
            await leg.hangup()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(leg.wait_finished(), 5.0)

    # ---- a call flow after all (failover to the API, or an outbound trunk's number) -----

    async def _run_number_flow(self, number: str) -> None:
        config: CallFlowConfig = await self.switch.config_for(number, self.call.subaccount_id)
        self.config = config
        self.call.custom_data = config.custom_data
        self.call.config = config.to_api()
        self.loop = CallFlowLoop(self.call, self, self.switch.callbacks, config)
        self.loop.ctx.conferences = self.switch.conferences
        self.loop.ctx.queues = self.switch.queues
        self.loop.ctx.switchboard = self.switch.switchboard
        self.loop.ctx.recordings = self.switch.recordings
        self.loop.ctx.detection = self.switch.detection
        self.loop.ctx.messaging = getattr(self.switch, "messaging", None)
        log.info("call.flow", extra={"call_id": self.call.id, "number": number,
                                     "callback": config.callback.url})
        await self._run_flow()
