"""Start the switch under test through its CLI contract: `control.testkit.switchproc`, the
one implementation, shared with the pytest plugin shipped with the package.

    async with running_switch(tmp_path, default_callback=app.url) as sw:
        async with rest(sw) as http:
            await http.get("/v1/LiveCalls")
"""

from control.testkit.switchproc import (
    READY_RE,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    RunningSwitch,
    SwitchStartError,
    parse_ready_line,
    rest,
    running_switch,
    voxswitch_argv,
)

__all__ = [
    "READY_RE",
    "READY_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "RunningSwitch",
    "SwitchStartError",
    "parse_ready_line",
    "rest",
    "running_switch",
    "voxswitch_argv",
]
