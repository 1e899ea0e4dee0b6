"""Events the media engine hands to the control layer (frozen dataclasses, past tense)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


@dataclass(frozen=True, slots=True)
class TelephoneEventStarted:
    """An RFC 4733 event began: reported on its first packet to arrive (its onset).

    `timestamp` is the event's RTP timestamp (its key, with `ssrc`); `at` is the arrival
    time of that first packet on the caller's clock.
    """

    event: int
    timestamp: int
    ssrc: int
    at: float

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0-15, else None."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEventEnded:
    """An RFC 4733 event ended: its end packet arrived, a newer event replaced it, or no
    packet came for the receiver's timeout (`timed_out`). `duration` is in samples and is
    the longest the packets reported (the final one when the end packet arrived)."""

    event: int
    timestamp: int
    ssrc: int
    duration: int
    at: float
    timed_out: bool = False

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0-15, else None."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None


class DigitSource(StrEnum):
    """Where a digit came from."""

    RFC4733 = "rfc4733"
    INBAND = "inband"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """A DTMF digit ("0"-"9", "*", "#", "A"-"D") pressed by the far end, reported once
    however many forms it arrived in (see `media.digits`). `at` is when the reporting
    source saw it, on the engine loop's clock."""

    digit: str
    source: DigitSource
    at: float
