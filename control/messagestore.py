"""The queries of messages and SMS opt-outs (storage migration 4's tables).

A message is kept whole as JSON (`record`: the spec's message object, as GET
/Messages/{message_id} answers it); the columns beside it exist to filter and sort.
`created_on` is epoch milliseconds, so ordering never depends on how a time was written.
Opt-outs are per sub-account and far-end number (the spec: a STOP applies to every
number of the application or sub-account, until START).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from control.storage import Storage

COLUMNS = ("message_id", "created_on", "direction", "status", "api_no", "caller_no",
           "external_id", "external_group_id", "subaccount_id")


@dataclass(frozen=True)
class MessageFilter:
    """GET /Messages: [begin, end) on created_on and equality on the rest (None: any)."""

    begin: datetime
    end: datetime
    caller_no: str | None = None
    api_no: str | None = None
    direction: str | None = None
    status: str | None = None
    external_id: str | None = None
    external_group_id: str | None = None
    subaccount_id: int | None = None  # the account's messages (None: every account's)


def to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


class MessageStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def save(self, record: dict[str, Any], created_on: datetime) -> None:
        """Insert or replace a message (its status and record change as it goes)."""
        row = (record["message_id"], to_ms(created_on), record["direction"],
               record["status"], record.get("api_no"), record.get("caller_no"),
               record.get("external_id"), record.get("external_group_id"),
               int(record.get("subaccount_id") or 0), json.dumps(record, default=str))

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO messages ({', '.join(COLUMNS)}, record) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
                "status = excluded.status, record = excluded.record", row)

        await self.storage.run(write)

    async def get(self, message_id: str) -> dict[str, Any] | None:
        row = await self.storage.run(lambda db: db.execute(
            "SELECT record FROM messages WHERE message_id = ?", (message_id,)).fetchone())
        return None if row is None else dict(json.loads(row["record"]))

    async def list(self, f: MessageFilter, limit: int, after: tuple[int, str] | None = None
                   ) -> tuple[list[dict[str, Any]], bool]:
        """Matching messages oldest first, at most `limit`; True when more matched.
        `after` (created_on ms, message_id) starts just past that message."""
        where = ["created_on >= ?", "created_on < ?"]
        args: list[Any] = [to_ms(f.begin), to_ms(f.end)]
        if after is not None:
            where.append("(created_on > ? OR (created_on = ? AND message_id > ?))")
            args += [after[0], after[0], after[1]]
        for name in ("caller_no", "api_no", "direction", "status", "external_id",
                     "external_group_id", "subaccount_id"):
            value = getattr(f, name)
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        sql = (f"SELECT record FROM messages WHERE {' AND '.join(where)} "
               "ORDER BY created_on, message_id LIMIT ?")
        rows = await self.storage.run(lambda db: db.execute(sql, (*args, limit + 1))
                                      .fetchall())
        records = [dict(json.loads(r["record"])) for r in rows[:limit]]
        return records, len(rows) > limit

    # ---- opt-outs (STOP / START) -----------------------------------------------------

    async def opt_out(self, subaccount_id: int, caller_no: str, when: datetime) -> None:
        await self.storage.run(lambda db: db.execute(
            "INSERT OR IGNORE INTO sms_opt_outs (subaccount_id, caller_no, created_on) "
            "VALUES (?, ?, ?)", (subaccount_id, caller_no, when.isoformat())))

    async def opt_in(self, subaccount_id: int, caller_no: str) -> bool:
        cursor = await self.storage.run(lambda db: db.execute(
            "DELETE FROM sms_opt_outs WHERE subaccount_id = ? AND caller_no = ?",
            (subaccount_id, caller_no)))
        return bool(cursor.rowcount)

    async def opted_out(self, subaccount_id: int, caller_no: str) -> bool:
        row = await self.storage.run(lambda db: db.execute(
            "SELECT 1 FROM sms_opt_outs WHERE subaccount_id = ? AND caller_no = ?",
            (subaccount_id, caller_no)).fetchone())
        return row is not None
