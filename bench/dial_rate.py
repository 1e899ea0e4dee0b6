"""Outbound call set-up rate of the real switch against a local SIPp UAS; prints JSON.

Starts `voxswitch serve` (ephemeral ports, a fresh data dir), SIPp's built-in `uas` (it
answers 180 + 200 and waits for the BYE) and an in-process callback server whose flow
answers every `init_call` with HANGUP. Then, per rate R (calls per second), for
``--seconds`` it sends `POST /v1/Dials/Connect` R times a second on an even schedule
(`sip:bob@<uas>`), and waits until every call has ended. A call is *set up* when its
`init_call` arrives (the far end answered, the ACK is out, the flow started); it
*failed* when the POST was not 201 or `failed_call` came instead. Per rate:

- ``calls``, ``set_up``, ``failed``, ``failed_pct``;
- ``achieved_cps``: set-up calls per second, from the first POST to the last init_call;
- ``setup_ms_p50`` / ``setup_ms_p99``: POST sent → init_call received;
- ``post_ms_p50`` / ``post_ms_p99``: the REST answer time of Dials/Connect;
- ``switch_cpu_pct``: the switch's CPU over the rate's run, percent of one core.

``target_200_cps_met`` (the issue's target: 200 CPS with < 0.1 % failed) is null when
200 CPS was not run, as in ``--quick``.

Run: ``.venv/bin/python bench/dial_rate.py [--rates 50,100,200] [--seconds 10] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procs import cpu_seconds, free_port, raise_nofile, start_sipp, start_switch, stop

TARGET_CPS = 200
TARGET_FAILED_PCT = 0.1


def log(msg: str) -> None:
    print(f"[dial_rate] {msg}", file=sys.stderr, flush=True)


class Callbacks:
    """The flow (HANGUP on init_call) and when each call's callbacks arrived."""

    def __init__(self) -> None:
        self.init: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.ended: set[str] = set()
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body: Any = await request.json()
        kind, call_id = body.get("type"), body.get("call_id")
        if kind == "init_call":
            self.init[call_id] = time.monotonic()
            return web.json_response({"actions": [{"type": "HANGUP"}]})
        if kind == "failed_call":
            self.failed[call_id] = str(body.get("status"))
        if kind in ("end_call", "failed_call"):
            self.ended.add(call_id)
            self.changed.set()
        return web.json_response({})

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/voice"


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


async def run_rate(http: aiohttp.ClientSession, cb: Callbacks, target: str, rate: int,
                   seconds: float, switch_pid: int) -> dict[str, Any]:
    n = max(1, round(rate * seconds))
    sent: dict[str, float] = {}
    post_ms: list[float] = []
    http_failed = 0

    async def one(i: int, at: float) -> None:
        nonlocal http_failed
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        t = time.monotonic()
        body = {"call": {"no": target, "caller_id_no": "+17145550100"}}
        try:
            async with http.post("/v1/Dials/Connect", json=body) as resp:
                data = await resp.json()
                ok = resp.status == 201
        except (aiohttp.ClientError, TimeoutError, ValueError):
            ok, data = False, None
        post_ms.append((time.monotonic() - t) * 1000)
        if ok and isinstance(data, dict):
            sent[data["call"]["id"]] = t
        else:
            http_failed += 1

    cpu0 = cpu_seconds(switch_pid)
    t0 = time.monotonic()
    await asyncio.gather(*(one(i, t0 + i / rate) for i in range(n)))
    deadline = time.monotonic() + 60 + seconds
    while not all(cid in cb.ended for cid in sent) and time.monotonic() < deadline:
        cb.changed.clear()
        try:
            await asyncio.wait_for(cb.changed.wait(), 1.0)
        except TimeoutError:
            pass
    wall = time.monotonic() - t0
    cpu = cpu_seconds(switch_pid) - cpu0
    set_up = [cid for cid in sent if cid in cb.init]
    failed = http_failed + sum(1 for cid in sent if cid not in cb.init)
    last = max((cb.init[c] for c in set_up), default=t0)
    setup_ms = [(cb.init[c] - sent[c]) * 1000 for c in set_up]
    result = {
        "rate": rate, "calls": n, "set_up": len(set_up), "failed": failed,
        "failed_pct": round(100 * failed / n, 3),
        "achieved_cps": round(len(set_up) / max(last - t0, 1e-9), 1),
        "setup_ms_p50": pct(setup_ms, 50), "setup_ms_p99": pct(setup_ms, 99),
        "post_ms_p50": pct(post_ms, 50), "post_ms_p99": pct(post_ms, 99),
        "switch_cpu_pct": round(100 * cpu / wall, 1),
        "failed_statuses": sorted(set(cb.failed[c] for c in sent if c in cb.failed)),
    }
    log(f"{rate} cps: {len(set_up)}/{n} set up, {failed} failed, "
        f"{result['achieved_cps']} cps, set-up p99 {result['setup_ms_p99']} ms, "
        f"switch CPU {result['switch_cpu_pct']} %")
    return result


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cb = Callbacks()
    runner, callback = await cb.start()
    uas_port = free_port()
    switch = uas = None
    try:
        uas = await start_sipp(workdir, [
            "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-mi", "127.0.0.1",
            "-mp", str(free_port() & ~1), "-cp", str(free_port())], "uas")
        switch, info = await start_switch(workdir, callback, args.rtp_ports)
        log(f"switch pid {switch.pid}, SIPp UAS on 127.0.0.1:{uas_port}")
        await asyncio.sleep(0.5)
        target = f"sip:bob@127.0.0.1:{uas_port}"
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(base_url=info["http"], connector=connector,
                                         headers={"X-API-Key": info["api_key"]},
                                         timeout=aiohttp.ClientTimeout(total=30)) as http:
            await run_rate(http, cb, target, 5, 0.4, switch.pid)  # warm-up, not reported
            results = [await run_rate(http, cb, target, rate, args.seconds, switch.pid)
                       for rate in args.rates]
    finally:
        if switch is not None:
            await stop(switch, timeout=15)
        if uas is not None:
            await stop(uas, timeout=5)
        await runner.cleanup()
    at_target = [r for r in results if r["rate"] == TARGET_CPS]
    met = None
    if at_target:
        r = at_target[0]
        met = r["failed_pct"] < TARGET_FAILED_PCT and r["achieved_cps"] >= 0.95 * TARGET_CPS
    return {"bench": "dial_rate", "quick": args.quick, "seconds_per_rate": args.seconds,
            "results": results, "target_200_cps_met": met}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rates", default="50,100,200",
                        help="comma-separated calls per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--rtp-ports", default="45000-49999")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 cps for 1 s")
    args = parser.parse_args()
    if args.quick:
        args.rates, args.seconds = "10", 1.0
    args.rates = [int(r) for r in str(args.rates).split(",") if r]
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="voxswitch-dial-"))
    try:
        result = asyncio.run(measure(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
