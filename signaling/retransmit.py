"""Our 2xx to an INVITE, sent again until its ACK comes (RFC 3261 §13.3.1.4).

The INVITE server transaction ends with the 2xx, so the UAS core (a server session for
the INVITE, either session for a re-INVITE) retransmits it itself: after T1, doubling up
to T2, and gives up 64*T1 after the first send. Over TCP it is not retransmitted (as
pjsip does) but the ACK deadline stands. Sans-I/O: the owner asks `due(now)` at its
timer and sends when told.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .message import Request, Response


class Due(Enum):
    RETRANSMIT = "retransmit"
    GIVE_UP = "give up"  # no ACK within 64*T1


@dataclass
class Pending2xx:
    response: Response
    request: Request  # the INVITE it answers
    retransmit_at: float
    interval: float
    give_up_at: float

    @classmethod
    def start(cls, response: Response, request: Request, *, now: float, t1: float,
              reliable: bool) -> Pending2xx:
        return cls(response, request, float("inf") if reliable else now + t1, t1,
                   now + 64 * t1)

    @property
    def deadline(self) -> float:
        return min(self.retransmit_at, self.give_up_at)

    def acked_by(self, ack: Request) -> bool:
        """Whether `ack` is the ACK for this 2xx (not a stray or a retransmitted one)."""
        return ack.cseq.seq == self.response.cseq.seq

    def due(self, now: float, t2: float) -> Due | None:
        """What to do at `now`; on a retransmission the next one is scheduled (the
        interval doubles, up to T2)."""
        if now >= self.give_up_at:
            return Due.GIVE_UP
        if now >= self.retransmit_at:
            self.interval = min(2 * self.interval, t2)
            self.retransmit_at = now + self.interval
            return Due.RETRANSMIT
        return None
