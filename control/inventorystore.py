"""The queries of trunks and the phone number inventory (storage migration 5).

Each method runs its SQL on the storage thread through `Storage.run`; the tables are
`trunks` (the Trunk object as JSON), `phone_numbers` (one row per number ever
provisioned; released ones keep their row with status `released` and no assignment) and
`trunk_calls` (which trunk carried a call, for per-trunk call logs).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from control.storage import Storage, call_log_filters

NUMBER_SORTS = {"updated_on": "updated_on", "created_on": "created_on", "no": "no",
                "status": "status", "assigned_to": "assigned_to"}
EDITABLE = ("description", "caller_id_name", "port_out_pin")


class Conflict(Exception):
    """Some numbers are already provisioned: `numbers` names them."""

    def __init__(self, numbers: list[str]) -> None:
        super().__init__(", ".join(numbers))
        self.numbers = numbers


def _number(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    no, assigned_to, status, subaccount_id, usage, created_on, updated_on, data = row
    out = json.loads(data)
    out.update(no=no, assigned_to=assigned_to, status=status, subaccount_id=subaccount_id,
               usage=usage, created_on=created_on, updated_on=updated_on)
    return out


_NUMBER_COLUMNS = ("no, assigned_to, status, subaccount_id, usage, created_on, updated_on, "
                   "data")


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


class InventoryStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # ---- phone numbers -------------------------------------------------------------------

    async def get_number(self, no: str) -> dict[str, Any] | None:
        def q(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(f"SELECT {_NUMBER_COLUMNS} FROM phone_numbers WHERE no = ?",
                             (no,)).fetchone()
            return _number(tuple(row)) if row else None
        return await self.storage.run(q)

    async def taken(self) -> set[str]:
        """Numbers provisioned and not released."""
        def q(db: sqlite3.Connection) -> set[str]:
            rows = db.execute("SELECT no FROM phone_numbers WHERE status != 'released'")
            return {r[0] for r in rows}
        return await self.storage.run(q)

    async def list_numbers(self, assigned_to: str | None, statuses: Iterable[str] | None,
                           sort_by: str, descending: bool, offset: int, limit: int,
                           match: Any = None, subaccount_id: int | None = None
                           ) -> tuple[list[dict[str, Any]], int]:
        """Numbers assigned to `assigned_to` (None: any assignment) with one of
        `statuses` (None: all but released), sorted, one page, and how many matched;
        `match` (a predicate over the number) filters before paging; `subaccount_id`:
        of that account only."""
        where: list[str] = []
        args: list[Any] = []
        if subaccount_id is not None:
            where.append("subaccount_id = ?")
            args.append(subaccount_id)
        if assigned_to is not None:
            where.append("assigned_to = ?")
            args.append(assigned_to)
        if statuses is None:
            where.append("status != 'released'")
        else:
            chosen = list(statuses)
            where.append(f"status IN ({', '.join('?' * len(chosen))})")
            args.extend(chosen)
        order = f"{NUMBER_SORTS[sort_by]} {'DESC' if descending else 'ASC'}, no"

        def q(db: sqlite3.Connection) -> tuple[list[dict[str, Any]], int]:
            rows = db.execute(f"SELECT {_NUMBER_COLUMNS} FROM phone_numbers WHERE "
                              f"{' AND '.join(where)} ORDER BY {order}", args).fetchall()
            found = [_number(tuple(r)) for r in rows]
            if match is not None:
                found = [n for n in found if match(n["no"])]
            return found[offset:offset + limit], len(found)
        return await self.storage.run(q)

    async def provision(self, numbers: list[str], assigned_to: str, now: str,
                        subaccount_id: int, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Provision `numbers` (routed at once); Conflict when any is already held."""
        def q(db: sqlite3.Connection) -> list[dict[str, Any]]:
            held = [no for no in numbers if db.execute(
                "SELECT 1 FROM phone_numbers WHERE no = ? AND status != 'released'",
                (no,)).fetchone()]
            if held:
                raise Conflict(held)
            for no in numbers:
                db.execute(f"INSERT OR REPLACE INTO phone_numbers ({_NUMBER_COLUMNS}) "
                           "VALUES (?, ?, 'routed', ?, 0, ?, ?, ?)",
                           (no, assigned_to, subaccount_id, now, now, json.dumps(data)))
            marks = ", ".join("?" * len(numbers))
            rows = db.execute(f"SELECT {_NUMBER_COLUMNS} FROM phone_numbers WHERE no IN "
                              f"({marks}) ORDER BY no", numbers).fetchall()
            return [_number(tuple(r)) for r in rows]
        return await self.storage.run(q, transaction=True)

    async def update_number(self, no: str, changes: dict[str, Any],
                            now: str) -> dict[str, Any] | None:
        """Set the editable fields of a held number; None when it is not held."""
        def q(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT data FROM phone_numbers WHERE no = ? AND "
                             "status != 'released'", (no,)).fetchone()
            if row is None:
                return None
            data = {**json.loads(row[0]), **changes}
            db.execute("UPDATE phone_numbers SET data = ?, updated_on = ? WHERE no = ?",
                       (json.dumps(data), now, no))
            got = db.execute(f"SELECT {_NUMBER_COLUMNS} FROM phone_numbers WHERE no = ?",
                             (no,)).fetchone()
            return _number(tuple(got))
        return await self.storage.run(q, transaction=True)

    async def move(self, numbers: list[str], assigned_to: str, subaccount_id: int | None,
                   now: str, owner: int | None = None) -> set[str]:
        """Reassign the held ones of `numbers` (and their sub account); those moved.
        `owner`: only the numbers of that account."""
        held_by = "" if owner is None else f" AND subaccount_id = {int(owner)}"
        def q(db: sqlite3.Connection) -> set[str]:
            moved = set()
            for no in numbers:
                sets = ["assigned_to = ?", "updated_on = ?"]
                args: list[Any] = [assigned_to, now]
                if subaccount_id is not None:
                    sets += ["subaccount_id = ?", "created_on = ?", "usage = 0"]
                    args += [subaccount_id, now]
                cur = db.execute(f"UPDATE phone_numbers SET {', '.join(sets)} WHERE no = ? "
                                 f"AND status != 'released'{held_by}", (*args, no))
                if cur.rowcount:
                    moved.add(no)
            return moved
        return await self.storage.run(q, transaction=True)

    async def release(self, numbers: list[str], assigned_to: str, now: str,
                      subaccount_id: int | None = None) -> int:
        """Release those of `numbers` assigned to `assigned_to` (and held by
        `subaccount_id`, when given); how many were."""
        held_by = "" if subaccount_id is None else f" AND subaccount_id = {int(subaccount_id)}"

        def q(db: sqlite3.Connection) -> int:
            marks = ", ".join("?" * len(numbers))
            cur = db.execute(f"UPDATE phone_numbers SET status = 'released', assigned_to = "
                             f"NULL, updated_on = ? WHERE assigned_to = ? AND no IN ({marks})"
                             f"{held_by}", (now, assigned_to, *numbers))
            return cur.rowcount
        return await self.storage.run(q, transaction=True)

    async def reassign(self, old: str, new: str, now: str) -> int:
        """Move every number assigned to `old` to `new` (a trunk deleted → ParkingLot)."""
        def q(db: sqlite3.Connection) -> int:
            return db.execute("UPDATE phone_numbers SET assigned_to = ?, updated_on = ? "
                              "WHERE assigned_to = ?", (new, now, old)).rowcount
        return await self.storage.run(q, transaction=True)

    async def count_usage(self, no: str) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute("UPDATE phone_numbers SET usage = usage + 1 WHERE no = ? AND "
                       "status != 'released'", (no,))
        await self.storage.run(q)

    # ---- trunks --------------------------------------------------------------------------

    async def get_trunk(self, trunk_id: str) -> dict[str, Any] | None:
        def q(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT data FROM trunks WHERE trunk_id = ?",
                             (trunk_id,)).fetchone()
            return json.loads(row[0]) if row else None
        return await self.storage.run(q)

    async def list_trunks(self, direction: str | None = None) -> list[dict[str, Any]]:
        def q(db: sqlite3.Connection) -> list[dict[str, Any]]:
            if direction is None:
                rows = db.execute("SELECT data FROM trunks ORDER BY rowid")
            else:
                rows = db.execute("SELECT data FROM trunks WHERE direction = ? ORDER BY "
                                  "rowid", (direction,))
            return [json.loads(r[0]) for r in rows]
        return await self.storage.run(q)

    async def trunk_for_domain(self, domain: str) -> dict[str, Any] | None:
        def q(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT data FROM trunks WHERE domain = ?",
                             (domain.lower(),)).fetchone()
            return json.loads(row[0]) if row else None
        return await self.storage.run(q)

    async def put_trunk(self, trunk: dict[str, Any]) -> bool:
        """Insert or replace; False when another trunk holds its outbound domain."""
        domain = (trunk.get("outbound") or {}).get("domain")

        def q(db: sqlite3.Connection) -> bool:
            if domain is not None and db.execute(
                    "SELECT 1 FROM trunks WHERE domain = ? AND trunk_id != ?",
                    (domain, trunk["trunk_id"])).fetchone():
                return False
            # an upsert keeps the rowid: trunks list in the order they were created
            db.execute("INSERT INTO trunks (trunk_id, direction, domain, created_on, data) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trunk_id) DO UPDATE SET "
                       "domain = excluded.domain, data = excluded.data",
                       (trunk["trunk_id"], trunk["direction"], domain, trunk["created_on"],
                        json.dumps(trunk)))
            return True
        return await self.storage.run(q, transaction=True)

    async def delete_trunk(self, trunk_id: str) -> bool:
        def q(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM trunks WHERE trunk_id = ?",
                              (trunk_id,)).rowcount > 0
        return await self.storage.run(q, transaction=True)

    # ---- per-trunk call logs -------------------------------------------------------------

    async def add_trunk_call(self, call_id: str, trunk_id: str, start: datetime) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO trunk_calls (call_id, trunk_id, start_time) "
                       "VALUES (?, ?, ?)", (call_id, trunk_id, _ms(start)))
        await self.storage.run(q)

    async def trunk_call_logs(self, trunk_id: str, begin: datetime, end: datetime,
                              directions: list[str] | None, limit: int, *,
                              connect_time: int | None = None, caller_no: str | None = None,
                              api_no: str | None = None, after: str | None = None,
                              service: str | None = None
                              ) -> tuple[list[dict[str, Any]], bool]:
        """The logs of the calls `trunk_id` carried that started in [begin, end), with
        History/Logs/Calls' filters; `after` is a `log_cursor()`."""
        filters, filter_args = call_log_filters(
            begin, end, directions, connect_time=connect_time, caller_no=caller_no,
            api_no=api_no, after=after, service=service, table="l")
        where = ["t.trunk_id = ?", *filters]
        args: list[Any] = [trunk_id, *filter_args]

        def q(db: sqlite3.Connection) -> tuple[list[dict[str, Any]], bool]:
            rows = db.execute("SELECT l.record FROM call_logs l JOIN trunk_calls t ON "
                              f"t.call_id = l.call_id WHERE {' AND '.join(where)} "
                              "ORDER BY l.start_time, l.call_id LIMIT ?",
                              (*args, limit + 1)).fetchall()
            logs = [json.loads(r[0]) for r in rows]
            return logs[:limit], len(logs) > limit
        return await self.storage.run(q)
