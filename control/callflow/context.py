"""The contract between the interpreter and its actions.

What an action is (`ActionSpec`: its parameter schema as data; `Action`: one compiled
from a callback response; `Outcome`: what running it did) and what it sees while it
runs (`FlowContext`: the call, its variables, and the flow around it). The action
modules, the registry in `control.callflow.actions` and the interpreter all import this
module and it imports none of them: the interpreter reaches actions only through the
registry, and actions reach the interpreter only through `FlowRunner` and `Goto`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from control.callflow.errors import NoActions
from control.callflow.port import CallPort

if TYPE_CHECKING:
    from control.callflow.variables import FlowVariables
    from control.calls import Call
    from control.conferences import ConferenceService
    from control.detection import DetectionService
    from control.queues import QueueService
    from control.recordings import RecordingService


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


class Goto(Exception):
    """Raised by GOTO; each enclosing list the interpreter runs looks for the LABEL."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


class FlowRunner(Protocol):
    """The interpreter, as actions with nested lists (IF, FOREACH, COLLECT …) see it."""

    async def run_list(self, actions: list[Action]) -> Outcome: ...

    async def run_one(self, action: Action) -> Outcome: ...


class FlowHost(Protocol):
    """The callback loop, as actions that change where callbacks go see it."""

    def redirect(self, url: str, method: str | None, headers: dict[str, str] | None,
                 content_type: str | None) -> None: ...

    async def webhook(self, params: dict[str, Any], data: Any, blocking: bool
                      ) -> tuple[bool, Any]: ...

    def replace(self, actions: list[Action], once: Any = None) -> bool:
        """Stop the running actions and run `actions` instead; False once the call ended."""


class DialRefused(Exception):
    """A DIAL or TRANSFER that could not be placed (bad number, no route, no media
    port); the action runs its on_error handlers, the call goes on."""


class Messenger(Protocol):
    """The switch's messaging, as the SMS action sees it (control.messaging)."""

    async def sms(self, call: Call, no: str | None, caller_id_no: str | None,
                  text: str) -> dict[str, Any]:
        """Send `text` from `caller_id_no` (default: the call's api_no) to `no` (default:
        its caller_no); the message record, accepted. ValueError when it is refused."""


class Switchboard(Protocol):
    """The switch's outbound side, as DIAL, TRANSFER and QUEUE see it."""

    async def dial(self, parent: Call, params: dict[str, Any]) -> str:
        """Start an independent call for `parent`'s flow; its call id. DialRefused."""

    async def transfer(self, call: Call, params: dict[str, Any]) -> str | None:
        """Connect `call` to a new far leg; returns when the transfer ends (the far leg
        hung up or never connected) with the leg's final status, or at once (None) when
        `params["async"]`. DialRefused."""

    async def stop_transfer(self, call: Call) -> bool:
        """Hang up `call`'s transfer leg; False when it has none."""


@dataclass
class FlowContext:
    port: CallPort
    vars: FlowVariables
    host: FlowHost
    interpreter: FlowRunner | None = None
    # True while COLLECT runs its child prompts: they stop at the first key press
    collecting: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # the switch's conferences (CONFERENCE action); None where a switch runs none
    conferences: ConferenceService | None = None
    # the switch's call queues (QUEUE action); None where a switch runs none
    queues: QueueService | None = None
    # the switch's outbound side (DIAL, TRANSFER, QUEUE); None where there is none
    switchboard: Switchboard | None = None
    # the switch's call recordings (RECORD); None where a switch records none
    recordings: RecordingService | None = None
    # the switch's answering-machine detection (DETECT); None where a switch has none
    detection: DetectionService | None = None
    # the switch's messaging (SMS); None where a switch sends no messages
    messaging: Messenger | None = None

    def param(self, action: Action, name: str, *, speech: bool = False) -> Any:
        """A param's value, with `${…}` interpolated where the spec marks it with *."""
        from control.callflow.interpolate import interpolate

        value = action.params.get(name)
        if isinstance(value, str) and name in action.spec.interpolated and "${" in value:
            return interpolate(value, self.vars, spread_for_speech=speech)
        return value

    async def run_events(self, action: Action, events: tuple[str, ...]) -> Outcome:
        """Run the action's `events.<name>` handlers in order (those it has); END as soon
        as one ends the flow or the call has ended."""
        assert self.interpreter is not None
        for event in events:
            handler = action.children.get(f"events.{event}")
            if handler and await self.interpreter.run_list(handler) is Outcome.END:
                return Outcome.END
            if self.port.ended:
                return Outcome.END
        return Outcome.NEXT

    def stop_on_key(self, action: Action) -> bool:
        return self.collecting or bool(action.params.get("stop_on_key"))
