"""What every handler may use: the services behind the API, found through the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from control.calls import CallRegistry
from control.conferences import ConferenceService
from control.queues import QueueService
from control.recordings import RecordingService
from control.storage import Storage

if TYPE_CHECKING:
    from control.inventory import InventoryService
    from control.messaging import MessagingService
    from control.softphones import Softphones
    from control.switchboard import SwitchboardService


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


CONTEXT = web.AppKey("voxswitch_api_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.config_dict[CONTEXT]
