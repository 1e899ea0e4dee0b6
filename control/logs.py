"""Structured logs on stderr: one JSON object per line (the default) or readable text.

Every line logged while a call is handled carries its `call_id`. The call's task sets
`CALL_ID` (`bind_call`) where it starts; asyncio tasks copy the context they are created
in, so lines logged deeper (the flow, callbacks, actions) get it without passing it
around. A record that names its own `call_id` in `extra` keeps it: code that acts on
another call (a transfer's far leg, REST) says which call it means.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
FORMATS = ("json", "text")

CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("voxswitch_call_id",
                                                                    default=None)


def bind_call(call_id: str) -> None:
    """Tag what the current task (and the tasks it starts from now on) logs with
    `call_id`. Call it at the top of a call's own task, never in a shared one."""
    CALL_ID.set(call_id)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {key: value for key, value in vars(record).items()
           if key not in _STANDARD and not key.startswith("_")}
    if out.get("call_id") is None:
        bound = CALL_ID.get()
        if bound is not None:
            out["call_id"] = bound
    return out


class CallIdFilter(logging.Filter):
    """Stamps the bound call id on records that have none, so every handler (the
    formatters, the call timelines' log bridge) sees the same `call_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            bound = CALL_ID.get()
            if bound is not None:
                record.call_id = bound
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL event key=value ... call_id=...` (UTC), for people reading a
    terminal; the call id goes last so the eye finds it in the same place."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        call_id = fields.pop("call_id", None)
        parts = [time.strftime("%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}", f"{record.levelname:<7}", record.getMessage()]
        parts += [f"{key}={_text(value)}" for key, value in fields.items()]
        if call_id is not None:
            parts.append(f"call_id={_text(call_id)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # values with spaces or quotes are quoted so key=value pairs stay splittable
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def setup(level: str, fmt: str = "json") -> None:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: choose json or text")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(CallIdFilter())
    handler.setLevel(level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # The root passes INFO on even when stderr shows less: call timelines read per-call
    # INFO events (recording, conference, detection) from the log (control.timeline).
    root.setLevel(min(logging.getLevelName(level.upper()), logging.INFO))
    # aiohttp's access log duplicates our own request log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
