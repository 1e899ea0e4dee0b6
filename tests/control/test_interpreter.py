"""Action semantics and control flow on a stand-in CallPort (the real one is exercised by
the integration tests): the spec's examples for IF, GOTO/LABEL, FOREACH, variables,
interpolation, COLLECT, REDIRECT and WEBHOOK."""

from collections import deque
from typing import Any

import numpy as np
import pytest

from control.callflow.actions import Outcome
from control.callflow.actions.play import dtmf_audio
from control.callflow.context import FlowContext
from control.callflow.errors import NoActions
from control.callflow.interpreter import Interpreter, compile_actions
from control.callflow.variables import FlowVariables
from control.calls import Call, Direction


class RecordingPort:
    """Records what the flow asked of the call; key presses come from a script."""

    def __init__(self, answered: bool = True, keys: str = "",
                 key_after_plays: int | None = None) -> None:
        self.call = Call(id="1@1", direction=Direction.INBOUND, caller_no="+17145551212",
                         api_no="+19495551212", app_id="t")
        self.answered = answered
        self.ended = False
        self.log: list[tuple[Any, ...]] = []
        self.keys: deque[str] = deque()
        self.script = keys  # keys that arrive while waiting in next_digit
        self.key_after_plays = key_after_plays

    async def answer(self) -> None:
        self.answered = True
        self.log.append(("answer",))

    async def reject(self, status: int, reason: str) -> None:
        self.ended = True
        self.log.append(("reject", status, reason))

    async def hangup(self) -> None:
        self.ended = True
        self.log.append(("hangup",))

    async def speech(self, text: str, *, voice: str | None, language: str | None,
                     gender: str | None) -> np.ndarray:
        self.log.append(("speech", text, voice, language, gender))
        return np.ones(800, dtype=np.int16)

    async def audio(self, url: str) -> np.ndarray:
        self.log.append(("audio", url))
        return np.ones(1600, dtype=np.int16)

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        self.log.append(("play", len(pcm), stop_on_key))
        if self.key_after_plays is not None:
            self.key_after_plays -= 1
            if self.key_after_plays < 0 and self.script:
                self.keys.append(self.script[0])
                self.script = self.script[1:]
                return not stop_on_key
        return True

    async def send_dtmf(self, digits: str, *, delay_ms: float, dash_ms: float) -> bool:
        self.log.append(("dtmf", digits, delay_ms, dash_ms))
        return True

    async def sleep(self, seconds: float, *, stop_on_key: bool = False) -> None:
        self.log.append(("sleep", seconds))

    def stop_audio(self) -> None:
        self.log.append(("stop",))

    def pending_digit(self) -> bool:
        return bool(self.keys)

    async def next_digit(self, timeout: float) -> str | None:
        if not self.keys and self.script:
            self.keys.append(self.script[0])
            self.script = self.script[1:]
        if not self.keys:
            self.log.append(("timeout", timeout))
            return None
        return self.keys.popleft()

    def clear_digits(self) -> None:
        self.keys.clear()


class Host:
    def __init__(self) -> None:
        self.redirects: list[tuple[Any, ...]] = []
        self.webhooks: list[tuple[Any, ...]] = []
        self.webhook_reply: tuple[bool, Any] = (True, None)

    def redirect(self, url: str, method: str | None, headers: dict[str, str] | None,
                 content_type: str | None) -> None:
        self.redirects.append((url, method, headers, content_type))

    async def webhook(self, params: dict[str, Any], data: Any, blocking: bool
                      ) -> tuple[bool, Any]:
        self.webhooks.append((params, data, blocking))
        return self.webhook_reply


def context(port: RecordingPort, host: Host | None = None) -> FlowContext:
    return FlowContext(port=port, vars=FlowVariables(port.call), host=host or Host())


async def run(raw: list[dict[str, Any]], port: RecordingPort,
              ctx: FlowContext | None = None) -> Outcome:
    return await Interpreter(ctx or context(port)).run(compile_actions(raw))


def spoken(port: RecordingPort) -> list[str]:
    return [entry[1] for entry in port.log if entry[0] == "speech"]


async def test_say_repeats_and_passes_voice() -> None:
    port = RecordingPort()
    out = await run([{"type": "SAY", "params": {"text": "Hello", "repeat": 2,
                                               "voice": "Kevin", "gender": "male"}}], port)
    assert out is Outcome.NEXT
    assert port.log == [("speech", "Hello", "Kevin", None, "male"), ("play", 800, False),
                        ("play", 800, False)]


async def test_spec_example_loop_is_read_as_repeat() -> None:
    port = RecordingPort()
    await run([{"type": "SAY", "params": {"text": "Hi", "loop": 3}}], port)
    assert port.log.count(("play", 800, False)) == 3


async def test_play_pause_then_hangup_stops_the_list() -> None:
    port = RecordingPort()
    out = await run([
        {"type": "PLAY", "params": {"url": "http://127.0.0.1/x.wav"}},
        {"type": "PAUSE", "params": {"seconds": 2}},
        {"type": "HANGUP"},
        {"type": "SAY", "params": {"text": "never"}},
    ], port)
    assert out is Outcome.END
    assert port.log == [("audio", "http://127.0.0.1/x.wav"), ("play", 1600, False),
                        ("sleep", 2.0), ("hangup",)]


async def test_play_dtmf_sends_digits_with_delays() -> None:
    port = RecordingPort()
    await run([{"type": "PLAY", "params": {"dtmf": "1 2 3 - 4 -- 5", "dtmf_delay": 300,
                                           "repeat": 2}}], port)
    assert port.log == [("dtmf", "123-4--5", 300, 250)] * 2


async def test_pause_defaults_to_five_seconds() -> None:
    port = RecordingPort()
    await run([{"type": "PAUSE"}], port)
    assert port.log == [("sleep", 5.0)]


@pytest.mark.parametrize(("reason", "status"), [("busy", 486), ("disconnected", 404),
                                                (None, 486)])
async def test_reject_before_answer_is_a_sip_final_response(reason: str | None,
                                                            status: int) -> None:
    port = RecordingPort(answered=False)
    params = {"reason": reason} if reason else {}
    out = await run([{"type": "REJECT", "params": params}], port)
    assert out is Outcome.END
    assert port.log[0][:2] == ("reject", status)


async def test_reject_after_answer_plays_then_hangs_up() -> None:
    port = RecordingPort(answered=True)
    await run([{"type": "REJECT", "params": {"reason": "busy"}}], port)
    assert port.log[0][0] == "play" and port.log[-1] == ("hangup",)


async def test_sessiondata_sets_session_data_and_the_variable() -> None:
    port = RecordingPort()
    ctx = context(port)
    await run([{"type": "SESSIONDATA", "session_data": {"name": "Bob", "age": 21}},
               {"type": "SAY", "params": {"text": "Hi ${sessionData.name}"}}], port, ctx)
    assert port.call.session_data == {"name": "Bob", "age": 21}
    assert spoken(port) == ["Hi Bob"]
    await run([{"type": "SESSIONDATA", "params": {"session_data": {"x": 1}}}], port, ctx)
    assert port.call.session_data == {"x": 1}


async def test_spec_user_defined_variables_example() -> None:
    port = RecordingPort()
    ctx = context(port)
    await run([
        {"$conferenceName": "'MyConference'", "$counter": "0", "$myObj": "{}",
         "$myPets": "['Whiskers', 'Spot', 'Bubbles']",
         "$myPetsAgain": "{cat: 'Whiskers', dog: 'Spot', fish: 'Bubbles'}"},
        {"$conferenceName": "'MyConference' + $counter"},
        {"$sessionData.isInConference": "false"},
        {"$myObj.foo": "'bar'"},
        {"$counter": "$counter + 1"},
        {"$myDog": "$myPets[1]"},
        {"$myPetsAgain.bird": "'Tweety'"},
    ], port, ctx)
    v = ctx.vars
    assert v.get("$conferenceName") == "MyConference0"
    assert v.get("$counter") == 1
    assert v.get("$myDog") == "Spot"
    assert v.get("$myObj") == {"foo": "bar"}
    assert v.get("$myPetsAgain")["bird"] == "Tweety"
    assert port.call.session_data == {"isInConference": False}


@pytest.mark.parametrize(("keys", "session", "said"), [
    ("1", {"gender": "male", "age": 18}, "You pressed 1, dude. Or you are over 21."),
    ("2", {"gender": "male", "age": 30}, "You pressed 1, dude. Or you are over 21."),
    ("2", {"gender": "female", "age": 18},
     "You did not press 1 and are not a male or are not over 21."),
])
async def test_spec_if_example(keys: str, session: dict[str, Any], said: str) -> None:
    port = RecordingPort(keys=keys)
    port.call.session_data = session
    ctx = context(port)
    ctx.vars.sync_from_call()
    await run([
        {"type": "COLLECT", "name": "k", "params": {"num_digits": 1}},
        {"type": "IF",
         "condition": "$keyPresses == '1' && $sessionData.gender == 'male' || "
                      "$sessionData.age > 21",
         "then": [{"type": "SAY", "params": {"text": "You pressed 1, dude. Or you are over 21."}}],
         "orElse": [{"type": "SAY", "params": {
             "text": "You did not press 1 and are not a male or are not over 21."}}]},
    ], port, ctx)
    assert spoken(port) == [said]


async def test_goto_from_inside_an_if_jumps_to_a_top_level_label() -> None:
    port = RecordingPort()
    await run([
        {"$n": "0"},
        {"type": "LABEL", "name": "again"},
        {"$n": "$n + 1"},
        {"type": "SAY", "params": {"text": "round ${n}"}},
        {"type": "IF", "condition": "$n < 3", "then": [
            {"type": "GOTO", "params": {"label": "again"}}]},
        {"type": "SAY", "params": {"text": "done"}},
    ], port)
    assert spoken(port) == ["round 1", "round 2", "round 3", "done"]


async def test_goto_to_a_missing_label_fails_the_flow_up_front() -> None:
    port = RecordingPort()
    with pytest.raises(NoActions, match="no LABEL of that name"):
        await run([{"type": "SAY", "params": {"text": "x"}},
                   {"type": "GOTO", "params": {"label": "nowhere"}}], port)
    assert port.log == []


async def test_goto_to_an_interpolated_missing_label_fails_when_reached() -> None:
    port = RecordingPort()
    with pytest.raises(NoActions, match="'gone'"):
        await run([{"$where": "'gone'"}, {"type": "GOTO", "params": {"label": "${where}"}}],
                  port)


async def test_a_goto_loop_that_never_waits_is_stopped() -> None:
    port = RecordingPort()
    with pytest.raises(NoActions, match="GOTO jumps"):
        await run([{"type": "LABEL", "name": "spin"},
                   {"type": "GOTO", "params": {"label": "spin"}}], port)


async def test_spec_foreach_example_over_array_and_object() -> None:
    port = RecordingPort()
    await run([
        {"$myPetsArray": "['Whiskers', 'Spot', 'Bubbles']"},
        {"type": "FOREACH", "params": {"iterator": "$myPetsArray"}, "then": [
            {"type": "SAY", "params": {"text": "The index ${index} has a value of ${val}."}}]},
        {"$myPetsObj": "{cat: 'Whiskers', dog: 'Spot', fish: 'Bubbles'}"},
        {"type": "FOREACH", "params": {"iterator": "$myPetsObj", "valueVar": "$v",
                                       "keyVar": "$k"}, "then": [
            {"type": "SAY", "params": {"text": "The key ${k} has a value of ${v}."}}]},
    ], port)
    assert spoken(port) == [
        "The index 0 has a value of Whiskers.", "The index 1 has a value of Spot.",
        "The index 2 has a value of Bubbles.", "The key cat has a value of Whiskers.",
        "The key dog has a value of Spot.", "The key fish has a value of Bubbles."]


async def test_spread_interpolation_spells_out_for_speech() -> None:
    port = RecordingPort()
    await run([{"type": "SAY", "params": {"text": "Thank you for calling ${...callerNo}."}}],
              port)
    assert spoken(port) == ["Thank you for calling + 1 7 1 4 5 5 5 1 2 1 2."]


async def test_collect_prompts_stop_at_the_first_key_without_losing_it() -> None:
    port = RecordingPort(keys="42#", key_after_plays=0)
    await run([{"type": "COLLECT", "name": "pin", "params": {"num_digits": 4},
                "actions": [{"type": "SAY", "params": {"text": "Enter your pin"}},
                            {"type": "SAY", "params": {"text": "never heard"}}]}], port)
    assert spoken(port) == ["Enter your pin"]
    assert [k.as_dict() for k in port.call.key_presses] == [
        {"name": "pin", "digits": "42", "history": ["42"]}]


async def test_collect_num_digits_timeout_and_finish_key_off() -> None:
    port = RecordingPort(keys="12#")
    ctx = context(port)
    await run([{"type": "COLLECT", "name": "a", "params": {"num_digits": 5,
                                                           "finish_on_key": "off",
                                                           "timeout": 2000}}], port, ctx)
    # '#' is an ordinary key when finish_on_key is off; then the 2 s timeout ends it
    assert port.call.key_presses[0].digits == "12#"
    assert ("timeout", 2.0) in port.log
    assert ctx.vars.get("$keyPresses") == "12#"


async def test_spec_advanced_collect_example_retries_then_redirects() -> None:
    flow = [
        {"$nextUrl": "'operator.json'"},
        {"type": "LABEL", "name": "PROMPT_MENU_CHOICE"},
        {"type": "COLLECT", "actions": [{"type": "SAY", "params": {
            "text": "Press1forsales.Press2forservice."}}], "params": {"num_digits": 1}},
        {"type": "IF", "condition": "! $keyPresses && $collectAttempt < 3", "then": [
            {"type": "GOTO", "params": {"label": "PROMPT_MENU_CHOICE"}}]},
        {"type": "IF", "condition": "$keyPresses=='1'", "then": [{"$nextUrl": "'sales.json'"}]},
        {"type": "IF", "condition": "$keyPresses=='2'",
         "then": [{"$nextUrl": "'service.json'"}]},
        {"type": "REDIRECT", "params": {"url": "${nextUrl}"}},
    ]
    # no key three times: three prompts, then the operator
    port, host = RecordingPort(), Host()
    await run(flow, port, context(port, host))
    assert spoken(port).count("Press1forsales.Press2forservice.") == 3
    assert host.redirects == [("operator.json", None, None, None)]
    # a 2 on the first attempt: service
    port, host = RecordingPort(keys="2"), Host()
    await run(flow, port, context(port, host))
    assert host.redirects[0][0] == "service.json"


async def test_webhook_blocking_sets_webhook_data_and_on_error_runs() -> None:
    port, host = RecordingPort(), Host()
    ctx = context(port, host)
    host.webhook_reply = (True, {"foo": "bar"})
    await run([{"$dataMap": "{webhookData: {a: 1}}"},
               {"type": "WEBHOOK", "params": {"event_name": "e1", "await_response": True,
                                              "webhook_data": "$dataMap.webhookData"}},
               {"type": "SAY", "params": {"text": "${webhookData.foo}"}}], port, ctx)
    assert host.webhooks[0][1:] == ({"a": 1}, True)
    assert spoken(port) == ["bar"]
    host.webhook_reply = (False, None)
    await run([{"type": "WEBHOOK", "params": {"event_name": "e2"}, "events": {"on_error": [
        {"type": "SAY", "params": {"text": "A webhook error occurred."}},
        {"$webhookData": "{ foo: 'I got no foo' }"}]}}], port, ctx)
    assert host.webhooks[1][2] is True  # on_error makes it blocking
    assert spoken(port)[-1] == "A webhook error occurred."
    assert ctx.vars.get("$webhookData") == {"foo": "I got no foo"}


async def test_webhook_is_fire_and_forget_by_default() -> None:
    port, host = RecordingPort(), Host()
    await run([{"type": "WEBHOOK", "params": {"event_name": "onEnter",
                                              "webhook_data": {"conferenceName": "c"}}}],
              port, context(port, host))
    assert host.webhooks == [({"event_name": "onEnter", "url": None, "method": None,
                               "content_type": None, "headers": None, "timeout": 30.0},
                              {"conferenceName": "c"}, False)]


async def test_stop_stops_audio() -> None:
    port = RecordingPort()
    await run([{"type": "STOP", "params": {"actions": "AUDIO"}}], port)
    assert port.log == [("stop",)]


@pytest.mark.parametrize(("raw", "message"), [
    ({"type": "DANCE"}, "type 'DANCE', which this switch does not run"),
    ({"type": "SAY"}, "missing required param 'text'"),
    ({"type": "SAY", "params": {"text": "x", "repeat": "two"}}, "'repeat' must be int"),
    ({"type": "SAY", "params": {"text": "x", "gender": "robot"}}, "accepted: female, male"),
    ({"type": "REJECT", "params": {"reason": "maybe"}}, "accepted: busy, disconnected"),
    ({"type": "PAUSE", "params": []}, "'params' must be an object"),
    ({"type": "COLLECT", "actions": [{"type": "HANGUP"}]}, "is not allowed here"),
    ({"type": "IF", "condition": "true", "then": {"type": "SAY"}}, "'then' must be an array"),
    ({"$x": 5}, "must be a string holding a JavaScript expression"),
])
async def test_bad_actions_are_400902_with_a_clear_message(raw: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(NoActions, match=message) as info:
        await run([raw], RecordingPort())
    assert info.value.code == 400902


async def test_sessiondata_must_be_an_object() -> None:
    with pytest.raises(NoActions, match="to be a JSON object"):
        await run([{"type": "SESSIONDATA", "session_data": [1, 2]}], RecordingPort())


async def test_a_bad_action_anywhere_fails_before_anything_runs() -> None:
    port = RecordingPort()
    with pytest.raises(NoActions):
        await run([{"type": "SAY", "params": {"text": "first"}},
                   {"type": "IF", "condition": "true", "then": [{"type": "NOPE"}]}], port)
    assert port.log == []


def test_dtmf_audio_has_tones_gaps_and_dashes() -> None:
    pcm = dtmf_audio("1-2", 250, 500)
    # 100 ms tone + 500 ms dash + 250 ms delay + 100 ms tone
    assert len(pcm) == 8 * (100 + 500 + 250 + 100)
    with pytest.raises(NoActions, match="'x'"):
        dtmf_audio("1x", 250, 250)
