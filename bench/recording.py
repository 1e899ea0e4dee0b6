"""Recording 500 calls at once: the tick's cost, the engine's clock and what reaches disk.

Every channel is configured for PCMU, plays a shared prompt and receives one inbound
PCMU packet per tick (fed straight into its receive path, no socket), as in
bench/engine.py; `media.recorder` records each in stereo (left the caller, right the
prompt) into its own WAV, fsync'ed every 0.5 s, on the benchmark's temporary disk.

Two measurements:

- ``tick``: `MediaEngine.render` (everything but sendto) driven back to back, first with
  no recording, then with every channel recorded; the difference is what recording
  costs the tick (one fancy-index copy of the rows per tick), while the writer thread
  competes for the interpreter.
- ``live``: the engine's own 20 ms clock for ``--seconds`` with every channel recorded
  and fed, as in a running switch: late ticks, the worst tick, how far the writer fell
  behind, dropped ticks. Then every recording is stopped and each file is read back:
  ``files_complete`` counts those holding every tick they were recorded for (nothing
  lost) — the figure that matters.

``--quick`` (what tests/bench runs): 20 channels, 1 s live. Run:
``.venv/bin/python bench/recording.py [--channels 500] [--seconds 10] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import prompt, raise_nofile
from media import g711
from media.engine import MediaEngine
from media.recorder import Recorder
from media.rtp import pack_header

PTIME_US = 20_000
QUICK = {"channels": 20, "seconds": 1.0, "ticks": 50}


async def run(n: int, seconds: float, ticks: int, directory: Path) -> dict[str, object]:
    audio = prompt(8.0)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # live sends here, unread
    sink.bind(("127.0.0.1", 0))
    sink_addr = sink.getsockname()
    engine = MediaEngine(port_range=(0, 0))
    channels = [await engine.open_channel() for _ in range(n)]
    for ch in channels:
        ch.configure(remote=sink_addr, payload_type=g711.PCMU, latch=False)
        ch.play(audio)
    payload = g711.ulaw_encode(audio[:160]).tobytes()
    seq = [0]

    def feed() -> None:
        s = seq[0]
        packet = pack_header(0, False, s, s * 160, 0x5EED) + payload
        for ch in channels:
            ch._on_rtp(packet, sink_addr)
        seq[0] = s + 1

    def timed_render(count: int, start: int) -> list[float]:
        costs = []
        for i in range(count):
            feed()
            t0 = time.perf_counter()
            engine.render((start + i) * 0.02)
            costs.append((time.perf_counter() - t0) * 1e6)
        return costs

    timed_render(10, 0)  # warm-up: jitter buffers fill
    bare = timed_render(ticks, 10)
    recorder = Recorder(engine)
    recs = [recorder.start(ch, directory / f"r{i}.wav") for i, ch in enumerate(channels)]
    recording = timed_render(ticks, 10 + ticks)
    rendered_ticks = ticks

    # The timed ticks ran faster than real time: let the writer catch up first.
    for _ in range(3000):
        if recorder._ticks_written >= recorder._ticks_put:
            break
        await asyncio.sleep(0.01)
    # Live: the engine's own clock; a task feeds one packet per channel per tick.
    engine.stats.late_ticks = 0
    engine.stats.max_tick_cost_us = 0.0
    ticks_before = engine.stats.ticks
    max_behind = 0
    await engine.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        feed()
        max_behind = max(max_behind, recorder._ticks_put - recorder._ticks_written)
        await asyncio.sleep(0.02)
    await engine.stop()
    live_ticks = engine.stats.ticks - ticks_before
    late, worst = engine.stats.late_ticks, engine.stats.max_tick_cost_us
    results = await asyncio.gather(*(asyncio.wrap_future(r.stop()) for r in recs))
    recorder.close()
    expected = (rendered_ticks + live_ticks) * 160
    complete, short = 0, []
    for res in results:
        with wave.open(str(res.path), "rb") as w:
            frames = w.getnframes()
        if res.error is None and frames == res.samples >= expected:
            complete += 1
        else:
            short.append(expected - frames)
    for ch in channels:
        ch.close()
    sink.close()
    b, r = statistics.median(bare), statistics.median(recording)
    return {
        "channels": n,
        "tick": {
            "ticks_measured": ticks,
            "render_us": round(b, 1),
            "render_recording_us": round(r, 1),
            "recording_cost_us": round(r - b, 1),
            "recording_cost_pct_core": round((r - b) / PTIME_US * 100, 2),
            "render_recording_p99_us": round(float(np.percentile(recording, 99)), 1),
        },
        "live": {
            "seconds": seconds,
            "ticks": live_ticks,
            "late_ticks": late,
            "max_tick_cost_us": round(worst, 1),
            "writer_max_behind_ticks": max_behind,
            "dropped_ticks": recorder.stats.dropped_ticks,
            "write_errors": recorder.stats.write_errors,
        },
        "files": n,
        "files_complete": complete,
        "worst_missing_samples": max(short) if short else 0,
        "bytes_written": sum(p.stat().st_size for p in directory.glob("*.wav")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ticks", type=int, default=250)
    ap.add_argument("--dir", type=Path, default=None,
                    help="where to write (default: a temporary directory, removed after)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, seconds, ticks = args.channels, args.seconds, args.ticks
    if args.quick:
        n, seconds, ticks = QUICK["channels"], QUICK["seconds"], QUICK["ticks"]
    raise_nofile(2 * n + 256)
    print(f"recording {n} channels: {ticks} timed ticks, then {seconds} s live",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="voxswitch-bench-rec-", dir=args.dir) as tmp:
        out = asyncio.run(run(n, seconds, int(ticks), Path(tmp)))
    out = {"bench": "recording", "quick": args.quick, "ptime_ms": 20, "stat": "median",
           **out,
           "target_lossless": out["files_complete"] == out["files"]
           and out["live"]["dropped_ticks"] == 0}  # type: ignore[index]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
