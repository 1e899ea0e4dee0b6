"""What a call session needs of the switch that runs it.

The switch builds sessions and a session uses the switch's shared services; naming them
here, not the `Switch` class, keeps the import one way (switch → session → this).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from control.callflow.client import CallbackClient
from control.calls import CallRegistry
from control.conferences import ConferenceService
from control.detection import DetectionService
from control.messaging import MessagingService
from control.queues import QueueService
from control.recordings import RecordingService
from control.softphones import Softphones
from control.storage import Storage
from media.audio import AudioLoader
from media.engine import MediaEngine
from media.tts import TtsEngine
from signaling.stack import SipStack

if TYPE_CHECKING:
    from control.callflow.context import Switchboard
    from control.callflow.loop import CallFlowLoop
    from control.calls import Call
    from control.flowconfig import CallFlowConfig
    from control.settings import Settings


class FlowSession(Protocol):
    """Another live call's session, as far as a session may reach it."""

    call: Call
    loop: CallFlowLoop | None


class SwitchServices(Protocol):
    """The shared parts of a running switch, as a call session sees them."""

    registry: CallRegistry
    storage: Storage
    tts: TtsEngine
    audio: AudioLoader
    engine: MediaEngine
    conferences: ConferenceService
    queues: QueueService
    recordings: RecordingService
    detection: DetectionService
    softphones: Softphones
    messaging: MessagingService
    stack: SipStack
    settings: Settings

    @property
    def switchboard(self) -> Switchboard: ...

    @property
    def callbacks(self) -> CallbackClient: ...

    sessions: set[Any]  # the live CallSessions

    def find_session(self, call_id: str) -> FlowSession | None:
        """The live call's session, or None."""

    async def config_for(self, api_no: str, subaccount_id: int = 0) -> CallFlowConfig:
        """The call flow configuration a number runs (in that Sub Account)."""
