"""What a call session needs of the switch that runs it.

The switch builds sessions and a session uses the switch's shared services; naming them
here, not the `Switch` class, keeps the import one way (switch → session → this).
"""

from __future__ import annotations

from typing import Protocol

from control.callflow.client import CallbackClient
from control.calls import CallRegistry
from control.conferences import ConferenceService
from control.storage import Storage
from media.audio import AudioLoader
from media.engine import MediaEngine
from media.tts import TtsEngine


class SwitchServices(Protocol):
    """The shared parts of a running switch, as a call session sees them."""

    registry: CallRegistry
    storage: Storage
    tts: TtsEngine
    audio: AudioLoader
    engine: MediaEngine
    conferences: ConferenceService

    @property
    def callbacks(self) -> CallbackClient: ...
