"""Run SIPp under asyncio: UAC runs to completion, UAS peers live in an `async with`.

Scenarios live in tests/data/sipp/ as templates: `{{NAME}}` tokens are filled from the
`params` of a run, falling back to the `<!-- harness-defaults: NAME=value ... -->` line of
the file (SIPp 3.6.1 cannot take a file name for rtp_stream from -key/-set, so rendering is
the only way to pick the audio per test). A token that renders empty on a line of its own
drops that line. Built-in scenarios (`uac`, `uas`, ...) are used by name.

    sipp = SippRunner(tmp_path)
    result = await sipp.run("uac_listen.xml", sw.sip_udp, service="1000", audio=ulaw_file)
    result.assert_ok()

Every run gets free ports for SIP (-p), media (-mp, plus -mp+2 that SIPp also binds) and the
control socket (-cp, which otherwise collides at 8888), `-nostdin`, a hard `-timeout` and
explicit file names for the stats CSV, error, message and <log> traces in the work dir.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shlex
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import audio
from tests.support.ports import HOST, free_rtp_port, free_udp_port, port_bound
from tests.support.procs import ManagedProcess, start_process

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "data" / "sipp"
TOKEN_RE = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
DEFAULTS_RE = re.compile(r"<!--\s*harness-defaults:(.*?)-->", re.S)
TRANSPORTS = {"udp": "u1", "tcp": "t1"}
Params = Mapping[str, str | int | float | Path]


class SippError(AssertionError):
    """SIPp did not run as the test expected; the message carries its logs."""


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if not found:
        raise SippError("sipp not found: `make install` apt-installs sip-tester")
    return found


def scenario_defaults(text: str) -> dict[str, str]:
    """The NAME=value pairs of a template's harness-defaults comment (shell quoting)."""
    m = DEFAULTS_RE.search(text)
    if not m:
        return {}
    return dict(item.split("=", 1) for item in shlex.split(m[1]))


def stream_action(audio_file: Path, loops: int = 1, payload_type: int = 0) -> str:
    """The scenario line that streams raw G.711 `audio_file` (loops: -1 = forever)."""
    return (f'<nop><action><exec rtp_stream="{audio_file},{loops},{payload_type}"/>'
            "</action></nop>")


def render_scenario(name: str, params: Params, dest: Path) -> Path:
    """Fill tests/data/sipp/NAME's tokens from `params` and its defaults into file `dest`."""
    text = (SCENARIO_DIR / name).read_text(encoding="iso-8859-1")
    values = {**scenario_defaults(text), **{k: str(v) for k, v in params.items()}}
    body = DEFAULTS_RE.sub("", text, count=1)
    missing = sorted(set(TOKEN_RE.findall(body)) - set(values))
    if missing:
        raise SippError(f"{name}: no value for {', '.join(missing)}")
    lines = []
    for line in body.splitlines():
        rendered = TOKEN_RE.sub(lambda m: values[m[1]], line)
        if TOKEN_RE.search(line) and not rendered.strip():
            continue
        lines.append(rendered)
    dest.write_text("\n".join(lines) + "\n", encoding="iso-8859-1")
    return dest


@dataclass
class SippResult:
    """What a SIPp run left behind: exit code, call counters, traces."""

    scenario: str
    argv: list[str]
    rc: int | None
    successful: int
    failed: int
    stats: dict[str, str]
    messages: str
    errors: str
    logs: str
    screen: str
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.failed == 0 and self.successful > 0

    def describe(self, tail: int = 120) -> str:
        def last(text: str) -> str:
            return "\n".join(text.splitlines()[-tail:])

        return (f"SIPp {self.scenario}: rc={self.rc} successful={self.successful} "
                f"failed={self.failed} (files in {self.workdir})\n$ {shlex.join(self.argv)}\n"
                f"--- errors ---\n{last(self.errors)}\n--- <log> ---\n{last(self.logs)}\n"
                f"--- messages ---\n{last(self.messages)}\n--- screen ---\n{last(self.screen)}")

    def logged(self, name: str) -> list[str]:
        """Values of `<log message="NAME: value"/>` lines, stripped, in order."""
        prefix = f"{name}:"
        return [line.split(":", 1)[1].strip() for line in self.logs.splitlines()
                if line.startswith(prefix)]

    def assert_ok(self, calls: int = 1) -> None:
        """Fail (with the traces) unless SIPp exited 0 with `calls` successful calls."""
        if not (self.rc == 0 and self.successful == calls and self.failed == 0):
            raise SippError(f"expected {calls} successful call(s)\n{self.describe()}")


@dataclass
class SippFiles:
    prefix: Path

    @property
    def stats(self) -> Path:
        return self.prefix.with_name(self.prefix.name + "_stats.csv")

    @property
    def errors(self) -> Path:
        return self.prefix.with_name(self.prefix.name + "_errors.log")

    @property
    def messages(self) -> Path:
        return self.prefix.with_name(self.prefix.name + "_messages.log")

    @property
    def logs(self) -> Path:
        return self.prefix.with_name(self.prefix.name + "_logs.log")

    def args(self) -> list[str]:
        return ["-trace_stat", "-stf", str(self.stats), "-fd", "3600",
                "-trace_err", "-error_file", str(self.errors),
                "-trace_msg", "-message_file", str(self.messages),
                "-trace_logs", "-log_file", str(self.logs)]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def parse_stats(text: str) -> dict[str, str]:
    """The last row of a SIPp -trace_stat CSV (';'-separated) as column -> value."""
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    rows = [r for r in rows if r]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _counter(stats: Mapping[str, str], name: str) -> int:
    try:
        return int(stats.get(name, "0") or 0)
    except ValueError:
        return 0


def collect_result(scenario: str, proc: ManagedProcess, files: SippFiles,
                   workdir: Path) -> SippResult:
    stats = parse_stats(_read(files.stats))
    return SippResult(
        scenario=scenario, argv=proc.argv, rc=proc.returncode,
        successful=_counter(stats, "SuccessfulCall(C)"),
        failed=_counter(stats, "FailedCall(C)"), stats=stats,
        messages=_read(files.messages), errors=_read(files.errors), logs=_read(files.logs),
        screen=proc.stdout.text + "\n" + proc.stderr.text, workdir=workdir)


@dataclass
class SippUas:
    """A SIPp peer waiting for calls: where it listens, and its result once stopped."""

    host: str
    port: int
    media_port: int
    transport: str
    process: ManagedProcess
    scenario: str
    files: SippFiles
    workdir: Path
    result: SippResult | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def uri(self, user: str = "service") -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{user}@{self.host}:{self.port}{suffix}"

    async def finish(self, timeout: float = 15.0) -> SippResult:
        """Wait for SIPp to exit by itself (started with `calls`), else stop it."""
        if await self.process.wait(timeout) is None:
            await self.process.stop(term_timeout=3.0)
        self.result = collect_result(self.scenario, self.process, self.files, self.workdir)
        return self.result


@dataclass
class SippRunner:
    """Runs SIPp instances whose files go to `workdir` (one subdirectory per run)."""

    workdir: Path
    runs: list[SippResult] = field(default_factory=list)
    _count: int = 0

    def _prepare(self, scenario: str, params: Params, audio_file: Path | None,
                 audio_loops: int, payload_type: int) -> tuple[Path, list[str], str]:
        self._count += 1
        stem = scenario.removesuffix(".xml")
        rundir = self.workdir / f"sipp-{self._count:02d}-{stem}"
        rundir.mkdir(parents=True, exist_ok=True)
        if not scenario.endswith(".xml"):
            return rundir, ["-sn", scenario], stem
        values: dict[str, str | int | float | Path] = dict(params)
        if audio_file is None and stem == "uac_listen":
            # keep RTP flowing towards the peer even when the test has nothing to say
            audio_file = audio.to_ulaw_file(audio.silence(1.0), rundir / "silence.ulaw")
            audio_loops = -1
        values.setdefault("STREAM_ACTION", stream_action(audio_file.resolve(), audio_loops,
                                                         payload_type) if audio_file else "")
        rendered = render_scenario(scenario, values, rundir / scenario)
        return rundir, ["-sf", str(rendered)], stem

    async def run(self, scenario: str, target: tuple[str, int], *, service: str = "service",
                  calls: int = 1, rate: float = 10, concurrent: int | None = None,
                  params: Params | None = None, audio_file: Path | None = None,
                  audio_loops: int = 1, payload_type: int = 0, transport: str = "udp",
                  timeout: float = 30.0, media_port: int | None = None,
                  extra_args: Sequence[str] = ()) -> SippResult:
        """Run a UAC scenario against `target` until it has placed `calls` calls.

        `audio_file` is raw G.711 for rtp_stream (`{{STREAM_ACTION}}`), sent as
        `payload_type` `audio_loops` times (-1: until the call ends). SIPp is stopped
        after `timeout` seconds (-timeout, with a kill 5 s later as a backstop).
        """
        rundir, scen_args, stem = self._prepare(scenario, params or {}, audio_file,
                                                audio_loops, payload_type)
        files = SippFiles(rundir / stem)
        media_port = media_port or free_rtp_port()
        argv = [sipp_binary(), f"{target[0]}:{target[1]}", *scen_args, "-s", service,
                "-i", HOST, "-p", str(free_udp_port()), "-t", TRANSPORTS[transport],
                "-mi", HOST, "-mp", str(media_port), "-cp", str(free_udp_port()),
                "-m", str(calls), "-r", str(rate), "-l", str(concurrent or calls),
                "-nostdin", "-timeout", f"{max(1, round(timeout))}s", "-timeout_error",
                *files.args(), *extra_args]
        proc = await start_process(stem, argv, rundir, cwd=rundir)
        if await proc.wait(timeout + 5) is None:
            await proc.stop(term_timeout=3.0)
        result = collect_result(scenario, proc, files, rundir)
        self.runs.append(result)
        return result

    @asynccontextmanager
    async def uas(self, scenario: str = "uas", *, params: Params | None = None,
                  rtp_echo: bool = True, calls: int | None = None, transport: str = "udp",
                  media_port: int | None = None, extra_args: Sequence[str] = (),
                  audio_file: Path | None = None, audio_loops: int = 1,
                  payload_type: int = 0, port: int | None = None,
                  ready_timeout: float = 10.0) -> AsyncIterator[SippUas]:
        """Start a UAS scenario (built-in `uas` or a template) and stop it on exit.

        With `rtp_echo`, RTP sent to its media port (and port + 2) comes straight back.
        With `calls`, SIPp exits by itself after that many calls (`await uas.finish()`).
        `audio_file` (raw G.711) fills the scenario's `{{STREAM_ACTION}}`, as for `run`.
        `port` is its SIP port (a free one when None), for a peer named before it starts.
        """
        rundir, scen_args, stem = self._prepare(scenario, params or {}, audio_file,
                                                audio_loops, payload_type)
        files = SippFiles(rundir / stem)
        port = port or free_udp_port()
        media_port = media_port or free_rtp_port()
        argv = [sipp_binary(), *scen_args, "-i", HOST, "-p", str(port),
                "-t", TRANSPORTS[transport], "-mi", HOST, "-mp", str(media_port),
                "-cp", str(free_udp_port()), "-nostdin", *files.args(), *extra_args]
        if rtp_echo:
            argv.append("-rtp_echo")
        if calls is not None:
            argv += ["-m", str(calls)]
        proc = await start_process(stem, argv, rundir, cwd=rundir)
        peer = SippUas(HOST, port, media_port, transport, proc, scenario, files, rundir)
        try:
            await _wait_bound(proc, port, udp=transport == "udp", timeout=ready_timeout)
            yield peer
        finally:
            if peer.result is None:
                await proc.stop(term_timeout=3.0)
                peer.result = collect_result(scenario, proc, files, rundir)
            self.runs.append(peer.result)


async def _wait_bound(proc: ManagedProcess, port: int, udp: bool, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not port_bound(port, udp=udp):
        if proc.returncode is not None or loop.time() > deadline:
            await proc.stop(term_timeout=2.0)
            raise SippError(f"SIPp did not bind {port} in {timeout} s\n{proc.describe()}")
        await asyncio.sleep(0.02)


INFO_STEP = """<pause milliseconds="{pause_ms}"/>
<send retrans="500">
  <![CDATA[
    INFO [next_url] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    [routes]
    From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
    To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
    Call-ID: [call_id]
    CSeq: {cseq} INFO
    Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
    Max-Forwards: 70
    Content-Type: application/dtmf-relay
    Content-Length: [len]

    Signal={digit}
    Duration=160
  ]]>
</send>
<recv response="200"/>"""


def key_steps(presses: Sequence[tuple[int, str]]) -> str:
    """KEY_STEPS for uac_info_keys.xml: (pause before it in ms, digit) per key press."""
    return "\n".join(INFO_STEP.format(pause_ms=pause, cseq=2 + i, digit=digit)
                     for i, (pause, digit) in enumerate(presses))
