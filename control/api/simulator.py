"""Simulator (a voxswitch extension; the spec has no such methods): the PSTN simulator's
numbers, read-only (control.pstnsim).

- `GET /Simulator/Numbers`: whether it runs, its range, how a number's digits choose what
  it does, and the behaviours with an example number each.
- `GET /Simulator/Numbers/{phone_number}`: what one number does (its behaviour, and the seconds
  its digits give); 404002 for a number outside the range, or with the simulator off.

Application-level: the simulator is the switch's, so below /SubAccounts/{id} these answer
404002 like the registrar's routes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.context import context
from control.api.errors import ApiError, ErrorPreset
from control.api.routing import RouteTable, Schema
from control.pstnsim import PstnSimulator, plan_for, table

routes = RouteTable("Simulator")

LAYOUT = ("the last four digits are B SS x: B the behaviour, SS seconds (00: the "
          "behaviour's default), x anything")
NOT_SIMULATED = ErrorPreset(404, 404002, "Not Found",
                            "This number is not one of the PSTN simulator's.",
                            "The requested number was not found.")
_STR = {"type": "string"}
_NULL_STR = {"type": ["string", "null"]}
BEHAVIOUR_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "digit": _STR, "behaviour": _STR, "description": _STR,
        "sip_status": {"type": ["integer", "null"],
                       "description": "the final response it refuses with, if it does"},
        "seconds": {**_STR, "description": "what the SS digits mean"},
        "default_seconds": {"type": "integer"},
        "example": _NULL_STR,
    },
}
LIST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "numbers": _NULL_STR,
        "layout": _STR,
        "behaviours": {"type": "array", "items": BEHAVIOUR_SCHEMA},
    },
}
NUMBER_SCHEMA: Schema = {
    "type": "object",
    "properties": {"number": _STR, "behaviour": BEHAVIOUR_SCHEMA,
                   "seconds": {"type": "number"}},
}


def _simulator(request: web.Request) -> PstnSimulator | None:
    return context(request).simulator


@routes.route("GET", "/Simulator/Numbers",
              summary="voxswitch: the PSTN simulator's numbers and behaviours",
              responses={200: LIST_SCHEMA})
async def list_simulator_numbers(request: web.Request) -> web.Response:
    """The behaviour table; with the simulator off, `enabled` is false and there are no
    example numbers."""
    sim = _simulator(request)
    body: dict[str, Any] = {
        "enabled": sim is not None,
        "numbers": sim.settings.simulator_numbers if sim is not None else None,
        "layout": LAYOUT,
        "behaviours": table(sim.block if sim is not None else None),
    }
    return web.json_response(body)


@routes.route("GET", "/Simulator/Numbers/{phone_number}",
              summary="voxswitch: what one PSTN simulator number does",
              responses={200: NUMBER_SCHEMA})
async def get_simulator_number(request: web.Request) -> web.Response:
    number = request.match_info["phone_number"]
    sim = _simulator(request)
    plan = plan_for(number, sim.block) if sim is not None else None
    if plan is None:
        hint = (f"{sim.settings.simulator_numbers}" if sim is not None
                else "none: the simulator is off ([simulator] enabled = false)")
        raise ApiError.from_preset(NOT_SIMULATED, help=f"{number!r} is not a simulator "
                                                       f"number; its range is {hint}.")
    [row] = [r for r in table(sim.block if sim is not None else None)
             if r["digit"] == plan.behaviour.digit]
    return web.json_response({"number": plan.number, "behaviour": row,
                              "seconds": plan.seconds})
