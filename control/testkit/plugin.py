"""The voxswitch pytest plugin: fixtures to test your own call flows against a real switch.

Installed with the package (entry point `pytest11`), so any project that has voxswitch
and pytest-asyncio gets these fixtures:

- `voxswitch_callbacks`: a scripted callback server (`control.testkit.callbacks`);
- `voxswitch`: a switch started for the test (`voxswitch serve` on 127.0.0.1 with
  ephemeral ports and a fresh data dir under tmp_path), its Default call flow pointed at
  `voxswitch_callbacks`; a `SwitchClient` with the REST API;
- `voxswitch_phone`: a test phone that calls the switch and judges what it hears
  (`control.testkit.phone`).

Options for the switch come from a marker, or for a whole module or project from a
`voxswitch_options` fixture of your own (the marker wins):

    @pytest.mark.voxswitch(args=["--some-flag"], default_callback=False, api_key="k")

    @pytest.fixture
    def voxswitch_options():
        return {"args": ["--some-flag"]}

The fixture names all start with `voxswitch` so that they never shadow a project's own.
Importing this module stays light (no numpy, PyAV or aiortc): the phone and the
callback server are imported when a test asks for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from control.testkit.switchproc import SwitchClient, running_switch

if TYPE_CHECKING:
    from control.testkit.callbacks import CallbackServer
    from control.testkit.phone import Phone

MARKER = "voxswitch"
_OPTIONS = frozenset({"args", "default_callback", "api_key", "rtp_port_count",
                      "ready_timeout"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "voxswitch(args=(), default_callback=True, api_key='test-key', rtp_port_count=40): "
        "how the voxswitch fixture starts the switch (extra `voxswitch serve` arguments; "
        "False leaves the Default call flow unset)")


@pytest_asyncio.fixture
async def voxswitch_callbacks() -> AsyncIterator[CallbackServer]:
    """A started callback server; script it with `.script(...)`, `.steps(...)` or
    `.handler(fn)`, read `.requests`."""
    from control.testkit.callbacks import CallbackServer

    server = CallbackServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
    if server.errors:
        pytest.fail("the voxswitch_callbacks handler raised (the switch got a 500):\n"
                    + "\n".join(server.errors), pytrace=False)


@pytest.fixture
def voxswitch_options() -> dict[str, Any]:
    """How `voxswitch` starts the switch, for a whole module or project: override this
    fixture (same keys as the marker, which wins over it for one test)."""
    return {}


@pytest_asyncio.fixture
async def voxswitch(request: pytest.FixtureRequest, tmp_path: Path,
                    voxswitch_callbacks: CallbackServer,
                    voxswitch_options: dict[str, Any]) -> AsyncIterator[SwitchClient]:
    """A switch of its own for this test, stopped after it (and required to exit 0)."""
    marker = request.node.get_closest_marker(MARKER)
    options = {**voxswitch_options, **(marker.kwargs if marker is not None else {})}
    unknown = set(options) - _OPTIONS
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.voxswitch (or voxswitch_options) does not "
                                f"take {sorted(unknown)}; "
                                f"it takes {', '.join(sorted(_OPTIONS))}")
    args = [str(a) for a in options.pop("args", ())]
    callback = voxswitch_callbacks.url if options.pop("default_callback", True) else None
    async with running_switch(tmp_path, callback, args, name="voxswitch",
                              **options) as running:
        yield SwitchClient(running)


@pytest_asyncio.fixture
async def voxswitch_phone(voxswitch: SwitchClient, tmp_path: Path) -> AsyncIterator[Phone]:
    """A test phone that dials the `voxswitch` switch (`await voxswitch_phone.dial(n)`)
    and takes calls at `voxswitch_phone.uri`; WAVs of what it heard go to
    tmp_path/voxswitch-phone/."""
    from control.testkit.phone import Phone

    phone = Phone(tmp_path / "voxswitch-phone", voxswitch.sip_udp)
    await phone.start()
    try:
        yield phone
    finally:
        await phone.close()
