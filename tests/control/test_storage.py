"""Storage over a real SQLite file: migrations, configs, call logs, errors."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from control import storage as storage_module
from control.calls import Call, CallStatus, Direction, HangupEnd, iso
from control.flowconfig import CallFlowConfig
from control.storage import MIGRATIONS, Storage, StorageError, log_cursor

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    s = Storage(tmp_path / "data" / "voxswitch.db")
    await s.open()
    yield s
    await s.close()


def config(number: str | None, url: str = "https://example.test/ivr") -> CallFlowConfig:
    return CallFlowConfig.from_request({"callback": {"url": url}}, number, None, now=T0)


def log(call_id: str, start: datetime, **fields: Any) -> dict[str, Any]:
    record = {
        "id": call_id,
        "call_id": call_id,
        "start_time": iso(start),
        "direction": "inbound",
        "caller_no": "+17145551212",
        "api_no": "+19495551212",
        "connect_time_sec": 0,
        "status": "completed",
    }
    return record | fields


async def test_open_creates_the_file_in_wal_mode_at_the_latest_schema(tmp_path: Path) -> None:
    s = Storage(tmp_path / "data" / "voxswitch.db")
    await s.open()
    try:
        assert await s.schema_version() == len(MIGRATIONS)
    finally:
        await s.close()
    conn = sqlite3.connect(tmp_path / "data" / "voxswitch.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_a_directory_path_holds_the_default_file(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    assert s.path == tmp_path / storage_module.DB_FILENAME


async def test_reopening_keeps_data_and_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    s = Storage(path)
    await s.open()
    await s.put_config(config("1000"))
    await s.close()
    s = Storage(path)
    await s.open()
    assert await s.get_config("1000") == config("1000")
    assert await s.schema_version() == len(MIGRATIONS)
    await s.close()


async def test_pending_migrations_are_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v.db"
    s = Storage(path)
    await s.open()
    await s.close()
    extra = ("CREATE TABLE later (x INTEGER)",)
    monkeypatch.setattr(storage_module, "MIGRATIONS", [*MIGRATIONS, extra])
    s = Storage(path)
    await s.open()
    assert await s.schema_version() == len(MIGRATIONS) + 1
    await s.close()


async def test_a_failing_migration_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v.db"
    bad = ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(storage_module, "MIGRATIONS", [*MIGRATIONS, bad])
    with pytest.raises(StorageError):
        await Storage(path).open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in names
    conn.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    s = Storage(path)
    await s.open()
    await s.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        await Storage(path).open()


async def test_methods_fail_cleanly_when_not_open(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not open"):
        await Storage(tmp_path / "v.db").get_config(None)


async def test_sqlite_errors_become_storage_errors(store: Storage) -> None:
    with pytest.raises(StorageError, match="OperationalError"):
        await store._call(lambda: store._db().execute("SELECT * FROM nowhere"))


async def test_database_work_runs_off_the_event_loop_thread(store: Storage) -> None:
    thread = await store._call(threading.current_thread)
    assert thread is not threading.main_thread()
    assert thread.name.startswith("voxswitch-db")


# -- configs -------------------------------------------------------------------------------


async def test_config_put_get_delete(store: Storage) -> None:
    assert await store.get_config(None) is None
    await store.put_config(config(None))
    await store.put_config(config("+17145551212"))
    assert await store.get_config(None) == config(None)
    assert await store.get_config("+17145551212") == config("+17145551212")
    assert await store.delete_config("+17145551212") is True
    assert await store.delete_config("+17145551212") is False
    assert await store.get_config("+17145551212") is None
    assert await store.get_config(None) is not None


async def test_put_replaces(store: Storage) -> None:
    await store.put_config(config("bob", "https://one.test/"))
    await store.put_config(config("bob", "https://two.test/"))
    got = await store.get_config("bob")
    assert got is not None and got.callback.url == "https://two.test/"


async def test_config_for_falls_back_to_the_default(store: Storage) -> None:
    assert await store.config_for("1000") is None
    await store.put_config(config(None, "https://default.test/"))
    got = await store.config_for("1000")
    assert got is not None and got.number is None
    await store.put_config(config("1000", "https://own.test/"))
    got = await store.config_for("1000")
    assert got is not None and got.callback.url == "https://own.test/"


async def test_list_configs_pages_by_number_without_the_default(store: Storage) -> None:
    await store.put_config(config(None))
    numbers = [f"+1714555{n:04d}" for n in range(7)]
    for number in reversed(numbers):
        await store.put_config(config(number))
    page, total = await store.list_configs(0, 3)
    assert total == 7 and [c.number for c in page] == numbers[:3]
    page, _ = await store.list_configs(2, 3)
    assert [c.number for c in page] == numbers[6:]
    page, _ = await store.list_configs(3, 3)
    assert page == []
    page, total = await store.list_configs(0, 10, include_default=True)
    assert total == 8 and page[0].number is None


# -- call logs -----------------------------------------------------------------------------


async def test_call_log_round_trip_and_upsert(store: Storage) -> None:
    call = Call(id="123@1", direction=Direction.INBOUND, caller_no="+1", api_no="1000", app_id="a")
    call.mark_connected()
    call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    record = call.log_record()
    await store.save_call_log(record)
    assert await store.get_call_log("123@1") == record
    await store.save_call_log(record | {"status": "failed"})
    got = await store.get_call_log("123@1")
    assert got is not None and got["status"] == "failed"
    assert await store.get_call_log("nope") is None


async def test_list_call_logs_filters(store: Storage) -> None:
    await store.save_call_log(log("1@1", T0))
    await store.save_call_log(log("2@1", T0 + timedelta(minutes=1), direction="outbound"))
    await store.save_call_log(log("3@1", T0 + timedelta(minutes=2), connect_time_sec=30))
    await store.save_call_log(log("4@1", T0 + timedelta(minutes=3), caller_no="bob"))
    await store.save_call_log(log("5@1", T0 + timedelta(minutes=4), api_no="1000"))
    await store.save_call_log(log("6@1", T0 + timedelta(hours=2)))

    async def ids(**kw: Any) -> list[str]:
        logs, truncated = await store.list_call_logs(T0, T0 + timedelta(hours=1), **kw)
        assert not truncated
        return [r["call_id"] for r in logs]

    assert await ids() == ["1@1", "2@1", "3@1", "4@1", "5@1"]
    assert await ids(direction="outbound") == ["2@1"]
    assert await ids(direction=["inbound", "outbound"]) == ["1@1", "2@1", "3@1", "4@1", "5@1"]
    assert await ids(connect_time=30) == ["3@1"]
    assert await ids(caller_no="bob") == ["4@1"]
    assert await ids(api_no="1000") == ["5@1"]
    # begin inclusive, end exclusive
    logs, _ = await store.list_call_logs(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert [r["call_id"] for r in logs] == ["2@1", "3@1"]


async def test_start_times_in_other_offsets_sort_by_instant(store: Storage) -> None:
    await store.save_call_log(log("a@1", T0) | {"start_time": "2024-05-01T14:00:30+02:00"})
    await store.save_call_log(log("b@1", T0))
    logs, _ = await store.list_call_logs(T0, T0 + timedelta(minutes=1))
    assert [r["call_id"] for r in logs] == ["b@1", "a@1"]


async def test_list_call_logs_truncates_and_continues_after_a_cursor(store: Storage) -> None:
    # five calls sharing one start time, so the cursor must break ties by call id
    for n in range(5):
        await store.save_call_log(log(f"{n}@1", T0))
    end = T0 + timedelta(seconds=1)
    first, truncated = await store.list_call_logs(T0, end, limit=2)
    assert truncated and [r["call_id"] for r in first] == ["0@1", "1@1"]
    second, truncated = await store.list_call_logs(T0, end, limit=2, after=log_cursor(first[-1]))
    assert truncated and [r["call_id"] for r in second] == ["2@1", "3@1"]
    third, truncated = await store.list_call_logs(T0, end, limit=2, after=log_cursor(second[-1]))
    assert not truncated and [r["call_id"] for r in third] == ["4@1"]


async def test_concurrent_writes_all_land(store: Storage) -> None:
    await asyncio.gather(*(store.save_call_log(log(f"{n}@2", T0)) for n in range(50)))
    logs, _ = await store.list_call_logs(T0, T0 + timedelta(seconds=1))
    assert len(logs) == 50


async def test_a_record_without_call_id_is_refused(store: Storage) -> None:
    with pytest.raises(ValueError, match="call_id"):
        await store.save_call_log({"start_time": iso(T0)})


async def test_concurrent_saves_share_transactions_and_each_waits_for_its_commit(
    store: Storage, tmp_path: Path,
) -> None:
    trips = 0
    real = store._call

    async def counting(fn: Any) -> Any:
        nonlocal trips
        trips += 1
        return await real(fn)

    store._call = counting  # type: ignore[method-assign]
    await asyncio.gather(*(store.save_call_log(log(f"{n}@3", T0)) for n in range(200)))
    assert trips <= 2  # one group (two if the loop split them), not 200 trips
    # each save returned only once its record was committed: a second connection sees all
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("SELECT COUNT(*) FROM call_logs").fetchone()[0] == 200
    finally:
        other.close()


async def test_a_config_read_after_put_or_delete_is_current(store: Storage) -> None:
    assert await store.get_config("+1949") is None  # cached as absent
    await store.put_config(config("+1949", "https://one.test/"))
    got = await store.get_config("+1949")
    assert got is not None and got.callback.url == "https://one.test/"
    await store.delete_config("+1949")
    assert await store.get_config("+1949") is None


async def test_run_gives_other_stores_the_connection_and_a_transaction(storage: Storage) -> None:
    await storage.run(lambda c: c.execute("CREATE TEMP TABLE t (x INTEGER)"))

    def insert_then_fail(conn: Any) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        raise sqlite3.IntegrityError("refused")

    with pytest.raises(StorageError, match="IntegrityError: refused"):
        await storage.run(insert_then_fail, transaction=True)
    assert await storage.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    await storage.run(lambda c: c.execute("INSERT INTO t VALUES (2)"), transaction=True)
    assert [tuple(r) for r in await storage.run(
        lambda c: c.execute("SELECT x FROM t").fetchall())] == [(2,)]
