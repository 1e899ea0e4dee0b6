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

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        """Play audio to the caller; True when it played to the end (False: stopped by
        STOP, a key press when `stop_on_key`, or the end of the call)."""

    async def send_dtmf(self, digits: str, *, delay_ms: float, dash_ms: float) -> bool:
        """Send DTMF (RFC 4733 when negotiated, else tones); True when all were sent."""

    async def sleep(self, seconds: float, *, stop_on_key: bool = False) -> None:
        """Wait, keeping the line open (a key press ends it early when `stop_on_key`)."""

    def stop_audio(self) -> None:
        """Stop what is playing (STOP AUDIO)."""

    def pending_digit(self) -> bool:
        """True when a key press is waiting to be collected."""

    async def next_digit(self, timeout: float) -> str | None:
        """The next key press, waiting up to `timeout` seconds; None on timeout or end."""

    def clear_digits(self) -> None:
        """Forget key presses not yet collected."""
