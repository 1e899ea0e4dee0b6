"""Action semantics on a stand-in CallPort (the real one is exercised by integration tests)."""

from typing import Any

import numpy as np
import pytest

from control.callflow.actions import Outcome
from control.callflow.actions.play import dtmf_audio
from control.callflow.errors import NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.calls import Call, Direction


class RecordingPort:
    def __init__(self, answered: bool = True) -> None:
        self.call = Call(
            id="1@1", direction=Direction.INBOUND, caller_no="a", api_no="b", app_id="t"
        )
        self.answered = answered
        self.ended = False
        self.log: list[tuple[Any, ...]] = []

    async def answer(self) -> None:
        self.answered = True
        self.log.append(("answer",))

    async def reject(self, status: int, reason: str) -> None:
        self.ended = True
        self.log.append(("reject", status, reason))

    async def hangup(self) -> None:
        self.ended = True
        self.log.append(("hangup",))

    async def speech(
        self, text: str, *, voice: str | None, language: str | None, gender: str | None
    ) -> np.ndarray:
        self.log.append(("speech", text, voice, language, gender))
        return np.ones(800, dtype=np.int16)

    async def audio(self, url: str) -> np.ndarray:
        self.log.append(("audio", url))
        return np.ones(1600, dtype=np.int16)

    async def play(self, pcm: np.ndarray) -> bool:
        self.log.append(("play", len(pcm)))
        return True

    async def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))


async def run(raw: list[dict[str, Any]], port: RecordingPort) -> Outcome:
    return await Interpreter(port).run(compile_actions(raw))


async def test_say_repeats_and_passes_voice() -> None:
    port = RecordingPort()
    out = await run(
        [
            {
                "type": "SAY",
                "params": {"text": "Hello", "repeat": 2, "voice": "Kevin", "gender": "male"},
            }
        ],
        port,
    )
    assert out is Outcome.NEXT
    assert port.log == [("speech", "Hello", "Kevin", None, "male"), ("play", 800), ("play", 800)]


async def test_spec_example_loop_is_read_as_repeat() -> None:
    port = RecordingPort()
    await run([{"type": "SAY", "params": {"text": "Hi", "loop": 3}}], port)
    assert port.log.count(("play", 800)) == 3


async def test_play_pause_then_hangup_stops_the_list() -> None:
    port = RecordingPort()
    out = await run(
        [
            {"type": "PLAY", "params": {"url": "http://127.0.0.1/x.wav"}},
            {"type": "PAUSE", "params": {"seconds": 2}},
            {"type": "HANGUP"},
            {"type": "SAY", "params": {"text": "never"}},
        ],
        port,
    )
    assert out is Outcome.END
    assert port.log == [
        ("audio", "http://127.0.0.1/x.wav"),
        ("play", 1600),
        ("sleep", 2.0),
        ("hangup",),
    ]


async def test_pause_defaults_to_five_seconds() -> None:
    port = RecordingPort()
    await run([{"type": "PAUSE"}], port)
    assert port.log == [("sleep", 5.0)]


@pytest.mark.parametrize(("reason", "status"), [("busy", 486), ("disconnected", 404), (None, 486)])
async def test_reject_before_answer_is_a_sip_final_response(
    reason: str | None, status: int
) -> None:
    port = RecordingPort(answered=False)
    params = {"reason": reason} if reason else {}
    out = await run([{"type": "REJECT", "params": params}], port)
    assert out is Outcome.END
    assert port.log[0][:2] == ("reject", status)


async def test_reject_after_answer_plays_then_hangs_up() -> None:
    port = RecordingPort(answered=True)
    await run([{"type": "REJECT", "params": {"reason": "busy"}}], port)
    assert port.log[0][0] == "play" and port.log[-1] == ("hangup",)


async def test_sessiondata_sets_session_data_from_either_place() -> None:
    port = RecordingPort()
    await run([{"type": "SESSIONDATA", "session_data": {"name": "Bob", "age": 21}}], port)
    assert port.call.session_data == {"name": "Bob", "age": 21}
    await run([{"type": "SESSIONDATA", "params": {"session_data": {"x": 1}}}], port)
    assert port.call.session_data == {"x": 1}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "DANCE"}, "type 'DANCE', which this switch does not run"),
        ({"type": "SAY"}, "missing required param 'text'"),
        ({"type": "SAY", "params": {"text": "x", "repeat": "two"}}, "'repeat' must be int"),
        ({"type": "SAY", "params": {"text": "x", "gender": "robot"}}, "accepted: female, male"),
        ({"type": "REJECT", "params": {"reason": "maybe"}}, "accepted: busy, disconnected"),
        ({"type": "PAUSE", "params": []}, "'params' must be an object"),
        ({"type": "SESSIONDATA", "session_data": [1, 2]}, "to be a JSON object"),
    ],
)
async def test_bad_actions_are_400902_with_a_clear_message(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(NoActions, match=message) as info:
        await run([raw], RecordingPort())
    assert info.value.code == 400902


async def test_a_bad_action_anywhere_fails_before_anything_runs() -> None:
    port = RecordingPort()
    with pytest.raises(NoActions):
        await run([{"type": "SAY", "params": {"text": "first"}}, {"type": "NOPE"}], port)
    assert port.log == []


def test_dtmf_audio_has_tones_gaps_and_dashes() -> None:
    pcm = dtmf_audio("1-2", 250, 500)
    # 100 ms tone + 500 ms dash + 250 ms delay + 100 ms tone
    assert len(pcm) == 8 * (100 + 500 + 250 + 100)
    with pytest.raises(NoActions, match="'x'"):
        dtmf_audio("1x", 250, 250)
