"""What a channel knows of the engine that owns it and of the mix group it is in.

`MediaEngine` owns every `Channel` and `MixGroup`: it imports them, they never import it.
A channel reaches back only through `ChannelHost`, the engine-side calls it makes when
its state changes (the engine mirrors that state in its per-slot arrays), and keeps its
group as a `MixSeat`. `media.engine.MediaEngine` and `media.conference.MixGroup` satisfy
these structurally; a unit test can stand in for either.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Protocol, TypeVar

from .jitter import JitterBuffer

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)


class ChannelHost(Protocol[C]):
    """The engine as its channels of type `C` see it (`media.engine.MediaEngine`)."""

    @property
    def samples(self) -> int:
        """Samples per frame (8 per ms of ptime)."""
        ...

    @property
    def ptime(self) -> float:
        """Seconds per tick."""
        ...

    @property
    def jitter_ms(self) -> int: ...

    @property
    def _rx_active(self) -> MutableMapping[C, JitterBuffer]:
        # Channels whose jitter buffer the next tick pops; written per packet, so a
        # mapping and not a call.
        ...

    def _loop(self) -> asyncio.AbstractEventLoop: ...

    def _configure(self, channel: C, /) -> None: ...

    def _set_destination(self, channel: C, /) -> None: ...

    def _playing_changed(self, channel: C, /) -> None: ...

    def _dtmf_changed(self, channel: C, /) -> None: ...

    def _inband_changed(self, channel: C, /) -> None: ...

    def _sync_stats(self, channel: C, /) -> None: ...

    def _rtp_clock(self, channel: C, /) -> int: ...

    def _detach(self, channel: C, /) -> None: ...


class MixSeat(Protocol[C_contra]):
    """The mix group a channel of type `C_contra` is in (`media.conference.MixGroup`)."""

    @property
    def id(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def remove(self, channel: C_contra, /) -> None:
        """Take the channel out of the group (the engine calls this when it closes)."""
        ...
