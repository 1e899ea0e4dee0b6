"""Call recordings: the service that RECORD and the REST API share.

A recording is a WAV file under `<data dir>/recordings/<id>.wav`, written as the call
goes by `media.recorder` (off the event loop), and a row in the storage's recordings
index. One call may hold several recordings; each one's `{name, id}` is appended to the
call's `recordings` (callbacks, call log) when it starts.

Choices where the spec is silent:
- Ids are opaque, URL- and file-name-safe: urlsafe base64 (no padding) of
  `<call id>:<12 random hex digits>|<n>`, n counting the call's recordings from 1 (the
  shape of the spec's example id).
- RECORD records in stereo: the caller on the left, on the right everything the switch
  sends the caller (prompts, the bridged leg, the conference mix). A call always has
  the switch as its other side, and a user replaying a call wants to hear what the
  caller heard. Mono is the media layer's option for messages (RECORDMESSAGE).
- stop, pause and resume act on the call's open recordings of the given group, or on
  all of them when no group is given (REST Pause/Resume/Stop give none); each is a no-op
  when nothing matches. A paused recording is shorter by the paused time.
- Recordings stop when the call ends, before its log and end_call are written; the
  `duration` is the audio's length in milliseconds.

Messages (RECORDMESSAGE) are mono recordings of the caller, one at a time per call: the
call's last message is recording, then stopped, then saved (or discarded: its row and
file are deleted). Its index row says 'unsaved' until it is saved, which hides it from
the list and the REST API; it joins the call's `recordings` when saved, by
`save_message` or by the call ending before a discard (the spec's note). For the same
reason a restarted switch saves the messages a crash left unsaved. Its length is
bounded in audio time by `media.vad.SilenceMonitor`: the silence timeout (voice
activity) and the maximum length. A new message discards an unsaved one (re-record).

With recording storage configured (`control.recordingstore`), a recording is uploaded
once it is closed and complete, and its local file removed: a RECORD recording when it
stops (or its call ends), a message once saved and no longer playable by its call (its
call ended, or a new message replaced it). Downloads of an uploaded recording fetch it
to a temporary file first; deleting one deletes its object.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import tempfile
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from control.calls import Call, iso, utcnow
from control.recordingstore import RecordingStore
from control.storage import Storage
from media.dsp.dtmf import key_tail
from media.recorder import Recorder, Recording, RecordingResult, recover, wav_header
from media.transcode import transcode
from media.vad import SilenceMonitor, SilenceWatch

if TYPE_CHECKING:
    from media.channel import Channel

log = logging.getLogger("voxswitch.recordings")

MAX_TRANSCODES = 2  # at once; the others wait their turn
UNSAVED = "unsaved"  # a message's index status until it is saved
HEADER_BYTES = 44  # media.recorder writes canonical 44-byte WAV headers


class RecordingRefused(Exception):
    """A recording could not start: the call has ended or has no media."""


@runtime_checkable
class RecordedCall(Protocol):
    """What recording needs of a call: the call session implements it."""

    call: Call

    def media_channel(self) -> Channel | None:
        """The call's media channel (None before media exists or after it closed)."""


def new_recording_id(call_id: str, n: int) -> str:
    raw = f"{call_id}:{secrets.token_hex(6)}|{n}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class _Open:
    id: str
    call_id: str
    group: str
    recording: Recording
    saved: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass
class Message:
    """A call's last RECORDMESSAGE message."""

    id: str
    call_id: str
    name: str
    group: str
    path: Path
    started: datetime
    recording: Recording
    # why it stopped recording: silence, max_time, closed (media.vad), key, stopped
    ended: asyncio.Future[str]
    watch: SilenceWatch | None = None
    duration_ms: int = 0
    stopped: bool = False  # its file is complete and the index knows its length
    saved: bool = False
    failed: bool = False


class RecordingService:
    """Starts, pauses, resumes and stops recordings, and keeps their index."""

    def __init__(self, engine: Any, storage: Storage, directory: Path,
                 store: RecordingStore | None = None) -> None:
        self.directory = Path(directory)
        self.storage = storage
        # where closed recordings go (unconfigured: they stay in `directory`)
        self.store = store or RecordingStore(storage, self.directory)
        self.store.busy = self._busy
        self.recorder = Recorder(engine)
        self._open: dict[str, _Open] = {}
        self._counts: dict[str, int] = {}
        self._transcodes = asyncio.Semaphore(MAX_TRANSCODES)
        self.silence = SilenceMonitor(engine)
        self._messages: dict[str, Message] = {}  # call id → its last message

    @property
    def open_count(self) -> int:
        """Recordings being written now (started, not yet stopped), for /metrics."""
        return len(self._open)

    def path_of(self, recording_id: str) -> Path:
        return self.directory / f"{recording_id}.wav"

    def _busy(self) -> set[str]:
        """Recordings not to upload yet: open ones, and messages their call may play."""
        return {*self._open, *(m.id for m in self._messages.values())}

    async def recover(self) -> list[str]:
        """At start-up: close the recordings a crash left open and mark them completed
        in the index; the ids recovered."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, recover, self.directory)
        ids = []
        for item in found:
            rid = str(item.meta.get("id") or item.path.stem)
            end = datetime.fromtimestamp(item.path.stat().st_mtime, UTC)
            await self.storage.finish_recording(rid, end, item.duration_ms, "completed")
            log.warning("recording.recovered", extra={"recording_id": rid,
                                                      "duration_ms": item.duration_ms})
            ids.append(rid)
        left = [*await self.storage.recordings_in_status("recording"),
                *await self.storage.recordings_in_status(UNSAVED)]
        for row in left:
            # Closed on disk, but the crash came before the index heard of it; or a
            # message whose call ended, with the switch, before a discard: saved.
            rid = row["id"]
            duration, status = await loop.run_in_executor(None, _wav_duration, Path(row["path"]))
            await self.storage.finish_recording(rid, utcnow(), duration, status)
            ids.append(rid)
        self.store.sweep()  # what an earlier run could not upload goes now
        return ids

    async def start(self, member: RecordedCall, group: str | None, name: str | None) -> str:
        """Start recording the call; its new recording id. RecordingRefused."""
        call = member.call
        channel = member.media_channel()
        if not call.is_live or channel is None or channel.closed:
            raise RecordingRefused(f"call {call.id} has ended" if not call.is_live
                                   else f"call {call.id} has no media")
        rid = self._new_id(call)
        group = group or call.caller_no
        path = self.path_of(rid)
        await self.storage.add_recording(_row(call, rid, name or "", group, utcnow(), 2, path))
        if not call.is_live or channel.closed:  # ended while the index was written
            await self.storage.finish_recording(rid, utcnow(), 0, "failed")
            raise RecordingRefused(f"call {call.id} has ended")
        recording = self.recorder.start(channel, path, channels=2,
                                        meta={"id": rid, "call_id": call.id})
        o = self._open[rid] = _Open(rid, call.id, group, recording)
        # Saved in the index however it ends: stopped, or its channel closed.
        o.saved = asyncio.ensure_future(self._save_when_done(o))
        call.recordings.append({"name": name or "", "id": rid})
        log.info("recording.started", extra={"call_id": call.id, "recording_id": rid,
                                             "group": group})
        return rid

    def _new_id(self, call: Call) -> str:
        n = self._counts[call.id] = self._counts.get(call.id, 0) + 1
        return new_recording_id(call.id, n)

    # ---- messages (RECORDMESSAGE) ------------------------------------------------------

    async def start_message(self, member: RecordedCall, group: str | None,
                            name: str | None, *, timeout_s: float, max_s: float) -> Message:
        """Start recording a message of the caller (mono), replacing an unsaved one;
        `ended` resolves when silence or the maximum length ends it (or its channel
        closes). Finish it with `stop_message`. RecordingRefused, StorageError."""
        call = member.call
        channel = member.media_channel()
        if not call.is_live or channel is None or channel.closed:
            raise RecordingRefused(f"call {call.id} has ended" if not call.is_live
                                   else f"call {call.id} has no media")
        previous = self._messages.get(call.id)
        await self._drop_unsaved(call.id)
        if previous is not None and previous.saved:  # no longer playable by the call
            self.store.offload(previous.id)
        rid = self._new_id(call)
        path = self.path_of(rid)
        group, started = group or call.api_no, utcnow()
        await self.storage.add_recording(_row(call, rid, name or "", group, started, 1, path),
                                         UNSAVED)
        if not call.is_live or channel.closed:  # ended while the index was written
            await self.storage.delete_recording(rid)
            raise RecordingRefused(f"call {call.id} has ended")
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        recording = self.recorder.start(channel, path, channels=1,
                                        meta={"id": rid, "call_id": call.id, "message": True})
        m = Message(rid, call.id, name or "", group, path, started, recording, ended)
        m.watch = self.silence.watch(channel, timeout_s, lambda why: _settle(ended, why),
                                     max_s=max_s)
        self._messages[call.id] = m
        log.info("message.started", extra={"call_id": call.id, "recording_id": rid})
        return m

    async def stop_message(self, call: Call, why: str = "stopped",
                           key: str | None = None) -> Message | None:
        """Stop the call's message if it is recording; it is then unsaved. `key`: the
        key that ended it, whose in-band tone is cut from the message's end."""
        m = self._messages.get(call.id)
        if m is None:
            return None
        if m.watch is not None:
            m.watch.cancel()
            m.watch = None
        _settle(m.ended, why)
        result: RecordingResult = await asyncio.wrap_future(m.recording.stop())
        if not m.stopped:
            m.stopped = True
            m.duration_ms, m.failed = result.duration_ms, result.error is not None
            if key is not None and not m.failed:
                m.duration_ms -= await asyncio.to_thread(trim_key_tail, m.path, key)
            await self.storage.finish_recording(m.id, utcnow(), m.duration_ms,
                                                "failed" if m.failed else UNSAVED)
        if m.failed:
            log.error("message.failed", extra={"call_id": call.id, "recording_id": m.id,
                                               "error": result.error})
        return m

    def last_message(self, call: Call) -> Message | None:
        """The call's last message once it has stopped (unsaved or saved), else None."""
        m = self._messages.get(call.id)
        if m is None or not m.stopped or m.failed:
            return None
        return m

    async def save_message(self, call: Call) -> Message | None:
        """Save the call's last message (index it, add it to the call's `recordings`);
        idempotent. None when there is none. StorageError."""
        m = self._messages.get(call.id)
        if m is None or m.failed:
            return None
        if not m.stopped:
            await self.stop_message(call)
        if m.saved or m.failed:
            return None if m.failed else m
        await self.storage.finish_recording(m.id, utcnow(), m.duration_ms, "completed")
        m.saved = True
        call.recordings.append({"name": m.name, "id": m.id})
        log.info("message.saved", extra={"call_id": call.id, "recording_id": m.id,
                                         "duration_ms": m.duration_ms})
        return m

    async def discard_message(self, call: Call) -> bool:
        """Discard the call's unsaved message (its file is deleted); False when there is
        none (a saved message stays saved)."""
        m = self._messages.get(call.id)
        if m is None or m.saved:
            return False
        await self._drop_unsaved(call.id)
        return True

    async def _drop_unsaved(self, call_id: str) -> None:
        m = self._messages.pop(call_id, None)
        if m is None or m.saved:
            return
        if m.watch is not None:
            m.watch.cancel()
        _settle(m.ended, "discarded")
        await asyncio.wrap_future(m.recording.stop())
        await self.storage.delete_recording(m.id)
        await asyncio.to_thread(m.path.unlink, missing_ok=True)
        log.info("message.discarded", extra={"call_id": call_id, "recording_id": m.id})

    def _matching(self, call: Call, group: str | None) -> list[_Open]:
        return [o for o in self._open.values()
                if o.call_id == call.id and (group is None or o.group == group)]

    def pause(self, call: Call, group: str | None = None) -> int:
        """Pause the call's open recordings (of `group`); how many there were."""
        found = self._matching(call, group)
        for o in found:
            o.recording.pause()
        return len(found)

    def resume(self, call: Call, group: str | None = None) -> int:
        found = self._matching(call, group)
        for o in found:
            o.recording.resume()
        return len(found)

    async def stop(self, call: Call, group: str | None = None) -> int:
        """Stop the call's open recordings (of `group`) and wait until each is saved."""
        found = self._matching(call, group)
        for o in found:
            o.recording.stop()
        for o in found:
            await self._saved(o)
        return len(found)

    async def _saved(self, o: _Open) -> None:
        assert o.saved is not None
        await asyncio.shield(o.saved)

    async def stop_call(self, call: Call) -> None:
        """The call ends: stop and save all its recordings, and its unsaved message."""
        await self.stop(call)
        try:
            if call.id in self._messages:
                await self.save_message(call)
        finally:
            m = self._messages.pop(call.id, None)
            self._counts.pop(call.id, None)
            if m is not None and m.saved:
                self.store.offload(m.id)

    async def close(self) -> None:
        """Shutting down: stop every recording, save it, end the writer thread."""
        opened = list(self._open.values())
        for o in opened:
            o.recording.stop()
        for o in opened:
            await self._saved(o)
        await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)
        await self.store.close()

    async def _save_when_done(self, o: _Open) -> None:
        result: RecordingResult = await asyncio.wrap_future(o.recording.done)
        self._open.pop(o.id, None)
        status = "failed" if result.error else "completed"
        try:
            await self.storage.finish_recording(o.id, utcnow(), result.duration_ms, status)
        except Exception:
            log.exception("recording.index_failed", extra={"recording_id": o.id})
        else:
            if not result.error:
                self.store.offload(o.id)
        if result.error:
            log.error("recording.failed", extra={"call_id": o.call_id, "recording_id": o.id,
                                                 "error": result.error})
        else:
            log.info("recording.saved", extra={"call_id": o.call_id, "recording_id": o.id,
                                               "duration_ms": result.duration_ms})

    async def delete(self, recording_id: str) -> bool:
        """Delete a recording (stopping it first if open) and its object if uploaded;
        False when there is none. ObjectStoreError: the object could not be deleted
        (the recording stays)."""
        o = self._open.get(recording_id)
        if o is not None:
            o.recording.stop()
            await self._saved(o)
        async with self.store.deleting(recording_id):  # no upload starts meanwhile
            row = await self.storage.get_recording(recording_id)
            if row is None or row["status"] == UNSAVED:
                return False
            await self.store.delete_object(row)
            await self.storage.delete_recording(recording_id)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: Path(row["path"]).unlink(missing_ok=True))
        log.info("recording.deleted", extra={"recording_id": recording_id})
        return True

    async def export(self, path: Path, fmt: str) -> IO[bytes]:
        """The recording at `path` in download format `fmt` (`media.transcode`): an
        anonymous temporary file beside the recordings, at offset 0, gone once closed.
        Transcoded off the event loop, MAX_TRANSCODES at a time. TranscodeError."""
        async with self._transcodes:
            return await asyncio.to_thread(_export, path, fmt, self.directory)


def _settle(future: asyncio.Future[str], why: str) -> None:
    if not future.done():
        future.set_result(why)


def _row(call: Call, rid: str, name: str, group: str, started: datetime, channels: int,
         path: Path) -> dict[str, Any]:
    return {
        "id": rid, "call_id": call.id, "name": name, "grp": group,
        "app_id": call.app_id, "subaccount_id": call.subaccount_id,
        "caller_no": call.caller_no, "direction": call.direction.value,
        "start_time": started, "channels": channels, "path": str(path),
    }


def _export(path: Path, fmt: str, directory: Path) -> IO[bytes]:
    out = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - the caller closes it
    try:
        transcode(path, fmt, out)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


def _wav_duration(path: Path) -> tuple[int, str]:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() * 1000 // w.getframerate(), "completed"
    except (OSError, wave.Error, EOFError):
        return 0, "failed"


def recording_json(row: dict[str, Any]) -> dict[str, Any]:
    """A recording object as the spec's Recordings methods return it."""
    return {
        "id": row["id"],
        "app_id": row["app_id"],
        "subaccount_id": row["subaccount_id"],
        "group": row["grp"],
        "caller_no": row["caller_no"],
        "start_time": iso(row["start_time"]),
        "end_time": iso(row["end_time"]),
        "duration": row["duration_ms"],
        # voxswitch extensions: the call, the action's name, the state of the file and
        # where it is (storage: "local" or "s3")
        "call_id": row["call_id"],
        "name": row["name"],
        "channels": row["channels"],
        "status": row["status"],
        "storage": "s3" if row.get("object_key") else "local",
    }


def trim_key_tail(path: Path, key: str) -> int:
    """Cut `key`'s in-band tone (and what followed it) from the end of the WAV at `path`,
    in place; the milliseconds cut. A file that can't be read or written is left as it is
    (logged): the message keeps a key press, nothing is lost."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, frames = w.getnchannels(), w.getnframes()
            pcm = np.frombuffer(w.readframes(frames), "<i2").reshape(-1, channels)
        cut = key_tail(pcm[:, 0], key)
        if cut == 0:
            return 0
        keep = frames - cut
        with open(path, "r+b") as fh:
            fh.truncate(HEADER_BYTES + keep * 2 * channels)
            fh.seek(0)
            fh.write(wav_header(channels, keep * 2 * channels))
        return cut * 1000 // 8000
    except (OSError, EOFError, wave.Error) as exc:
        log.warning("message.trim_failed", extra={"path": str(path), "error": str(exc)})
        return 0
