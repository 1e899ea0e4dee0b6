"""How an INVITE session (server or client usage) hands its events to the application.

Events that happen before the application subscribes are kept and delivered when it
does (a CANCEL can arrive while the application is still setting the call up); an
exception in the application's callback is logged, never raised into the stack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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
