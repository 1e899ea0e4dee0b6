"""What the whole-switch benchmarks share (not a benchmark itself): the switch as a
subprocess on ephemeral ports, SIPp runs, and process bookkeeping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READY_RE = re.compile(r"^voxswitch ready sip=udp:([^:\s]+):(\d+),tcp:\S+ "
                      r"http=(http://\S+) api_key=(\S+)$")
NOFILE = 65536


def raise_nofile() -> None:
    """Lift this process's open-file limit (also a preexec_fn: each call holds sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_switch(workdir: Path, callback: str, rtp_ports: str,
                       extra_args: Sequence[str] = ()
                       ) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """`voxswitch serve` on ephemeral ports with a fresh data dir; (process, {sip, http,
    api_key}) once its ready line is out. Its stderr goes to WORKDIR/switch.err."""
    script = Path(sys.executable).parent / "voxswitch"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "control.cli"]
    argv += ["serve", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--rtp-ports", rtp_ports, "--data-dir", str(workdir / "data"),
             "--default-callback", callback, "--log-level", "WARNING", *extra_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXSWITCH_")}
    errfile = (workdir / "switch.err").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=errfile, cwd=ROOT, env=env, preexec_fn=raise_nofile,
        start_new_session=True)
    errfile.close()
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    m = READY_RE.match(line.decode().strip())
    if not m:
        raise RuntimeError(f"no ready line: {line!r}; see {workdir / 'switch.err'}")
    return proc, {"sip": (m[1], int(m[2])), "http": m[3], "api_key": m[4]}


def sipp_binary() -> str:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp not found (Debian package sip-tester; `make install`)")
    return sipp


async def start_sipp(workdir: Path, args: Sequence[str], name: str
                     ) -> asyncio.subprocess.Process:
    """SIPp with `args` (plus -nostdin and error/stat traces under WORKDIR/NAME_*)."""
    argv = [sipp_binary(), *args, "-nostdin",
            "-trace_err", "-error_file", str(workdir / f"{name}_errors.log"),
            "-trace_stat", "-stf", str(workdir / f"{name}_stats.csv")]
    out = (workdir / f"{name}.out").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, cwd=workdir,
        preexec_fn=raise_nofile, start_new_session=True)
    out.close()
    return proc


def sipp_errors(workdir: Path, name: str, lines: int = 4) -> str:
    """The head of a SIPp run's error log (the work dir is gone once the bench exits)."""
    path = workdir / f"{name}_errors.log"
    text = path.read_text(errors="replace") if path.exists() else "(no error log)"
    return "\n".join(text.strip().splitlines()[:lines])


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM,
               timeout: float = 10.0) -> int:
    """Signal the process group, wait, SIGKILL after `timeout`; the exit code."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode
