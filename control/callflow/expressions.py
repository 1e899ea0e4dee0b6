"""The JavaScript engine behind variables, IF conditions and `${...}` interpolation.

Theory of operation: the spec evaluates variables and conditions with "an ES5 JavaScript
engine" (Variables). Each call gets one `JsEngine`, a QuickJS context whose globals are
the call's `$` variables; they persist across callbacks for the life of the call.

- Every expression is compiled once into a JS function (kept in a bounded cache) and
  called on each evaluation, so a condition costs microseconds.
- An expression is spliced into a wrapper `(...)`; it is also compiled inside `[...]`,
  which only a single expression survives, so `1); while(true){} (2` cannot break out
  of the wrapper and smuggle in statements.
- Wrappers are sloppy-mode code, so writes to a read-only constant fail silently, as
  the spec requires of Native Constants.
- Constants are accessor properties without a setter over a private store, and they are
  not configurable: neither assignment nor `delete` changes them, while Python can
  update them cheaply (`set_constant`).
- The time limit is per evaluation and the memory limit is for the whole context. A
  runaway or a memory bomb becomes an `ExpressionError`; the context stays usable.

A Context is not thread-safe: use an engine from the event-loop thread only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import quickjs

DEFAULT_TIME_LIMIT_S = 0.05
DEFAULT_MEMORY_LIMIT = 16 << 20
_CACHE_SIZE = 512

# Helpers live in a closure; builtins are captured up front, so user code that
# overwrites JSON, Object or globalThis cannot break the engine.
_PRELUDE = r"""(function () {
  var G = globalThis, store = {}, stringify = JSON.stringify;
  var defineProperty = Object.defineProperty, freeze = Object.freeze;
  var names = Object.getOwnPropertyNames, isFrozen = Object.isFrozen;
  function deepFreeze(v) {
    if (v !== null && typeof v === 'object' && !isFrozen(v)) {
      freeze(v);
      var ks = names(v);
      for (var i = 0; i < ks.length; i++) deepFreeze(v[ks[i]]);
    }
    return v;
  }
  function konst(name, value) {
    if (!(name in store)) {
      defineProperty(G, name, {get: function () { return store[name]; },
                               enumerable: true, configurable: false});
    }
    store[name] = deepFreeze(value);
  }
  var api = {};
  api.out = function (v) {
    if (typeof v === 'function') throw new TypeError('the value is a function');
    return stringify(v);
  };
  api.text = function (v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'function') throw new TypeError('the value is a function');
    return typeof v === 'object' ? stringify(v) : String(v);
  };
  api.bare = new Proxy({}, {
    has: function (t, k) {
      return typeof k === 'string' && k.charAt(0) !== '$' && k.indexOf('__vx') !== 0 &&
        !(k in G) && ('$' + k) in G;
    },
    get: function (t, k) { return typeof k === 'string' ? G['$' + k] : undefined; },
    set: function (t, k, v) { G['$' + k] = v; return true; }
  });
  api.konst = konst;
  api.konsts = function (o) { for (var k in o) konst(k, o[k]); };
  api.setvars = function (o) { for (var k in o) G[k] = o[k]; };
  api.has = function (n) { return n in G; };
  api.get = function (n) {
    var v = G[n];
    return typeof v === 'function' ? undefined : stringify(v);
  };
  api.snapshot = function (prefix) {
    var o = {}, ks = names(G);
    for (var i = 0; i < ks.length; i++) {
      var k = ks[i];
      if (k.indexOf(prefix) !== 0) continue;
      var v = G[k];
      o[k] = (v === undefined || typeof v === 'function') ? null : v;
    }
    return stringify(o);
  };
  return api;
})()"""

_PICK = "(function (api) { return api[%s]; })"

# Wrappers: `__vx` is the helper object (an unlikely name, since it is in scope).
_WRAP = {
    "value": "(function (__vx) { return function () { return __vx.out((%s\n)); }; })",
    "truthy": "(function (__vx) { return function () { return !!(%s\n); }; })",
    "text": "(function (__vx) { return function () {"
            " with (__vx.bare) { return __vx.text((%s\n)); } }; })",
}
_CHECK = "(function () { return [%s\n]; })"
_ASSIGN = "(function (__vx) { return function () { %s = (%s\n); }; })"

_IDENT = r"[A-Za-z_$][A-Za-z0-9_$]*"
_TARGET_HEAD = re.compile(r"\$[A-Za-z0-9_$]+")
_ACCESSOR = re.compile(
    r"\.(?P<name>" + _IDENT + r")"
    r"|\[(?P<index>0|[1-9][0-9]*)\]"
    r"|\['(?P<sq>[^'\\]*)'\]"
    r'|\["(?P<dq>[^"\\]*)"\]'
)


class ExpressionError(Exception):
    """A variable, condition or interpolation expression failed.

    `expression` is the offending text; `reason` the JS error or limit that stopped it.
    """

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(f"expression {_short(expression)!r}: {reason}")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_target(target: str) -> str:
    """Check an assignment target and return it in canonical JS form.

    Accepted: `$name` followed by any number of `.name`, `[index]`, `['key']` or
    `["key"]` accessors (keys without backslashes). Anything else raises ExpressionError.
    """
    head = _TARGET_HEAD.match(target)
    if head is None:
        raise _bad_target(target)
    parts = [head.group()]
    pos = head.end()
    while pos < len(target):
        m = _ACCESSOR.match(target, pos)
        if m is None:
            raise _bad_target(target)
        if m.group("name") is not None:
            parts.append("." + m.group("name"))
        elif m.group("index") is not None:
            parts.append(f"[{m.group('index')}]")
        else:
            key = m.group("sq") if m.group("sq") is not None else m.group("dq")
            parts.append(f"[{json.dumps(key)}]")
        pos = m.end()
    return "".join(parts)


def _bad_target(target: str) -> ExpressionError:
    return ExpressionError(
        target,
        "not a valid assignment target: expected $name followed by .name, [index] or "
        "['key'] accessors",
    )


class JsEngine:
    """One QuickJS context with limits; one per call, used from the event-loop thread."""

    def __init__(
        self,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.time_limit_s = time_limit_s
        self.memory_limit = memory_limit
        self._ctx = quickjs.Context()
        self._ctx.set_memory_limit(memory_limit)
        self._ctx.set_time_limit(time_limit_s)
        self._api = self._ctx.eval(_PRELUDE)
        self._fn = {name: self._pick(name) for name in (
            "konst", "konsts", "setvars", "has", "get", "snapshot")}
        self._cache: dict[tuple[str, str], Any] = {}
        self._checked: set[str] = set()

    def _pick(self, name: str) -> Any:
        return self._ctx.eval(_PICK % json.dumps(name))(self._api)

    # -- evaluation -------------------------------------------------------------

    def evaluate(self, expr: str) -> Any:
        """The value of `expr` as Python (via JSON: undefined → None, NaN → None)."""
        out = self._run(expr, self._compiled("value", expr))
        return None if out is None else json.loads(out)

    def truthy(self, expr: str) -> bool:
        """JavaScript truthiness of `expr` ('' 0 null undefined NaN false are false)."""
        return bool(self._run(expr, self._compiled("truthy", expr)))

    def text(self, expr: str) -> str:
        """`expr` as interpolated text: strings as is, null/undefined as '', objects and
        arrays as JSON, others as JS String(). A bare identifier that is not a JS global
        resolves to the `$` variable of that name (`sessionData` is `$sessionData`)."""
        return str(self._run(expr, self._compiled("text", expr)))

    def assign(self, target: str, expr: str) -> None:
        """Run `target = (expr)`; `target` must pass `parse_target`."""
        if not isinstance(expr, str):
            raise ExpressionError(
                target, f"the value must be a string holding an expression, not {expr!r}")
        canonical = parse_target(target)
        key = ("assign:" + canonical, expr)
        fn = self._cache.get(key)
        if fn is None:
            fn = self._compile(key, expr, _ASSIGN % (canonical, expr))
        self._run(f"{target} = {expr}", fn)

    # -- globals ----------------------------------------------------------------

    def set_vars(self, mapping: Mapping[str, Any]) -> None:
        """(Re)define writable globals from JSON-able Python values (constants win)."""
        self._call(self._fn["setvars"], self._to_js(mapping))

    def set_constants(self, mapping: Mapping[str, Any]) -> None:
        """Define or update read-only globals (deep-frozen; writes fail silently)."""
        self._call(self._fn["konsts"], self._to_js(mapping))

    def set_constant(self, name: str, value: str | int | float | bool | None) -> None:
        """Update one read-only global holding a primitive (the cheap path)."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # the binding passes Python ints as int32
        self._call(self._fn["konst"], name, value)

    def get(self, name: str) -> Any:
        """A global's value as Python; None when it is undefined or a function."""
        out = self.get_json(name)
        return None if out is None else json.loads(out)

    def get_json(self, name: str) -> str | None:
        """A global's value as JSON text; None when it is undefined or a function."""
        out = self._call(self._fn["get"], name)
        return out if isinstance(out, str) else None

    def has(self, name: str) -> bool:
        return bool(self._call(self._fn["has"], name))

    def snapshot(self, prefix: str = "$") -> dict[str, Any]:
        """All globals whose names start with `prefix` (undefined shown as None)."""
        out = self._call(self._fn["snapshot"], prefix)
        return dict(json.loads(out))

    # -- internals --------------------------------------------------------------

    def _to_js(self, mapping: Mapping[str, Any]) -> Any:
        return self._ctx.parse_json(json.dumps(dict(mapping)))

    def _compiled(self, kind: str, expr: str) -> Any:
        fn = self._cache.get((kind, expr))
        if fn is None:
            fn = self._compile((kind, expr), expr, _WRAP[kind] % expr)
        return fn

    def _compile(self, key: tuple[str, str], expr: str, source: str) -> Any:
        try:
            fn = self._ctx.eval(source)(self._api)
        except quickjs.JSException as exc:
            raise ExpressionError(expr, self._reason(exc)) from None
        if expr not in self._checked:
            try:
                self._ctx.eval(_CHECK % expr)
            except quickjs.JSException:
                raise ExpressionError(
                    expr, "not a single expression (statements are not allowed)") from None
            self._checked.add(expr)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        if len(self._checked) >= _CACHE_SIZE:
            self._checked.clear()
        self._cache[key] = fn
        return fn

    def _run(self, expr: str, fn: Any) -> Any:
        try:
            return fn()
        except quickjs.JSException as exc:
            raise ExpressionError(expr, self._reason(exc)) from None

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except quickjs.JSException as exc:
            raise ExpressionError("<engine>", self._reason(exc)) from None

    def _reason(self, exc: Exception) -> str:
        first = str(exc).split("\n", 1)[0].strip()
        if first == "InternalError: interrupted":
            return f"took longer than {self.time_limit_s * 1000:g} ms"
        if "out of memory" in first or first == "null":
            # QuickJS throws null when it cannot even allocate the error object
            self._ctx.gc()
            return f"ran out of memory (limit {self.memory_limit / (1 << 20):g} MiB)"
        if "stack overflow" in first:
            return "stack overflow (recursion too deep)"
        return first or "unknown JavaScript error"
