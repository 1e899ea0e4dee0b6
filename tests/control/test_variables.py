"""FlowVariables: the spec's Native Constants, User Defined Variables and IF examples."""

from datetime import UTC, datetime
from typing import Any

import pytest

from control.callflow.expressions import ExpressionError
from control.callflow.variables import FlowVariables, is_assignment
from control.calls import Call, Direction

NOW_S = 1_700_000_000.5
START = datetime(2016, 9, 20, 21, 32, 28, 471000, tzinfo=UTC)


def make_call(**kw: Any) -> Call:
    fields: dict[str, Any] = {
        "id": "12345@678",
        "direction": Direction.INBOUND,
        "caller_no": "+19495551212",
        "api_no": "+17145551212",
        "app_id": "29a471cc-4ada-4249-a7a5-5046464f9887",
        "start_time": START,
    }
    fields.update(kw)
    return Call(**fields)


def make_vars(call: Call | None = None) -> FlowVariables:
    return FlowVariables(call or make_call(), clock=lambda: NOW_S)


@pytest.fixture
def fv() -> FlowVariables:
    return make_vars()


# -- Native Constants --------------------------------------------------------------


def test_native_constants_from_the_call() -> None:
    call = make_call(
        parent_call_id="12345@677", config={"url": "https://example.com/cb", "method": "POST"}
    )
    fv = make_vars(call)
    assert fv.get("$callId") == "12345@678"
    assert fv.get("$parentCallID") == "12345@677"
    assert fv.get("$appId") == "29a471cc-4ada-4249-a7a5-5046464f9887"
    assert fv.get("$direction") == "INBOUND"
    assert fv.get("$callerNo") == "+19495551212"
    assert fv.get("$apiNo") == "+17145551212"
    assert fv.get("$config") == {"url": "https://example.com/cb", "method": "POST"}
    assert fv.get("$keyPresses") == ""
    assert fv.get("$startTime") == 1474407148471
    assert fv.get("$now") == 1_700_000_000_500
    assert fv.get("$collectAttempt") == 0
    assert fv.evaluate("$lastQueuePollConnectCall") is None
    assert fv.truthy("$keyPresses == ''")  # the spec's "no keys pressed" check


def test_outbound_direction_is_uppercase() -> None:
    assert make_vars(make_call(direction=Direction.OUTBOUND)).get("$direction") == "OUTBOUND"


def test_parent_call_id_is_null_without_originating_call(fv: FlowVariables) -> None:
    assert fv.truthy("$parentCallID === null")


@pytest.mark.parametrize("prefix", ["$callerNo", "$apiNo"])
@pytest.mark.parametrize(
    "geo",
    ["Latitude", "Longitude", "PostalCode", "City", "RateCenter", "Lata", "Region",
     "Country", "TimeZone"],
)
def test_geography_constants_are_null(fv: FlowVariables, prefix: str, geo: str) -> None:
    assert fv.truthy(f"{prefix}{geo} === null")


def test_now_and_call_time_refresh_before_each_evaluation() -> None:
    clock = [100.0]
    call = make_call()
    fv = FlowVariables(call, clock=lambda: clock[0])
    assert fv.evaluate("$now") == 100_000
    clock[0] = 101.25
    assert fv.evaluate("$now") == 101_250
    assert fv.truthy("$now - 1250 == 100000")
    call_time = fv.evaluate("$callTime")
    assert isinstance(call_time, int) and 0 <= call_time <= call.duration_ms()


NATIVES = [
    "$config", "$lastQueuePollConnectCall", "$direction", "$keyPresses", "$now",
    "$callTime", "$startTime", "$callId", "$parentCallID", "$appId", "$collectAttempt",
    "$callerNo", "$callerNoCity", "$apiNo", "$apiNoTimeZone", "$detection",
]


def test_detection_follows_the_call_as_it_is_decided() -> None:
    call = make_call()
    fv = FlowVariables(call)
    assert fv.evaluate("$detection") == "unknown"
    call.detection = "voicemail"
    assert fv.truthy("$detection == 'voicemail'")


@pytest.mark.parametrize("name", NATIVES)
def test_natives_ignore_writes_silently(fv: FlowVariables, name: str) -> None:
    before = fv.get(name) if name not in ("$now", "$callTime") else None
    fv.assign(name, "'overwritten'")
    fv.evaluate(f"({name} = 'again', delete {name}, 1)")
    assert fv.evaluate(f"{name} === 'overwritten' || {name} === 'again'") is False
    if before is not None:
        assert fv.get(name) == before


def test_config_is_deeply_read_only() -> None:
    fv = make_vars(make_call(config={"headers": {"x": "1"}}))
    fv.assign("$config.headers.x", "'2'")
    fv.assign("$config.extra", "true")
    assert fv.get("$config") == {"headers": {"x": "1"}}


def test_key_presses_and_collect_attempts(fv: FlowVariables) -> None:
    assert fv.enter_collect("menu") == 1
    assert fv.enter_collect("menu") == 2
    assert fv.enter_collect("other") == 1
    assert fv.get("$collectAttempt") == 1
    assert fv.enter_collect("menu") == 3
    assert fv.get("$collectAttempt") == 3
    fv.set_key_presses("42")
    assert fv.get("$keyPresses") == "42"


def test_num_conference_participants_is_undefined_until_set(fv: FlowVariables) -> None:
    with pytest.raises(ExpressionError, match="ReferenceError"):
        fv.truthy("$numConferenceParticipants > 1")
    fv.set_num_conference_participants(3)
    assert fv.get("$numConferenceParticipants") == "3"
    assert fv.truthy("$numConferenceParticipants > 1")
    fv.assign("$numConferenceParticipants", "0")
    assert fv.get("$numConferenceParticipants") == "3"


def test_last_queue_poll_connect_call(fv: FlowVariables) -> None:
    fv.set_last_queue_poll_connect_call("99@1", "+13105551212")
    assert fv.evaluate("$lastQueuePollConnectCall.no") == "+13105551212"
    assert fv.evaluate("$lastQueuePollConnectCall.id") == "99@1"


# -- the spec's examples -----------------------------------------------------------


def test_user_defined_variables_example() -> None:
    """Variables › Example User Defined Variables, action by action."""
    call = make_call(session_data={"firstName": "Ada"})
    fv = make_vars(call)
    actions: list[dict[str, str]] = [
        {
            "$conferenceName": "'MyConference'",
            "$counter": "0",
            "$myObj": "{}",
            "$myPets": "['Whiskers', 'Spot', 'Bubbles']",
            "$myPetsAgain": "{cat: 'Whiskers', dog: 'Spot', fish: 'Bubbles'}",
        },
        {"$conferenceName": "'MyConference' + $counter"},
        {"$sessionData.isInConference": "false"},
        {"$myObj.foo": "'bar'"},
        {"$counter": "$counter + 1"},
        {"$myDog": "$myPets[1]"},
        {"$myPetsAgain.bird": "'Tweety'"},
    ]
    for action in actions:
        assert is_assignment(action)
        fv.assign_many(action)
    assert fv.get("$conferenceName") == "MyConference0"
    assert fv.get("$counter") == 1
    assert fv.get("$myObj") == {"foo": "bar"}
    assert fv.get("$myPets") == ["Whiskers", "Spot", "Bubbles"]
    assert fv.get("$myDog") == "Spot"
    assert fv.get("$myPetsAgain") == {
        "cat": "Whiskers", "dog": "Spot", "fish": "Bubbles", "bird": "Tweety"}
    assert fv.get("$sessionData") == {"firstName": "Ada", "isInConference": False}
    assert call.session_data == {"firstName": "Ada", "isInConference": False}


def test_literal_json_values_do_not_work(fv: FlowVariables) -> None:
    """The spec: the right side MUST ALWAYS be a string ("It will not work!")."""
    with pytest.raises(ExpressionError, match="must be a string"):
        fv.assign_many({"$counter": 0})


def test_plain_string_without_inner_quotes_is_a_variable_reference(fv: FlowVariables) -> None:
    with pytest.raises(ExpressionError, match="ReferenceError: 'MyConference' is not defined"):
        fv.assign("$conferenceName", "MyConference")


IF_CONDITION = "$keyPresses == '1' && $sessionData.gender == 'male' || $sessionData.age > 21"


@pytest.mark.parametrize(
    ("keys", "session", "truth"),
    [
        ("1", {"gender": "male", "age": 18}, True),
        ("1", {"gender": "female", "age": 18}, False),
        ("2", {"gender": "male", "age": 18}, False),
        ("2", {"gender": "female", "age": 22}, True),
        ("", {"gender": "male", "age": 21}, False),
        ("", None, False),  # no session data: $sessionData is {} in JS
    ],
)
def test_if_example_condition(keys: str, session: Any, truth: bool) -> None:
    fv = make_vars(make_call(session_data=session))
    fv.set_key_presses(keys)
    assert fv.truthy(IF_CONDITION) is truth


ADVANCED_COLLECT = "! $keyPresses && $collectAttempt < 3"


def test_advanced_collect_retry_condition(fv: FlowVariables) -> None:
    """COLLECT › Example Response // Advanced: retry twice, then fall through."""
    fv.assign_many({"$nextUrl": "'operator.json'"})
    retries = []
    for _ in range(3):
        fv.enter_collect("PROMPT_MENU_CHOICE/1")
        fv.set_key_presses("")
        retries.append(fv.truthy(ADVANCED_COLLECT))
    assert retries == [True, True, False]
    assert not fv.truthy("$keyPresses=='1'") and not fv.truthy("$keyPresses=='2'")
    assert fv.get("$nextUrl") == "operator.json"


@pytest.mark.parametrize(("keys", "url"), [("1", "sales.json"), ("2", "service.json")])
def test_advanced_collect_menu_choice(fv: FlowVariables, keys: str, url: str) -> None:
    fv.assign_many({"$nextUrl": "'operator.json'"})
    fv.enter_collect("menu")
    fv.set_key_presses(keys)
    assert fv.truthy(ADVANCED_COLLECT) is False
    for choice, target in (("1", "'sales.json'"), ("2", "'service.json'")):
        if fv.truthy(f"$keyPresses=='{choice}'"):
            fv.assign_many({"$nextUrl": target})
    assert fv.get("$nextUrl") == url


def test_foreach_example_variables(fv: FlowVariables) -> None:
    fv.assign_many({"$myPetsArray": "['Whiskers', 'Spot', 'Bubbles']"})
    fv.assign_many({"$myPetsObj": "{cat: 'Whiskers', dog: 'Spot', fish: 'Bubbles'}"})
    assert fv.evaluate("$myPetsArray") == ["Whiskers", "Spot", "Bubbles"]
    assert list(fv.evaluate("$myPetsObj")) == ["cat", "dog", "fish"]
    fv.set_vars({"$val": "Spot", "$key": 1, "$index": 1})
    assert fv.truthy("$myPetsArray[$index] == $val")


# -- writable variables ------------------------------------------------------------


def test_user_variables_persist_across_callbacks(fv: FlowVariables) -> None:
    fv.assign("$visits", "1")
    fv.sync_from_call()  # what a new callback response does
    fv.assign("$visits", "$visits + 1")
    assert fv.get("$visits") == 2


def test_assign_many_stops_at_first_failure(fv: FlowVariables) -> None:
    with pytest.raises(ExpressionError):
        fv.assign_many({"$a": "1", "$b": "$nope", "$c": "3"})
    assert fv.get("$a") == 1
    assert fv.get("$c") is None


def test_set_vars_requires_dollar_names(fv: FlowVariables) -> None:
    with pytest.raises(ExpressionError, match="not a variable name"):
        fv.set_vars({"val": 1})


def test_session_data_flows_from_js_to_call() -> None:
    call = make_call()
    fv = make_vars(call)
    assert fv.get("$sessionData") == {}
    assert fv.evaluate("$sessionData.missing") is None
    fv.truthy("$sessionData.age > 21")
    assert call.session_data is None  # reading does not create session data
    fv.assign("$sessionData.lang", "'en'")
    assert call.session_data == {"lang": "en"}
    fv.assign("$alias", "$sessionData")
    fv.assign("$alias.step", "2")  # a mutation through an alias is seen too
    assert call.session_data == {"lang": "en", "step": 2}
    fv.assign("$sessionData", "{replaced: true}")
    assert call.session_data == {"replaced": True}


def test_session_data_flows_from_call_to_js() -> None:
    call = make_call(session_data={"a": 1})
    fv = make_vars(call)
    call.session_data = {"a": 2, "b": [1]}  # a SESSIONDATA action or the REST API
    fv.sync_from_call()
    assert fv.evaluate("$sessionData.a + $sessionData.b[0]") == 3
    call.session_data = None
    fv.sync_from_call()
    assert fv.get("$sessionData") == {}
    assert call.session_data is None


def test_sync_from_call_refreshes_parent_and_config() -> None:
    call = make_call()
    fv = make_vars(call)
    call.parent_call_id = "1@9"
    call.config = {"k": "v"}
    fv.sync_from_call()
    assert fv.get("$parentCallID") == "1@9"
    assert fv.get("$config") == {"k": "v"}


def test_webhook_data(fv: FlowVariables) -> None:
    assert fv.evaluate("typeof $webhookData") == "undefined"
    fv.set_webhook_data({"balance": 12.5, "ok": True})
    assert fv.truthy("$webhookData.ok && $webhookData.balance > 10")
    fv.assign("$webhookData.seen", "true")  # writable
    assert fv.get("$webhookData") == {"balance": 12.5, "ok": True, "seen": True}


def test_snapshot(fv: FlowVariables) -> None:
    fv.assign("$mine", "[1]")
    snap = fv.snapshot()
    assert snap["$mine"] == [1]
    assert snap["$callId"] == "12345@678"
    assert snap["$webhookData"] is None
    assert snap["$sessionData"] == {}
    assert "$numConferenceParticipants" not in snap


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"$a": "1"}, True),
        ({"$a": "1", "$b.c": "2"}, True),
        ({"type": "SAY"}, False),
        ({"$a": "1", "type": "SAY"}, False),
        ({}, False),
    ],
)
def test_is_assignment(item: dict[str, Any], expected: bool) -> None:
    assert is_assignment(item) is expected
