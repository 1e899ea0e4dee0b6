"""The `Dialer`: starts outbound calls for `POST /Dials/Connect`, DIAL and TRANSFER."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from control import logs
from control.calls import Call, Direction, new_call_id
from control.dialing import DialRequest, Route, route_for
from control.outbound import OutboundSession

if TYPE_CHECKING:
    from control.services import SwitchServices

log = logging.getLogger("voxswitch.dialer")


class Dialer:
    """Starts outbound calls for the switch: the call record at once, the SIP leg and
    its flow in a task of their own."""

    def __init__(self, switch: SwitchServices) -> None:
        self._switch = switch
        self._tasks: set[asyncio.Task[None]] = set()

    def route(self, no: str) -> Route:
        softphones = getattr(self._switch, "softphones", None)
        locate = softphones.locate if softphones is not None else None
        simulator = getattr(self._switch, "simulator", None)
        simulate = simulator.locate if simulator is not None else None
        return route_for(no, self._switch.settings, locate, simulate)

    def new_call(self, req: DialRequest) -> Call:
        s = self._switch.settings
        call = Call(id=new_call_id(s.node_id), direction=Direction.OUTBOUND,
                    caller_no=req.no, api_no=req.caller_id_no, app_id=s.app_id,
                    subaccount_id=req.subaccount_id, parent_call_id=req.parent_call_id,
                    session_data=req.session_data, sip_domain=s.sip_domain)
        return call

    async def dial(self, req: DialRequest, *, flow: bool = True) -> OutboundSession:
        """Start a call to `req.no`: with its own call flow (the config of
        `override_callback_config`, else of `caller_id_no`) when `flow`, else a bare leg
        for its owner to bridge (TRANSFER). Raises DialError before anything is sent
        when the destination is malformed or has no route."""
        route = self.route(req.no)
        config = None
        if flow:
            config = await self._switch.config_for(req.override_callback_config
                                                   or req.caller_id_no, req.subaccount_id)
        call = self.new_call(req)
        if config is not None:
            call.custom_data = config.custom_data
            call.config = config.to_api()
        session = OutboundSession(self._switch, call, config, route, req)
        self._switch.registry.add(call)
        callerids = getattr(self._switch, "callerids", None)  # usage of a caller ID
        if callerids is not None:
            callerids.count_call(req.subaccount_id, req.caller_id_no)
        log.info("call.dial", extra={"call_id": call.id, "no": req.no,
                                     "caller_id_no": req.caller_id_no, "target": route.target,
                                     "proxy": route.proxy, "parent_call_id": req.parent_call_id,
                                     "flow": flow})
        self._switch.sessions.add(session)
        task = asyncio.create_task(self._run(session), name=f"dial-{call.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return session

    async def _run(self, session: OutboundSession) -> None:
        logs.bind_call(session.call.id)  # this task is the call's: its lines carry its id
        try:
            await session.run()
        finally:
            self._switch.sessions.discard(session)

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return self._tasks
