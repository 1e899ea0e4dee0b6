"""String Interpolation: `${expr}`, `${...expr}`, the scanner and its errors."""

from datetime import UTC, datetime

import pytest

from control.callflow.expressions import ExpressionError
from control.callflow.interpolate import interpolate, spell
from control.callflow.variables import FlowVariables
from control.calls import Call, Direction


@pytest.fixture
def fv() -> FlowVariables:
    call = Call(
        id="12345@678",
        direction=Direction.INBOUND,
        caller_no="+19495551212",
        api_no="+17145551212",
        app_id="app",
        start_time=datetime(2016, 9, 20, tzinfo=UTC),
        session_data={"firstName": "Ada", "age": 36},
    )
    return FlowVariables(call, clock=lambda: 1_000.0)


def test_spec_example_session_data(fv: FlowVariables) -> None:
    """String Interpolation example: the SAY greeting."""
    text = "Hello, ${sessionData.firstName}. Welcome to our conference."
    assert interpolate(text, fv, spread_for_speech=True) == (
        "Hello, Ada. Welcome to our conference.")


def test_spec_example_spread_caller_no(fv: FlowVariables) -> None:
    """String Interpolation example: `${...callerNo}` says each character."""
    text = "You have left the conference. Thank you for calling ${...callerNo}."
    assert interpolate(text, fv, spread_for_speech=True) == (
        "You have left the conference. Thank you for calling "
        "+ 1 9 4 9 5 5 5 1 2 1 2.")


def test_spread_outside_speech_is_the_plain_value(fv: FlowVariables) -> None:
    assert interpolate("${...callerNo}", fv) == "+19495551212"


def test_spec_example_next_url(fv: FlowVariables) -> None:
    """COLLECT › Advanced: REDIRECT's url `${nextUrl}`."""
    fv.assign("$nextUrl", "'sales.json'")
    assert interpolate("${nextUrl}", fv) == "sales.json"


def test_spec_example_foreach_texts(fv: FlowVariables) -> None:
    """FOREACH example: `${index}`/`${val}` and custom `${k}`/`${v}` variables."""
    fv.assign("$myPetsArray", "['Whiskers', 'Spot', 'Bubbles']")
    said = []
    for i, pet in enumerate(fv.evaluate("$myPetsArray")):
        fv.set_vars({"$val": pet, "$key": i, "$index": i})
        said.append(interpolate("The index ${index} has a value of ${val}.", fv))
    assert said == [
        "The index 0 has a value of Whiskers.",
        "The index 1 has a value of Spot.",
        "The index 2 has a value of Bubbles.",
    ]
    fv.set_vars({"$k": "dog", "$v": "Spot"})
    assert interpolate("The key ${k} has a value of ${v}.", fv) == (
        "The key dog has a value of Spot.")
    fv.set_vars({"$val": "+17145551212"})
    assert interpolate("${val}", fv) == "+17145551212"  # DIAL's no


def test_call_time_and_dollar_form(fv: FlowVariables) -> None:
    assert interpolate("${callTime}", fv).isdigit()
    assert interpolate("${$sessionData.firstName}", fv) == "Ada"
    assert interpolate("${ sessionData.firstName }", fv) == "Ada"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no variables", "no variables"),
        ("", ""),
        ("cost: $5 and $ {x}", "cost: $5 and $ {x}"),
        ("${sessionData.age + 1}", "37"),
        ("${sessionData.age > 21 ? 'adult' : 'minor'}", "adult"),
        ("${sessionData.missing}", ""),
        ("${null}", ""),
        ("${true}", "true"),
        ("${1.5}", "1.5"),
        ("${[1, 'a']}", '[1,"a"]'),
        ("${sessionData}", '{"firstName":"Ada","age":36}'),
        ("${'}'}", "}"),
        ("${sessionData.firstName == '}' ? 1 : 2}", "2"),
        ('${"{" + "}"}', "{}"),
        ("${({a: {b: 'deep'}}).a.b}", "deep"),
        ("${`x${sessionData.age}y`}", "x36y"),
        ("${'it\\'s'}", "it's"),
        ("a${1}b${2}c", "a1b2c"),
        ("${sessionData.firstName}${sessionData.firstName}", "AdaAda"),
        ("$${1}", "$1"),
    ],
)
def test_interpolation(fv: FlowVariables, text: str, expected: str) -> None:
    assert interpolate(text, fv) == expected


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("${...keyPresses}", ""),
        ("${... sessionData.age}", "3 6"),
        ("${...'1234'}", "1 2 3 4"),
        ("${...'714 555'}", "7 1 4 5 5 5"),
        ("${...null}", ""),
    ],
)
def test_spread_for_speech(fv: FlowVariables, text: str, spoken: str) -> None:
    assert interpolate(text, fv, spread_for_speech=True) == spoken


def test_spell() -> None:
    assert spell("1234") == "1 2 3 4"
    assert spell("") == ""
    assert spell("A-1") == "A - 1"


@pytest.mark.parametrize(
    "text", ["Hello ${sessionData.firstName", "${'}", "${`abc}", "${ {a: 1 }", "x ${"])
def test_unterminated_is_an_error_naming_the_text(fv: FlowVariables, text: str) -> None:
    with pytest.raises(ExpressionError, match="unterminated") as info:
        interpolate(text, fv)
    assert info.value.expression == text


def test_unknown_name_raises(fv: FlowVariables) -> None:
    with pytest.raises(ExpressionError, match="ReferenceError: 'nosuch' is not defined"):
        interpolate("Hi ${nosuch}", fv)


def test_empty_expression_raises(fv: FlowVariables) -> None:
    with pytest.raises(ExpressionError, match="SyntaxError"):
        interpolate("${}", fv)


def test_interpolation_can_assign_session_data(fv: FlowVariables) -> None:
    """Expressions run with the call's variables, side effects included."""
    assert interpolate("${$sessionData.said = 'yes'}", fv) == "yes"
    assert fv.call.session_data == {"firstName": "Ada", "age": 36, "said": "yes"}
