"""Ports, process control and the switch's ready line (no peers involved)."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.support import ports
from tests.support.procs import run_process, start_process
from tests.support.switch import parse_ready_line, voxswitch_argv

IGNORE_TERM = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
               "print('ready', flush=True); print('err', file=sys.stderr, flush=True); "
               "time.sleep(60)")


def test_parse_ready_line() -> None:
    line = ("voxswitch ready sip=udp:127.0.0.1:40327,tcp:127.0.0.1:40328 "
            "http=http://127.0.0.1:38575 api_key=abc-123\n")
    assert parse_ready_line(line) == (("127.0.0.1", 40327), ("127.0.0.1", 40328),
                                      "http://127.0.0.1:38575", "abc-123")
    with pytest.raises(ValueError, match="not a ready line"):
        parse_ready_line("voxswitch ready sip=udp:127.0.0.1:1")


def test_voxswitch_argv_uses_this_interpreters_environment() -> None:
    argv = voxswitch_argv()
    assert argv[0].startswith(str(Path(sys.executable).parent))


def test_free_ports_are_bindable_and_not_handed_out_twice() -> None:
    low, high = ports.free_port_range(50)
    assert high - low == 49 and low % 2 == 0
    assert all(ports.port_is_free(p) for p in range(low, high + 1))
    rtp = ports.free_rtp_port()
    assert rtp % 2 == 0 and not low <= rtp <= high
    assert len({ports.free_udp_port() for _ in range(20)}) == 20


def test_port_bound_reads_proc_net() -> None:
    port = ports.free_udp_port()
    assert not ports.port_bound(port, udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
        assert ports.port_bound(port, udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", port))
        assert not ports.port_bound(port, udp=False)  # bound but not listening
        tcp.listen()
        assert ports.port_bound(port, udp=False)


async def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    proc = await start_process("stubborn", [sys.executable, "-c", IGNORE_TERM], tmp_path)
    assert await proc.stdout.wait_for("^ready$", timeout=10)
    rc = await proc.stop(term_timeout=0.5)
    assert rc == -signal.SIGKILL
    assert (tmp_path / "stubborn.out").read_text() == "ready\n"
    assert (tmp_path / "stubborn.err").read_text() == "err\n"
    assert "rc -9" in proc.describe()


async def test_run_process_bounds_the_lifetime(tmp_path: Path) -> None:
    quick = await run_process("quick", [sys.executable, "-c", "print('hi')"], tmp_path, 10)
    assert (quick.returncode, quick.stdout.text) == (0, "hi")
    slow = await run_process("slow", [sys.executable, "-c", "import time; time.sleep(60)"],
                             tmp_path, timeout=0.3)
    assert slow.returncode == -signal.SIGTERM


async def test_wait_for_returns_none_at_eof(tmp_path: Path) -> None:
    proc = await start_process("eof", [sys.executable, "-c", "print('a')"], tmp_path)
    assert await proc.stdout.wait_for("never", timeout=10) is None
    assert await proc.wait(10) == 0
