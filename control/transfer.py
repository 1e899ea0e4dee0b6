"""A transfer: a call (the owner) connected to a far leg that the switch dials for it.

Theory of operation. The far leg is a bare outbound session (no flow of its own, parent
call = the owner). While it rings the owner hears ringback from the switch; the moment
the far end's media starts (a 183 with SDP) or it answers, the ringback stops and the
two channels are bridged in the media engine, so the owner hears the far end's own
ringback or announcement and then the far end itself. The transfer ends when the far
leg ends (it hung up, or never connected) or on `stop()`; then the bridge goes and the
owner's flow goes on. The owner hanging up hangs up the far leg (CANCEL or BYE).
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from control.calls import CallStatus
from media.errors import MediaError
from media.tones import ringback

if TYPE_CHECKING:
    from control.outbound import OutboundSession
    from control.session import CallSession
    from media.engine import MediaEngine

log = logging.getLogger("voxswitch.transfer")

RINGBACK_S = 240.0  # the longest ring time a dial may have


@lru_cache(maxsize=1)
def ringback_audio() -> np.ndarray:
    """North American ringback for the longest ring, generated once and shared."""
    return np.tile(ringback(6.0), int(RINGBACK_S // 6))


class Transfer:
    """One transfer. With `ringback` off (async transfers) the owner's flow goes on
    playing its own prompts instead, and they mix over the bridge."""

    def __init__(self, owner: CallSession, leg: OutboundSession, engine: MediaEngine,
                 *, ringback: bool = True) -> None:
        self.owner = owner
        self.leg = leg
        self.engine = engine
        self.ringback = ringback
        self._bridged = False
        self._ringing: asyncio.Future[bool] | None = None
        self._hanging_up: asyncio.Future[None] | None = None
        leg.on_early_media.append(lambda _: self._connect())
        leg.on_answered.append(lambda _: self._connect())

    async def run(self) -> CallStatus:
        """Ring, bridge, wait for the end; the far leg's final status."""
        if self.ringback and self.owner.channel is not None and not self.leg.ended:
            self._ringing = self.owner.channel.play(ringback_audio())
        ended = asyncio.ensure_future(self.leg.wait_finished())
        owner_gone = asyncio.ensure_future(self.owner.wait_ended())
        try:
            await asyncio.wait({ended, owner_gone}, return_when=asyncio.FIRST_COMPLETED)
            if owner_gone.done() and not self.leg.ended:
                log.info("transfer.owner_hung_up", extra={"call_id": self.owner.call.id,
                                                          "leg": self.leg.call.id})
                await self.leg.hangup()
                await self.leg.wait_finished()
        finally:
            ended.cancel()
            owner_gone.cancel()
            self._disconnect()
        status = self.leg.call.status
        log.info("transfer.ended", extra={"call_id": self.owner.call.id,
                                          "leg": self.leg.call.id, "status": status.value})
        return status

    async def stop(self) -> None:
        """Hang up the far leg (TRANSFER stop); `run` then returns."""
        await self.leg.hangup()

    def _connect(self) -> None:
        if self._bridged or self.owner.ended or self.leg.ended:
            return
        a, b = self.owner.channel, self.leg.channel
        if a is None or b is None:
            return
        if self._ringing is not None:
            a.stop_audio()  # the ringback: the far end's own audio takes over
            self._ringing = None
        try:
            self.engine.bridge(a, b)
        except MediaError as exc:
            log.error("transfer.bridge_failed", extra={"call_id": self.owner.call.id,
                                                       "error": str(exc)})
            self._hanging_up = asyncio.ensure_future(self.leg.hangup())
            return
        self._bridged = True
        log.info("transfer.bridged", extra={"call_id": self.owner.call.id,
                                            "leg": self.leg.call.id,
                                            "answered": self.leg.answered})

    def _disconnect(self) -> None:
        channel = self.owner.channel
        if channel is not None:
            if self._bridged and not channel.closed:
                self.engine.unbridge(channel)
            if self._ringing is not None:
                channel.stop_audio()  # the ringback of a leg that never connected
        self._bridged = False
