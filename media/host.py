"""What a channel knows of the engine that owns it and of the mix group it is in.

`MediaEngine` owns every `Channel` and `MixGroup`: it imports them, they never import it.
A channel reaches back only through `ChannelHost`, the engine-side calls it makes when
its state changes (the engine mirrors that state in its per-slot arrays), keeps its
group as a `MixSeat` and its two-party bridge as a `BridgeSeat`. `media.engine.MediaEngine`,
`media.conference.MixGroup` and `media.bridge.Bridge` satisfy these structurally; a unit
test can stand in for any of them.
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


class BridgeSeat(Protocol[C]):
    """The two-party bridge a channel of type `C` is in (`media.bridge.Bridge`).

    The channel's RFC 4733 receive path reports the events it follows, so that the bridge
    re-sends them on the partner; the bridge ignores reports once it has ended.
    """

    def partner(self, channel: C, /) -> C:
        """The other channel of the bridge."""
        ...

    def _event_started(self, source: C, event: int, volume: int, /) -> None: ...

    def _event_update(self, source: C, duration: int, /) -> None: ...

    def _event_ended(self, source: C, event: int, duration: int, /) -> None: ...
