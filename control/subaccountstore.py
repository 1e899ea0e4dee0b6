"""The queries of Application Sub Accounts (storage migration 6) and of what they own.

A sub-account is a row of `subaccounts`; deleting one keeps its row with status
`deleted`, so that its id answers 404802 (no longer exists) rather than 404801 (never
existed). Id 0 is the main account: every table's `subaccount_id` defaults to it.

Call flow configurations of a sub-account live in `callflow_configs` beside the main
account's, under the key `config_key(sub, number)` (`sa3:+17145551212`, `sa3:` for its
Default); the main account's keys are the bare numbers, so neither sees the other's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from control.flowconfig import CallFlowConfig
from control.storage import Storage

ACTIVE, INACTIVE, DELETED = "active", "inactive", "deleted"
_PREFIX = "sa"


def config_key(subaccount_id: int, number: str | None) -> str | None:
    """The `callflow_configs` key of `number` (None: the Default) of a sub-account."""
    if not subaccount_id:
        return number
    return f"{_PREFIX}{subaccount_id}:{number or ''}"


def unscoped_number(key: str | None) -> str | None:
    """The number a `config_key` stands for (None: a Default)."""
    if key and key.startswith(_PREFIX) and ":" in key:
        head, _, rest = key.partition(":")
        if head[len(_PREFIX):].isdigit():
            return rest or None
    return key


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SubAccountRow:
    id: int
    status: str
    created_on: str
    updated_on: str
    data: dict[str, Any]


def _row(row: tuple[Any, ...]) -> SubAccountRow:
    id_, status, created_on, updated_on, data = row
    return SubAccountRow(int(id_), status, created_on, updated_on, json.loads(data))


_COLUMNS = "id, status, created_on, updated_on, data"


class SubAccountStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def create(self, data: dict[str, Any]) -> SubAccountRow:
        now = _now()

        def q(db: sqlite3.Connection) -> SubAccountRow:
            cur = db.execute(
                "INSERT INTO subaccounts (status, created_on, updated_on, data) "
                "VALUES (?, ?, ?, ?)", (ACTIVE, now, now, json.dumps(data)))
            assert cur.lastrowid is not None
            return SubAccountRow(cur.lastrowid, ACTIVE, now, now, data)
        return await self.storage.run(q)

    async def get(self, subaccount_id: int) -> SubAccountRow | None:
        """The row, deleted ones included (the caller tells 404801 from 404802)."""
        row = await self.storage.run(lambda db: db.execute(
            f"SELECT {_COLUMNS} FROM subaccounts WHERE id = ?", (subaccount_id,)).fetchone())
        return _row(tuple(row)) if row else None

    async def list_page(self, statuses: tuple[str, ...], offset: int,
                   limit: int) -> tuple[list[SubAccountRow], int]:
        marks = ", ".join("?" * len(statuses))

        def q(db: sqlite3.Connection) -> tuple[list[SubAccountRow], int]:
            total = db.execute(f"SELECT COUNT(*) FROM subaccounts WHERE status IN ({marks})",
                               statuses).fetchone()[0]
            rows = db.execute(f"SELECT {_COLUMNS} FROM subaccounts WHERE status IN ({marks}) "
                              "ORDER BY id LIMIT ? OFFSET ?",
                              (*statuses, limit, offset)).fetchall()
            return [_row(tuple(r)) for r in rows], int(total)
        return await self.storage.run(q)

    async def update(self, subaccount_id: int, status: str,
                     data: dict[str, Any]) -> SubAccountRow | None:
        now = _now()

        def q(db: sqlite3.Connection) -> SubAccountRow | None:
            db.execute("UPDATE subaccounts SET status = ?, updated_on = ?, data = ? "
                       "WHERE id = ? AND status != ?",
                       (status, now, json.dumps(data), subaccount_id, DELETED))
            row = db.execute(f"SELECT {_COLUMNS} FROM subaccounts WHERE id = ?",
                             (subaccount_id,)).fetchone()
            return _row(tuple(row)) if row else None
        return await self.storage.run(q, transaction=True)

    async def has_usage(self, subaccount_id: int) -> bool:
        """Whether calls, recordings, messages, numbers or trunks were ever the
        sub-account's."""
        def q(db: sqlite3.Connection) -> bool:
            for sql in (
                "SELECT 1 FROM phone_numbers WHERE subaccount_id = ? LIMIT 1",
                "SELECT 1 FROM trunks WHERE json_extract(data, '$.subaccount_id') = ? LIMIT 1",
                "SELECT 1 FROM recordings WHERE subaccount_id = ? LIMIT 1",
                "SELECT 1 FROM messages WHERE subaccount_id = ? LIMIT 1",
                "SELECT 1 FROM call_logs WHERE json_extract(record, '$.subaccount_id') = ? "
                "LIMIT 1",
            ):
                if db.execute(sql, (subaccount_id,)).fetchone():
                    return True
            return False
        return await self.storage.run(q)

    async def delete(self, subaccount_id: int) -> None:
        """Mark deleted and drop its call flow configurations."""
        prefix = f"{_PREFIX}{subaccount_id}:"

        def q(db: sqlite3.Connection) -> None:
            db.execute("UPDATE subaccounts SET status = ?, updated_on = ? WHERE id = ?",
                       (DELETED, _now(), subaccount_id))
            db.execute("DELETE FROM callflow_configs WHERE substr(number, 1, ?) = ?",
                       (len(prefix), prefix))
        await self.storage.run(q, transaction=True)
        self.storage.forget_configs()

    async def list_configs(self, subaccount_id: int, offset: int,
                           limit: int) -> tuple[list[CallFlowConfig], int]:
        """The per-number configurations of one sub-account (not its Default)."""
        prefix = f"{_PREFIX}{subaccount_id}:"

        def q(db: sqlite3.Connection) -> tuple[list[sqlite3.Row], int]:
            where = "substr(number, 1, ?) = ? AND number != ?"
            args = (len(prefix), prefix, prefix)
            total = db.execute(f"SELECT COUNT(*) FROM callflow_configs WHERE {where}",
                               args).fetchone()[0]
            rows = db.execute(f"SELECT * FROM callflow_configs WHERE {where} "
                              "ORDER BY number LIMIT ? OFFSET ?",
                              (*args, limit, offset)).fetchall()
            return rows, int(total)
        rows, total = await self.storage.run(q)
        return [CallFlowConfig.from_row(dict(r)) for r in rows], total
