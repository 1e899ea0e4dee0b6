"""The narrow interface between call-flow actions and the call they run on.

Actions see only this; the call session (`control.session`) implements it over a SIP leg
and a media channel, and unit tests can stand in for it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from control.calls import Call


class CallPort(Protocol):
    call: Call

    @property
    def answered(self) -> bool:
        """True once the call is connected (200 OK sent)."""

    @property
    def ended(self) -> bool:
        """True once either side hung up."""

    async def answer(self) -> None:
        """Connect the call (idempotent)."""

    async def reject(self, status: int, reason: str) -> None:
        """Refuse an unanswered call with a SIP final response."""

    async def hangup(self) -> None:
        """End the call from our side (BYE when connected)."""

    async def speech(
        self, text: str, *, voice: str | None, language: str | None, gender: str | None
    ) -> np.ndarray:
        """Synthesize text to 8 kHz audio (raises NoActions for a bad voice)."""

    async def audio(self, url: str) -> np.ndarray:
        """Fetch and decode an audio URL (raises FetchFailed)."""

    async def play(self, pcm: np.ndarray) -> bool:
        """Play audio to the caller; True when it played to the end."""

    async def sleep(self, seconds: float) -> None:
        """Wait, keeping the line open."""
