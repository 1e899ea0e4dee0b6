"""The error every SIP parser raises: the message model's, the headers' and the URI's.

It sits below all three (`signaling.uri`, `signaling.headers`, `signaling.message`), so
that each can raise it without importing another back. `signaling.uri` and
`signaling.message` re-export it.
"""

from __future__ import annotations

__all__ = ["SipParseError"]


class SipParseError(ValueError):
    """The peer sent something that is not SIP; `reason` names the fault.

    `status_code` is what a UAS answers (400, or 505 for an unsupported version);
    `partial` is set when enough of a request was parsed to send that answer: the
    `signaling.message.Request` read so far (typed `object` here, below the message
    model; check it with `isinstance` before use).
    """

    status_code: int = 400

    def __init__(
        self, reason: str, *, status_code: int | None = None, partial: object | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if status_code is not None:
            self.status_code = status_code
        self.partial = partial
