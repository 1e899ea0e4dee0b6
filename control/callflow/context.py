"""What an action sees while it runs: the call, its variables, and the flow around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from control.callflow.port import CallPort

if TYPE_CHECKING:
    from control.callflow.actions import Action
    from control.callflow.interpreter import Interpreter
    from control.callflow.variables import FlowVariables
    from control.conferences import ConferenceService


class FlowHost(Protocol):
    """The callback loop, as actions that change where callbacks go see it."""

    def redirect(self, url: str, method: str | None, headers: dict[str, str] | None,
                 content_type: str | None) -> None: ...

    async def webhook(self, params: dict[str, Any], data: Any, blocking: bool
                      ) -> tuple[bool, Any]: ...


@dataclass
class FlowContext:
    port: CallPort
    vars: FlowVariables
    host: FlowHost
    interpreter: Interpreter | None = None
    # True while COLLECT runs its child prompts: they stop at the first key press
    collecting: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # the switch's conferences (CONFERENCE action); None where a switch runs none
    conferences: ConferenceService | None = None

    def param(self, action: Action, name: str, *, speech: bool = False) -> Any:
        """A param's value, with `${…}` interpolated where the spec marks it with *."""
        from control.callflow.interpolate import interpolate

        value = action.params.get(name)
        if isinstance(value, str) and name in action.spec.interpolated and "${" in value:
            return interpolate(value, self.vars, spread_for_speech=speech)
        return value

    def stop_on_key(self, action: Action) -> bool:
        return self.collecting or bool(action.params.get("stop_on_key"))
