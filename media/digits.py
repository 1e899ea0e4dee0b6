"""Merge one channel's digits from RFC 4733, in-band detection and SIP INFO into one stream.

A phone that negotiated telephone-event may still leave its tones in the audio, and some
send SIP INFO as well, so the same key press can arrive in two or three forms. The rule:

- Each report is placed on a common time line at its estimated onset: `at` minus the
  source's known latency (RFC 4733 and INFO report at onset; the in-band detector
  reports after the jitter-buffer delay plus about 40 ms of tone, see
  `inband_latency`).
- The first report of a press is emitted. A later report of the same digit from a
  *different* source whose onset lies within `window` (200 ms) of an emitted report's
  onset, before or after, is that press again and is dropped. Each emitted report
  absorbs at most one report per other source, so "5 5" pressed quickly is still two
  presses in each form.
- Reports from the same source are never merged: each source already reports a press
  once (the RFC 4733 receiver per event, the detector per tone, INFO per request).

Which source wins is whichever arrives first; usually RFC 4733.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np

from .events import DigitReceived, DigitSource
from .telephone_event import parse_dtmf_string
from .tones import dtmf_tone, silence

DEFAULT_WINDOW = 0.2
DETECTOR_LATENCY = 0.04  # the in-band detector needs ~40 ms of tone before it reports


def inband_latency(jitter_ms: float) -> float:
    """How long after onset the in-band detector reports, behind a jitter buffer."""
    return jitter_ms / 1000 + DETECTOR_LATENCY


class _Press:
    __slots__ = ("absorbed", "digit", "onset")

    def __init__(self, digit: str, onset: float, source: DigitSource) -> None:
        self.digit = digit
        self.onset = onset
        self.absorbed = {source}


class DigitCombiner:
    """One channel's digit de-duplicator; see the module docstring."""

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        latency: Mapping[DigitSource, float] | None = None,
    ) -> None:
        self.window = window
        self.latency = dict(latency or {})
        self.suppressed = 0
        self._recent: deque[_Press] = deque()

    def report(self, digit: str, source: DigitSource, at: float) -> DigitReceived | None:
        """Offer one digit; returns the event to deliver, or None if it was a duplicate."""
        onset = at - self.latency.get(source, 0.0)
        recent = self._recent
        # Reports arrive in roughly time order; latencies can reorder onsets by up to
        # their difference, so keep presses for two windows.
        while recent and recent[0].onset < onset - 2 * self.window:
            recent.popleft()
        for press in recent:
            if (
                press.digit == digit
                and source not in press.absorbed
                and abs(press.onset - onset) <= self.window
            ):
                press.absorbed.add(source)
                self.suppressed += 1
                return None
        recent.append(_Press(digit, onset, source))
        return DigitReceived(digit=digit, source=source, at=at)

    def reset(self) -> None:
        """Forget recent presses (a new stream, or after re-configuration)."""
        self._recent.clear()


def dtmf_audio(
    digits: str, *, tone_ms: int = 100, gap_ms: int = 250, dash_ms: int = 250
) -> np.ndarray:
    """A dial string as in-band audio (int16, 8 kHz): each digit's tone at -10 dBm0 per
    frequency, `gap_ms` of silence between digits, `dash_ms` more for each "-"; the same
    timing as `TelephoneEventSender` (no gap after the last digit)."""
    if tone_ms <= 0 or gap_ms < 0 or dash_ms < 0:
        raise ValueError("DTMF tone_ms must be positive, gap_ms and dash_ms not negative")
    parts: list[np.ndarray] = []
    pause = 0.0
    seen_digit = False
    for item in parse_dtmf_string(digits):
        if item == "-":
            pause += dash_ms
            continue
        if seen_digit:
            pause += gap_ms
        parts.append(silence(pause / 1000))
        parts.append(dtmf_tone(item, tone_ms / 1000, level_dbm0=-10.0))
        seen_digit = True
        pause = 0.0
    parts.append(silence(pause / 1000))
    return np.concatenate(parts)
