"""What every handler may use: the services behind the API, found through the request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from control.calls import Call, CallRegistry
from control.conferences import ConferenceService
from control.queues import QueueService
from control.recordings import RecordingService
from control.storage import Storage

if TYPE_CHECKING:
    from control.callerids import CallerIdService
    from control.inventory import InventoryService
    from control.messaging import MessagingService
    from control.pstnsim import PstnSimulator
    from control.softphones import Softphones
    from control.switchboard import SwitchboardService
    from control.taps import TapService
    from control.timeline import TimelineStore
    from control.webrtc import WebRtcGateway


@dataclass
class ApiContext:
    """The services the API reads and steers; one per application."""

    api_key: str
    registry: CallRegistry
    storage: Storage
    app_id: str
    # live conferences (LiveCalls/Conferences); None: the API shows none
    conferences: ConferenceService | None = None
    # call queues (LiveCalls/Queues); None: the API shows none
    queues: QueueService | None = None
    # placing calls (Dials/Connect, Actions/Transfer); None: the API places none
    switchboard: SwitchboardService | None = None
    # call recordings (Actions/Recording, History/Recordings); None: the API has none
    recordings: RecordingService | None = None
    # registered softphones (Registrar/Users, Registrar/Registrations); None: 404002
    softphones: Softphones | None = None
    # SMS over SIP (Messages, Dials/SMS); None: 404002
    messaging: MessagingService | None = None
    # trunks and the phone number inventory (Trunks, PhoneNumbers); None: 404002
    inventory: InventoryService | None = None
    # Caller IDs and their verification calls (CallerIDs); None: 404002
    callerids: CallerIdService | None = None
    # call timelines and audio taps (LiveCalls/{id}/Timeline, /Audio); None: 404404
    timelines: TimelineStore | None = None
    taps: TapService | None = None
    # the PSTN simulator's numbers (Simulator/Numbers); None: it is switched off
    simulator: PstnSimulator | None = None
    # the browser phone's gateway (WebRTC/Calls); None: 404002
    webrtc: WebRtcGateway | None = None


CONTEXT = web.AppKey("voxswitch_api_context", ApiContext)


# the Sub Account of the request's /SubAccounts/{subaccount_id} prefix; absent: 0, the main
SUBACCOUNT = web.RequestKey("voxswitch_subaccount_id", int)
_SCOPED = web.RequestKey("voxswitch_scoped_context", ApiContext)


class ScopedRegistry(CallRegistry):
    """The calls of one sub-account (0: the main account's) of a registry, and no other's:
    another account's call id is as unknown as one that never existed."""

    def __init__(self, inner: CallRegistry, subaccount_id: int) -> None:
        self._inner = inner
        self.subaccount_id = subaccount_id

    def _mine(self, call: Call | None) -> Call | None:
        return call if call is not None and call.subaccount_id == self.subaccount_id else None

    def add(self, call: Call) -> None:
        self._inner.add(call)

    def ended(self, call: Call) -> None:
        self._inner.ended(call)

    def get(self, call_id: str) -> Call | None:
        return self._mine(self._inner.get(call_id))

    def get_live(self, call_id: str) -> Call | None:
        return self._mine(self._inner.get_live(call_id))

    def live(self) -> Iterable[Call]:
        return [c for c in self._inner.live() if c.subaccount_id == self.subaccount_id]

    def __len__(self) -> int:
        return sum(1 for _ in self.live())


def subaccount(request: web.Request) -> int:
    """The Sub Account the request acts as: its prefix's id, or 0 (the main account)."""
    return request.get(SUBACCOUNT, 0)


def owns(request: web.Request, item: Mapping[str, Any]) -> bool:
    """Whether a stored object (its `subaccount_id`; None or 0: the main account's) is the
    request's account's."""
    return (item.get("subaccount_id") or 0) == subaccount(request)


def context(request: web.Request) -> ApiContext:
    """The services as the request's account sees them (its own calls only)."""
    sub = subaccount(request)
    scoped = request.get(_SCOPED)
    # built again if the prefix was read after (the registry remembers whose it is)
    if scoped is None or getattr(scoped.registry, "subaccount_id", None) != sub:
        base = request.config_dict[CONTEXT]
        scoped = replace(base, registry=ScopedRegistry(base.registry, sub))
        request[_SCOPED] = scoped
    return scoped
