"""Template Mapping: `{{property}}` / `{{property|default}}` over flattened callback data."""

from datetime import UTC, datetime
from typing import Any

import pytest

from control.callflow.payload import callback_fields
from control.callflow.template import apply_template, flatten, render
from control.calls import Call, Direction, KeyPress

SPEC_EXAMPLE: dict[str, Any] = {
    "actions": [
        {
            "type": "SAY",
            "params": {
                "text": "Hello, {{session_data.firstName|guest}}. Welcome to our conference.",
                "loop": 1,
            },
        },
        {"type": "CONFERENCE", "params": {"name": "{{session_data.conferenceName}}"}},
        {
            "type": "SAY",
            "params": {
                "text": "You have left the conference. This call lasted {{duration}} seconds."
            },
        },
    ]
}


def texts(response: dict[str, Any]) -> list[Any]:
    return [a["params"].get("text", a["params"].get("name")) for a in response["actions"]]


def test_spec_example_with_session_data() -> None:
    data = {
        "duration": 9763,
        "session_data": {"firstName": "Ada", "conferenceName": "room1"},
    }
    out = apply_template(SPEC_EXAMPLE, data)
    assert texts(out) == [
        "Hello, Ada. Welcome to our conference.",
        "room1",
        "You have left the conference. This call lasted 9763 seconds.",
    ]
    assert out["actions"][0]["params"]["loop"] == 1  # non-strings untouched
    assert SPEC_EXAMPLE["actions"][1]["params"]["name"] == "{{session_data.conferenceName}}"


def test_spec_example_without_session_data_uses_defaults() -> None:
    out = apply_template(SPEC_EXAMPLE, {"duration": 12, "session_data": None})
    assert texts(out) == [
        "Hello, guest. Welcome to our conference.",
        "",  # missing, no default
        "You have left the conference. This call lasted 12 seconds.",
    ]


def test_over_real_callback_fields() -> None:
    call = Call(
        id="12345@678",
        direction=Direction.INBOUND,
        caller_no="+19495551212",
        api_no="+17145551212",
        app_id="app",
        start_time=datetime(2016, 9, 20, 21, 32, 28, 471000, tzinfo=UTC),
        session_data={"firstName": "Ada", "tags": ["a", "b"]},
        key_presses=[KeyPress("collectName", "78", ["12", "78"])],
        recordings=[{"name": "recordingName", "id": "ABC123"}],
    )
    data = callback_fields(call, "live_call")
    response = {
        "actions": [{
            "type": "SAY",
            "params": {
                "text": "{{caller_no}} {{direction}} {{session_data.tags.1}} "
                        "{{key_presses.0.digits}} {{key_presses.0.history.0}} "
                        "{{key_presses.collectName}} {{recordings.recordingName}} "
                        "{{start_time}} {{is_webhook}} {{caller_no_city|somewhere}}",
            },
        }]
    }
    out = apply_template(response, data)
    assert out["actions"][0]["params"]["text"] == (
        "+19495551212 inbound b 78 12 78 ABC123 2016-09-20T21:32:28.471Z false somewhere")


def test_flatten() -> None:
    flat = flatten({"a": {"b": [10, {"c": None}]}, "n": 1})
    assert flat == {
        "a": {"b": [10, {"c": None}]},
        "a.b": [10, {"c": None}],
        "a.b.0": 10,
        "a.b.1": {"c": None},
        "a.b.1.c": None,
        "n": 1,
    }
    assert flatten(flat) == flat  # idempotent: flat data can be passed as is


def test_named_aliases_never_shadow_indexes() -> None:
    flat = flatten({"key_presses": [{"name": "0", "digits": "5"}, {"name": "x", "digits": "6"}]})
    assert flat["key_presses.0"] == {"name": "0", "digits": "5"}
    assert flat["key_presses.x"] == "6"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{name}}", "Ada"),
        ("{{ name }}", "Ada"),
        ("{{ missing | fallback value }}", "fallback value"),
        ("{{missing|}}", ""),
        ("{{missing}}", ""),
        ("{{name|guest}}", "Ada"),
        ("{{nothing|x}}", "x"),  # null counts as missing
        ("{{empty|x}}", ""),  # an empty string is a value
        ("{{flag}} {{count}} {{ratio}}", "true 0 1.5"),
        ("{{obj}}", '{"k":"v"}'),
        ("{{list}}", '[1,"é"]'),
        ("{{obj.k}}", "v"),
        ("{{missing|a|b}}", "a|b"),
        ("{{name", "{{name"),
        ("a {{ b", "a {{ b"),
        ("}} {{name}} {{", "}} Ada {{"),
        ("{{name}}{{name}}", "AdaAda"),
        ("{name}", "{name}"),
        ("{{}}", ""),
        ("no templates", "no templates"),
    ],
)
def test_render(text: str, expected: str) -> None:
    data = {
        "name": "Ada", "nothing": None, "empty": "", "flag": True, "count": 0,
        "ratio": 1.5, "obj": {"k": "v"}, "list": [1, "é"],
    }
    assert render(text, flatten(data)) == expected


def test_apply_recurses_and_leaves_keys_alone() -> None:
    obj = {"{{name}}": ["{{name}}", {"deep": "x{{name}}x"}, 3, None, True]}
    assert apply_template(obj, {"name": "Ada"}) == {
        "{{name}}": ["Ada", {"deep": "xAdax"}, 3, None, True]}
    assert apply_template("{{name}}", {"name": "Ada"}) == "Ada"
    assert apply_template(7, {"name": "Ada"}) == 7
