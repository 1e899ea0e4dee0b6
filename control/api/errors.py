"""The API's error body and the general error codes (spec: Errors, General Errors).

Every failed request is answered with the same six-field JSON body; `ApiError` carries
those fields and the constructors below name the spec's codes so that handlers never
spell a status or code by hand. This module has no aiohttp dependency so that domain
code (`control.flowconfig`) can raise validation errors without importing the web app.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorPreset:
    """One row of the spec's error tables: the fixed parts of an error body."""

    status: int
    code: int
    message: str
    help: str
    user_message: str


VALIDATION = ErrorPreset(400, 400001, "Validation Error", "", "The request contained invalid data.")
PARSING = ErrorPreset(400, 400010, "Parsing Error", "", "The request body could not be understood.")
AUTHENTICATION = ErrorPreset(
    401,
    401001,
    "Failed Authentication",
    "The X-API-Key header is missing or does not match this application's API key.",
    "The request could not be authenticated.",
)
UNKNOWN_ENDPOINT = ErrorPreset(
    404,
    404001,
    "Not Found",
    "No endpoint exists at this path; check it for typos against the API reference.",
    "The requested endpoint does not exist.",
)
NOT_SUPPORTED = ErrorPreset(
    404,
    404002,
    "Not Found",
    "The resource path or method is not supported.",
    "The requested resource is no longer available.",
)
METHOD_NOT_ALLOWED = ErrorPreset(
    405, 405001, "Method Not Found", "", "The request used an unsupported method."
)
LIVE_CALL_NOT_FOUND = ErrorPreset(
    404,
    404404,
    "Not Found",
    "The call ID is wrong, or the call ended and is no longer available.",
    "No call was found with the ID provided.",
)
CONFIG_NOT_FOUND = ErrorPreset(
    404,
    404102,
    "Not Found",
    "No call flow configuration exists for this number.",
    "The call flow configuration could not be found.",
)
QUEUE_NOT_FOUND = ErrorPreset(
    404,
    404711,
    "Not Found",
    "The queue ID may be wrong or the queue could have been garbage collected.",
    "The requested queue was not found.",
)
QUEUED_CALL_NOT_FOUND = ErrorPreset(
    404,
    404712,
    "Not Found",
    "The call is not in the queue. It may have left the queue already.",
    "The requested queued call was not found.",
)
QUEUE_EMPTY = ErrorPreset(
    404,
    404713,
    "Not Found",
    "The queue is empty. No call was found.",
    "The queue is empty. No call was found.",
)
# The spec lists no code of its own for a recording; its general "no longer exists" code.
RECORDING_NOT_FOUND = ErrorPreset(
    404,
    404002,
    "Not Found",
    "No recording has this ID: it is wrong, or the recording was deleted.",
    "The requested recording was not found.",
)
STORAGE = ErrorPreset(500, 500101, "Storage Error", "", "A stored file could not be read.")
DATABASE = ErrorPreset(500, 500102, "Database Error", "", "A storage error occurred.")
# spec: Integration Errors (the recording storage bucket failed)
INTEGRATION_STORAGE = ErrorPreset(500, 500501, "Storage Error", "",
                                  "The recording storage could not be reached.")
UNCAUGHT = ErrorPreset(
    500,
    500999,
    "Uncaught Error",
    "The server failed unexpectedly; its log holds the details under this ref_id.",
    "The service failed to process the request.",
)


class ApiError(Exception):
    """An error the API answers with the spec's error body."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        help: str = "",
        user_message: str = "",
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.help = help
        self.user_message = user_message
        self.field = field  # the request field that failed validation, for tests and logs
        self.headers = headers or {}

    @classmethod
    def from_preset(
        cls,
        preset: ErrorPreset,
        *,
        message: str | None = None,
        help: str | None = None,
        user_message: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiError:
        return cls(
            preset.status,
            preset.code,
            message if message is not None else preset.message,
            help if help is not None else preset.help,
            user_message if user_message is not None else preset.user_message,
            field=field,
            headers=headers,
        )

    # Presets for the general errors. Handlers raise these; none build a body by hand.

    @classmethod
    def validation(cls, field: str, problem: str) -> ApiError:
        """400001: `field` failed validation; `problem` says what is allowed."""
        detail = f"{field} {problem}"
        return cls.from_preset(
            VALIDATION,
            message=f"Validation Error: {detail}",
            help=detail,
            user_message=f"The request contained invalid data: {detail}",
            field=field,
        )

    @classmethod
    def parsing(cls, detail: str) -> ApiError:
        """400010: the request body is not valid JSON."""
        return cls.from_preset(PARSING, help=detail)

    @classmethod
    def unauthorized(cls) -> ApiError:
        return cls.from_preset(AUTHENTICATION)

    @classmethod
    def unknown_endpoint(cls) -> ApiError:
        return cls.from_preset(UNKNOWN_ENDPOINT)

    @classmethod
    def not_supported(cls) -> ApiError:
        return cls.from_preset(NOT_SUPPORTED)

    @classmethod
    def method_not_allowed(cls, method: str, allowed: set[str] | None = None) -> ApiError:
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
        return cls.from_preset(
            METHOD_NOT_ALLOWED,
            help=f"This API does not support the {method} method on this path.",
            headers=headers,
        )

    @classmethod
    def live_call_not_found(cls, call_id: str) -> ApiError:
        return cls.from_preset(
            LIVE_CALL_NOT_FOUND,
            help=f"No call {call_id!r}: the ID is wrong, or the call ended and is no "
            "longer available.",
        )

    @classmethod
    def config_not_found(cls, number: str | None) -> ApiError:
        what = "the Default configuration" if number is None else repr(number)
        return cls.from_preset(
            CONFIG_NOT_FOUND, help=f"No call flow configuration exists for {what}."
        )

    @classmethod
    def queue_not_found(cls) -> ApiError:
        """404711 (spec: Queue Errors)."""
        return cls.from_preset(QUEUE_NOT_FOUND)

    @classmethod
    def queued_call_not_found(cls) -> ApiError:
        """404712."""
        return cls.from_preset(QUEUED_CALL_NOT_FOUND)

    @classmethod
    def queue_empty(cls) -> ApiError:
        """404713."""
        return cls.from_preset(QUEUE_EMPTY)

    @classmethod
    def recording_not_found(cls, recording_id: str) -> ApiError:
        return cls.from_preset(RECORDING_NOT_FOUND,
                               help=f"No recording {recording_id!r}: the ID is wrong, or the "
                               "recording was deleted.")

    @classmethod
    def storage(cls, detail: str) -> ApiError:
        """500101: a stored file (a recording) could not be read or converted."""
        return cls.from_preset(STORAGE, help=detail)

    @classmethod
    def integration_storage(cls, detail: str) -> ApiError:
        """500501: the recording storage (an S3 bucket) refused or could not be reached."""
        return cls.from_preset(INTEGRATION_STORAGE, help=detail)

    @classmethod
    def database(cls, detail: str) -> ApiError:
        return cls.from_preset(DATABASE, help=detail)

    @classmethod
    def uncaught(cls, exc: BaseException) -> ApiError:
        # the spec's message names the fault; the traceback stays in the server log
        return cls.from_preset(UNCAUGHT, message=f"Uncaught Error: {type(exc).__name__}")

    @classmethod
    def http(cls, status: int, reason: str) -> ApiError:
        """Any other HTTP-level failure (413 body too large, ...): code = status·1000 + 999."""
        return cls(status, status * 1000 + 999, reason, reason, reason)

    def body(self, ref_id: str | None = None) -> dict[str, Any]:
        """The spec's error body; `ref_id` lets a client's report be found in our log."""
        return {
            "ref_id": ref_id or new_ref_id(),
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "help": self.help,
            "user_message": self.user_message,
        }


def new_ref_id() -> str:
    return uuid.uuid4().hex
