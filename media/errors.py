"""Errors raised by the audio sources (TTS, file/URL loader, tone generators) and by the
engine's routing API (bridges).

Every error is a `MediaError`, so a caller that plays a prompt can catch one class and
turn it into the call flow's error event; the message is written for the person who
wrote the call flow, naming the value, URL or tool at fault.
"""

from __future__ import annotations


class MediaError(Exception):
    """Base class for every error raised by `media/`'s audio sources and routing API."""


class UnsupportedVoice(MediaError):
    """A SAY voice, language or gender that voxswitch does not accept."""


class AudioFetchError(MediaError):
    """An audio URL or path could not be fetched, read or decoded.

    `url` is what the caller asked for; `status` is the HTTP status when the server
    answered with a non-2xx code, else None.
    """

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class TtsError(MediaError):
    """Speech synthesis failed: espeak-ng is missing, failed, or the text is unusable."""


class BridgeError(MediaError, ValueError):
    """Two channels can't be bridged: one is closed, the same channel twice, already
    bridged to another, in a conference mix, or of another engine. Also raised when a
    bridged channel is added to a mix group. A `ValueError` too: it is a bad argument."""
