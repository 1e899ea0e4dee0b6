"""Action registry: one module per action type, each registering an ActionSpec.

An action's parameter schema is data (`params`: name → accepted types, default, choices),
and so are the places its nested action lists live (`children`: IF's `then`/`orElse`,
COLLECT's `actions`, WEBHOOK's `events.on_error`, …). The interpreter compiles a whole
response against these specs before anything runs, so a bad action fails up front.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from control.callflow.errors import NoActions

if TYPE_CHECKING:
    from control.callflow.context import FlowContext


class Outcome(Enum):
    NEXT = "next"  # go on with the next action
    END = "end"  # the call ended (HANGUP, REJECT): no further actions, no live_call


_MISSING = object()
REQUIRED = _MISSING
ASSIGN = "$ASSIGN"  # internal type of a variable-assignment action ({"$var": "expr"})


@dataclass(frozen=True)
class Param:
    types: tuple[type, ...]
    default: Any = _MISSING
    choices: tuple[str, ...] | None = None


@dataclass
class Action:
    type: str
    name: str | None
    params: dict[str, Any]
    raw: dict[str, Any]
    spec: ActionSpec
    index: int
    children: dict[str, list[Action]] = field(default_factory=dict)

    def where(self) -> str:
        return f"action {self.index} ({self.type})"


@dataclass(frozen=True)
class ActionSpec:
    type: str
    run: Callable[[Action, FlowContext], Awaitable[Outcome]]
    params: dict[str, Param] = field(default_factory=dict)
    # params the spec marks with * (string interpolation at run time)
    interpolated: frozenset[str] = frozenset()
    # params the spec puts beside `type` instead of inside `params` (IF's condition)
    top_level: frozenset[str] = frozenset()
    # nested action lists: key path in the raw action → allowed types (None = any)
    children: tuple[tuple[tuple[str, ...], frozenset[str] | None], ...] = ()

    def build(self, raw: dict[str, Any], index: int) -> tuple[Action, list[tuple[
            tuple[str, ...], list[Any], frozenset[str] | None]]]:
        """Validate params; return the action and its raw child lists to compile."""
        given = raw.get("params")
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise NoActions(f"action {index} ({self.type}): 'params' must be an object")
        given = {**{k: raw[k] for k in self.top_level if k in raw}, **given}
        params: dict[str, Any] = {}
        for pname, p in self.params.items():
            value = given.get(pname, p.default)
            if value is _MISSING:
                raise NoActions(f"action {index} ({self.type}): missing required param '{pname}'")
            if value is not None and not isinstance(value, p.types):
                want = " or ".join(t.__name__ for t in p.types)
                raise NoActions(
                    f"action {index} ({self.type}): param '{pname}' must be {want}, "
                    f"got {type(value).__name__}"
                )
            if p.choices and isinstance(value, str) and "${" not in value \
                    and value.lower() not in p.choices:
                raise NoActions(
                    f"action {index} ({self.type}): param '{pname}' is {value!r}; "
                    f"accepted: {', '.join(p.choices)}"
                )
            params[pname] = value
        name = raw.get("name")
        action = Action(self.type, name if isinstance(name, str) else None, params, raw, self,
                        index)
        lists = []
        for path, allowed in self.children:
            node: Any = raw
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                continue
            if not isinstance(node, list):
                raise NoActions(f"action {index} ({self.type}): '{'.'.join(path)}' must be "
                                "an array of actions")
            lists.append((path, node, allowed))
        return action, lists


REGISTRY: dict[str, ActionSpec] = {}


def register(spec: ActionSpec) -> ActionSpec:
    REGISTRY[spec.type] = spec
    return spec


def _load() -> None:
    # Importing each module registers its action.
    from control.callflow.actions import (  # noqa: F401
        collect,
        conditional,
        conference,
        foreach,
        goto,
        hangup,
        pause,
        play,
        redirect,
        reject,
        say,
        sessiondata,
        stop,
        webhook,
    )


_load()
