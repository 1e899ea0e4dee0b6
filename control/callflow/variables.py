"""A call's `$` variables: the spec's Native Constants and User Defined Variables.

Theory of operation: one `FlowVariables` per call, over one `JsEngine` whose globals
live as long as the call (so user variables persist across callbacks).

- Native Constants (spec: Variables › Native Constants) are read-only globals: writes
  and `delete` fail silently. `$now`, `$callTime` and `$detection` are refreshed before
  every evaluation; `$keyPresses`, `$collectAttempt`, `$numConferenceParticipants` and
  `$lastQueuePollConnectCall` change only when the interpreter says so.
- `$sessionData` and `$webhookData` are writable (User Defined Variables), as is any
  other `$name` a flow assigns. `$sessionData` mirrors `call.session_data` both ways:
  after every evaluation or assignment its JSON is compared with what was last synced
  and, when it changed, copied into the call; `sync_from_call()` pushes changes made
  outside the flow (SESSIONDATA action, REST) into JS.

Choices where the spec is silent:
- `$sessionData` is `{}` in JS while the call has no session data, so a condition such
  as `$sessionData.age > 21` is false rather than a TypeError; `call.session_data` stays
  None until a flow writes to it.
- `$collectAttempt` is 0 before the first COLLECT.
- `$numConferenceParticipants` is a string (the spec's type) and is not defined until a
  CONFERENCE sets it, so using it earlier is a ReferenceError (the spec's "terminal
  error").
- Geography constants (`$callerNoCity`, …) are null: there is no numbering database.
- `$detection` (not in the spec's table) is the call's `detection` field, refreshed
  before every evaluation like `$now`: who answered, as far as DETECT knows yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from control.callflow.expressions import ExpressionError, JsEngine
from control.calls import Call

_GEO = ("Latitude", "Longitude", "PostalCode", "City", "RateCenter", "Lata", "Region",
        "Country", "TimeZone")

SESSION_DATA = "$sessionData"
WEBHOOK_DATA = "$webhookData"


def is_assignment(item: Mapping[str, Any]) -> bool:
    """True for a variable-assignment action such as `{"$a": "1", "$b.c": "'x'"}`."""
    return bool(item) and all(isinstance(k, str) and k.startswith("$") for k in item)


class FlowVariables:
    """The `$` variables of one call; use from the event-loop thread only."""

    def __init__(
        self,
        call: Call,
        *,
        engine: JsEngine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.call = call
        self._clock = clock
        self._collects: dict[str, int] = {}
        self._session_json: str | None = None
        # A JS context costs a few hundred µs and many flows never evaluate anything:
        # it is made on first use, with the constants set before then.
        self._engine: JsEngine | None = None
        self._pending: dict[str, Any] = {}
        if engine is not None:
            self._start(engine)

    @property
    def engine(self) -> JsEngine:
        """The call's JS engine, made (and given the call's variables) on first use."""
        if self._engine is None:
            self._start(JsEngine())
        assert self._engine is not None
        return self._engine

    def _start(self, engine: JsEngine) -> None:
        self._engine = engine
        engine.set_constants({**self._natives(), **self._pending})
        self._pending.clear()
        engine.assign(WEBHOOK_DATA, "undefined")  # spec: "Default: undefined"
        self.sync_from_call()

    def _set_constants(self, values: Mapping[str, Any]) -> None:
        if self._engine is None:
            self._pending.update(values)
        else:
            self._engine.set_constants(dict(values))

    # -- evaluation -------------------------------------------------------------

    def evaluate(self, expr: str) -> Any:
        """The value of a JS expression over the call's variables, as Python."""
        self._tick()
        try:
            return self.engine.evaluate(expr)
        finally:
            self._sync_to_call()

    def truthy(self, expr: str) -> bool:
        """An IF condition: JavaScript truthiness of `expr`."""
        self._tick()
        try:
            return self.engine.truthy(expr)
        finally:
            self._sync_to_call()

    def text(self, expr: str) -> str:
        """`expr` rendered for `${...}` interpolation (bare names map to `$` names)."""
        self._tick()
        try:
            return self.engine.text(expr)
        finally:
            self._sync_to_call()

    def assign(self, target: str, expr: str) -> None:
        """One assignment, `{"$target": "expr"}`; read-only targets are ignored."""
        self._tick()
        try:
            self.engine.assign(target, expr)
        finally:
            self._sync_to_call()

    def assign_many(self, assignments: Mapping[str, Any]) -> None:
        """A variable-assignment action. The spec does not guarantee an order; we assign
        in the mapping's (JSON document) order and stop at the first failure."""
        for target, expr in assignments.items():
            self.assign(target, expr)

    def set_vars(self, mapping: Mapping[str, Any]) -> None:
        """Set writable variables from Python values (FOREACH's `$val`, `$key`, …)."""
        for name in mapping:
            if not (isinstance(name, str) and name.startswith("$") and len(name) > 1):
                raise ExpressionError(str(name), "not a variable name ($name)")
        self.engine.set_vars(mapping)
        self._sync_to_call()

    def get(self, name: str) -> Any:
        """A variable's value as Python (None when undefined)."""
        self._tick()
        return self.engine.get(name)

    # -- what the interpreter and other actions tell us -------------------------

    def set_key_presses(self, digits: str) -> None:
        """`$keyPresses` after a COLLECT ('' when no key was pressed)."""
        self._set_constants({"$keyPresses": digits})

    def enter_collect(self, key: str) -> int:
        """Count a visit to the COLLECT identified by `key`; `$collectAttempt` becomes
        that COLLECT's count (1 on the first visit), which is returned."""
        count = self._collects.get(key, 0) + 1
        self._collects[key] = count
        self._set_constants({"$collectAttempt": count})
        return count

    def set_webhook_data(self, value: Any) -> None:
        """`$webhookData` after a WEBHOOK returned JSON."""
        self.engine.set_vars({WEBHOOK_DATA: value})

    def set_num_conference_participants(self, count: int) -> None:
        """`$numConferenceParticipants` after a CONFERENCE action (a string, per spec)."""
        self._set_constants({"$numConferenceParticipants": str(count)})

    def set_last_queue_poll_connect_call(self, call_id: str, no: str) -> None:
        """`$lastQueuePollConnectCall` after a QUEUE poll_connect bridged a call."""
        self._set_constants({"$lastQueuePollConnectCall": {"id": call_id, "no": no}})

    def sync_from_call(self) -> None:
        """Push call.session_data (changed by SESSIONDATA or REST) and the call's other
        fields into JS (nothing to do before the JS engine exists)."""
        if self._engine is None:
            return
        data = self.call.session_data
        self.engine.set_vars({SESSION_DATA: {} if data is None else data})
        self._session_json = self.engine.get_json(SESSION_DATA)
        self.engine.set_constants({
            "$config": self.call.config,
            "$parentCallID": self.call.parent_call_id,
        })

    def snapshot(self) -> dict[str, Any]:
        """Every `$` variable and its value, for logs and tests."""
        self._tick()
        return self.engine.snapshot("$")

    # -- internals --------------------------------------------------------------

    def _natives(self) -> dict[str, Any]:
        call = self.call
        natives: dict[str, Any] = {
            "$config": call.config,
            "$lastQueuePollConnectCall": call.last_queue_poll_connect_call,
            "$direction": call.direction.value.upper(),
            "$keyPresses": "",
            "$now": self._now_ms(),
            "$callTime": call.duration_ms(),
            "$startTime": int(call.start_time.timestamp() * 1000),
            "$callId": call.id,
            "$parentCallID": call.parent_call_id,
            "$appId": call.app_id,
            "$collectAttempt": 0,
            "$callerNo": call.caller_no,
            "$apiNo": call.api_no,
            "$detection": call.detection,
        }
        for geo in _GEO:
            natives[f"$callerNo{geo}"] = None
            natives[f"$apiNo{geo}"] = None
        return natives

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _tick(self) -> None:
        self.engine.set_constant("$now", self._now_ms())
        self.engine.set_constant("$callTime", self.call.duration_ms())
        self.engine.set_constant("$detection", self.call.detection)

    def _sync_to_call(self) -> None:
        current = self.engine.get_json(SESSION_DATA)
        if current != self._session_json:
            self._session_json = current
            self.call.session_data = None if current is None else json.loads(current)
