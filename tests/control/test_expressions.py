"""JsEngine: evaluation, truthiness, assignment targets, constants, limits and errors."""

import time
from typing import Any

import pytest

from control.callflow.expressions import ExpressionError, JsEngine, parse_target


@pytest.fixture
def js() -> JsEngine:
    return JsEngine()


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 1", 2),
        ("'a' + 1", "a1"),
        ("0.1 + 0.2", 0.30000000000000004),
        ("Math.pow(2, 53)", 9007199254740992),
        ("[1, 'two', null]", [1, "two", None]),
        ("{}", {}),  # an object literal, not a block
        ("{cat: 'Whiskers', dog: 'Spot'}", {"cat": "Whiskers", "dog": "Spot"}),
        ("undefined", None),
        ("null", None),
        ("1 / 0", None),  # JSON has no Infinity
        ("true && 'x'", "x"),
        ("typeof $nothing", "undefined"),
        ("({f: function () {}, a: 1})", {"a": 1}),  # JSON drops function properties
        ("'abc'.toUpperCase()", "ABC"),
        ("[3, 1, 2].sort().join('-')", "1-2-3"),
        ("JSON.parse('{\"a\": [1]}').a[0]", 1),
    ],
)
def test_evaluate_converts_via_json(js: JsEngine, expr: str, value: Any) -> None:
    assert js.evaluate(expr) == value


@pytest.mark.parametrize(
    ("expr", "truth"),
    [
        ("''", False),
        ("0", False),
        ("null", False),
        ("undefined", False),
        ("NaN", False),
        ("false", False),
        ("[]", True),
        ("{}", True),
        ("'0'", True),
        ("' '", True),
        ("-1", True),
        ("'false'", True),
    ],
)
def test_truthiness_is_javascript(js: JsEngine, expr: str, truth: bool) -> None:
    assert js.truthy(expr) is truth


def test_globals_persist_between_evaluations(js: JsEngine) -> None:
    js.assign("$counter", "0")
    js.assign("$counter", "$counter + 1")
    js.assign("$counter", "$counter + 1")
    assert js.get("$counter") == 2
    assert js.evaluate("$counter * 10") == 20


def test_set_vars_defines_and_redefines(js: JsEngine) -> None:
    js.set_vars({"$a": {"b": [1, 2]}, "$s": "x"})
    assert js.evaluate("$a.b[1] + $s") == "2x"
    js.set_vars({"$s": None})
    assert js.evaluate("$s === null") is True
    assert js.has("$a") and not js.has("$zzz")


def test_get_unknown_and_function_is_none(js: JsEngine) -> None:
    assert js.get("$nope") is None
    js.assign("$f", "function () { return 1; }")
    assert js.get("$f") is None
    assert js.evaluate("$f()") == 1


def test_function_value_is_an_error(js: JsEngine) -> None:
    with pytest.raises(ExpressionError, match="function"):
        js.evaluate("(function () {})")


@pytest.mark.parametrize(
    ("target", "canonical"),
    [
        ("$name", "$name"),
        ("$a.b.c", "$a.b.c"),
        ("$a[0]", "$a[0]"),
        ("$a[12].x", "$a[12].x"),
        ("$a['key with space']", '$a["key with space"]'),
        ('$a["k"]', '$a["k"]'),
        ("$sessionData.isInConference", "$sessionData.isInConference"),
        ("$_x$1", "$_x$1"),
    ],
)
def test_parse_target_accepts(target: str, canonical: str) -> None:
    assert parse_target(target) == canonical


@pytest.mark.parametrize(
    "target",
    ["name", "$", "$a.", "$a..b", "$a[01]", "$a[-1]", "$a[b]", "$a[$i]", "$a.b()",
     "$a + 1", " $a", "$a ", "$a.1", "$a['x\\'y']", "$a;b", "$a=1", "$a['k']x"],
)
def test_parse_target_rejects(js: JsEngine, target: str) -> None:
    with pytest.raises(ExpressionError, match="not a valid assignment target") as info:
        js.assign(target, "1")
    assert info.value.expression == target


def test_assign_paths(js: JsEngine) -> None:
    js.assign("$o", "{}")
    js.assign("$o.list", "[1, 2]")
    js.assign("$o.list[0]", "'first'")
    js.assign("$o['a b']", "true")
    assert js.get("$o") == {"list": ["first", 2], "a b": True}


def test_assign_into_missing_object_raises(js: JsEngine) -> None:
    with pytest.raises(ExpressionError, match="ReferenceError: '\\$missing' is not defined"):
        js.assign("$missing.foo", "1")
    js.assign("$empty", "null")
    with pytest.raises(ExpressionError, match="TypeError"):
        js.assign("$empty.foo", "1")


def test_assign_value_must_be_a_string(js: JsEngine) -> None:
    with pytest.raises(ExpressionError, match="must be a string"):
        js.assign("$x", 5)  # type: ignore[arg-type]


def test_constants_ignore_writes_and_delete(js: JsEngine) -> None:
    js.set_constants({"$callId": "1@2", "$config": {"a": {"b": 1}}})
    js.assign("$callId", "'hacked'")
    js.assign("$config.a.b", "2")
    js.assign("$config.c", "3")
    assert js.evaluate("delete $callId") is False
    assert js.truthy("($callId = 'x') && true")
    assert js.get("$callId") == "1@2"
    assert js.get("$config") == {"a": {"b": 1}}
    js.set_constant("$callId", "3@4")  # Python may still update it
    assert js.get("$callId") == "3@4"


def test_set_vars_cannot_overwrite_a_constant(js: JsEngine) -> None:
    js.set_constants({"$k": 1})
    js.set_vars({"$k": 2})
    assert js.get("$k") == 1


def test_text_maps_bare_names_to_dollar_variables(js: JsEngine) -> None:
    js.set_vars({"$sessionData": {"firstName": "Ada"}, "$n": 3})
    assert js.text("sessionData.firstName") == "Ada"
    assert js.text("$sessionData.firstName") == "Ada"
    assert js.text("n + 1") == "4"
    assert js.text("Math.max(n, 10)") == "10"  # JS globals are not remapped
    assert js.text("null") == ""
    assert js.text("[1, 'a']") == '[1,"a"]'
    assert js.text("1.5") == "1.5"
    with pytest.raises(ExpressionError, match="'nosuch' is not defined"):
        js.text("nosuch")


def test_text_bare_names_assign_through_and_helpers_stay_hidden(js: JsEngine) -> None:
    js.set_vars({"$n": 1, "$__vx": "shadow"})
    assert js.text("n = n + 1") == "2"
    assert js.get("$n") == 2
    assert js.text("$__vx") == "shadow"
    js.set_constants({"$c": 1})
    assert js.text("c = 5") == "5"  # the assignment's value; the constant is unchanged
    assert js.get("$c") == 1


def test_snapshot_lists_dollar_globals(js: JsEngine) -> None:
    js.set_constants({"$c": 1})
    js.set_vars({"$u": [1], "other": 2})
    js.assign("$undef", "undefined")
    assert js.snapshot() == {"$c": 1, "$u": [1], "$undef": None}


# -- errors ----------------------------------------------------------------------


def test_syntax_error_names_the_expression(js: JsEngine) -> None:
    with pytest.raises(ExpressionError) as info:
        js.evaluate("$a ==")
    assert info.value.expression == "$a =="
    assert "SyntaxError" in str(info.value)
    assert "'$a =='" in str(info.value)


def test_unknown_variable_is_a_reference_error(js: JsEngine) -> None:
    with pytest.raises(ExpressionError) as info:
        js.truthy("$nosuchvar == 1")
    assert str(info.value) == (
        "expression '$nosuchvar == 1': ReferenceError: '$nosuchvar' is not defined")


@pytest.mark.parametrize(
    "expr", ["1); while (true) {} (2", "1)) ; (function(){ return 1 })((2", "1]; [2"])
def test_statements_cannot_escape_the_wrapper(js: JsEngine, expr: str) -> None:
    with pytest.raises(ExpressionError):
        js.truthy(expr)
    with pytest.raises(ExpressionError):
        js.assign("$x", expr)


def test_statement_is_rejected(js: JsEngine) -> None:
    with pytest.raises(ExpressionError, match="SyntaxError"):
        js.evaluate("while (true) {}")


def test_runaway_is_stopped_and_engine_recovers(js: JsEngine) -> None:
    js.assign("$kept", "42")
    start = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        js.truthy("(function(){while(true){}})()")
    assert time.monotonic() - start < 1.0
    assert str(info.value) == (
        "expression '(function(){while(true){}})()': took longer than 50 ms")
    assert js.evaluate("$kept + 1") == 43


def test_time_limit_is_per_evaluation(js: JsEngine) -> None:
    busy = "(function(){ var x = 0; for (var i = 0; i < 1e5; i++) x += i; return x; })()"
    for _ in range(20):
        assert js.evaluate(busy) == 4999950000


def test_custom_time_limit_in_message() -> None:
    js = JsEngine(time_limit_s=0.02)
    with pytest.raises(ExpressionError, match="took longer than 20 ms"):
        js.evaluate("(function(){ for(;;){} })()")


@pytest.mark.parametrize(
    "bomb",
    [
        "'x'.repeat(1 << 26)",
        "(function(){ var s = 'xx'; while (true) s = s + s; })()",
        "(function(){ var a = []; while (true) a.push({}); })()",
    ],
)
def test_memory_bomb_raises_and_engine_recovers(js: JsEngine, bomb: str) -> None:
    with pytest.raises(ExpressionError, match=r"ran out of memory \(limit 16 MiB\)"):
        js.evaluate(bomb)
    assert js.evaluate("[1, 2, 3].length") == 3


def test_stack_overflow(js: JsEngine) -> None:
    with pytest.raises(ExpressionError, match="stack overflow"):
        js.evaluate("(function r(){ return r() + 1; })()")
    assert js.truthy("true")


def test_thrown_error_is_reported(js: JsEngine) -> None:
    with pytest.raises(ExpressionError, match="Error: boom"):
        js.evaluate("(function(){ throw new Error('boom'); })()")


def test_user_code_cannot_break_the_helpers(js: JsEngine) -> None:
    js.evaluate("(JSON = null, Object = null, globalThis = null, 1)")
    js.set_vars({"$a": {"b": 1}})
    js.set_constants({"$c": [1]})
    assert js.evaluate("$a") == {"b": 1}
    assert js.snapshot()["$c"] == [1]


def test_compiled_cache_is_bounded(js: JsEngine) -> None:
    for i in range(1200):
        assert js.evaluate(f"{i} + 0") == i
    assert len(js._cache) <= 512


def test_no_host_access(js: JsEngine) -> None:
    assert js.evaluate("typeof require + typeof std + typeof os + typeof print") == (
        "undefined" * 4)


def test_evaluation_is_fast(js: JsEngine) -> None:
    js.set_vars({"$keyPresses": "1", "$sessionData": {"gender": "male", "age": 30}})
    cond = "$keyPresses == '1' && $sessionData.gender == 'male' || $sessionData.age > 21"
    start = time.perf_counter()
    for _ in range(2000):
        js.truthy(cond)
    assert (time.perf_counter() - start) / 2000 < 200e-6


def test_set_constant_keeps_large_integers(js: JsEngine) -> None:
    js.set_constant("$now", 1_700_000_000_500)  # beyond int32
    assert js.get("$now") == 1_700_000_000_500
    js.set_constant("$flag", True)
    assert js.evaluate("$flag === true") is True
