"""baresip as a scripted softphone: headless, loopback only, driven over ctrl_tcp.

    runner = BaresipRunner(tmp_path)
    async with runner.start(source=audio.sine(1000, 3.0)) as phone:
        await phone.dial(f"sip:1000@{host}:{port}")
        await phone.wait_event("CALL_ESTABLISHED")
        await phone.send_dtmf("12#")
        await phone.wait_event("CALL_CLOSED", timeout=15)
    heard = phone.rx_audio()     # what baresip received, decoded by baresip (-dec.wav)

The config (tests/data/baresip/*.tmpl) follows TOOLING.md §3: `net_interface 127.0.0.1`, no
stdio, ALSA's null PCM as player, `sndfile` recording TX/RX into WORKDIR/rec, `aufile`
playing the source WAV. baresip hangs up when the source reaches its end, so the source is
padded to the wanted call length: that makes call length deterministic. Every instance
runs with `-t LIFETIME` and is stopped with `quit`, then SIGTERM, then SIGKILL.

DTMF goes through `cons` (UDP): the digit, then 0x04 (key release). baresip sends RFC 4733
events only if the peer's SDP offered/answered telephone-event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.support import audio
from tests.support.ports import HOST, free_port_range, free_tcp_port, free_udp_port
from tests.support.procs import ManagedProcess, start_process

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "data" / "baresip"
KEY_RELEASE = b"\x04"


class BaresipError(AssertionError):
    """baresip did not start, answer a command or report an event in time."""


@dataclass(frozen=True)
class BaresipConfig:
    """A rendered config directory and the ports it uses."""

    config_dir: Path
    rec_dir: Path
    source_wav: Path
    user: str
    sip_port: int
    cons_port: int
    ctrl_port: int
    rtp_ports: tuple[int, int]

    @property
    def uri(self) -> str:
        """The account's own URI, to be dialed by others (the user part must match)."""
        return f"sip:{self.user}@{HOST}:{self.sip_port}"


def write_config(workdir: Path, source_wav: Path, user: str = "bob",
                 answermode: str = "auto", codecs: str = "PCMU,PCMA",
                 account: str | None = None, contacts: str = "") -> BaresipConfig:
    """Render the config, accounts and an empty contacts file into WORKDIR/baresip.

    `account` replaces the accounts line (e.g. one that registers: `registered_account`);
    `contacts` fills the contacts file (`"Name" <sip:...>` lines; the first is current,
    the one the `message` command writes to).
    """
    config_dir = workdir / "baresip"
    rec_dir = workdir / "rec"
    config_dir.mkdir(parents=True, exist_ok=True)
    rec_dir.mkdir(parents=True, exist_ok=True)
    low, high = free_port_range(40)
    cfg = BaresipConfig(config_dir, rec_dir, source_wav.resolve(), user, free_udp_port(),
                        free_udp_port(), free_tcp_port(), (low, high))
    values = {"sip_port": cfg.sip_port, "source_wav": cfg.source_wav, "rtp_low": low,
              "rtp_high": high, "cons_port": cfg.cons_port, "ctrl_port": cfg.ctrl_port,
              "rec_dir": rec_dir.resolve(), "user": user, "answermode": answermode,
              "codecs": codecs}
    for name in ("config", "accounts"):
        text = Template((TEMPLATE_DIR / f"{name}.tmpl").read_text()).substitute(values)
        (config_dir / name).write_text(text)
    if account is not None:
        (config_dir / "accounts").write_text(account + "\n")
    (config_dir / "contacts").write_text(contacts)
    return cfg


def registered_account(user: str, password: str, registrar: str, *, regint: int = 60,
                       answermode: str = "auto", codecs: str = "PCMU,PCMA") -> str:
    """An accounts line that REGISTERs `user` (digest `password`) with `registrar`
    (HOST:PORT) every `regint` seconds (its Expires)."""
    return (f"<sip:{user}@{registrar}>;auth_pass={password};regint={regint};"
            f"answermode={answermode};audio_codecs={codecs}")


def netstring(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj).encode()
    return str(len(data)).encode() + b":" + data + b","


async def read_netstring(reader: asyncio.StreamReader) -> dict[str, Any]:
    length = int((await reader.readuntil(b":"))[:-1])
    data = await reader.readexactly(length + 1)
    if data[-1:] != b",":
        raise BaresipError(f"bad netstring terminator {data[-1:]!r}")
    parsed: dict[str, Any] = json.loads(data[:-1])
    return parsed


@dataclass
class Baresip:
    """A running baresip: commands and events over ctrl_tcp, keys over cons."""

    config: BaresipConfig
    process: ManagedProcess
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task[None] | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tokens: int = 0

    async def connect(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    HOST, self.config.ctrl_port)
                break
            except OSError as exc:
                if self.process.returncode is not None or loop.time() > deadline:
                    raise BaresipError(
                        f"ctrl_tcp not reachable\n{self.process.describe()}") from exc
                await asyncio.sleep(0.05)
        self._pump = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                msg = await read_netstring(self._reader)
                if msg.get("event"):
                    self.events.append(msg)
                elif msg.get("response"):
                    self.responses[str(msg.get("token"))] = msg
                async with self._changed:
                    self._changed.notify_all()

    async def _wait(self, what: str, timeout: float, check: Any) -> Any:
        async def wait() -> Any:
            async with self._changed:
                while (found := check()) is None:
                    await self._changed.wait()
                return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            types = [e.get("type") for e in self.events]
            raise BaresipError(f"no {what} within {timeout} s; events: {types}\n"
                               f"{self.process.describe()}") from None

    async def command(self, command: str, params: str | None = None,
                      timeout: float = 5.0) -> dict[str, Any]:
        """Send a long command (dial, hangup, accept, callstat, quit, ...) and its response."""
        if self._writer is None:
            raise BaresipError("not connected")
        self._tokens += 1
        token = f"t{self._tokens}"
        msg: dict[str, Any] = {"command": command, "token": token}
        if params is not None:
            msg["params"] = params
        self._writer.write(netstring(msg))
        await self._writer.drain()
        response: dict[str, Any] = await self._wait(
            f"response to {command}", timeout, lambda: self.responses.get(token))
        return response

    async def dial(self, uri: str) -> dict[str, Any]:
        response = await self.command("dial", uri)
        if not response.get("ok"):
            raise BaresipError(f"dial {uri} failed: {response}")
        return response

    async def hangup(self) -> dict[str, Any]:
        return await self.command("hangup")

    async def accept(self) -> dict[str, Any]:
        return await self.command("accept")

    async def wait_event(self, type: str, timeout: float = 10.0,
                         count: int = 1) -> dict[str, Any]:
        """The `count`-th event of `type` (CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED,
        CALL_CLOSED, ...), already received or still to come."""
        def check() -> dict[str, Any] | None:
            hits = [e for e in self.events if e.get("type") == type]
            return hits[count - 1] if len(hits) >= count else None

        event: dict[str, Any] = await self._wait(f"event {type}", timeout, check)
        return event

    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    async def send_dtmf(self, digits: str, press_s: float = 0.12, gap_s: float = 0.15) -> None:
        """Press and release each key through `cons` (RFC 4733 if negotiated)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for digit in digits:
                sock.sendto(digit.encode(), (HOST, self.config.cons_port))
                await asyncio.sleep(press_s)
                sock.sendto(KEY_RELEASE, (HOST, self.config.cons_port))
                await asyncio.sleep(gap_s)
        finally:
            sock.close()

    async def console(self) -> Console:
        """A tap on what baresip's UI prints (a received MESSAGE is `<from URI>: "text"`).

        `cons` sends UI output to the UDP peer that last pressed a key, so the tap presses
        a lone key release (which does nothing) and then listens; close it when done."""
        loop = asyncio.get_running_loop()
        tap = Console()
        transport, _ = await loop.create_datagram_endpoint(lambda: tap,
                                                           local_addr=(HOST, 0))
        tap.transport = transport
        transport.sendto(KEY_RELEASE, (HOST, self.config.cons_port))
        return tap

    def recordings(self, kind: str = "dec") -> list[Path]:
        """sndfile dumps, oldest first: `dec` is what baresip received, `enc` what it sent."""
        return sorted(self.config.rec_dir.glob(f"dump-*-{kind}.wav"),
                      key=lambda p: (p.stat().st_mtime, p.name))

    def rx_audio(self) -> npt.NDArray[np.int16]:
        """What baresip received in its last call (RX, decoded), as 8 kHz int16."""
        return self._last_recording("dec")

    def tx_audio(self) -> npt.NDArray[np.int16]:
        """What baresip sent in its last call (TX, before encoding)."""
        return self._last_recording("enc")

    def _last_recording(self, kind: str) -> npt.NDArray[np.int16]:
        files = self.recordings(kind)
        if not files:
            raise BaresipError(f"no {kind} recording in {self.config.rec_dir}\n"
                               f"{self.process.describe()}")
        pcm, rate = audio.read_wav(files[-1])
        if rate != audio.RATE:
            raise BaresipError(f"{files[-1]}: {rate} Hz, expected 8000")
        return pcm

    @property
    def log(self) -> str:
        return self.process.stdout.text + "\n" + self.process.stderr.text

    async def close(self) -> None:
        """`quit`, then SIGTERM after 3 s, SIGKILL after 8 more."""
        if self.process.returncode is None and self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(netstring({"command": "quit", "token": "quit"}))
                await self._writer.drain()
            await self.process.wait(3.0)
        await self.process.stop(term_timeout=8.0)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


class Console(asyncio.DatagramProtocol):
    """Text baresip's `cons` sent us (see `Baresip.console`)."""

    def __init__(self) -> None:
        self.text = ""
        self.transport: asyncio.DatagramTransport | None = None
        self._changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.text += data.decode("utf-8", "replace")
        self._changed.set()

    async def wait_for(self, needle: str, timeout: float = 10.0) -> bool:
        """Whether `needle` shows up in the output within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while needle not in self.text:
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class BaresipCall:
    """The outcome of `BaresipRunner.call`."""

    rx: npt.NDArray[np.int16]
    tx: npt.NDArray[np.int16]
    events: list[str]
    log: str
    phone: Baresip


@dataclass
class BaresipRunner:
    """Starts baresip instances whose configs and recordings live under `workdir`."""

    workdir: Path
    _count: int = 0

    def source_wav(self, source: npt.ArrayLike | Path | None, seconds: float | None,
                   rundir: Path) -> Path:
        """The source as a WAV padded to `seconds` (default: 3 s of silence)."""
        if isinstance(source, Path):
            pcm, rate = audio.read_wav(source)
            if rate != audio.RATE:
                raise BaresipError(f"{source}: {rate} Hz; use an 8 kHz WAV")
        elif source is None:
            pcm = audio.silence(0)
        else:
            pcm = np.asarray(source, dtype=np.int16)
        pcm = audio.pad_to(pcm, seconds if seconds is not None else max(3.0, len(pcm) / 8000))
        return audio.write_wav(rundir / "source.wav", pcm)

    @asynccontextmanager
    async def start(self, source: npt.ArrayLike | Path | None = None,
                    seconds: float | None = None, *, user: str = "bob",
                    answermode: str = "auto", codecs: str = "PCMU,PCMA",
                    lifetime: float = 60.0, account: str | None = None,
                    contacts: str = "") -> AsyncIterator[Baresip]:
        """Start baresip (bounded by `-t lifetime`) and connect to its ctrl_tcp.

        `source` (int16 PCM or an 8 kHz WAV) is what it plays into each call, padded with
        silence to `seconds`; the call ends when it runs out.
        """
        if shutil.which("baresip") is None:
            raise BaresipError("baresip not found: `make install` apt-installs baresip-core")
        self._count += 1
        rundir = self.workdir / f"baresip-{self._count:02d}"
        rundir.mkdir(parents=True, exist_ok=True)
        wav = self.source_wav(source, seconds, rundir)
        cfg = write_config(rundir, wav, user=user, answermode=answermode, codecs=codecs,
                           account=account, contacts=contacts)
        argv = ["baresip", "-f", str(cfg.config_dir), "-t", str(max(1, round(lifetime)))]
        proc = await start_process("baresip", argv, rundir, cwd=rundir)
        phone = Baresip(cfg, proc)
        try:
            await phone.connect()
            yield phone
        finally:
            await phone.close()

    async def call(self, uri: str, source: npt.ArrayLike | Path | None = None,
                   seconds: float = 3.0, timeout: float | None = None) -> BaresipCall:
        """Dial `uri`, play `source` for `seconds`, and return once the call has closed."""
        timeout = timeout if timeout is not None else seconds + 15.0
        async with self.start(source, seconds, lifetime=timeout + 5) as phone:
            await phone.dial(uri)
            await phone.wait_event("CALL_CLOSED", timeout=timeout)
        established = "CALL_ESTABLISHED" in phone.event_types()
        rx = phone.rx_audio() if established else np.zeros(0, np.int16)
        tx = phone.tx_audio() if established else np.zeros(0, np.int16)
        return BaresipCall(rx, tx, phone.event_types(), phone.log, phone)
