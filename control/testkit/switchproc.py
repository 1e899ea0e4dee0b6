"""Start the switch under test through its CLI contract: one implementation for the
pytest plugin (`control.testkit.plugin`) and this repository's own harness
(tests/support/switch.py re-exports it).

`voxswitch serve --sip-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --rtp-ports LOW-HIGH
--data-dir DIR [--api-key KEY] [--default-callback URL]` prints exactly one line
`voxswitch ready sip=udp:HOST:PORT,tcp:HOST:PORT http=http://HOST:PORT api_key=KEY` when it
listens, and exits 0 within 5 s of SIGTERM.

    async with running_switch(tmp_path, default_callback=app.url) as sw:
        async with rest(sw) as http:
            await http.get("/v1/LiveCalls")
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from control.testkit.ports import free_port_range
from control.testkit.procs import ManagedProcess, start_process

if TYPE_CHECKING:  # aiohttp is imported when a REST session is made, not at pytest start
    import aiohttp

READY_RE = re.compile(
    r"^voxswitch ready sip=udp:(?P<uhost>[^:\s]+):(?P<uport>\d+),tcp:(?P<thost>[^:\s]+):"
    r"(?P<tport>\d+) http=(?P<http>http://\S+) api_key=(?P<key>\S+)$")
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 8.0


class SwitchStartError(AssertionError):
    """The switch exited or stayed silent instead of printing its ready line."""


@dataclass
class RunningSwitch:
    """Where a started switch listens; `process` is its ManagedProcess."""

    sip_udp: tuple[str, int]
    sip_tcp: tuple[str, int]
    http_url: str
    api_key: str
    data_dir: Path
    rtp_ports: tuple[int, int]
    process: ManagedProcess
    exit_code: int | None = None

    @property
    def sip_uri_host(self) -> str:
        """`HOST:PORT` of the UDP listener, for Request-URIs."""
        return f"{self.sip_udp[0]}:{self.sip_udp[1]}"

    def logs(self) -> str:
        """The last 200 lines of each stream, for assertion messages."""
        return self.process.describe(tail=200)

    def log_lines(self) -> list[str]:
        """Every line the switch has written so far, stdout then stderr."""
        return [*self.process.stdout.lines, *self.process.stderr.lines]

    def logged(self, text: str) -> bool:
        """Whether any line so far contains `text` (the tail of `logs` may not)."""
        return any(text in line for line in self.log_lines())


def voxswitch_argv() -> list[str]:
    """The installed `voxswitch` script beside this interpreter, else `python -m control.cli`."""
    script = Path(sys.executable).parent / "voxswitch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "control.cli"]


def parse_ready_line(line: str) -> tuple[tuple[str, int], tuple[str, int], str, str]:
    """(sip_udp, sip_tcp, http_url, api_key) from the ready line; ValueError if it is not one."""
    m = READY_RE.match(line.strip())
    if not m:
        raise ValueError(f"not a ready line: {line!r}")
    return ((m["uhost"], int(m["uport"])), (m["thost"], int(m["tport"])), m["http"], m["key"])


@asynccontextmanager
async def running_switch(tmp_path: Path, default_callback: str | None = None,
                         extra_args: Sequence[str] = (), *, api_key: str | None = "test-key",
                         rtp_port_count: int = 40, name: str = "voxswitch",
                         ready_timeout: float = READY_TIMEOUT_S,
                         check_exit: bool = True) -> AsyncIterator[RunningSwitch]:
    """Start the switch on 127.0.0.1 with ephemeral ports; stop it (SIGTERM, kill after 8 s).

    With `check_exit`, a switch that does not exit 0 on SIGTERM fails the test (after the
    body, and only when the body itself passed).
    """
    data_dir = tmp_path / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    low, high = free_port_range(rtp_port_count)
    argv = [*voxswitch_argv(), "serve", "--sip-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0", "--rtp-ports", f"{low}-{high}",
            "--data-dir", str(data_dir)]
    if api_key is not None:
        argv += ["--api-key", api_key]
    if default_callback is not None:
        argv += ["--default-callback", default_callback]
    argv += list(extra_args)
    # The switch under test takes its settings from the arguments alone, never from the
    # developer's own VOXSWITCH_* environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXSWITCH_")}
    proc = await start_process(name, argv, tmp_path / "logs", cwd=tmp_path, env=env)
    sw: RunningSwitch | None = None
    try:
        match = await proc.stdout.wait_for(r"^voxswitch ready ", ready_timeout)
        if match is None:
            await proc.stop(term_timeout=3.0)
            raise SwitchStartError(
                f"no ready line within {ready_timeout:.0f} s\n{proc.describe()}")
        udp, tcp, http_url, key = parse_ready_line(match.string)
        sw = RunningSwitch(udp, tcp, http_url, key, data_dir, (low, high), proc)
        yield sw
    finally:
        rc = await proc.stop(term_timeout=STOP_TIMEOUT_S)
        if sw is not None:
            sw.exit_code = rc
    if check_exit and rc != 0:
        raise AssertionError(f"switch exited {rc} after SIGTERM\n{proc.describe()}")


def rest(sw: RunningSwitch, **kwargs: object) -> aiohttp.ClientSession:
    """A ClientSession on the switch's HTTP base URL with X-API-Key preset; use `async with`."""
    import aiohttp

    headers = {"X-API-Key": sw.api_key}
    timeout = aiohttp.ClientTimeout(total=30)
    return aiohttp.ClientSession(base_url=sw.http_url, headers=headers, timeout=timeout,
                                 **kwargs)  # type: ignore[arg-type]


class SwitchClient:
    """The plugin's view of a running switch: where it listens and its REST API.

    `await api("GET", "/v1/LiveCalls")` returns the parsed JSON body and fails the test,
    with the spec's error body, on any status but the expected ones.
    """

    def __init__(self, running: RunningSwitch) -> None:
        self.running = running
        self.sip_udp = running.sip_udp
        self.sip_tcp = running.sip_tcp
        self.http_url = running.http_url
        self.api_key = running.api_key
        self.data_dir = running.data_dir

    def logs(self) -> str:
        return self.running.logs()

    def rest(self) -> aiohttp.ClientSession:
        """An aiohttp session on the switch with the API key set; use `async with`."""
        return rest(self.running)

    async def api(self, method: str, path: str, json: object = None,
                  expect: Sequence[int] = (200, 201, 202, 204)) -> object:
        """Call the REST API; the parsed JSON body (None for an empty one)."""
        async with self.rest() as http, http.request(method, path, json=json) as resp:
            text = await resp.text()
            if resp.status not in expect:
                raise AssertionError(f"{method} {path} answered {resp.status} (expected "
                                     f"{', '.join(map(str, expect))}): {text}")
            if not text:
                return None
            return await resp.json(content_type=None)

    async def set_default_callback(self, url: str, **config: object) -> object:
        """Point the Default call flow at `url` (extra fields: answer_on_ring, …)."""
        return await self.api("PUT", "/v1/CallFlows/Configurations/Default",
                              {"callback": {"url": url}, **config})

    async def route_number(self, number: str, url: str, **config: object) -> object:
        """Send calls to `number` to the callback at `url` (its own call flow)."""
        from urllib.parse import quote

        return await self.api("PUT", "/v1/CallFlows/Configurations/PhoneNumbers/"
                              + quote(number, safe=""), {"callback": {"url": url}, **config})
