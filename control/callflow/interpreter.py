"""Runs a callback response's actions against a call.

Theory of operation: a response is compiled first (every action, nested lists included,
checked against its spec), then run in order. The interpreter owns control flow: nested
lists (IF, FOREACH, COLLECT's prompts, event handlers) run through `run_list`; a GOTO
raises `Goto`, which each enclosing list catches and resolves when it holds the LABEL, so
a GOTO inside an IF can jump to a LABEL of the top-level list. A label found nowhere fails
the flow, as the spec warns. Each action module talks to the call only through the
FlowContext.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from control.callflow.actions import REGISTRY
from control.callflow.context import ASSIGN, Action, ActionSpec, FlowContext, Goto, Outcome
from control.callflow.errors import NoActions

log = logging.getLogger("voxswitch.callflow")

MAX_JUMPS = 10_000  # GOTOs per response: a loop with no blocking action must not spin
_VAR_KEY = re.compile(r"^\$[A-Za-z_][\w$]*")


async def _assign(action: Action, ctx: FlowContext) -> Outcome:
    ctx.vars.assign_many({k: v for k, v in action.raw.items() if k.startswith("$")})
    return Outcome.NEXT


ASSIGN_SPEC = ActionSpec(ASSIGN, _assign)


def _spec_for(item: dict[str, Any], where: str) -> ActionSpec:
    if "type" not in item and item and all(isinstance(k, str) and _VAR_KEY.match(k)
                                           for k in item):
        for key, value in item.items():
            if not isinstance(value, str):
                raise NoActions(f"{where}: the value of {key} must be a string holding a "
                                f"JavaScript expression, got {type(value).__name__}")
        return ASSIGN_SPEC
    kind = str(item.get("type", "")).upper()
    spec = REGISTRY.get(kind)
    if spec is None:
        raise NoActions(
            f"{where} has type {item.get('type')!r}, which this switch does not run; "
            f"supported: {', '.join(sorted(REGISTRY))} and variable assignments"
        )
    return spec


def compile_actions(raw: list[Any], allowed: frozenset[str] | None = None,
                    path: str = "") -> list[Action]:
    """Check every action of a response (and its nested lists) before any runs."""
    out = []
    for i, item in enumerate(raw):
        where = f"action {path}{i}"
        if not isinstance(item, dict):
            raise NoActions(f"{where} is not an object")
        spec = _spec_for(item, where)
        if allowed is not None and spec.type not in allowed:
            raise NoActions(f"{where} ({spec.type}) is not allowed here; accepted: "
                            f"{', '.join(sorted(allowed))}")
        action, lists = spec.build(item, index=i)
        for key, node, sub_allowed in lists:
            name = ".".join(key)
            action.children[name] = compile_actions(node, sub_allowed, f"{path}{i}.{name}.")
        out.append(action)
    if not path:
        _check_labels(out)
    return out


def _walk(actions: list[Action]) -> list[Action]:
    found = []
    for a in actions:
        found.append(a)
        for sub in a.children.values():
            found += _walk(sub)
    return found


def label_of(action: Action) -> str | None:
    if action.type != "LABEL":
        return None
    value = action.name or action.params.get("name")
    return str(value) if value is not None else None


def _check_labels(actions: list[Action]) -> None:
    everything = _walk(actions)
    labels = {label_of(a) for a in everything} - {None}
    for a in everything:
        target = a.params.get("label") if a.type == "GOTO" else None
        if isinstance(target, str) and "${" not in target and target not in labels:
            raise NoActions(f"GOTO {target!r}: there is no LABEL of that name in this "
                            "callback response")


class Interpreter:
    def __init__(self, ctx: FlowContext) -> None:
        self.ctx = ctx
        ctx.interpreter = self
        self._jumps = 0

    async def run(self, actions: list[Action]) -> Outcome:
        """Run a whole response: END when it ended the call, else NEXT."""
        self._jumps = 0
        try:
            return await self.run_list(actions)
        except Goto as jump:
            raise NoActions(f"GOTO {jump.label!r}: there is no LABEL of that name in this "
                            "callback response") from None

    async def run_list(self, actions: list[Action]) -> Outcome:
        i = 0
        while i < len(actions):
            if self.ctx.port.ended:
                return Outcome.END
            try:
                outcome = await self.run_one(actions[i])
            except Goto as jump:
                target = next((j for j, a in enumerate(actions) if label_of(a) == jump.label),
                               None)
                if target is None:
                    raise
                self._jumps += 1
                if self._jumps > MAX_JUMPS:
                    raise NoActions(f"more than {MAX_JUMPS} GOTO jumps in one response: "
                                    "a loop that never waits") from None
                await asyncio.sleep(0)  # a GOTO loop must not starve the other calls
                i = target + 1
                continue
            if outcome is Outcome.END or self.ctx.port.ended:
                return Outcome.END
            i += 1
        return Outcome.NEXT

    async def run_one(self, action: Action) -> Outcome:
        port = self.ctx.port
        if action.type != "COLLECT" and not self.ctx.collecting:
            # Keys pressed before a COLLECT are kept for it (type-ahead); any other
            # action starts from a clean slate.
            port.clear_digits()
        log.info("action.start", extra={"call_id": port.call.id, "action": action.type,
                                        "action_name": action.name})
        # the call's timeline (control.timeline), on call sessions; not on test ports
        timeline = getattr(port, "timeline", None)
        if timeline is None or action.type == ASSIGN:
            return await action.spec.run(action, self.ctx)
        label = action.type + (f" {action.name!r}" if action.name else "")
        timeline.add("action", f"{label} started", phase="start", action=action.type,
                     name=action.name, index=action.index)
        result = "error"
        try:
            outcome = await action.spec.run(action, self.ctx)
            result = "call ended" if outcome is Outcome.END or port.ended else "done"
            return outcome
        except Goto as jump:
            result = f"GOTO {jump.label}"
            raise
        except asyncio.CancelledError:
            result = "stopped"  # replaced by REST, or the call ended under it
            raise
        except Exception as exc:
            result = f"failed: {exc}"
            raise
        finally:
            timeline.add("action", f"{label} ended: {result}", phase="end",
                         action=action.type, name=action.name, index=action.index,
                         result=result)
