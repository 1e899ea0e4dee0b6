"""Events the media engine hands to the control layer (frozen dataclasses, past tense)."""

from __future__ import annotations

from dataclasses import dataclass

from .rtp import DTMF_EVENTS


@dataclass(frozen=True, slots=True)
class TelephoneEventReceived:
    """An inbound RFC 4733 telephone-event packet, parsed, as it arrived.

    RFC 4733 §2.5: one event spans several packets with the same `timestamp` (its start),
    a growing `duration`, and usually three copies of the final packet with `end` set; so
    a digit detector keys on (ssrc, timestamp) and reports once.
    """

    event: int
    end: bool
    volume: int
    duration: int
    timestamp: int
    sequence_number: int
    marker: bool
    ssrc: int

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0-15 ("0"-"9", "*", "#", "A"-"D"), else None."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None
