"""SQLite storage for call flow configurations, call logs and the recordings index.

Theory of operation: one `sqlite3` connection lives on one dedicated worker thread
(a single-thread executor), and every method ships its work there, so the event loop
never waits on disk and the connection is never shared between threads. WAL mode lets
readers (a CLI, a backup) look at the file while the switch writes.

The schema is versioned: `schema_version` holds how many entries of `MIGRATIONS` have
been applied, and `open()` applies the rest, each in its own transaction. Add a
migration by appending to the list; never edit one that has shipped.

Call logs are kept whole as JSON; the columns beside the JSON exist only to filter and
sort (`start_time` is epoch milliseconds so that ordering never depends on how a
timestamp was formatted).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from control.flowconfig import CallFlowConfig

T = TypeVar("T")

DB_FILENAME = "voxswitch.db"

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: call flow configurations and call logs
    (
        """CREATE TABLE callflow_configs (
            number TEXT PRIMARY KEY,          -- '' is the Default configuration
            data TEXT NOT NULL,               -- JSON, see CallFlowConfig.to_row
            created_on TEXT NOT NULL,
            updated_on TEXT NOT NULL
        )""",
        """CREATE TABLE call_logs (
            call_id TEXT PRIMARY KEY,
            start_time INTEGER NOT NULL,      -- epoch milliseconds, UTC
            direction TEXT,
            caller_no TEXT,
            api_no TEXT,
            connect_time_sec INTEGER NOT NULL DEFAULT 0,
            record TEXT NOT NULL              -- the whole call log as JSON
        )""",
        "CREATE INDEX call_logs_start_time ON call_logs (start_time, call_id)",
    ),
    # 2: the recordings index (the files are under <data dir>/recordings)
    (
        """CREATE TABLE recordings (
            id TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            name TEXT NOT NULL,               -- the RECORD action's name ('' if none)
            grp TEXT NOT NULL,                -- the spec's `group`
            app_id TEXT,
            subaccount_id INTEGER NOT NULL DEFAULT 0,
            caller_no TEXT,
            direction TEXT,
            start_time INTEGER NOT NULL,      -- epoch milliseconds, UTC
            end_time INTEGER,                 -- NULL while recording
            duration_ms INTEGER NOT NULL DEFAULT 0,
            channels INTEGER NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL              -- recording, completed, failed
        )""",
        "CREATE INDEX recordings_start_time ON recordings (start_time, id)",
        "CREATE INDEX recordings_call_id ON recordings (call_id)",
    ),
    # 3: where a recording lives once uploaded (NULL: only the local file), and the
    # integrations set over REST (Integrations/RecordingStorage/AWS, ...)
    (
        "ALTER TABLE recordings ADD COLUMN bucket TEXT",
        "ALTER TABLE recordings ADD COLUMN object_key TEXT",
        """CREATE TABLE integrations (
            name TEXT PRIMARY KEY,            -- e.g. 'recording_storage/aws'
            data TEXT NOT NULL,               -- JSON
            updated_on TEXT NOT NULL
        )""",
    ),
    # 4: registrar users and SIP messages (control/messagestore.py owns their queries)
    (
        """CREATE TABLE sip_users (           -- registrar users put over REST
            username TEXT PRIMARY KEY,
            password TEXT NOT NULL,           -- in clear, like the settings file's
            created_on TEXT NOT NULL,
            updated_on TEXT NOT NULL
        )""",
        """CREATE TABLE messages (
            message_id TEXT PRIMARY KEY,      -- SMO:/SMI: and a UUID
            created_on INTEGER NOT NULL,      -- epoch milliseconds, UTC
            direction TEXT NOT NULL,          -- inbound, outbound
            status TEXT NOT NULL,             -- the spec's Message Status
            api_no TEXT,
            caller_no TEXT,
            external_id TEXT,
            external_group_id TEXT,
            subaccount_id INTEGER NOT NULL DEFAULT 0,
            record TEXT NOT NULL              -- the message object as JSON
        )""",
        "CREATE INDEX messages_created_on ON messages (created_on, message_id)",
        """CREATE TABLE sms_opt_outs (        -- far ends that sent STOP (until START)
            subaccount_id INTEGER NOT NULL,
            caller_no TEXT NOT NULL,
            created_on TEXT NOT NULL,
            PRIMARY KEY (subaccount_id, caller_no)
        )""",
    ),
    # 5: trunks and the phone number inventory (control/inventorystore.py owns theirs)
    (
        """CREATE TABLE trunks (
            trunk_id TEXT PRIMARY KEY,
            direction TEXT NOT NULL,          -- inbound, outbound
            domain TEXT,                      -- outbound.domain, lower case (NULL: none)
            created_on TEXT NOT NULL,
            data TEXT NOT NULL                -- the Trunk object as JSON
        )""",
        "CREATE UNIQUE INDEX trunks_domain ON trunks (domain) WHERE domain IS NOT NULL",
        """CREATE TABLE phone_numbers (
            no TEXT PRIMARY KEY,              -- E.164
            assigned_to TEXT,                 -- CallFlows, ParkingLot, Trunks/{id}; NULL: released
            status TEXT NOT NULL,             -- the spec's Phone Number Status
            subaccount_id INTEGER NOT NULL DEFAULT 0,
            usage INTEGER NOT NULL DEFAULT 0, -- calls to it since it was provisioned
            created_on TEXT NOT NULL,
            updated_on TEXT NOT NULL,
            data TEXT NOT NULL                -- description, caller_id_name, port_out_pin, ...
        )""",
        "CREATE INDEX phone_numbers_assigned_to ON phone_numbers (assigned_to, no)",
        """CREATE TABLE trunk_calls (         -- which trunk carried a call (per-trunk logs)
            call_id TEXT PRIMARY KEY,
            trunk_id TEXT NOT NULL,
            start_time INTEGER NOT NULL       -- epoch milliseconds, UTC
        )""",
        "CREATE INDEX trunk_calls_trunk ON trunk_calls (trunk_id, start_time)",
    ),
    # 6: Application Sub Accounts (control/subaccountstore.py owns their queries)
    (
        """CREATE TABLE subaccounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- from 1: 0 is the main account
            status TEXT NOT NULL,             -- active, inactive; deleted (kept: 404802)
            created_on TEXT NOT NULL,
            updated_on TEXT NOT NULL,
            data TEXT NOT NULL                -- name, notes, port_out_pin, service_address
        )""",
    ),
    # 7: Caller IDs (control/callerids.py owns their queries)
    (
        """CREATE TABLE caller_ids (
            no TEXT NOT NULL,                 -- E.164
            subaccount_id INTEGER NOT NULL,   -- 0: the application's own
            status TEXT NOT NULL,             -- verified, unverified, blocked
            usage INTEGER NOT NULL DEFAULT 0,
            created_on TEXT NOT NULL,
            updated_on TEXT NOT NULL,
            data TEXT NOT NULL,               -- description, verification, failed_calls
            PRIMARY KEY (subaccount_id, no)
        )""",
    ),
]

RECORDING_COLUMNS = ("id", "call_id", "name", "grp", "app_id", "subaccount_id", "caller_no",
                     "direction", "start_time", "channels", "path")


def call_log_filters(begin: datetime, end: datetime, directions: list[str] | None, *,
                     connect_time: int | None = None, caller_no: str | None = None,
                     api_no: str | None = None, after: str | None = None,
                     service: str | None = None, table: str = ""
                     ) -> tuple[list[str], list[Any]]:
    """The WHERE terms and their arguments of History/Logs/Calls' filters over
    `call_logs` (named `table` in a join, e.g. "l"): start in [begin, end), direction,
    numbers, minimum `connect_time_sec`, service, and the `log_cursor()` to go on after
    (for ORDER BY start_time, call_id)."""
    t = f"{table}." if table else ""
    where = [f"{t}start_time >= ?", f"{t}start_time < ?"]
    args: list[Any] = [_to_ms(begin), _to_ms(end)]
    if directions:
        where.append(f"{t}direction IN ({', '.join('?' * len(directions))})")
        args.extend(directions)
    for column, value in (("caller_no", caller_no), ("api_no", api_no)):
        if value is not None:
            where.append(f"{t}{column} = ?")
            args.append(value)
    if connect_time is not None:
        where.append(f"{t}connect_time_sec >= ?")
        args.append(connect_time)
    if service is not None:
        where.append(SERVICE_OF.replace("record", f"{t}record") + " = ?")
        args.append(service)
    if after is not None:
        where.append(f"({t}start_time, {t}call_id) > (?, ?)")
        args.extend(parse_log_cursor(after))
    return where, args


class StorageError(Exception):
    """The database failed (the API answers 500102 Database Error)."""


def _to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"call log start_time must be an ISO 8601 string, not {value!r}")
    return datetime.fromisoformat(value)


# a call log's service, from its record (logs saved before it was kept say nothing: voice)
SERVICE_OF = "coalesce(json_extract(record, '$.service'), 'programmable_voice')"


def log_cursor(record: dict[str, Any]) -> str:
    """An opaque position just after `record`, for `list_call_logs(after=...)`."""
    return f"{_to_ms(_parse_time(record['start_time']))}:{_call_id_of(record)}"


def parse_log_cursor(cursor: str) -> tuple[int, str]:
    """The (start ms, call_id) in a `log_cursor()`; ValueError when it is not one."""
    ms, sep, call_id = cursor.partition(":")
    if not sep or not ms.lstrip("-").isdigit():
        raise ValueError(f"bad call log cursor {cursor!r}")
    return int(ms), call_id


def _call_id_of(record: dict[str, Any]) -> str:
    call_id = record.get("call_id") or record.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("call log record has no call_id")
    return call_id


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Storage:
    """The SQLite database; `path` is the database file or a data directory."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.path = path / DB_FILENAME if path.is_dir() else path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        # Every call reads its number's configuration: they are cached here, and only
        # this object writes them (put/delete keep the cache right).
        self._configs: dict[str, CallFlowConfig | None] = {}
        # Call logs written in groups: the saves that arrive while one group is being
        # written share the next transaction (one trip to the database thread).
        self._log_batch: list[tuple[Any, ...]] = []
        self._log_flush: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """Create the file if needed, switch to WAL and apply pending migrations."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxswitch-db")
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            # the queue is empty now, so the worker thread exits at once
            self._executor.shutdown(wait=False)
            self._executor = None

    async def schema_version(self) -> int:
        return await self._call(lambda: self._version(self._db()))

    # -- call flow configurations -------------------------------------------------------

    async def get_config(self, number: str | None) -> CallFlowConfig | None:
        """The configuration of `number` (None: the Default), if there is one."""
        key = number or ""
        if key in self._configs:
            return self._configs[key]
        row = await self._call(
            lambda: (
                self._db()
                .execute("SELECT * FROM callflow_configs WHERE number = ?", (number or "",))
                .fetchone()
            )
        )
        cfg = CallFlowConfig.from_row(dict(row)) if row else None
        self._configs[key] = cfg
        return cfg

    async def config_for(self, number: str) -> CallFlowConfig | None:
        """What an inbound call to `number` uses: its own configuration or the Default."""
        return await self.get_config(number) or await self.get_config(None)

    def forget_configs(self) -> None:
        """Drop the cached configurations (after a store changed the table itself)."""
        self._configs.clear()

    async def put_config(self, cfg: CallFlowConfig) -> None:
        row = cfg.to_row()
        self._configs.pop(row["number"], None)
        await self._call(
            lambda: self._db().execute(
                "INSERT INTO callflow_configs (number, data, created_on, updated_on) "
                "VALUES (:number, :data, :created_on, :updated_on) "
                "ON CONFLICT (number) DO UPDATE SET data = excluded.data, "
                "created_on = excluded.created_on, updated_on = excluded.updated_on",
                row,
            )
        )
        self._configs[row["number"]] = cfg

    async def delete_config(self, number: str | None) -> bool:
        """Delete a configuration; False when there was none."""
        self._configs.pop(number or "", None)
        cursor = await self._call(
            lambda: self._db().execute(
                "DELETE FROM callflow_configs WHERE number = ?", (number or "",)
            )
        )
        return cursor.rowcount > 0

    async def list_configs(
        self, page: int, page_size: int, include_default: bool = False
    ) -> tuple[list[CallFlowConfig], int]:
        """One zero-based page of configurations ordered by number, and the total count.

        The Default is left out unless asked for: the spec lists it under its own path.
        """
        # a sub-account's configurations (control/subaccountstore.py) are not the main's
        where = "WHERE number NOT GLOB 'sa[0-9]*:*'"
        where += "" if include_default else " AND number != ''"

        def work() -> tuple[list[sqlite3.Row], int]:
            db = self._db()
            total = db.execute(f"SELECT COUNT(*) FROM callflow_configs {where}").fetchone()[0]
            rows = db.execute(
                f"SELECT * FROM callflow_configs {where} ORDER BY number LIMIT ? OFFSET ?",
                (page_size, page * page_size),
            ).fetchall()
            return rows, total

        rows, total = await self._call(work)
        return [CallFlowConfig.from_row(dict(row)) for row in rows], total

    # -- call logs ------------------------------------------------------------------------

    async def save_call_log(self, record: dict[str, Any]) -> None:
        """Insert or replace the log of one call (`Call.log_record()`)."""
        params = (
            _call_id_of(record),
            _to_ms(_parse_time(record["start_time"])),
            record.get("direction"),
            record.get("caller_no"),
            record.get("api_no"),
            int(record.get("connect_time_sec") or 0),
            json.dumps(record, default=_json_default, separators=(",", ":")),
        )
        self._log_batch.append(params)
        if self._log_flush is None:
            self._log_flush = asyncio.ensure_future(self._flush_logs())
        await asyncio.shield(self._log_flush)

    async def _flush_logs(self) -> None:
        await asyncio.sleep(0)  # let the saves of this loop iteration join the group
        batch, self._log_batch = self._log_batch, []
        self._log_flush = None  # saves from now on go in the next group

        def write() -> None:
            db = self._db()
            with _transaction(db):
                db.executemany(
                    "INSERT OR REPLACE INTO call_logs (call_id, start_time, direction, "
                    "caller_no, api_no, connect_time_sec, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    batch)

        await self._call(write)

    async def get_call_log(self, call_id: str) -> dict[str, Any] | None:
        row = await self._call(
            lambda: (
                self._db()
                .execute("SELECT record FROM call_logs WHERE call_id = ?", (call_id,))
                .fetchone()
            )
        )
        return json.loads(row[0]) if row else None

    async def list_call_logs(
        self,
        begin: datetime,
        end: datetime,
        direction: str | Iterable[str] | None = None,
        connect_time: int | None = None,
        caller_no: str | None = None,
        api_no: str | None = None,
        limit: int = 1000,
        after: str | None = None,
        service: str | None = None,
        subaccount_id: int | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Logs that started in [begin, end), oldest first, and whether more matched.

        `connect_time` is the minimum `connect_time_sec`; `after` is a `log_cursor()`
        of the last record of a previous block, to fetch the next one; `service` the
        record's (programmable_voice, sip_trunking).
        """
        directions = None if direction is None else (
            [direction] if isinstance(direction, str) else list(direction))
        where, args = call_log_filters(begin, end, directions, connect_time=connect_time,
                                       caller_no=caller_no, api_no=api_no, after=after,
                                       service=service)
        if subaccount_id is not None:  # the record's (logs without one: the main's)
            where.append("coalesce(json_extract(record, '$.subaccount_id'), 0) = ?")
            args.append(subaccount_id)
        sql = (
            f"SELECT record FROM call_logs WHERE {' AND '.join(where)} "
            "ORDER BY start_time, call_id LIMIT ?"
        )
        args.append(limit + 1)  # one more than asked tells us whether it was truncated
        rows = await self._call(lambda: self._db().execute(sql, args).fetchall())
        return [json.loads(row[0]) for row in rows[:limit]], len(rows) > limit

    # -- recordings -----------------------------------------------------------------------

    async def add_recording(self, row: dict[str, Any], status: str = "recording") -> None:
        """Index a recording that has just started (`RECORDING_COLUMNS`); 'unsaved' for
        a RECORDMESSAGE message, which lists and reads as absent until saved."""
        values = {**row, "start_time": _to_ms(row["start_time"]), "status": status}
        await self._call(lambda: self._db().execute(
            f"INSERT INTO recordings ({', '.join(RECORDING_COLUMNS)}, status) VALUES "
            f"({', '.join(':' + c for c in RECORDING_COLUMNS)}, :status)", values))

    async def finish_recording(self, recording_id: str, end: datetime, duration_ms: int,
                               status: str) -> None:
        await self._call(lambda: self._db().execute(
            "UPDATE recordings SET end_time = ?, duration_ms = ?, status = ? WHERE id = ?",
            (_to_ms(end), duration_ms, status, recording_id)))

    async def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        rows = await self._recordings("id = ?", [recording_id], 1)
        return rows[0] if rows else None

    async def delete_recording(self, recording_id: str) -> bool:
        cursor = await self._call(lambda: self._db().execute(
            "DELETE FROM recordings WHERE id = ?", (recording_id,)))
        return cursor.rowcount > 0

    async def recordings_in_status(self, status: str) -> list[dict[str, Any]]:
        return await self._recordings("status = ?", [status], None)

    async def set_recording_location(self, recording_id: str, bucket: str | None,
                                     object_key: str | None) -> None:
        """Where the recording now lives: an object store's bucket and key (None, None:
        only its local file)."""
        await self._call(lambda: self._db().execute(
            "UPDATE recordings SET bucket = ?, object_key = ? WHERE id = ?",
            (bucket, object_key, recording_id)))

    async def recordings_to_upload(self) -> list[dict[str, Any]]:
        """Completed recordings that are only in their local file, oldest first."""
        return await self._recordings("status = 'completed' AND object_key IS NULL", [], None)

    # -- integrations ---------------------------------------------------------------------

    async def get_integration(self, name: str) -> dict[str, Any] | None:
        row = await self._call(lambda: self._db().execute(
            "SELECT data FROM integrations WHERE name = ?", (name,)).fetchone())
        return json.loads(row[0]) if row else None

    async def put_integration(self, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        now = datetime.now(UTC).isoformat()
        await self._call(lambda: self._db().execute(
            "INSERT INTO integrations (name, data, updated_on) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET data = excluded.data, "
            "updated_on = excluded.updated_on", (name, text, now)))

    async def delete_integration(self, name: str) -> bool:
        cursor = await self._call(lambda: self._db().execute(
            "DELETE FROM integrations WHERE name = ?", (name,)))
        return cursor.rowcount > 0

    async def list_recordings(
        self,
        begin: datetime | None = None,
        end: datetime | None = None,
        *,
        call_id: str | None = None,
        group: str | None = None,
        caller_no: str | None = None,
        direction: str | None = None,
        limit: int = 1000,
        subaccount_id: int | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Recordings that started in [begin, end), oldest first, and whether more
        matched than `limit` (`subaccount_id`: of that account only)."""
        where: list[str] = ["status != 'unsaved'"]
        args: list[Any] = []
        if begin is not None:
            where.append("start_time >= ?")
            args.append(_to_ms(begin))
        if end is not None:
            where.append("start_time < ?")
            args.append(_to_ms(end))
        for column, value in (("call_id", call_id), ("grp", group), ("caller_no", caller_no),
                              ("direction", direction), ("subaccount_id", subaccount_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = await self._recordings(" AND ".join(where), args, limit + 1)
        return rows[:limit], len(rows) > limit

    async def _recordings(self, where: str, args: list[Any],
                          limit: int | None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM recordings WHERE {where} ORDER BY start_time, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = await self._call(lambda: self._db().execute(sql, args).fetchall())
        out = []
        for row in rows:
            item = dict(row)
            item["start_time"] = _from_ms(item["start_time"])
            item["end_time"] = None if item["end_time"] is None else _from_ms(item["end_time"])
            out.append(item)
        return out

    # -- the worker thread ----------------------------------------------------------------

    async def run(self, fn: Callable[[sqlite3.Connection], T], *,
                  transaction: bool = False) -> T:
        """Run `fn(connection)` on the storage thread (in one transaction when asked):
        how the stores of other tables (messages, trunks, numbers) reach the database
        without this module holding their queries. sqlite3 errors are StorageError."""
        def call() -> T:
            conn = self._db()
            if not transaction:
                return fn(conn)
            with _transaction(conn):
                return fn(conn)
        return await self._call(call)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StorageError("storage is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("storage is not open")
        return self._conn

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: single statements commit themselves; migrations use _transaction
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against process crashes in WAL mode, and much faster
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = self._version(conn)
        if version > len(MIGRATIONS):
            raise StorageError(
                f"{self.path} has schema version {version}, newer than this voxswitch "
                f"({len(MIGRATIONS)})"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            with _transaction(conn):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
