"""Resident memory per live call of the real switch; prints JSON.

Starts `voxswitch serve` (ephemeral SIP/HTTP ports, a wide RTP range, a fresh data dir)
and an in-process aiohttp callback server that answers `init_call` with PAUSE 120 s
(and the warm-up call with HANGUP). Then:

1. ``rss_start_kb``: VmRSS right after the ready line;
2. one warm-up call (SIPp, HANGUP flow), so that what the first call loads once (callback
   client, TTS and audio machinery, lazily imported modules) is not charged per call;
3. ``rss_idle_kb``: VmRSS with no call up, after the warm-up;
4. N concurrent calls from SIPp (`uac_wait_bye`, BYE timeout beyond the run), waiting
   until GET /v1/LiveCalls reports N live calls (progress on stderr);
5. ``rss_loaded_kb``: VmRSS with the N calls up; ``kb_per_call`` = (loaded - idle) / N.

Also reported: CPU use of the switch with the N calls up (``cpu_percent_loaded``, from
/proc/PID/stat over a few seconds) and how long each phase took. ``engine_tick_us`` is
null: the media engine's tick statistics (`MediaEngine.stats`) are not exposed by the
running switch (no API route, no log line).

The SIPp scenario is rendered by the test harness's own `render_scenario`, so a new
placeholder with a harness default cannot break the benchmark. ``--quick`` (what
tests/bench runs) makes 5 calls with a short pause and two RSS samples; the JSON has the
same fields.

Run: ``.venv/bin/python bench/memory.py [--calls 500] [--rate 50] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procs import (
    cpu_seconds,
    free_port,
    raise_nofile,
    sipp_errors,
    start_sipp,
    start_switch,
    stop,
)
from tests.support.sipp import render_scenario

SCENARIO = "uac_wait_bye.xml"  # in tests/data/sipp/
TARGET_KB_PER_CALL = 150
WARMUP_USER = "warmup"
QUICK = {"calls": 5, "rate": 10.0, "pause": 20, "settle": 0.5, "setup_timeout": 20.0,
         "samples": 2}


def log(msg: str) -> None:
    print(f"[memory] {msg}", file=sys.stderr, flush=True)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def scenario(dest: Path, bye_timeout_ms: int) -> Path:
    """uac_wait_bye.xml with no audio streamed and the BYE awaited `bye_timeout_ms`."""
    return render_scenario(SCENARIO, {"BYE_TIMEOUT_MS": bye_timeout_ms, "STREAM_ACTION": ""},
                           dest)


# ---- the callback server ----------------------------------------------------------------------

async def start_callback_server(pause_s: int) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        body: Any = await request.json() if request.can_read_body else {}
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "init_call":
            if body.get("api_no") == WARMUP_USER:
                return web.json_response({"actions": [{"type": "HANGUP"}]})
            return web.json_response(
                {"actions": [{"type": "PAUSE", "params": {"seconds": pause_s}}]})
        if kind == "live_call":
            return web.json_response({"actions": [{"type": "HANGUP"}]})
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/voice"


# ---- processes ---------------------------------------------------------------------------------

async def run_sipp(workdir: Path, target: tuple[str, int], scenario: Path, *, user: str,
                   calls: int, rate: float, timeout_s: int,
                   name: str) -> asyncio.subprocess.Process:
    return await start_sipp(workdir, [
        f"{target[0]}:{target[1]}", "-sf", str(scenario), "-s", user,
        "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1",
        "-mp", str(free_port() & ~1), "-cp", str(free_port()),
        "-m", str(calls), "-r", str(rate), "-l", str(calls),
        "-timeout", f"{timeout_s}s", "-timeout_error"], name)


async def live_calls(http: aiohttp.ClientSession) -> tuple[int, int]:
    """(live calls, of which answered) from GET /v1/LiveCalls."""
    async with http.get("/v1/LiveCalls", params={"max_results": "100000"}) as resp:
        resp.raise_for_status()
        body = await resp.json()
    answered = sum(1 for c in body["calls"] if c.get("connected_time", 0) > 0)
    return int(body["total_calls"]), answered


async def wait_until(check: Callable[[], Any], what: str, timeout: float,
                     every: float = 1.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        await asyncio.sleep(every)


# ---- the benchmark -----------------------------------------------------------------------------

async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    runner, callback = await start_callback_server(args.pause)
    switch: asyncio.subprocess.Process | None = None
    sipp: asyncio.subprocess.Process | None = None
    try:
        switch, info = await start_switch(workdir, callback, args.rtp_ports)
        timings["switch_start_s"] = time.monotonic() - t0
        pid = switch.pid
        await asyncio.sleep(1.0)
        rss_start = rss_kb(pid)
        log(f"switch pid {pid} ready at {info['sip'][0]}:{info['sip'][1]}, "
            f"RSS {rss_start} kB")
        headers = {"X-API-Key": info["api_key"]}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(base_url=info["http"], headers=headers,
                                         timeout=timeout) as http:
            t = time.monotonic()
            warm = await run_sipp(workdir, info["sip"], scenario(workdir / "warmup.xml", 15000),
                                  user=WARMUP_USER, calls=1, rate=1, timeout_s=30,
                                  name="warmup")
            if await asyncio.wait_for(warm.wait(), 40) != 0:
                raise RuntimeError("warm-up call failed:\n" + sipp_errors(workdir, "warmup"))
            await wait_until(lambda: _none_live(http), "no live calls", 15, every=0.2)
            await asyncio.sleep(1.0)
            rss_idle = rss_kb(pid)
            timings["warmup_s"] = time.monotonic() - t
            log(f"after warm-up, idle RSS {rss_idle} kB")

            t = time.monotonic()
            hold = scenario(workdir / "hold.xml", (args.pause + 60) * 1000)
            sipp = await run_sipp(workdir, info["sip"], hold, user="1000",
                                  calls=args.calls, rate=args.rate,
                                  timeout_s=args.pause + 120, name="hold")

            async def all_up() -> bool | None:
                if sipp is not None and sipp.returncode is not None:
                    raise RuntimeError(f"SIPp exited {sipp.returncode}:\n"
                                       + sipp_errors(workdir, "hold"))
                total, answered = await live_calls(http)
                log(f"{total}/{args.calls} live calls, {answered} answered, "
                    f"RSS {rss_kb(pid)} kB")
                return True if answered >= args.calls else None

            await wait_until(all_up, f"{args.calls} answered calls", args.setup_timeout)
            timings["calls_setup_s"] = time.monotonic() - t
            await asyncio.sleep(args.settle)
            samples = []
            cpu0, w0 = cpu_seconds(pid), time.monotonic()
            for _ in range(args.samples):
                samples.append(rss_kb(pid))
                await asyncio.sleep(1.0)
            cpu_pct = (cpu_seconds(pid) - cpu0) / (time.monotonic() - w0) * 100
            rss_loaded = max(samples)
            total, _ = await live_calls(http)
            if total < args.calls:
                raise RuntimeError(f"calls dropped while measuring: {total} live")
            log(f"loaded RSS {rss_loaded} kB with {total} live calls, CPU {cpu_pct:.0f}%")
    finally:
        t = time.monotonic()
        if switch is not None:
            rc = await stop(switch, signal.SIGTERM, 15)
            log(f"switch exited {rc}")
        if sipp is not None:
            await stop(sipp, signal.SIGKILL, 5)
        await runner.cleanup()
        timings["teardown_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t0
    return {
        "benchmark": "memory",
        "quick": args.quick,
        "calls": args.calls,
        "rss_start_kb": rss_start,
        "rss_idle_kb": rss_idle,
        "rss_loaded_kb": rss_loaded,
        "kb_per_call": round((rss_loaded - rss_idle) / args.calls, 1),
        "target_kb_per_call": TARGET_KB_PER_CALL,
        "engine_tick_us": None,
        "cpu_percent_loaded": round(cpu_pct, 1),
        "switch_exit_code": switch.returncode if switch is not None else None,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


async def _none_live(http: aiohttp.ClientSession) -> bool | None:
    total, _ = await live_calls(http)
    return True if total == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second")
    parser.add_argument("--pause", type=int, default=120, help="PAUSE seconds per call")
    parser.add_argument("--rtp-ports", default="40000-44999")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait after the last call is up")
    parser.add_argument("--setup-timeout", type=float, default=90.0)
    parser.add_argument("--samples", type=int, default=5,
                        help="RSS samples, one a second, with the calls up")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 5 calls, 20 s pause, 2 RSS samples")
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    if args.pause * 1.0 < args.calls / args.rate + args.setup_timeout / 2:
        parser.error("--pause must outlast setting up every call")
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="voxswitch-memory-"))
    try:
        result = asyncio.run(measure(args, workdir))
    finally:
        if args.keep:
            log(f"files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
