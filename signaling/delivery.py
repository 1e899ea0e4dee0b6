"""How an INVITE session (server or client usage) deals with the application: it hands
it events (`EventDelivery`) and asks it to answer the peer's re-INVITE offers
(`answer_reoffer`).

Events that happen before the application subscribes are kept and delivered when it
does (a CANCEL can arrive while the application is still setting the call up); an
exception in the application's callbacks is logged, never raised into the stack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .sdp import NotAcceptable, SessionDescription

log = logging.getLogger("voxswitch.signaling.session")


class EventDelivery:
    """The `on_event` half of a session; `call_id` names it in logs."""

    call_id: str

    def __init__(self) -> None:
        self._on_event: Callable[[object], None] | None = None
        self._backlog: list[object] = []

    @property
    def on_event(self) -> Callable[[object], None] | None:
        return self._on_event

    @on_event.setter
    def on_event(self, callback: Callable[[object], None] | None) -> None:
        self._on_event = callback
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            self._emit(event)

    def _emit(self, event: object) -> None:
        if self._on_event is None:
            self._backlog.append(event)
            return
        try:
            self._on_event(event)
        except Exception:
            # An application bug must not take the SIP stack down with it.
            log.exception("on_event callback failed", extra={"call_id": self.call_id})


@dataclass(frozen=True)
class Reoffer:
    """How to answer a re-INVITE (§14.2): `status` 200 with `answer` (None for an
    offerless re-INVITE with nothing to offer), or 488/500 leaving the session as it was.
    `offer` is the peer's, None when it sent none (its answer then comes in the ACK)."""

    status: int
    offer: SessionDescription | None = None
    answer: SessionDescription | None = None


def answer_reoffer(body: bytes, local_sdp: bytes | None,
                   on_reoffer: Callable[[SessionDescription], SessionDescription] | None,
                   call_id: str) -> Reoffer:
    """The answer to a re-INVITE whose body is `body`, given our current `local_sdp`."""
    try:
        offer = SessionDescription.parse(body) if body else None
    except ValueError:  # SdpError
        return Reoffer(488)
    if offer is None:
        # Offerless re-INVITE: our current description is the offer, the ACK answers.
        return Reoffer(200, None, SessionDescription.parse(local_sdp) if local_sdp else None)
    if on_reoffer is None:
        return Reoffer(488)
    try:
        return Reoffer(200, offer, on_reoffer(offer))
    except NotAcceptable:
        return Reoffer(488)
    except Exception:
        log.exception("on_reoffer failed", extra={"call_id": call_id})
        return Reoffer(500)
