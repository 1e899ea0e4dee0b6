"""Action registry: one module per action type, each registering an ActionSpec.

An action's parameter schema is data (`params`: name → (accepted types, default)); the
interpreter validates against it before running anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from control.callflow.errors import NoActions

if TYPE_CHECKING:
    from control.callflow.port import CallPort


class Outcome(Enum):
    NEXT = "next"  # go on with the next action
    END = "end"  # the call ended (HANGUP, REJECT): no further actions, no live_call


_MISSING = object()
REQUIRED = _MISSING


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


@dataclass(frozen=True)
class ActionSpec:
    type: str
    run: Callable[[Action, CallPort], Awaitable[Outcome]]
    params: dict[str, Param] = field(default_factory=dict)

    def build(self, raw: dict[str, Any], index: int) -> Action:
        given = raw.get("params")
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise NoActions(f"action {index} ({self.type}): 'params' must be an object")
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
            if p.choices and isinstance(value, str) and value.lower() not in p.choices:
                raise NoActions(
                    f"action {index} ({self.type}): param '{pname}' is {value!r}; "
                    f"accepted: {', '.join(p.choices)}"
                )
            params[pname] = value
        name = raw.get("name")
        return Action(self.type, name if isinstance(name, str) else None, params, raw, self)


REGISTRY: dict[str, ActionSpec] = {}


def register(spec: ActionSpec) -> ActionSpec:
    REGISTRY[spec.type] = spec
    return spec


def _load() -> None:
    # Importing each module registers its action.
    from control.callflow.actions import (  # noqa: F401
        hangup,
        pause,
        play,
        reject,
        say,
        sessiondata,
    )


_load()
