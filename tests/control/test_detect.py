"""The DETECT action on a real media engine (ticked by the test, the far end a UDP peer
sending RTP) with the switch's real answering-machine detection: which events run, and
when, in audio time, for a person, a voicemail with a beep, a correction from person to
voicemail (during the live-person actions and after DETECT has returned), a fax, and bad
input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from control.callflow.actions import Outcome
from control.callflow.actions.detect import RESUME
from control.callflow.context import Action, FlowContext
from control.callflow.errors import NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.variables import FlowVariables
from control.detection import DetectionService
from media.engine import MediaEngine
from tests.control.test_interpreter import Host
from tests.control.test_recordings import RecordedPort
from tests.media.test_recorder import Caller, call
from tests.support import audio
from tests.support.udp import UdpPeer

FRAME = 160
BEEP_HZ = 1000.0
GREETING = ("Hi, you have reached the voicemail of Jordan Miller. I can't take your call "
            "right now, please leave your name, number and a short message after the tone.")


class DetectPort(RecordedPort):
    """The stand-in call: what ran is logged with the tick it ran at; PAUSE waits for
    real (so that a correction has something to interrupt)."""

    def __init__(self, channel: Any, clock: list[int]) -> None:
        super().__init__(channel)
        self.clock = clock
        self.said: list[tuple[str, int]] = []  # (text, tick)

    async def speech(self, text: str, *, voice: str | None, language: str | None,
                     gender: str | None) -> np.ndarray:
        self.said.append((text, self.clock[0]))
        return np.zeros(FRAME, np.int16)

    async def sleep(self, seconds: float, *, stop_on_key: bool = False) -> None:
        self.log.append(("sleep", seconds))
        for _ in range(int(seconds * 100)):
            if self.ended:
                return
            await asyncio.sleep(0.01)


class ReplacingHost(Host):
    """The callback loop's `replace`, as DETECT's late correction uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.replaced: list[list[Action]] = []

    def replace(self, actions: list[Action], once: Any = None) -> bool:
        self.replaced.append(actions)
        return True


@pytest.fixture
async def line(engine: MediaEngine) -> AsyncIterator[tuple[DetectPort, Caller, list[int]]]:
    peer = UdpPeer()
    ch, caller = await call(engine, peer)
    clock = [0]
    yield DetectPort(ch, clock), caller, clock
    peer.close()


@pytest.fixture
def detection(engine: MediaEngine) -> DetectionService:
    return DetectionService(engine)


def say(text: str) -> dict[str, Any]:
    return {"type": "SAY", "params": {"text": text}}


def detect(events: dict[str, list[dict[str, Any]]], **params: Any) -> dict[str, Any]:
    return {"type": "DETECT", "params": params, "events": events}


EVENTS = {"on_live_person": [say("live")], "on_voicemail": [say("voicemail")],
          "on_voicemail_early": [say("early")]}


def context(port: DetectPort, detection: DetectionService, host: Host | None = None
            ) -> FlowContext:
    return FlowContext(port=port, vars=FlowVariables(port.call), host=host or Host(),
                       detection=detection)


async def drive(engine: MediaEngine, caller: Caller, clock: list[int], pcm: npt.NDArray[np.int16],
                task: asyncio.Future[Any], *, tail_s: float = 20.0) -> None:
    """The far end sends `pcm`, then silence, a frame per tick, until `task` is done or
    `tail_s` of silence has gone by."""
    total = len(pcm) // FRAME + int(tail_s * 50)
    for i in range(total):
        if task.done():
            return
        frame = pcm[FRAME * i: FRAME * (i + 1)]
        caller.send(frame if len(frame) == FRAME else audio.silence(0.02))
        clock[0] = i
        engine.tick(i * 0.02)
        for _ in range(3):
            await asyncio.sleep(0)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, npt.NDArray[np.int16]]:
    d = tmp_path_factory.mktemp("speech")
    out = {}
    for name, text in (("hello", "Hello?"), ("greeting", GREETING)):
        pcm, _ = audio.read_wav(audio.tts_wav(text, d / f"{name}.wav"))
        out[name] = pcm.astype(np.int16)
    return out


def voicemail(speech: dict[str, npt.NDArray[np.int16]]) -> tuple[npt.NDArray[np.int16], int]:
    """Greeting, 0.3 s, a 0.5 s beep; and the tick at which the beep ends."""
    pcm = audio.concat(audio.silence(0.3), speech["greeting"], audio.silence(0.3),
                       audio.sine(BEEP_HZ, 0.5, level=-10.0))
    return pcm, len(pcm) // FRAME


async def test_a_person_saying_hello_runs_on_live_person_within_two_seconds(
    engine: MediaEngine, line: tuple[DetectPort, Caller, list[int]],
    detection: DetectionService, speech: dict[str, npt.NDArray[np.int16]]
) -> None:
    port, caller, clock = line
    task = asyncio.ensure_future(Interpreter(context(port, detection)).run(
        compile_actions([detect(EVENTS), say("after")])))
    await drive(engine, caller, clock, audio.concat(audio.silence(0.2), speech["hello"]), task)
    assert await task is Outcome.NEXT
    assert [t for t, _ in port.said] == ["live", "after"]
    assert port.said[0][1] * 20 <= 2000, port.said  # decided within 2 s of audio
    assert port.call.detection == "live_person"


async def test_a_voicemail_runs_early_at_once_and_on_voicemail_after_the_beep(
    engine: MediaEngine, line: tuple[DetectPort, Caller, list[int]],
    detection: DetectionService, speech: dict[str, npt.NDArray[np.int16]]
) -> None:
    port, caller, clock = line
    pcm, beep_end = voicemail(speech)
    task = asyncio.ensure_future(Interpreter(context(port, detection)).run(
        compile_actions([detect(EVENTS), say("after")])))
    await drive(engine, caller, clock, pcm, task)
    assert await task is Outcome.NEXT
    assert [t for t, _ in port.said] == ["early", "voicemail", "after"], port.said
    early, message = port.said[0][1], port.said[1][1]
    assert early < beep_end - 25  # found during the greeting, not at its end
    assert beep_end <= message <= beep_end + 50, (message, beep_end)  # ≤ 1 s after the beep
    assert port.call.detection == "voicemail"
    det = detection.get(port.call)
    assert det is not None and det.beep_end_ms is not None
    assert abs(det.beep_end_ms - beep_end * 20) <= 200, (det.beep_end_ms, beep_end * 20)


async def test_a_correction_stops_the_live_person_actions_and_runs_on_voicemail(
    engine: MediaEngine, line: tuple[DetectPort, Caller, list[int]],
    detection: DetectionService, speech: dict[str, npt.NDArray[np.int16]]
) -> None:
    # trigger_live_in_ms is too short for any decision: on_live_person runs at 100 ms
    # (a long PAUSE), and the voicemail found later takes over from it.
    port, caller, clock = line
    pcm, beep_end = voicemail(speech)
    events = {"on_live_person": [say("live"), {"type": "PAUSE", "params": {"seconds": 60}}],
              "on_voicemail": [say("voicemail")]}
    task = asyncio.ensure_future(Interpreter(context(port, detection)).run(
        compile_actions([detect(events, trigger_live_in_ms=100), say("after")])))
    await drive(engine, caller, clock, pcm, task)
    assert await task is Outcome.NEXT
    assert [t for t, _ in port.said] == ["live", "voicemail", "after"], port.said
    assert port.said[0][1] <= 10  # 100 ms of audio, give or take the loop's turns
    assert beep_end <= port.said[1][1] <= beep_end + 50
    assert ("stop",) in port.log  # what played for the person was stopped


async def test_a_correction_after_detect_returned_replaces_the_flow(
    engine: MediaEngine, line: tuple[DetectPort, Caller, list[int]],
    detection: DetectionService, speech: dict[str, npt.NDArray[np.int16]]
) -> None:
    port, caller, clock = line
    pcm, _ = voicemail(speech)
    host = ReplacingHost()
    ctx = context(port, detection, host)
    events = {"on_live_person": [say("live")], "on_voicemail": [say("voicemail")]}
    flow = asyncio.ensure_future(Interpreter(ctx).run(compile_actions(
        [detect(events, trigger_live_in_ms=100), {"type": "PAUSE", "params": {"seconds": 60}}])))
    replaced = asyncio.ensure_future(_until(lambda: bool(host.replaced)))
    await drive(engine, caller, clock, pcm, replaced)
    assert host.replaced, "the voicemail was never found"
    flow.cancel()  # as the callback loop does when it replaces the running actions
    [[resume]] = host.replaced
    assert resume.type == "DETECT" and resume.spec is RESUME
    task = asyncio.ensure_future(Interpreter(ctx).run([resume]))
    await drive(engine, caller, clock, pcm[(clock[0] + 1) * FRAME:], task)
    assert await task is Outcome.NEXT
    assert [t for t, _ in port.said] == ["live", "voicemail"]
    assert port.said[1][1] >= port.said[0][1]


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0)


async def test_a_fax_runs_no_event_and_the_flow_goes_on(
    engine: MediaEngine, line: tuple[DetectPort, Caller, list[int]],
    detection: DetectionService
) -> None:
    port, caller, clock = line
    cng = audio.concat(*[audio.concat(audio.sine(1100.0, 0.5, level=-12.0),
                                      audio.silence(3.0)) for _ in range(3)])
    task = asyncio.ensure_future(Interpreter(context(port, detection)).run(
        compile_actions([detect(EVENTS, trigger_live_in_ms=8000), say("after")])))
    await drive(engine, caller, clock, cng, task)
    assert await task is Outcome.NEXT
    assert [t for t, _ in port.said] == ["after"]
    assert port.call.detection == "fax"


async def test_silence_runs_on_live_person_at_the_trigger(
    engine: MediaEngine, line: tuple[DetectPort, Caller, list[int]],
    detection: DetectionService
) -> None:
    port, caller, clock = line
    task = asyncio.ensure_future(Interpreter(context(port, detection)).run(
        compile_actions([detect(EVENTS, trigger_live_in_ms=1500)])))
    await drive(engine, caller, clock, audio.silence(0.1), task)
    assert await task is Outcome.NEXT
    [(text, tick)] = port.said
    assert text == "live" and 74 <= tick <= 80, tick  # 1.5 s of audio


@pytest.mark.parametrize("value", [0, 99, 60001, "soon", True])
async def test_a_trigger_out_of_range_is_refused(
    line: tuple[DetectPort, Caller, list[int]], detection: DetectionService, value: Any
) -> None:
    port, _, _ = line
    with pytest.raises(NoActions, match=r"param 'trigger_live_in_ms' "
                       r"(is .*; valid: 100 to 60000|must be int or float)"):
        await Interpreter(context(port, detection)).run(
            compile_actions([detect(EVENTS, trigger_live_in_ms=value)]))


async def test_a_call_without_media_goes_on_at_once(
    line: tuple[DetectPort, Caller, list[int]], detection: DetectionService, tmp_path: Path
) -> None:
    port, _, _ = line
    port.channel.close()
    outcome = await Interpreter(context(port, detection)).run(
        compile_actions([detect(EVENTS), say("after")]))
    assert outcome is Outcome.NEXT and [t for t, _ in port.said] == ["after"]
    assert detection.get(port.call) is None
