"""The RECORD action and the recording service, on a real media engine (ticked by the
test), real SQLite storage and real files; the call is a stand-in CallPort."""

from __future__ import annotations

import asyncio
import shutil
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from control.callflow.actions import Outcome
from control.callflow.context import FlowContext
from control.callflow.errors import NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.variables import FlowVariables
from control.recordings import RecordingRefused, RecordingService, recording_json
from control.storage import Storage
from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from tests.control.test_interpreter import Host, RecordingPort
from tests.support.audio import sine, tone_segments
from tests.support.udp import UdpPeer


class RecordedPort(RecordingPort):
    """The stand-in call, with a real media channel."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel

    def media_channel(self) -> Channel | None:
        return self.channel


@pytest.fixture
async def service(engine: MediaEngine, storage: Storage, tmp_path: Path
                  ) -> AsyncIterator[RecordingService]:
    svc = RecordingService(engine, storage, tmp_path / "recordings")
    yield svc
    await svc.close()


@pytest.fixture
async def port(engine: MediaEngine) -> AsyncIterator[RecordedPort]:
    peer = UdpPeer()
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=g711.PCMU, latch=False)
    yield RecordedPort(ch)
    peer.close()


def ticks(engine: MediaEngine, count: int) -> None:
    for i in range(count):
        engine.tick(i * 0.02)


async def run(raw: list[dict[str, Any]], port: RecordedPort,
              service: RecordingService) -> Outcome:
    ctx = FlowContext(port=port, vars=FlowVariables(port.call), host=Host(),
                      recordings=service)
    return await Interpreter(ctx).run(compile_actions(raw))


def record(action: str | None = None, group: str | None = None,
           name: str = "rec") -> dict[str, Any]:
    params = {k: v for k, v in (("action", action), ("group", group)) if v is not None}
    return {"type": "RECORD", "name": name, "params": params}


async def test_start_then_stop_saves_a_stereo_wav_and_indexes_it(
    engine: MediaEngine, port: RecordedPort, service: RecordingService, storage: Storage
) -> None:
    assert await run([record()], port, service) is Outcome.NEXT
    [entry] = port.call.recordings
    assert entry["name"] == "rec"
    rid = entry["id"]
    row = await storage.get_recording(rid)
    assert row is not None and row["status"] == "recording"
    assert row["grp"] == port.call.caller_no  # the spec's default group
    port.channel.play(sine(1209, 0.5))
    ticks(engine, 25)
    assert await run([record("stop")], port, service) is Outcome.NEXT
    row = await storage.get_recording(rid)
    assert row is not None
    body = recording_json(row)
    assert (body["status"], body["duration"], body["channels"]) == ("completed", 500, 2)
    assert body["call_id"] == port.call.id and body["end_time"] is not None
    with wave.open(row["path"], "rb") as w:
        assert (w.getnchannels(), w.getnframes()) == (2, 4000)
        right = np.frombuffer(w.readframes(4000), "<i2").reshape(-1, 2)[:, 1]
    assert tone_segments(right.astype(np.int16), 1209, min_db=-30) == [(0.0, 0.5)]
    assert Path(row["path"]).name == f"{rid}.wav"


async def test_several_recordings_by_group_pause_resume_stop(
    engine: MediaEngine, port: RecordedPort, service: RecordingService, storage: Storage
) -> None:
    await run([record(group="a", name="one"), record(group="b", name="two")], port, service)
    ids = [r["id"] for r in port.call.recordings]
    assert [r["name"] for r in port.call.recordings] == ["one", "two"] and len(set(ids)) == 2
    ticks(engine, 10)
    await run([record("pause", group="a")], port, service)
    ticks(engine, 10)
    await run([record("resume", group="a"), record("stop", group="b")], port, service)
    ticks(engine, 5)
    await run([record("stop")], port, service)
    rows = [await storage.get_recording(i) for i in ids]
    assert [(r or {}).get("duration_ms") for r in rows] == [300, 400]
    assert await run([record("stop"), record("pause")], port, service) is Outcome.NEXT


def test_a_bad_action_value_is_the_spec_error() -> None:
    with pytest.raises(NoActions, match="accepted: start, stop, pause, resume") as err:
        compile_actions([record("rewind")])
    assert err.value.code == 400902


async def test_an_interpolated_bad_action_fails_the_flow_not_the_call(
    port: RecordedPort, service: RecordingService
) -> None:
    with pytest.raises(NoActions, match="'rewind'"):
        await run([{"$what": "'rewind'"},
                   {"type": "RECORD", "params": {"action": "${what}"}}], port, service)
    assert port.call.recordings == []


async def test_record_on_an_ended_call_starts_nothing(
    port: RecordedPort, service: RecordingService, storage: Storage
) -> None:
    port.ended = True
    assert await run([record()], port, service) is Outcome.END
    port.ended = False
    port.call.mark_ended(port.call.status.COMPLETED, None)
    with pytest.raises(RecordingRefused, match="has ended"):
        await service.start(port, None, "x")
    assert port.call.recordings == []
    assert await storage.list_recordings() == ([], False)


async def test_a_closed_channel_ends_and_saves_its_recording(
    engine: MediaEngine, port: RecordedPort, service: RecordingService, storage: Storage
) -> None:
    other = await engine.open_channel()  # keeps the engine ticking its hooks
    rid = await service.start(port, None, "r")
    ticks(engine, 5)
    port.channel.close()
    ticks(engine, 1)
    deadline = time.monotonic() + 5
    while (row := await storage.get_recording(rid)) and row["status"] == "recording":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert row is not None and (row["status"], row["duration_ms"]) == ("completed", 100)
    with pytest.raises(RecordingRefused, match="no media"):
        await service.start(port, None, "r")
    other.close()


async def test_delete_removes_file_and_row(
    engine: MediaEngine, port: RecordedPort, service: RecordingService, storage: Storage
) -> None:
    rid = await service.start(port, None, "r")
    ticks(engine, 3)
    path = service.path_of(rid)
    assert await service.delete(rid) is True  # open: stopped first
    assert not path.exists() and await storage.get_recording(rid) is None
    assert await service.delete(rid) is False


async def test_list_filters_and_the_cap(
    engine: MediaEngine, port: RecordedPort, service: RecordingService, storage: Storage
) -> None:
    for group in ("a", "a", "b"):
        await service.start(port, group, "r")
    await service.stop_call(port.call)
    rows, truncated = await storage.list_recordings(group="a")
    assert len(rows) == 2 and not truncated
    rows, truncated = await storage.list_recordings(call_id=port.call.id, limit=2)
    assert len(rows) == 2 and truncated
    assert (await storage.list_recordings(caller_no="+1999"))[0] == []


async def test_recover_after_a_crash_lists_what_the_file_holds(
    engine: MediaEngine, port: RecordedPort, service: RecordingService, storage: Storage,
    tmp_path: Path
) -> None:
    rid = await service.start(port, None, "r")
    ticks(engine, 100)  # 2 s
    recorder = service.recorder
    deadline = time.monotonic() + 5
    while recorder._ticks_written < 100 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.1)  # past a sync
    # What kill -9 now leaves: the files as they are, the index row still 'recording'.
    crashed = tmp_path / "crashed"
    shutil.copytree(service.directory, crashed)
    restarted = RecordingService(engine, storage, crashed)
    row = await storage.get_recording(rid)
    assert row is not None and row["status"] == "recording"
    assert await restarted.recover() == [rid]
    row = await storage.get_recording(rid)
    assert row is not None and row["status"] == "completed"
    assert 1000 <= row["duration_ms"] <= 2000
    assert list(crashed.glob("*.part")) == []
    assert await restarted.recover() == []
