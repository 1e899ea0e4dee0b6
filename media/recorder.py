"""Streaming call recorder: WAV files written off the event loop as the call goes.

Theory of operation. A `Recorder` serves one `MediaEngine`. While any recording runs it
is one of the engine's output hooks: each tick it gathers, for the channels being
recorded, their decoded input rows (`pcm_in`, what the caller sends us) and their output
rows (`pcm_out`, what the switch sends the caller: playback, bridge partner or conference
mix), with one fancy-index copy of each, and puts that batch on a queue. That copy is all
the tick does. A writer thread takes the batches, interleaves them and appends them to
each recording's file.

Files are 16-bit PCM WAV at 8 kHz: stereo (left: the caller, right: what the caller
hears) or mono (the caller only). The header's sizes are rewritten, the file flushed and
fsync'ed every `sync_interval` seconds of audio or wall time, whichever comes first, so
that a crash or `kill -9` loses at most that much (plus the batches still queued, a tick
or two). While a recording is open a marker `<file>.part` (JSON, written with the file)
sits beside it; `recover(directory)` finds the markers left by a crash, fixes each
header from the file's size and removes the marker. A clean stop does the same.
A recorder made with `durable=False` (scratch audio nobody recovers: the call taps)
writes no marker and never fsyncs: it still flushes and rewrites the header on the same
schedule, so a reader sees the audio so far, but it costs the disk no sync per file, which
at hundreds of calls a second would stall everyone else's commits (the SQLite store's).

Pause writes nothing: a paused recording is shorter by the time it was paused, and the
audio on either side of the pause is joined. If the writer falls `max_queued` ticks behind
(a stalled disk), further ticks are dropped and counted in `RecorderStats.dropped_ticks`
rather than held in memory or blocking the tick.
"""

from __future__ import annotations

import concurrent.futures
import enum
import json
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

RATE = 8000
HEADER_SIZE = 44
PART_SUFFIX = ".part"


class RecordedChannel(Protocol):
    """What the recorder needs of a channel: its engine slot (-1 once closed)."""

    _slot: int


class RecordingState(enum.Enum):
    RECORDING = "recording"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """A closed recording: its file, channel count and length in samples per channel."""

    path: Path
    channels: int
    samples: int
    error: str | None = None

    @property
    def duration_ms(self) -> int:
        return self.samples * 1000 // RATE


@dataclass(slots=True)
class RecorderStats:
    recordings: int = 0  # open now
    dropped_ticks: int = 0
    write_errors: int = 0


def wav_header(channels: int, data_bytes: int, rate: int = RATE) -> bytes:
    """A canonical 44-byte PCM WAV header for 16-bit samples."""
    align = 2 * channels
    return b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * align, align, 16
    ) + b"data" + struct.pack("<I", data_bytes)


class Recording:
    """One open recording; made by `Recorder.start`. Control it from the event loop.

    A recording whose channel closes is stopped at the engine's next tick (an engine
    with no channel left does not tick its hooks: whoever closes the last channel
    stops its recordings, as the control layer does when a call ends).
    """

    def __init__(self, recorder: Recorder, channel: RecordedChannel, path: Path,
                 channels: int) -> None:
        self.path = path
        self.channels = channels
        self.channel = channel
        self.state = RecordingState.RECORDING
        self.done: concurrent.futures.Future[RecordingResult] = concurrent.futures.Future()
        self._recorder = recorder

    def pause(self) -> None:
        """Stop writing samples until `resume`; a no-op unless recording."""
        if self.state is RecordingState.RECORDING:
            self.state = RecordingState.PAUSED
            self._recorder._active.pop(self, None)

    def resume(self) -> None:
        """Write samples again from the next tick; a no-op unless paused."""
        if self.state is RecordingState.PAUSED:
            self.state = RecordingState.RECORDING
            self._recorder._active[self] = None

    def stop(self) -> concurrent.futures.Future[RecordingResult]:
        """Close the recording (idempotent); `done` resolves once the file is complete."""
        if self.state is not RecordingState.STOPPED:
            self.state = RecordingState.STOPPED
            self._recorder._close(self)
        return self.done


class _File:
    # The writer thread's side of one recording.
    def __init__(self, rec: Recording, meta: dict[str, Any]) -> None:
        self.rec = rec
        self.meta = meta
        self.fh: IO[bytes] | None = None
        self.samples = 0
        self.synced_samples = 0
        self.synced_at = 0.0
        self.error: str | None = None


class Recorder:
    """Records channels of one engine (anything with `add_output_hook`)."""

    def __init__(self, engine: Any, *, sync_interval: float = 0.5,
                 max_queued: int = 250, durable: bool = True) -> None:
        self.stats = RecorderStats()
        self.sync_interval = sync_interval
        self.durable = durable
        self._engine = engine
        self._max_queued = max_queued
        self._active: dict[Recording, None] = {}  # recording, not paused (ordered set)
        self._open: set[Recording] = set()
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        # Ticks queued minus ticks written: each counter has one writing thread.
        self._ticks_put = 0
        self._ticks_written = 0
        self._thread: threading.Thread | None = None
        self._hooked = False

    def start(self, channel: RecordedChannel, path: Path, *, channels: int = 2,
              meta: dict[str, Any] | None = None) -> Recording:
        """Record `channel` into `path` (a new WAV) from the next tick.

        `channels` 2: left what the channel receives, right what it is sent; 1: what it
        receives. `meta` (JSON-able) is kept in the `.part` marker for `recover`.
        """
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels}")
        if channel._slot < 0:
            raise ValueError("the channel is closed")
        rec = Recording(self, channel, Path(path), channels)
        self._ensure_thread()
        self._queue.put(("open", _File(rec, dict(meta or {}))))
        self._open.add(rec)
        self._active[rec] = None
        self.stats.recordings = len(self._open)
        if not self._hooked:
            self._engine.add_output_hook(self._on_tick)
            self._hooked = True
        return rec

    def delete(self, path: Path) -> None:
        """Remove `path` (and its marker) on the writer thread, after whatever it still
        has to write there: unlinking on the event loop can wait on the file system's
        journal for as long as another thread's fsync takes."""
        self._ensure_thread()
        self._queue.put(("delete", Path(path)))

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop every recording and the writer thread (blocking; for shutdown)."""
        for rec in list(self._open):
            rec.stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(("quit",))
            thread.join(timeout)

    @property
    def recordings(self) -> Sequence[Recording]:
        return list(self._open)

    # --- the tick (event loop) ---

    def _on_tick(self, channels: Sequence[Any], pcm_in: npt.NDArray[np.int16],
                 pcm_out: npt.NDArray[np.int16]) -> None:
        if not self._active:
            return
        recs = tuple(self._active)
        slots = [r.channel._slot for r in recs]
        if min(slots) < 0:  # a channel closed: its recording ends with it
            for rec, slot in zip(recs, slots, strict=True):
                if slot < 0:
                    rec.stop()
            recs = tuple(self._active)
            slots = [r.channel._slot for r in recs]
            if not recs:
                return
        if self._ticks_put - self._ticks_written >= self._max_queued:
            self.stats.dropped_ticks += 1
            return
        self._ticks_put += 1
        self._queue.put(("frames", recs, pcm_in[slots], pcm_out[slots]))

    def _close(self, rec: Recording) -> None:
        self._active.pop(rec, None)
        self._open.discard(rec)
        self.stats.recordings = len(self._open)
        self._queue.put(("close", rec))
        if not self._open and self._hooked:
            self._engine.remove_output_hook(self._on_tick)
            self._hooked = False

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=_Writer(self).run, name="media-recorder", daemon=True
            )
            self._thread.start()


class _Writer:
    # The writer thread: owns the files; reads commands from the recorder's queue.
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.files: dict[Recording, _File] = {}

    def run(self) -> None:
        q = self.recorder._queue
        while True:
            try:
                item = q.get(timeout=self.recorder.sync_interval)
            except queue.Empty:
                self._sync_due()
                continue
            kind = item[0]
            if kind == "quit":
                for f in list(self.files.values()):
                    self._finish(f)
                return
            try:
                getattr(self, "_do_" + kind)(*item[1:])
            except Exception:  # never let one bad file end the thread
                log.exception("recorder writer failed on %s", kind)
            self._sync_due()

    def _do_open(self, f: _File) -> None:
        rec = f.rec
        self.files[rec] = f
        try:
            rec.path.parent.mkdir(parents=True, exist_ok=True)
            if self.recorder.durable:
                marker = {"channels": rec.channels, "rate": RATE, "meta": f.meta}
                _part(rec.path).write_text(json.dumps(marker))
            f.fh = open(rec.path, "wb")  # noqa: SIM115 - held open across commands
            f.fh.write(wav_header(rec.channels, 0))
            f.synced_at = time.monotonic()
        except OSError as exc:
            self._failed(f, exc)

    def _do_frames(self, recs: tuple[Recording, ...], pcm_in: npt.NDArray[np.int16],
                   pcm_out: npt.NDArray[np.int16]) -> None:
        self.recorder._ticks_written += 1
        stereo = np.stack((pcm_in, pcm_out), axis=-1).astype("<i2", copy=False)
        mono = pcm_in.astype("<i2", copy=False)
        for i, rec in enumerate(recs):
            f = self.files.get(rec)
            if f is None or f.fh is None:
                continue
            data = stereo[i] if rec.channels == 2 else mono[i]
            try:
                f.fh.write(data.tobytes())
            except OSError as exc:
                self._failed(f, exc)
                continue
            f.samples += pcm_in.shape[1]

    def _do_close(self, rec: Recording) -> None:
        f = self.files.get(rec)
        if f is not None:
            self._finish(f)

    def _do_delete(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
            _part(path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("recording %s: could not delete it: %s", path, exc)

    def _sync_due(self) -> None:
        now = time.monotonic()
        limit = self.recorder.sync_interval
        for f in self.files.values():
            pending = f.samples - f.synced_samples
            if f.fh is not None and pending and (
                pending >= limit * RATE or now - f.synced_at >= limit
            ):
                self._sync(f, now)

    def _sync(self, f: _File, now: float) -> None:
        fh = f.fh
        assert fh is not None
        try:
            fh.flush()
            os.pwrite(fh.fileno(), wav_header(f.rec.channels, f.samples * 2 * f.rec.channels), 0)
            if self.recorder.durable:
                os.fsync(fh.fileno())
        except OSError as exc:
            self._failed(f, exc)
            return
        f.synced_samples = f.samples
        f.synced_at = now

    def _finish(self, f: _File) -> None:
        rec = f.rec
        self.files.pop(rec, None)
        if f.fh is not None:
            self._sync(f, time.monotonic())
        if f.fh is not None:
            try:
                f.fh.close()
                if self.recorder.durable:
                    _part(rec.path).unlink(missing_ok=True)
            except OSError as exc:
                self._failed(f, exc)
        result = RecordingResult(rec.path, rec.channels, f.samples, f.error)
        if not rec.done.done():
            rec.done.set_result(result)

    def _failed(self, f: _File, exc: OSError) -> None:
        log.error("recording %s: %s", f.rec.path, exc)
        self.recorder.stats.write_errors += 1
        f.error = str(exc)
        if f.fh is not None:
            try:
                f.fh.close()
            except OSError:
                pass
            f.fh = None


def _part(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)


@dataclass(frozen=True, slots=True)
class RecoveredRecording:
    """A recording a crash left open, now closed by `recover`."""

    path: Path
    channels: int
    samples: int
    meta: dict[str, Any]

    @property
    def duration_ms(self) -> int:
        return self.samples * 1000 // RATE


def recover(directory: Path) -> list[RecoveredRecording]:
    """Close the recordings under `directory` that a crash left open.

    For each `<file>.part` marker: the WAV's header sizes are set from the file's size
    (cut to whole sample frames), the file is fsync'ed and the marker removed. A marker
    whose WAV is missing or shorter than a header is removed and skipped (logged).
    Blocking: call it at start-up, or in an executor.
    """
    found = []
    for marker in sorted(Path(directory).glob("*" + PART_SUFFIX)):
        wav = marker.with_name(marker.name[: -len(PART_SUFFIX)])
        try:
            info = json.loads(marker.read_text() or "{}")
            channels = int(info.get("channels", 1))
            found.append(_fix_header(wav, channels, dict(info.get("meta") or {})))
        except (OSError, ValueError) as exc:
            log.error("recording %s left open can't be recovered: %s", wav, exc)
        marker.unlink(missing_ok=True)
    return found


def _fix_header(wav: Path, channels: int, meta: dict[str, Any]) -> RecoveredRecording:
    align = 2 * channels
    with open(wav, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < HEADER_SIZE:
            raise ValueError(f"{size} bytes, shorter than a WAV header")
        data = (size - HEADER_SIZE) // align * align
        fh.truncate(HEADER_SIZE + data)
        fh.write(wav_header(channels, data))
        fh.flush()
        os.fsync(fh.fileno())
    return RecoveredRecording(wav, channels, data // align, meta)
