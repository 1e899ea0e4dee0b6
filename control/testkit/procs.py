"""Child processes with a bounded life: output tapped to files, stopped with SIGTERM then
SIGKILL (tests/support/procs.py re-exports this).

Every peer (the switch, SIPp, baresip, tshark) runs in its own session, so that stopping it
also stops the helpers it spawned (tshark runs dumpcap). Output goes through a tap that
appends each line to a file in the test's directory and lets a test wait for a line, so
pipes never fill and the logs survive for the failure message.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO


class LineTap:
    """Copies a stream to a file line by line and wakes whoever waits for a pattern."""

    def __init__(self, stream: asyncio.StreamReader, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(stream))

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        # chunks, not readline(): a status line that only uses '\r' (baresip) must not hit
        # the StreamReader's line limit and stop the draining
        pending = ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with self.path.open("a", encoding="utf-8", errors="replace") as out:
            try:
                while chunk := await stream.read(65536):
                    pending += decoder.decode(chunk).replace("\r\n", "\n")
                    *complete, pending = pending.replace("\r", "\n").split("\n")
                    if len(pending) > 65536:
                        complete.append(pending)
                        pending = ""
                    await self._add(complete, out)
            finally:
                await self._add([pending] if pending else [], out)
                self.closed.set()
                async with self._changed:
                    self._changed.notify_all()

    async def _add(self, lines: list[str], out: TextIO) -> None:
        if not lines:
            return
        out.write("".join(line + "\n" for line in lines))
        out.flush()
        self.lines.extend(lines)
        async with self._changed:
            self._changed.notify_all()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first line matching `pattern`, or None at EOF or after `timeout` seconds."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            for line in self.lines:
                m = regex.search(line)
                if m:
                    return m
            return None

        async def wait() -> re.Match[str] | None:
            async with self._changed:
                while True:
                    m = found()
                    if m or self.closed.is_set():
                        return m
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return None

    async def finish(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ManagedProcess:
    """A started child process; `await stop()` (or `async with`) ends it for sure."""

    def __init__(self, name: str, argv: Sequence[str], proc: asyncio.subprocess.Process,
                 stdout: LineTap, stderr: LineTap) -> None:
        self.name = name
        self.argv = list(argv)
        self.proc = proc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None
        await self.stdout.finish()
        await self.stderr.finish()
        return rc

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process group this process leads (it and its own children)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    async def stop(self, term_timeout: float = 8.0, sig: int = signal.SIGTERM) -> int:
        """Ask with `sig` (SIGTERM), kill after `term_timeout` s; return the exit code."""
        if self.proc.returncode is None:
            self.send_signal(sig)
            rc = await self.wait(term_timeout)
            if rc is None:
                self.send_signal(signal.SIGKILL)
                rc = await self.proc.wait()
        else:
            rc = self.proc.returncode
        await self.stdout.finish()
        await self.stderr.finish()
        return rc

    def describe(self, tail: int = 60) -> str:
        """Exit state and the tails of stdout and stderr, for assertion messages."""
        out = "\n".join(self.stdout.lines[-tail:])
        err = "\n".join(self.stderr.lines[-tail:])
        return (f"{self.name} (pid {self.pid}, rc {self.proc.returncode}): "
                f"{' '.join(self.argv)}\n--- stdout ({self.stdout.path}) ---\n{out}\n"
                f"--- stderr ({self.stderr.path}) ---\n{err}")

    async def __aenter__(self) -> ManagedProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_process(name: str, argv: Sequence[str], logdir: Path, *,
                        cwd: Path | None = None,
                        env: Mapping[str, str] | None = None) -> ManagedProcess:
    """Start `argv` with stdin from /dev/null, stdout/stderr tapped to logdir/NAME.{out,err}."""
    logdir.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd, env=dict(env) if env is not None else None,
        start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    return ManagedProcess(name, argv, proc, LineTap(proc.stdout, logdir / f"{name}.out"),
                          LineTap(proc.stderr, logdir / f"{name}.err"))


async def run_process(name: str, argv: Sequence[str], logdir: Path, timeout: float, *,
                      cwd: Path | None = None,
                      env: Mapping[str, str] | None = None) -> ManagedProcess:
    """Run `argv` to completion; stopped (SIGTERM, then kill) if it outlives `timeout` s."""
    mp = await start_process(name, argv, logdir, cwd=cwd, env=env)
    if await mp.wait(timeout) is None:
        await mp.stop(term_timeout=3.0)
    return mp
