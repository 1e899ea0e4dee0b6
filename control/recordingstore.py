"""Where closed recordings go: an S3 bucket when one is configured, else nowhere (they
stay in the data directory).

Theory of operation. Recordings are always written locally while the call goes (crash
safety is `media.recorder`'s). When one closes, `RecordingService` calls `offload(id)`:
a background task uploads the file as `recordings/<id>.wav`, records the bucket and key
in the index, then removes the local file. Uploads never hold up a call or a REST reply;
at most MAX_UPLOADS run at once.

An upload that fails (the store unreachable, credentials refused, no such bucket) leaves
the recording as it was — local, listed, downloadable — and logs a warning with S3's
error code and message. Nothing is lost and nothing is retried in a tight loop: the
recordings still local are uploaded again at start-up (`sweep`), when the configuration
changes, and after the next upload that succeeds (the store is back).

The configuration: the settings file's `[recording_storage]` is the default; the one put
over REST (Integrations/RecordingStorage/AWS) is kept in the database and wins until it
is deleted. A recording's own row names its bucket; the current configuration's
endpoint and credentials reach it.

Readers pin: `local_file(id)` yields a path to read — the local file, or a temporary copy
fetched from the bucket — and while one is pinned an upload that finishes leaves the
local file in place until the reader is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

import aiohttp

from control.objectstore import ConfigError, ObjectStore, ObjectStoreError, S3Config
from control.storage import Storage

log = logging.getLogger("voxswitch.recordingstore")

INTEGRATION = "recording_storage/aws"  # its name in the storage's integrations table
MAX_UPLOADS = 2
CLOSE_GRACE_S = 2.0  # uploads still running at shutdown are retried at the next start
CONTENT_TYPE = "audio/wav"


def object_key(recording_id: str) -> str:
    return f"recordings/{recording_id}.wav"


def config_to_json(config: S3Config) -> dict[str, Any]:
    return {"access_key": config.access_key, "security_key": config.secret_key,
            "region": config.region, "bucket": config.bucket,
            "endpoint_url": config.endpoint_url}


def config_from_json(data: dict[str, Any]) -> S3Config:
    """ConfigError when a stored configuration no longer validates."""
    return S3Config(data.get("access_key", ""), data.get("security_key", ""),
                    data.get("region", ""), data.get("bucket", ""), data.get("endpoint_url"))


class RecordingStore:
    """Uploads closed recordings, fetches and deletes uploaded ones."""

    def __init__(self, storage: Storage, directory: Path, default: S3Config | None = None
                 ) -> None:
        self.storage = storage
        self.directory = Path(directory)
        self.default = default
        self._override: S3Config | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(MAX_UPLOADS)
        self._uploads: dict[str, asyncio.Task[None]] = {}
        self._sweeps: set[asyncio.Task[None]] = set()
        self._failed: set[str] = set()
        self._deleting: set[str] = set()
        self._pins: dict[str, int] = {}
        self._unlink_later: dict[str, Path] = {}
        # ids not to upload yet: open recordings, messages their call may still play
        self.busy: Callable[[], Collection[str]] = lambda: ()

    # ---- configuration ------------------------------------------------------------------

    @property
    def config(self) -> S3Config | None:
        """The configuration in force: the REST one, else the settings', else None."""
        return self._override or self.default

    @property
    def source(self) -> str | None:
        """Where `config` comes from: 'api', 'settings' or None."""
        return "api" if self._override else "settings" if self.default else None

    async def load(self) -> None:
        """At start-up: read the configuration kept by REST."""
        data = await self.storage.get_integration(INTEGRATION)
        if data is None:
            return
        try:
            self._override = config_from_json(data)
        except ConfigError as exc:
            log.error("recording_storage.bad_stored_config", extra={"error": str(exc)})

    async def configure(self, config: S3Config) -> None:
        """Keep `config` (REST) and upload what is still local to it."""
        await self.storage.put_integration(INTEGRATION, config_to_json(config))
        self._override = config
        self._failed.clear()
        self.sweep()

    async def unconfigure(self) -> None:
        """Forget the REST configuration; the settings' (if any) applies again."""
        await self.storage.delete_integration(INTEGRATION)
        self._override = None
        self.sweep()

    def _client(self, config: S3Config) -> ObjectStore:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return ObjectStore(config, self._session)

    # ---- uploads ------------------------------------------------------------------------

    def offload(self, recording_id: str, *, retry: bool = False) -> None:
        """Upload a closed recording in the background (nothing when unconfigured)."""
        if self.config is None or recording_id in self._uploads \
                or recording_id in self._deleting:
            return
        task = asyncio.ensure_future(self._upload(recording_id, retry))
        self._uploads[recording_id] = task
        task.add_done_callback(lambda _: self._uploads.pop(recording_id, None))

    def sweep(self, *, retry: bool = False) -> None:
        """Upload, in the background, every completed recording still only local."""
        if self.config is None:
            return
        task = asyncio.ensure_future(self._sweep(retry))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep(self, retry: bool) -> None:
        try:
            rows = await self.storage.recordings_to_upload()
        except Exception:
            log.exception("recording_storage.sweep_failed")
            return
        busy = set(self.busy())
        for row in rows:
            if row["id"] not in busy:
                self.offload(row["id"], retry=retry)

    async def _upload(self, rid: str, retry: bool) -> None:
        try:
            await self._try_upload(rid, retry)
        except asyncio.CancelledError:
            raise
        except Exception:  # the index failed, or a bug: the recording stays local
            self._failed.add(rid)
            log.exception("recording.upload_failed", extra={"recording_id": rid})

    async def _try_upload(self, rid: str, retry: bool) -> None:
        async with self._slots:
            config = self.config
            row = await self.storage.get_recording(rid)
            if config is None or row is None or row["status"] != "completed" \
                    or row["object_key"]:
                return
            path, key = Path(row["path"]), object_key(rid)
            try:
                await self._client(config).put_file(key, path, CONTENT_TYPE)
            except (ObjectStoreError, OSError) as exc:
                self._failed.add(rid)
                log.warning("recording.upload_failed: kept locally, retried later (%s)", exc,
                            extra={"recording_id": rid, "bucket": config.bucket,
                                   "error_code": getattr(exc, "code", type(exc).__name__),
                                   "error": str(exc), "path": str(path)})
                return
            await self.storage.set_recording_location(rid, config.bucket, key)
            self._failed.discard(rid)
            log.info("recording.uploaded", extra={"recording_id": rid, "bucket": config.bucket,
                                                  "key": key})
            await self._remove_local(rid, path)
        if self._failed and not retry:  # the store answers again: retry what failed
            self.sweep(retry=True)

    async def _remove_local(self, rid: str, path: Path) -> None:
        if self._pins.get(rid):
            self._unlink_later[rid] = path  # a reader has it open; removed when done
        else:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    @contextlib.asynccontextmanager
    async def deleting(self, recording_id: str) -> AsyncIterator[None]:
        """For the block, the recording is not uploaded; an upload under way ends first."""
        self._deleting.add(recording_id)
        try:
            task = self._uploads.get(recording_id)
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            yield
        finally:
            self._deleting.discard(recording_id)
            self._failed.discard(recording_id)

    async def idle(self) -> None:
        """Wait until no upload or sweep is pending (tests, shutdown)."""
        while self._uploads or self._sweeps:
            await asyncio.gather(*self._uploads.values(), *self._sweeps,
                                 return_exceptions=True)

    @property
    def failed(self) -> frozenset[str]:
        """Recordings whose last upload failed (they are local)."""
        return frozenset(self._failed)

    # ---- reading and deleting -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def local_file(self, recording_id: str) -> AsyncIterator[Path]:
        """A readable file of the recording for the block: its local file, or a copy
        fetched from its bucket. FileNotFoundError when neither exists; ObjectStoreError
        when the bucket can't be read."""
        self._pins[recording_id] = self._pins.get(recording_id, 0) + 1
        try:
            row = await self.storage.get_recording(recording_id)  # read once pinned
            if row is None:
                raise FileNotFoundError(recording_id)
            if not row["object_key"]:
                path = Path(row["path"])
                if not await asyncio.to_thread(path.is_file):
                    raise FileNotFoundError(str(path))
                yield path
                return
            copy = await self._fetch(row)
            try:
                yield copy
            finally:
                await asyncio.to_thread(copy.unlink, missing_ok=True)
        finally:
            await self._unpin(recording_id)

    async def _fetch(self, row: dict[str, Any]) -> Path:
        config = self._require(row)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix=f".{row['id']}.",
                                           suffix=".fetch", dir=self.directory)
        os.close(fd)
        copy = Path(name)
        try:
            await self._client(config).get_file(row["object_key"], copy, bucket=row["bucket"])
        except BaseException:
            await asyncio.to_thread(copy.unlink, missing_ok=True)
            raise
        return copy

    async def _unpin(self, rid: str) -> None:
        left = self._pins.pop(rid, 1) - 1
        if left > 0:
            self._pins[rid] = left
        elif rid in self._unlink_later:
            await asyncio.to_thread(self._unlink_later.pop(rid).unlink, missing_ok=True)

    async def delete_object(self, row: dict[str, Any]) -> None:
        """Delete the recording's object, if it has one. ObjectStoreError."""
        if row.get("object_key"):
            await self._client(self._require(row)).delete(row["object_key"],
                                                          bucket=row["bucket"])
            log.info("recording.object_deleted", extra={"recording_id": row["id"],
                                                        "bucket": row["bucket"]})

    def _require(self, row: dict[str, Any]) -> S3Config:
        if self.config is None:
            raise ObjectStoreError("NotConfigured", "no recording storage is configured; "
                                   f"recording {row['id']} is in bucket {row['bucket']!r} "
                                   f"as {row['object_key']!r}")
        return self.config

    async def close(self) -> None:
        """Let running uploads finish for a moment, cancel the rest (their recordings
        stay local and go at the next start), close the HTTP session."""
        pending = [*self._uploads.values(), *self._sweeps]
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
