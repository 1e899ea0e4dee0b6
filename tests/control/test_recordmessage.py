"""The RECORDMESSAGE action on a real media engine (ticked by the test, the caller a UDP
peer sending RTP), real storage and files; the call is a stand-in CallPort whose key
presses the test injects."""

from __future__ import annotations

import asyncio
import shutil
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from control.callflow.actions import Outcome
from control.callflow.context import FlowContext
from control.callflow.errors import NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.variables import FlowVariables
from control.recordings import RecordingService
from control.storage import Storage
from media.channel import Channel
from media.engine import MediaEngine
from tests.control import test_recordings
from tests.control.test_interpreter import Host
from tests.control.test_recordings import RecordedPort
from tests.media.test_recorder import Caller, call
from tests.support.audio import concat, dtmf, silence, sine, tone_segments
from tests.support.udp import UdpPeer

TONE_HZ = 697.0
FRAME_S = 0.02

service = test_recordings.service  # the fixture: a RecordingService on real storage


class MessagePort(RecordedPort):
    """The stand-in call: key presses wait like the session's; playback is kept."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.played: list[npt.NDArray[np.int16]] = []

    def pending_digit(self) -> bool:
        return not self.digits.empty()

    async def next_digit(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self.digits.get(), timeout)
        except TimeoutError:
            return None

    def clear_digits(self) -> None:
        while not self.digits.empty():
            self.digits.get_nowait()

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        self.played.append(pcm)
        return await super().play(pcm, stop_on_key=stop_on_key)


@pytest.fixture
async def line(engine: MediaEngine) -> AsyncIterator[tuple[MessagePort, Caller]]:
    peer = UdpPeer()
    ch, caller = await call(engine, peer)
    yield MessagePort(ch), caller
    peer.close()


def message(action: str | None = None, name: str = "vm", events: dict[str, Any] | None = None,
            **params: Any) -> dict[str, Any]:
    if action is not None:
        params["action"] = action
    raw: dict[str, Any] = {"type": "RECORDMESSAGE", "name": name, "params": params}
    if events:
        raw["events"] = events
    return raw


PAUSE = [{"type": "PAUSE", "params": {"seconds": 1}}]


def flow(raw: list[dict[str, Any]], port: MessagePort, service: RecordingService
         ) -> asyncio.Task[Outcome]:
    ctx = FlowContext(port=port, vars=FlowVariables(port.call), host=Host(),
                      recordings=service)
    return asyncio.ensure_future(Interpreter(ctx).run(compile_actions(raw)))


async def speak(engine: MediaEngine, caller: Caller, task: asyncio.Task[Outcome],
                pcm: npt.NDArray[np.int16], keys: dict[int, str] | None = None,
                port: MessagePort | None = None) -> None:
    """Once the message has started, the caller sends `pcm` (then silence) a frame per
    tick until the flow is done; `keys` presses a key at a tick."""
    # the index row is written first, in storage's thread; then the recorder starts
    await until(lambda: task.done() or bool(engine.output_hooks))
    for i in range(100_000):
        if task.done():
            return
        frame = pcm[160 * i: 160 * (i + 1)]
        caller.send(frame if len(frame) == 160 else silence(FRAME_S))
        if keys and i in keys and port is not None:
            port.digits.put_nowait(keys[i])
        engine.tick(i * FRAME_S)
        for _ in range(3):
            await asyncio.sleep(0)
    raise AssertionError("the flow never finished")


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never came true")


async def deleted(path: Path) -> bool:
    """True once `path` is gone."""
    await until(lambda: not path.exists())
    return True


async def finished(task: asyncio.Task[Outcome]) -> Outcome:
    return await asyncio.wait_for(task, 10)


def read_mono(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


async def record(engine: MediaEngine, port: MessagePort, caller: Caller,
                 service: RecordingService, pcm: npt.NDArray[np.int16], **params: Any) -> Path:
    task = flow([message(**params)], port, service)
    await speak(engine, caller, task, pcm)
    assert await finished(task) is Outcome.NEXT
    last = service.last_message(port.call)
    assert last is not None
    return last.path


async def test_silence_ends_the_message_timeout_after_the_voice(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService,
    storage: Storage
) -> None:
    port, caller = line
    task = flow([message(timeout=1), message("save")], port, service)
    await speak(engine, caller, task, sine(TONE_HZ, 1.0, level=-20))
    assert await finished(task) is Outcome.NEXT
    [entry] = port.call.recordings
    assert entry["name"] == "vm"
    row = await storage.get_recording(entry["id"])
    assert row is not None and (row["status"], row["channels"]) == ("completed", 1)
    assert row["grp"] == port.call.api_no  # the spec's default group
    pcm = read_mono(Path(row["path"]))
    # voice from tick 2 (the jitter buffer) to 52, +1 window, +300 ms hangover, +1 s
    assert row["duration_ms"] == len(pcm) // 8 == pytest.approx((52 + 1 + 15 + 50) * 20, abs=60)
    [(start, end)] = tone_segments(pcm, TONE_HZ, min_db=-30, min_duration=0.1)
    assert start <= 0.06 and end == pytest.approx(1.0, abs=0.06)


async def test_max_recording_time_ends_a_message_that_never_falls_silent(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService
) -> None:
    port, caller = line
    path = await record(engine, port, caller, service, sine(TONE_HZ, 5.0, level=-20),
                        max_recording_time=1, timeout=2)
    assert len(read_mono(path)) == 8000  # one second of audio, to the sample


@pytest.mark.parametrize("finish, keys, stop_tick", [
    (None, {20: "5"}, 20),               # any key, the default
    ("#", {20: "5", 30: "#"}, 30),
    (7, {25: "7"}, 25),                  # a number is a key too
])
async def test_the_finish_key_ends_the_message(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService,
    storage: Storage, finish: str | int | None, keys: dict[int, str], stop_tick: int
) -> None:
    port, caller = line
    port.digits.put_nowait("#")  # pressed before the start: forgotten
    params = {} if finish is None else {"finish_on_key": finish}
    task = flow([message(**params)], port, service)
    await speak(engine, caller, task, sine(TONE_HZ, 10.0, level=-20), keys, port)
    assert await finished(task) is Outcome.NEXT
    last = service.last_message(port.call)
    assert last is not None and last.duration_ms == pytest.approx(stop_tick * 20, abs=60)
    # not saved yet: not in the call's recordings, not listed, not deletable by REST
    assert port.call.recordings == [] and await storage.list_recordings() == ([], False)
    assert await service.delete(last.id) is False and last.path.exists()


async def test_an_in_band_finish_key_is_cut_from_the_message(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService
) -> None:
    port, caller = line
    key = dtmf("#", tone_s=0.1, gap_s=0.0, level=-10.0)
    pcm = concat(sine(TONE_HZ, 1.0, level=-20), key)
    task = flow([message(finish_on_key="#")], port, service)
    # reported once the tone has reached the recording (it passes the jitter buffer
    # first, as it does on its way to the in-band detector)
    await speak(engine, caller, task, pcm, {56: "#"}, port)
    assert await finished(task) is Outcome.NEXT
    last = service.last_message(port.call)
    assert last is not None
    kept = read_mono(last.path)
    [(_, spoken_end)] = tone_segments(kept, TONE_HZ, min_db=-30, min_duration=0.5)
    # the message ends where the caller's tone did, not after the key
    assert len(kept) / 8000 == pytest.approx(spoken_end, abs=0.02)
    assert last.duration_ms == pytest.approx(len(kept) * 1000 / 8000, abs=1)
    assert tone_segments(kept, 1477.0, min_db=-40, min_duration=0.005) == []


async def test_play_plays_the_message_back(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService
) -> None:
    port, caller = line
    path = await record(engine, port, caller, service,
                        concat(sine(TONE_HZ, 0.6, level=-20)), timeout=1)
    task = flow([message("play")], port, service)
    assert await finished(task) is Outcome.NEXT
    [played] = port.played
    np.testing.assert_array_equal(played, read_mono(path))
    assert tone_segments(played, TONE_HZ, min_db=-30, min_duration=0.1)


async def test_discard_deletes_it_and_then_play_and_save_are_errors(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService,
    storage: Storage
) -> None:
    port, caller = line
    path = await record(engine, port, caller, service, sine(TONE_HZ, 0.3, level=-20),
                        timeout=1)
    events = {"on_error": PAUSE, "on_save": [{"type": "HANGUP"}]}
    task = flow([message("discard", events=events), message("play", events=events),
                 message("save", events=events), message("discard", events=events)],
                port, service)
    assert await finished(task) is Outcome.NEXT
    assert [e for e in port.log if e[0] == "sleep"] == [("sleep", 1.0)] * 2
    assert await deleted(path) and port.played == []
    await service.stop_call(port.call)  # the call ends: nothing left to save
    assert port.call.recordings == [] and await storage.list_recordings() == ([], False)


async def test_save_runs_on_save_and_a_second_start_replaces_an_unsaved_message(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService,
    storage: Storage
) -> None:
    port, caller = line
    first = await record(engine, port, caller, service, sine(TONE_HZ, 0.3, level=-20),
                         timeout=1)
    second = await record(engine, port, caller, service, sine(TONE_HZ, 0.3, level=-20),
                          timeout=1, name="again")
    task = flow([message("save", name="again", events={"on_save": PAUSE})], port, service)
    assert await finished(task) is Outcome.NEXT
    assert ("sleep", 1.0) in port.log
    [entry] = port.call.recordings
    assert entry["name"] == "again" and second.name == f"{entry['id']}.wav"
    assert await deleted(first) and second.exists()
    assert [r["id"] for r in (await storage.list_recordings())[0]] == [entry["id"]]


@pytest.mark.parametrize("recording", [False, True])
async def test_the_call_ending_before_a_discard_saves_the_message(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService,
    storage: Storage, recording: bool
) -> None:
    port, caller = line
    if recording:  # hung up mid-message: the flow is cancelled, as the session does
        task = flow([message()], port, service)
        # the index row is written in a thread first: wait for the message, not for luck
        await until(lambda: port.call.id in service._messages)
        for i in range(20):
            caller.send(sine(TONE_HZ, FRAME_S, level=-20))
            engine.tick(i * FRAME_S)
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await record(engine, port, caller, service, sine(TONE_HZ, 0.3, level=-20), timeout=1)
    await service.stop_call(port.call)
    [entry] = port.call.recordings
    row = await storage.get_recording(entry["id"])
    assert row is not None and row["status"] == "completed" and row["duration_ms"] > 0


async def test_start_without_media_runs_on_error(
    line: tuple[MessagePort, Caller], service: RecordingService
) -> None:
    port, _ = line
    port.channel.close()
    task = flow([message(events={"on_error": PAUSE})], port, service)
    assert await finished(task) is Outcome.NEXT
    assert ("sleep", 1.0) in port.log and port.call.recordings == []


@pytest.mark.parametrize("params, match", [
    ({"max_recording_time": 0}, "'max_recording_time' is 0; valid: 1 to 3600"),
    ({"max_recording_time": 3601}, "valid: 1 to 3600"),
    ({"max_recording_time": "soon"}, "valid: 1 to 3600"),
    ({"timeout": 0.5}, "'timeout' is 0.5; valid: 1 to 60"),
    ({"timeout": 61}, "valid: 1 to 60"),
    ({"timeout": True}, "valid: 1 to 60"),
    ({"finish_on_key": "x"}, "'finish_on_key' is 'x'; accepted: any, 0, 1"),
    ({"finish_on_key": 12}, "accepted: any"),
])
async def test_bad_params_are_the_spec_error(
    line: tuple[MessagePort, Caller], service: RecordingService, params: dict[str, Any],
    match: str
) -> None:
    port, _ = line
    with pytest.raises(NoActions, match=match) as err:
        await finished(flow([message(**params)], port, service))
    assert err.value.code == 400902 and port.call.recordings == []


def test_a_bad_action_fails_at_compile_time() -> None:
    with pytest.raises(NoActions, match="accepted: start, play, discard, save") as err:
        compile_actions([message("rewind")])
    assert err.value.code == 400902


@pytest.mark.parametrize("recording", [False, True])
async def test_a_restart_saves_what_a_crash_left_unsaved(
    engine: MediaEngine, line: tuple[MessagePort, Caller], service: RecordingService,
    storage: Storage, tmp_path: Path, recording: bool
) -> None:
    port, caller = line
    if recording:  # killed mid-message: the file is open, its marker beside it
        task = flow([message()], port, service)
        await until(lambda: bool(engine.output_hooks))  # the recorder has started
        for i in range(75):
            caller.send(sine(TONE_HZ, FRAME_S, level=-20))
            engine.tick(i * FRAME_S)
            await asyncio.sleep(0)
        await until(lambda: service.recorder._ticks_written >= 75)
        await asyncio.sleep(0.6)  # past a sync (twice a second)
    else:
        await record(engine, port, caller, service, sine(TONE_HZ, 0.3, level=-20), timeout=1)
    crashed = tmp_path / "crashed"
    shutil.copytree(service.directory, crashed)  # what kill -9 leaves
    assert await storage.list_recordings() == ([], False)
    [rid] = await RecordingService(engine, storage, crashed).recover()
    [row] = (await storage.list_recordings())[0]
    assert row["id"] == rid and row["status"] == "completed" and row["channels"] == 1
    assert row["duration_ms"] >= 1000  # 1.5 s, or 0.3 s + 1.3 s to fall silent
    if recording:
        task.cancel()
