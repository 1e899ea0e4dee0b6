"""Two-party bridges: each channel of a pair hears the other, routed in the engine's tick.

Theory of operation. `MediaEngine.bridge(a, b)` registers a `Bridge` here; membership
changes (and slot moves, when the engine closes a channel) only mark the registry dirty.
On the next tick it rebuilds two index arrays, the bridged slots and each one's partner
slot (Python work per bridge, once per change), and the route is then one gather per
tick whatever the number of bridges: a bridged channel's output row is its partner's
decoded input row of this tick, `out[rows] = pcm_in[partners]` (one `take` into the
output when every channel is bridged). A bridged channel that is playing (a prompt or a
beep for one side) hears its playback added to its partner, in int32 then saturated to
int16: only the playing rows take that path. Codecs may differ per leg: the engine
decodes and encodes each channel with its own, so transcoding falls out. Directions
are the channels' own: a leg that does not receive contributes silence, one that does
not send sends nothing.

A channel is in at most one bridge, and never in a bridge and a conference mix at once:
`bridge` refuses a mix group member and `MixGroup.add` a bridged channel (`BridgeError`).
Closing a bridged channel ends its bridge; the partner then hears silence, or its own
playback.

Digits (RFC 4733 pass-through). The rule is that only telephone-events are regenerated;
audio is audio:

- an RFC 4733 event received on one leg is re-sent on the partner, live: a
  `TelephoneEventRelay` starts on the partner's next tick and mirrors the source's
  duration until its end, whose three end packets carry the source's final duration;
- when the partner has no telephone-event, the digit (events 0-15) is played to it as
  in-band tones once the source event has ended, as long as it lasted (at least 40 ms,
  ITU-T Q.24's shortest tone to accept); other events are not relayed;
- the digit is still reported to the receiving channel's own `on_digit` (a call flow may
  collect digits during a bridge);
- in-band tones pass through as audio and are never regenerated: a digit the receiving
  leg's in-band detector reports is reported to its `on_digit` only. So nothing is sent
  twice and nothing is echoed back: a relayed event goes out on the partner's RTP and is
  never fed to the partner's receiver. (A phone that sends a press both as an event and
  in its audio is heard twice by a partner without telephone-event: once in the audio,
  once regenerated. A partner with telephone-event gets the event, which takes the
  place of its audio while it lasts.)
- SIP INFO digits are the control layer's to pass on (`Channel.send_dtmf`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .errors import BridgeError
from .rtp import DTMF_EVENTS
from .telephone_event import TelephoneEventRelay

if TYPE_CHECKING:
    from .channel import Channel

Pcm = npt.NDArray[np.int16]
MIN_TONE_MS = 40  # ITU-T Q.24: tones of 40 ms and longer must be accepted
INT16_MIN, INT16_MAX = -32768, 32767


class Bridge:
    """Two channels that hear each other; made by `MediaEngine.bridge`."""

    __slots__ = ("_closed", "_relays", "_tones", "a", "b")

    def __init__(self, a: Channel, b: Channel) -> None:
        self.a = a
        self.b = b
        self._closed = False
        # The partner's live relay of each side's current RFC 4733 event, or the event
        # code waiting for its end to be played as tones (a partner without telephone-event).
        self._relays: dict[Channel, TelephoneEventRelay] = {}
        self._tones: dict[Channel, int] = {}

    def __repr__(self) -> str:
        return f"<Bridge {self.a!r} <-> {self.b!r}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def partner(self, channel: Channel) -> Channel:
        """The other channel of the bridge."""
        if channel is self.a:
            return self.b
        if channel is self.b:
            return self.a
        raise ValueError(f"{channel!r} is not in {self!r}")

    # --- RFC 4733 pass-through: called from a member's receive path ---

    def _event_started(self, source: Channel, event: int, volume: int) -> None:
        if self._closed:
            return
        self._end_relay(source)
        relay = self.partner(source)._relay_event(event, volume)
        if relay is not None:
            self._relays[source] = relay
        elif event < len(DTMF_EVENTS):
            self._tones[source] = event

    def _event_update(self, source: Channel, duration: int) -> None:
        relay = self._relays.get(source)
        if relay is not None:
            relay.update(duration)

    def _event_ended(self, source: Channel, event: int, duration: int) -> None:
        if self._closed:
            return
        relay = self._relays.pop(source, None)
        if relay is not None:
            relay.end(duration)
        elif self._tones.pop(source, None) == event:
            tone_ms = max(MIN_TONE_MS, round(duration / 8))  # the 8 kHz RTP clock
            self.partner(source).send_dtmf(DTMF_EVENTS[event], tone_ms=tone_ms)

    def _end_relay(self, source: Channel) -> None:
        relay = self._relays.pop(source, None)
        if relay is not None:
            relay.stop()
        self._tones.pop(source, None)

    def _close(self) -> None:
        # Relays under way send their end packets: no key is left down at the far end.
        for source in (self.a, self.b):
            self._end_relay(source)
            source._bridge = None
        self._closed = True


class Bridges:
    """The engine's bridges and their per-tick route (one registry per engine)."""

    def __init__(self) -> None:
        self.active = False  # any bridge: the engine routes them this tick
        self._by_channel: dict[Channel, Bridge] = {}
        self._dirty = True
        empty = np.zeros(0, np.intp)
        self._rows = empty  # bridged slots, ascending
        self._partners = empty  # each one's partner slot
        self._partner_of = empty  # per slot: partner slot, or -1

    def __len__(self) -> int:
        return len(self._by_channel) // 2

    def connect(self, a: Channel, b: Channel) -> None:
        """Bridge `a` and `b`; a no-op if they already are. Raises `BridgeError`."""
        if a is b:
            raise BridgeError(f"can't bridge {a!r} to itself")
        for channel, other in ((a, b), (b, a)):
            if channel.closed:
                raise BridgeError(f"can't bridge closed {channel!r}")
            partner = channel.bridged_to
            if partner is other:
                return
            if partner is not None:
                raise BridgeError(
                    f"{channel!r} is already bridged to {partner!r}: unbridge it first"
                )
            if channel.mix_group is not None:
                raise BridgeError(
                    f"{channel!r} is in {channel.mix_group!r}: take it out of the "
                    "conference before bridging it"
                )
        bridge = Bridge(a, b)
        a._bridge = b._bridge = bridge
        self._by_channel[a] = self._by_channel[b] = bridge
        self._changed()

    def disconnect(self, channel: Channel) -> None:
        """End the bridge `channel` is in, for both sides; a no-op if it is in none."""
        bridge = self._by_channel.get(channel)
        if bridge is None:
            return
        del self._by_channel[bridge.a], self._by_channel[bridge.b]
        bridge._close()
        self._changed()

    def slots_moved(self) -> None:
        """The engine moved or added slots: rebuild the route before the next tick."""
        self._dirty = True

    def covers(self, n: int) -> bool:
        """Whether every one of the `n` live slots is bridged (the route writes all rows)."""
        if self._dirty:
            self._plan(n)
        return len(self._rows) == n

    def render(self, pcm_in: Pcm, out: Pcm, routed: Pcm, playing: list[int] | None) -> None:
        """Write each bridged slot's row of `out` (N, S): its partner's row of `pcm_in`,
        plus its own playback (its row of `routed`) for the slots in `playing`."""
        if self._dirty:
            self._plan(len(pcm_in))
        if len(self._rows) == len(out):
            np.take(pcm_in, self._partners, axis=0, out=out)
        else:
            out[self._rows] = pcm_in[self._partners]
        if playing:
            slots = np.array(playing, np.intp)
            partner = self._partner_of[slots]
            bridged = partner >= 0
            if bridged.any():
                slots = slots[bridged]
                mix = pcm_in[partner[bridged]].astype(np.int32)
                mix += routed[slots]
                np.clip(mix, INT16_MIN, INT16_MAX, out=mix)
                out[slots] = mix

    def _plan(self, n: int) -> None:
        rows: list[int] = []
        partners: list[int] = []
        for channel, bridge in self._by_channel.items():
            rows.append(channel._slot)
            partners.append(bridge.partner(channel)._slot)
        row = np.array(rows, np.intp)
        order = np.argsort(row, kind="stable")
        self._rows = row[order]
        self._partners = np.array(partners, np.intp)[order]
        self._partner_of = np.full(n, -1, np.intp)
        self._partner_of[self._rows] = self._partners
        self._dirty = False

    def _changed(self) -> None:
        self._dirty = True
        self.active = bool(self._by_channel)
