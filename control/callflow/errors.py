"""Call Flow Loop errors: the spec's codes, what the caller hears, and why.

Each error is an exception carrying its code, so the loop can raise it from anywhere
(callback client, interpreter, an action) and one handler decides what the caller hears
and what reaches `end_call` and the call log.
"""

from __future__ import annotations

from typing import ClassVar

SORRY = "We're sorry, something went wrong. Error code {code}. Good bye."


class CallFlowError(Exception):
    """A failure of the call flow loop; `code` and `phone_message` come from the spec."""

    code: ClassVar[int] = 400902
    phone_message: ClassVar[str | None] = SORRY

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def spoken(self) -> str | None:
        """What the caller hears before the hang-up, or None when the table says n/a."""
        if self.phone_message is None:
            return None
        return self.phone_message.format(code=self.code)


class CallbackTimeout(CallFlowError):
    code = 4001
    phone_message = (
        "We're sorry, all circuits are busy right now. Please try your call again later. "
        "Error code {code}."
    )


class CallbackFailedPreConnect(CallFlowError):
    """Non-2xx from the callback and its failover before the call was answered."""

    code = 400900
    phone_message = None


class CallbackFailed(CallFlowError):
    """Non-2xx from the callback and its failover after the call was answered."""

    code = 400901


class NoActions(CallFlowError):
    """The callback response held no usable actions (or an action we cannot run)."""

    code = 400902


class FetchFailed(CallFlowError):
    """A URL in the response (a PLAY file, say) could not be fetched or decoded."""

    code = 400931


class ResponseTooLarge(CallFlowError):
    code = 413900


REACH = "We're sorry, something went wrong when trying to reach you. Error code {code}. Good bye."

# Outbound calls have codes of their own (Call Flow Loop Errors, outbound rows): inbound
# code → (code on init_call, code after it). Outbound callbacks all come after the
# answer, so the pre-connect rows never apply.
_OUTBOUND = {
    400901: (400911, 400912),
    400902: (400913, 400913),
    413900: (413910, 413910),
    413901: (413911, 413911),
}


def outbound_error(exc: CallFlowError, *, after_init: bool) -> tuple[int, str | None]:
    """The spec's code and phone message of `exc` on an outbound call."""
    codes = _OUTBOUND.get(exc.code)
    if codes is None:
        return exc.code, exc.spoken()
    code = codes[1] if after_init else codes[0]
    # 400912 keeps the inbound wording; the rest say "when trying to reach you".
    template = SORRY if code == 400912 else REACH
    return code, template.format(code=code)


class CallbackEnded(Exception):
    """The callback answered 204: end the call without an error."""
