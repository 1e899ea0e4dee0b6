"""Caches shared by the audio sources: keys, an in-memory LRU, a disk store, single-flight.

Cached arrays are int16 mono and are handed out read-only (``arr.flags.writeable`` is
False): one array may be played on many channels at once, and a consumer that scribbled
on it would corrupt every later playback.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def cache_key(*parts: str | int | float) -> str:
    """sha256 hex of the parts; JSON-encoded so that ("a", "bc") and ("ab", "c") differ."""
    material = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def frozen(samples: np.ndarray) -> np.ndarray:
    """Return `samples` as a contiguous int16 array that cannot be written through."""
    out = np.ascontiguousarray(samples, dtype=np.int16)
    out.setflags(write=False)
    return out


class MemoryCache:
    """LRU of int16 arrays bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> np.ndarray | None:
        samples = self._items.get(key)
        if samples is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return samples

    def put(self, key: Hashable, samples: np.ndarray) -> None:
        """Insert (or refresh) an entry; one larger than the whole budget is not kept."""
        self.discard(key)
        if samples.nbytes > self.max_bytes:
            return
        self._items[key] = samples
        self._bytes += samples.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def discard(self, key: Hashable) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes


class DiskCache:
    """Arrays stored as ``<key>.npy`` (plus optional ``<key>.json`` metadata) in one dir.

    Methods are synchronous file I/O: call them through `asyncio.to_thread`. Writes go to
    a temporary file that is renamed into place, so a crash or a concurrent reader never
    sees half a file; an unreadable entry counts as a miss and is removed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{key}{suffix}"

    def load(self, key: str) -> np.ndarray | None:
        path = self._path(key, ".npy")
        try:
            samples = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            self._remove(key)
            return None
        if samples.dtype != np.int16 or samples.ndim != 1:
            self._remove(key)
            return None
        return frozen(samples)

    def load_meta(self, key: str) -> dict[str, Any] | None:
        try:
            meta = json.loads(self._path(key, ".json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def store(self, key: str, samples: np.ndarray, meta: dict[str, Any] | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Metadata first: a reader that finds the .npy must also find the validators
        # that belong to it, never the previous version's.
        if meta is not None:
            self._atomic_write(self._path(key, ".json"), json.dumps(meta).encode("utf-8"))
        self._atomic_write(self._path(key, ".npy"), _npy_bytes(samples))

    def touch(self, key: str) -> None:
        """Mark an entry as recently used (mtime), for whoever prunes the directory."""
        try:
            os.utime(self._path(key, ".npy"))
        except OSError:
            pass

    def _remove(self, key: str) -> None:
        for suffix in (".npy", ".json"):
            try:
                self._path(key, suffix).unlink()
            except OSError:
                pass

    def _atomic_write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _npy_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(samples, dtype=np.int16), allow_pickle=False)
    return buf.getvalue()


class SingleFlight(Generic[K, T]):
    """Concurrent calls with the same key share one running coroutine.

    The work runs in its own task and callers await it through `asyncio.shield`, so one
    caller being cancelled (a caller hanging up mid-prompt) does not cancel the fetch the
    others are waiting on. Failures are not remembered: the next call tries again.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[T]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._running

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        # Retrieve the exception so that a failure nobody waited for (every caller was
        # cancelled) is not logged as "Task exception was never retrieved".
        if not task.cancelled():
            task.exception()
