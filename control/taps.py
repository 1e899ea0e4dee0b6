"""Audio taps: what each side of a call heard, as a WAV, for `GET /LiveCalls/{id}/Audio`.

Every call with media is recorded from the moment its channel opens, by a second
`media.recorder.Recorder` of the engine (the RECORD machinery: one copy per tick, a
writer thread off the event loop), into `<data dir>/taps/<call id>.wav`: 8 kHz 16-bit
stereo, left what the caller sent (what the switch heard), right what the switch sent
(what the caller heard: prompts, the bridged leg, the conference mix). For an outbound
call "the caller" is the far end.

Choices:
- On by default (`[taps] audio = true`): recording 500 channels costs about 2.7 % of a
  core (bench/recording.py). Disk is the real cost, 32 kB/s of call, so each tap stops
  after `[taps] audio_max_s` (600 s); the rest of a longer call is not tapped.
- Not durable (`Recorder(durable=False)`): no crash marker and no fsync; and no file
  system call on the event loop (the writer thread makes the directory and deletes
  expired taps). With an fsync per call and unlinks on the loop, outbound set-up at
  200 CPS stalled: an unlink waits on ext4's journal while SQLite's commit syncs it, the
  loop stops reading SIP for that long, and up to a third of the calls failed
  (bench/dial_rate).
- A tap lives as long as its call's timeline (`control.timeline`, `[taps] keep_s` and
  `max_calls`): it is deleted when the timeline expires, and all taps are deleted at
  start, as the timelines they belonged to did not survive the restart.
- The WAV served is built from the file as it is: a live call's tap is served up to
  the audio written so far (its header is rewritten from the data's size).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from control.calls import Call
from control.recordings import RecordedCall
from media.recorder import (
    HEADER_SIZE,
    PART_SUFFIX,
    Recorder,
    Recording,
    RecordingResult,
    wav_header,
)

log = logging.getLogger("voxswitch.taps")

MAX_S = 600.0
CLOSE_WAIT_S = 5.0  # at most this long for a just-stopped tap to be complete on disk
SIDES = ("caller", "switch")  # left, right
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


@dataclass
class _Tap:
    recording: Recording
    cap: asyncio.TimerHandle


class TapService:
    """Starts, stops, serves and deletes the calls' audio taps."""

    def __init__(self, engine: Any, directory: Path, *, enabled: bool = True,
                 max_s: float = MAX_S) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self.max_s = max_s
        # Taps are scratch (deleted at start, never recovered): no fsync per file
        self.recorder = Recorder(engine, durable=False)
        self._open: dict[str, _Tap] = {}
        # stopped taps the writer thread may still be finishing: their `done`
        self._closing: dict[str, concurrent.futures.Future[RecordingResult]] = {}

    def path_of(self, call_id: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', call_id)}.wav"

    def clear(self) -> int:
        """At start: delete every tap a previous run left; how many files went."""
        if not self.directory.exists():
            return 0
        gone = 0
        for path in self.directory.iterdir():
            if path.suffix in (".wav", PART_SUFFIX):
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def start(self, member: RecordedCall) -> None:
        """Tap the call's channel from the next tick (no-op when taps are off)."""
        call, channel = member.call, member.media_channel()
        if not self.enabled or channel is None or channel.closed or call.id in self._open:
            return
        try:  # the writer thread makes the directory: no file system call on the loop
            recording = self.recorder.start(channel, self.path_of(call.id), channels=2,
                                            meta={"call_id": call.id, "tap": True})
        except ValueError as exc:  # the channel closed under us
            # the call goes on untapped; its Audio answers 404 (a file the writer cannot
            # write is logged there, and the same 404 follows)
            log.warning("tap.start_failed", extra={"call_id": call.id, "error": str(exc)})
            return
        cap = asyncio.get_running_loop().call_later(self.max_s, self._capped, call.id)
        self._open[call.id] = _Tap(recording, cap)

    def _capped(self, call_id: str) -> None:
        if call_id in self._open:
            self.stop_id(call_id)
            log.info("tap.capped", extra={"call_id": call_id, "max_s": self.max_s})

    def stop(self, call: Call) -> None:
        """The call is ending: close its tap (the file completes off the loop)."""
        self.stop_id(call.id)

    def delete(self, call_id: str) -> None:
        """The call's timeline expired: its tap goes too."""
        self.stop_id(call_id)
        self.recorder.delete(self.path_of(call_id))  # after its close, off the loop

    def stop_id(self, call_id: str) -> None:
        tap = self._open.pop(call_id, None)
        if tap is not None:
            tap.cap.cancel()
            done = self._closing[call_id] = tap.recording.stop()
            loop = asyncio.get_running_loop()
            # `done` resolves on the writer thread: forget it on the loop's
            done.add_done_callback(
                lambda _: loop.call_soon_threadsafe(self._closing.pop, call_id, None))

    async def wav(self, call_id: str, side: str | None = None) -> bytes | None:
        """The tap as a WAV (stereo, or the mono `side`); None when the call has none."""
        closing = self._closing.get(call_id)
        if closing is not None:
            # stopped a moment ago: the writer thread is still writing its last audio (a
            # stalled disk does not hold the request: it gets what is written)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(closing)),
                                       CLOSE_WAIT_S)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _read_wav, self.path_of(call_id), side)

    async def close(self) -> None:
        for call_id in list(self._open):
            self.stop_id(call_id)
        await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)

    @property
    def open_count(self) -> int:
        return len(self._open)


def _read_wav(path: Path, side: str | None) -> bytes | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    data = raw[HEADER_SIZE:]
    data = data[: len(data) // 4 * 4]  # whole stereo frames (a live file grows)
    if side is None:
        return wav_header(2, len(data)) + data
    frames = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
    mono = np.ascontiguousarray(frames[:, SIDES.index(side)]).tobytes()
    return wav_header(1, len(mono)) + mono
