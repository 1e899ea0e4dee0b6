"""The switch's outbound side for call flows (DIAL, TRANSFER) and the REST API
(Dials/Connect, Actions/Transfer): validation, dialling, transfers in progress.

It implements `control.callflow.context.Switchboard`; sessions hand it to their flows, so
actions reach dialling without importing the switch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from control.callflow.context import DialRefused
from control.calls import Call
from control.dialer import Dialer
from control.dialing import DialError, DialRequest, parse_dial
from control.transfer import Transfer

if TYPE_CHECKING:
    from control.services import SwitchServices
    from control.session import CallSession

log = logging.getLogger("voxswitch.switchboard")


class SwitchboardService:
    def __init__(self, switch: SwitchServices, dialer: Dialer) -> None:
        self._switch = switch
        self.dialer = dialer
        self._transfers: dict[str, Transfer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- REST ------------------------------------------------------------------------

    async def connect(self, req: DialRequest) -> Call:
        """Dials/Connect: start the call; its record at once (DialError up front)."""
        session = await self.dialer.dial(req, flow=True)
        return session.call

    # ---- call flows ------------------------------------------------------------------

    async def dial(self, parent: Call, params: dict[str, Any]) -> str:
        try:
            req = parse_dial(params, default_caller_id=parent.api_no)
            req = _with(req, parent_call_id=parent.id, subaccount_id=parent.subaccount_id)
            session = await self.dialer.dial(req, flow=True)
        except DialError as exc:
            log.info("dial.refused", extra={"call_id": parent.id, "error": str(exc)})
            raise DialRefused(str(exc)) from None
        return session.call.id

    async def transfer(self, call: Call, params: dict[str, Any]) -> str | None:
        owner = self._session(call)
        if call.id in self._transfers:
            raise DialRefused("a transfer is already in progress on this call; stop it first")
        try:
            req = parse_dial({"no": params.get("no"),
                              "caller_id_no": params.get("caller_id_no")},
                             default_caller_id=call.caller_no)
            req = _with(req, parent_call_id=call.id, subaccount_id=call.subaccount_id)
            leg = await self.dialer.dial(req, flow=False)
        except DialError as exc:
            log.info("transfer.refused", extra={"call_id": call.id, "error": str(exc)})
            raise DialRefused(str(exc)) from None
        transfer = Transfer(owner, leg, self._switch.engine,
                            ringback=not params.get("async"))
        self._transfers[call.id] = transfer
        task = asyncio.ensure_future(self._run(call.id, transfer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if params.get("async"):
            return None
        status = await asyncio.shield(task)
        return status

    async def stop_transfer(self, call: Call) -> bool:
        transfer = self._transfers.get(call.id)
        if transfer is None:
            return False
        await transfer.stop()
        return True

    # ---- internals -------------------------------------------------------------------

    async def _run(self, call_id: str, transfer: Transfer) -> str:
        try:
            return (await transfer.run()).value
        finally:
            self._transfers.pop(call_id, None)

    def _session(self, call: Call) -> CallSession:
        session = self._switch.find_session(call.id)
        if session is None or not call.is_live:
            raise DialRefused(f"call {call.id} has ended")
        return session  # type: ignore[return-value]


def _with(req: DialRequest, **changes: Any) -> DialRequest:
    return replace(req, **changes)

