"""Mix groups: the engine's conference rooms, mixed every tick by `media.dsp.mixer`.

Theory of operation. A `MixGroup` is a set of channels with per-member flags: `talk`
(heard by the group), `listen` (hears the group), `whisper_to` (heard by that member
only, instead of the group) and `receive_dtmf` (gets digits passed on by
`relay_digit`). A channel is in at most one group, and never in a group and a two-party
bridge at once (`media.bridge`). Groups know nothing about calls,
beeps on join or hold music: the control layer plays those on the members' channels
(`Channel.play`), and the engine adds a member's own playback to its mix.

`MixGroups` is the engine's registry. Membership changes only mark it dirty; on the
next tick it rebuilds the mixer's per-slot arrays (Python work per member, once per
change) and the tick itself is a fixed handful of numpy calls whatever the number of
members. A group can also play audio to all its listening members at once
(`play_to_all`): one frame per tick is added to the group's total, so it costs the
same for 3 members or 1000.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .dsp.mixer import Mixer
from .errors import BridgeError
from .rtp import DTMF_EVENTS

if TYPE_CHECKING:
    from .channel import Channel

Pcm = npt.NDArray[np.int16]


class _Unset:
    pass


_UNSET = _Unset()


@dataclass(frozen=True, slots=True)
class Membership:
    """One member's flags in its group (see the module doc)."""

    channel: Channel
    talk: bool = True
    listen: bool = True
    whisper_to: Channel | None = None
    receive_dtmf: bool = False


class _GroupPlayback:
    __slots__ = ("data", "future", "offset")

    def __init__(self, data: Pcm, future: asyncio.Future[bool]) -> None:
        self.data = data
        self.offset = 0
        self.future = future


class MixGroup:
    """A conference's mix; create with `MediaEngine.create_mix_group()`."""

    def __init__(self, registry: MixGroups, group_id: int) -> None:
        self.id = group_id
        self._registry = registry
        self._members: dict[Channel, Membership] = {}
        self._whisperers: set[Channel] = set()
        self._queue: deque[_GroupPlayback] = deque()
        self._closed = False

    def __repr__(self) -> str:
        return f"<MixGroup {self.id} members={len(self._members)}>"

    @property
    def members(self) -> Mapping[Channel, Membership]:
        """The members and their flags, by channel (a read-only live view)."""
        return MappingProxyType(self._members)

    @property
    def closed(self) -> bool:
        return self._closed

    def add(
        self,
        channel: Channel,
        *,
        talk: bool = True,
        listen: bool = True,
        whisper_to: Channel | None = None,
        receive_dtmf: bool = False,
    ) -> Membership:
        """Add `channel` to the group; it is heard and hears from the next tick on.

        Raises `ValueError` if the channel is closed or already in a group, or if
        `whisper_to` is not a member of this group; `BridgeError` (a `ValueError`) if it
        is bridged.
        """
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if channel.closed:
            raise ValueError(f"can't add closed {channel!r} to a mix group")
        if channel._mix_group is not None:
            raise ValueError(f"{channel!r} is already in {channel._mix_group!r}")
        if channel.bridged_to is not None:
            raise BridgeError(
                f"{channel!r} is bridged to {channel.bridged_to!r}: unbridge it before "
                f"adding it to {self!r}"
            )
        self._check_target(channel, whisper_to)
        member = Membership(channel, bool(talk), bool(listen), whisper_to, bool(receive_dtmf))
        self._members[channel] = member
        if whisper_to is not None:
            self._whisperers.add(channel)
        channel._mix_group = self
        self._registry._changed()
        return member

    def update(
        self,
        channel: Channel,
        *,
        talk: bool | None = None,
        listen: bool | None = None,
        whisper_to: Channel | _Unset | None = _UNSET,
        receive_dtmf: bool | None = None,
    ) -> Membership:
        """Change a member's flags (arguments left out keep their value); `whisper_to=None`
        ends a whisper. Raises `KeyError` if `channel` is not a member."""
        member = self._members[channel]
        if not isinstance(whisper_to, _Unset):
            self._check_target(channel, whisper_to)
            member = replace(member, whisper_to=whisper_to)
            if whisper_to is None:
                self._whisperers.discard(channel)
            else:
                self._whisperers.add(channel)
        if talk is not None:
            member = replace(member, talk=bool(talk))
        if listen is not None:
            member = replace(member, listen=bool(listen))
        if receive_dtmf is not None:
            member = replace(member, receive_dtmf=bool(receive_dtmf))
        self._members[channel] = member
        self._registry._changed()
        return member

    def remove(self, channel: Channel) -> None:
        """Take `channel` out of the group (no-op if it is not a member).

        Members whispering to it are muted, not put back on the group: what was meant
        for one member is never broadcast.
        """
        if self._members.pop(channel, None) is None:
            return
        channel._mix_group = None
        self._whisperers.discard(channel)
        for other in list(self._whisperers):
            member = self._members[other]
            if member.whisper_to is channel:
                self._members[other] = replace(member, talk=False, whisper_to=None)
                self._whisperers.discard(other)
        self._registry._changed()

    def play_to_all(self, pcm: npt.ArrayLike) -> asyncio.Future[bool]:
        """Queue int16 8 kHz mono audio that every listening member hears (a beep on join
        or leave); one queue for the group, mixed into its total. The future is True
        once all was played, False if stopped or the group closed first."""
        future: asyncio.Future[bool] = self._registry._loop().create_future()
        arr = np.asarray(pcm)
        if arr.dtype != np.int16:
            raise TypeError(f"play_to_all() takes int16 PCM, not {arr.dtype}")
        if self._closed or not arr.size:
            future.set_result(not self._closed)
            return future
        item = _GroupPlayback(np.ascontiguousarray(arr).reshape(-1), future)
        self._queue.append(item)
        future.add_done_callback(lambda _: self._playback_done(item))
        self._registry._playing_changed(self)
        return future

    def stop_audio(self) -> None:
        """Stop the group's own playback (not the members'); futures resolve False."""
        queue, self._queue = self._queue, deque()
        for item in queue:
            if not item.future.done():
                item.future.set_result(False)
        self._registry._playing_changed(self)

    @property
    def is_playing(self) -> bool:
        return bool(self._queue)

    def relay_digit(
        self, from_channel: Channel, digit: str, *, tone_ms: int = 100
    ) -> list[asyncio.Future[bool]]:
        """Send `digit` to every member with `receive_dtmf` except `from_channel`, each by
        its own `send_dtmf` (RFC 4733 or in-band, as negotiated); one future per receiver."""
        key = digit.upper() if len(digit) == 1 else ""
        if not key or key not in DTMF_EVENTS:
            raise ValueError(f"not a DTMF digit: {digit!r} (accepted: 0-9 * # A-D)")
        return [
            channel.send_dtmf(key, tone_ms=tone_ms)
            for channel, member in self._members.items()
            if member.receive_dtmf and channel is not from_channel and not channel.closed
        ]

    def close(self) -> None:
        """Remove every member, stop the group's playback and unregister; idempotent."""
        if self._closed:
            return
        for channel in list(self._members):
            channel._mix_group = None
        self._members.clear()
        self._whisperers.clear()
        self.stop_audio()
        self._closed = True
        self._registry._remove(self)

    # --- engine side ---

    def _check_target(self, channel: Channel, target: Channel | None) -> None:
        if target is not None and (target is channel or target not in self._members):
            raise ValueError(f"whisper target {target!r} is not another member of {self!r}")

    def _next_frame(self, samples: int) -> Pcm | None:
        # This tick's frame of the group's playback, or None; pads and resolves the end.
        while self._queue:
            item = self._queue[0]
            start = item.offset
            frame = item.data[start : start + samples]
            item.offset = start + samples
            if item.offset >= len(item.data):
                self._queue.popleft()
                if not item.future.done():
                    item.future.set_result(True)
                if len(frame) < samples:
                    frame = np.concatenate([frame, np.zeros(samples - len(frame), np.int16)])
            if len(frame):
                return frame
        self._registry._playing_changed(self)
        return None

    def _playback_done(self, item: _GroupPlayback) -> None:
        if item in self._queue:
            self._queue.remove(item)
            self._registry._playing_changed(self)


class MixGroups:
    """The engine's mix groups and their mixer (one per engine)."""

    def __init__(self, samples: int, loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.samples = samples
        self.active = False  # any group has members: the engine mixes this tick
        self._loop = loop
        self._groups: dict[int, MixGroup] = {}
        self._playing: dict[int, MixGroup] = {}
        self._next_id = 0
        self._dirty = True
        self._mixer = Mixer(samples)

    @property
    def groups(self) -> Mapping[int, MixGroup]:
        return MappingProxyType(self._groups)

    def create(self) -> MixGroup:
        group = MixGroup(self, self._next_id)
        self._groups[group.id] = group
        self._next_id += 1
        return group

    def slots_moved(self) -> None:
        """The engine moved channels between slots: rebuild the plan before mixing."""
        self._dirty = True

    def render(self, pcm_in: Pcm, out: Pcm, *, add_out: bool) -> None:
        """Mix this tick into `out` (N, S), which holds each channel's own playback."""
        if self._dirty:
            self._plan(len(pcm_in))
        frames = None
        if self._playing:
            frames = {}
            for group in list(self._playing.values()):
                frame = group._next_frame(self.samples)
                if frame is not None:
                    frames[group.id] = frame
        self._mixer.mix_into(pcm_in, out, group_pcm=frames, add_out=add_out)

    def _plan(self, n: int) -> None:
        slots: list[int] = []
        groups: list[int] = []
        talks: list[bool] = []
        listens: list[bool] = []
        whispers: list[int] = []
        for group in self._groups.values():
            for channel, member in group._members.items():
                target = member.whisper_to
                slots.append(channel._slot)
                groups.append(group.id)
                talks.append(member.talk and target is None)
                listens.append(member.listen)
                whispers.append(target._slot if target is not None and member.talk else -1)
        group_of = np.full(n, -1, np.int32)
        talk = np.zeros(n, np.bool_)
        listen = np.zeros(n, np.bool_)
        whisper = np.full(n, -1, np.int32)
        index = np.array(slots, np.intp)
        group_of[index] = groups
        talk[index] = talks
        listen[index] = listens
        whisper[index] = whispers
        self._mixer.plan(group_of, talk, listen, whisper)
        self._dirty = False

    def _changed(self) -> None:
        self._dirty = True
        self.active = any(group._members for group in self._groups.values())

    def _playing_changed(self, group: MixGroup) -> None:
        if group._queue and not group._closed:
            self._playing[group.id] = group
        else:
            self._playing.pop(group.id, None)

    def _remove(self, group: MixGroup) -> None:
        self._groups.pop(group.id, None)
        self._playing.pop(group.id, None)
        self._changed()
