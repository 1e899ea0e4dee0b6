"""Every benchmark runs in its ``--quick`` mode and prints the JSON fields it promises.

A smoke test, not a measurement: each bench/NAME.py runs as `make bench` would run it, but
with small sizes, and its stdout must be one JSON document with the fields of REQUIRED[NAME]
(of the right type). No figure is compared with a speed. A bench/*.py without an entry in
REQUIRED fails, so a new benchmark cannot go unexercised.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# bench/_*.py hold what several benchmarks share; every other file is a benchmark.
BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
TIMEOUT_S = 90
Check = Callable[[object], bool]


def number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def text(v: object) -> bool:
    return isinstance(v, str) and v != ""


def flag(v: object) -> bool:
    return isinstance(v, bool)


def flag_or_null(v: object) -> bool:
    return v is None or isinstance(v, bool)


def items(v: object) -> bool:
    return isinstance(v, list) and len(v) > 0


def listed(v: object) -> bool:
    return isinstance(v, list)


def table(v: object) -> bool:
    return isinstance(v, dict)


def null(v: object) -> bool:
    return v is None


# Field path -> check. "results[].us" is the field `us` of every item of the list `results`.
REQUIRED: dict[str, dict[str, Check]] = {
    "amd": {
        "bench": text, "quick": flag, "seed": count, "seeds": table,
        "seeds.held_out_v2": count, "split": text, "target_part": text,
        **{f"{part}.{field}": check
           for part in ("tuning", "held_out_v1_seen", "held_out_v2")
           for field, check in {"items": count, "accuracy": number, "first_accuracy": number,
                                "confusion": table, "live_decided": count,
                                "voicemail_first_live": count,
                                "beep_voicemails": count, "beep_ready_early": count,
                                "beep_end_early": count, "no_beep_voicemails": count}.items()},
        "cost": table, "cost.channels": count, "cost.ticks": count, "cost.mean_us": number,
        "cost.pct_core": number, "targets_met": table, "elapsed_s": number,
    },
    "bridge": {
        "bench": text, "quick": flag, "ptime_ms": count, "seconds": number,
        "warmup_s": number, "codecs": text, "loop": text, "engine_cpus": listed,
        "generator_cpus": listed, "loadavg_1m": number, "nofile": count, "results": items,
        "results[].pairs": count, "results[].legs": count, "results[].packets_sent": count,
        "results[].packets_received": count, "results[].loss_pct": number,
        "results[].loss_worst_leg_pct": number, "results[].jitter_p50_ms": number,
        "results[].jitter_p99_ms": number, "results[].jitter_max_ms": number,
        "results[].ticks": count, "results[].late_ticks": count,
        "results[].skipped_ticks": count, "results[].send_errors": count,
        "results[].tick_cost_us": number, "results[].max_tick_cost_us": number,
        "results[].cpu_pct": number, "results[].generator_cpu_pct": number,
        "results[].generator_late_sends": count, "results[].generator_send_errors": count,
        "target_500_pairs_met": flag_or_null,
    },
    "dial_rate": {
        "bench": text, "quick": flag, "seconds_per_rate": number, "results": items,
        "results[].rate": count, "results[].calls": count, "results[].set_up": count,
        "results[].failed": count, "results[].failed_pct": number,
        "results[].achieved_cps": number, "results[].setup_ms_p50": number,
        "results[].setup_ms_p99": number, "results[].post_ms_p50": number,
        "results[].post_ms_p99": number, "results[].switch_cpu_pct": number,
        "results[].failed_statuses": listed, "target_200_cps_met": flag_or_null,
    },
    "dtmf": {
        "bench": text, "quick": flag, "ptime_ms": count, "ticks_measured": count,
        "blas_threads": text, "results": items,
        "results[].channels": count, "results[].load": text, "results[].kernel": text,
        "results[].median_us": number, "results[].p99_us": number,
        "results[].pct_core": number, "results[].channel_frames_per_s": number,
        "target_1000_speech_ivr_under_5pct_core": flag_or_null,
        "talk_off": table, "talk_off.speech_s": number, "talk_off.voices": count,
        "talk_off.hits": count, "talk_off.hits_per_hour": number, "talk_off.hit_keys": listed,
    },
    "engine": {
        "bench": text, "quick": flag, "ptime_ms": count, "ticks_measured": count,
        "stat": text, "nofile": count, "results": items,
        "results[].channels": count, "results[].excluded_us": number,
        "results[].excluded_pct_core": number, "results[].excluded_p99_us": number,
        "results[].included_us": number, "results[].included_pct_core": number,
        "results[].included_p99_us": number, "results[].rx_us": number,
        "results[].total_with_rx_pct_core": number,
        "target_1000_excluded_under_25pct": flag_or_null,
    },
    "memory": {
        "benchmark": text, "quick": flag, "calls": count,
        "rss_start_kb": count, "rss_idle_kb": count, "rss_loaded_kb": count,
        "kb_per_call": number, "target_kb_per_call": number, "engine_tick_us": null,
        "cpu_percent_loaded": number, "switch_exit_code": count, "timings_s": table,
        "timings_s.switch_start_s": number, "timings_s.warmup_s": number,
        "timings_s.calls_setup_s": number, "timings_s.teardown_s": number,
        "timings_s.total_s": number,
    },
    "mixer": {
        "bench": text, "quick": flag, "ptime_ms": count, "ticks_measured": count,
        "stat": text, "nofile": count, "results": items,
        "results[].conferences": count, "results[].members_each": count,
        "results[].channels": count, "results[].us": number, "results[].pct_core": number,
        "results[].p99_us": number, "results[].baseline_us": number,
        "results[].mix_overhead_us": number, "results[].kernel_us": number,
        "target_1000_in_one_under_25pct": flag_or_null,
    },
    "receive": {
        "bench": text, "quick": flag, "packets_per_run": count, "results": items,
        "results[].ptime_ms": count, "results[].repacketised": flag,
        "results[].us_per_packet": number, "results[].per_s_at_1000_calls_pct_core": number,
        "rtcp_reception_stats_update_us": number,
    },
    "recording": {
        "bench": text, "quick": flag, "ptime_ms": count, "stat": text, "channels": count,
        **{f"tick.{k}": number for k in ("render_us", "render_recording_us",
                                          "recording_cost_us", "recording_cost_pct_core",
                                          "render_recording_p99_us")},
        "tick.ticks_measured": count, "live.seconds": number, "live.ticks": count,
        "live.late_ticks": count, "live.max_tick_cost_us": number,
        "live.writer_max_behind_ticks": count, "live.dropped_ticks": count,
        "live.write_errors": count, "files": count, "files_complete": count,
        "worst_missing_samples": count, "bytes_written": count, "target_lossless": flag,
    },
    "sip_parse": {
        "benchmark": text, "quick": flag, "invites_parsed_per_s": number,
        "invites_serialized_per_s": number, "python": text,
    },
    "talkoff": {
        "bench": text, "quick": flag, "kernel": text, "seed": count, "split": text,
        **{f"{material}.{part}.{field}": check
           for material in ("speech", "music") for part in ("tuning", "held_out")
           for field, check in {"clips": count, "hours": number, "hits": count,
                                "hits_per_hour": number, "digits": table,
                                "hit_list": listed}.items()},
        "accept_reject": table, "accept_reject.trials_per_condition": count,
        "accept_reject.must_accept.trials": count, "accept_reject.must_accept.ok": count,
        "accept_reject.must_accept.rate": number, "accept_reject.must_reject.trials": count,
        "accept_reject.must_reject.ok": count, "accept_reject.must_reject.rate": number,
        "accept_reject.conditions": table, "elapsed_s": number,
    },
}

MISSING = object()


def resolve(node: object, path: str, where: str = "") -> list[tuple[str, object]]:
    """(location, value) for each value at `path` in `node`; MISSING where there is none."""
    head, _, rest = path.partition(".")
    key = head.removesuffix("[]")
    here = f"{where}.{key}" if where else key
    if not isinstance(node, dict) or key not in node:
        return [(here, MISSING)]
    value = node[key]
    if not rest:
        return [(here, value)]
    if head.endswith("[]"):
        if not isinstance(value, list):
            return []  # the list's own entry reports it
        return [found for i, item in enumerate(value)
                for found in resolve(item, rest, f"{here}[{i}]")]
    return resolve(value, rest, here)


def problems(doc: object, fields: Mapping[str, Check]) -> list[str]:
    out = []
    for path, check in fields.items():
        for where, value in resolve(doc, path):
            if value is MISSING:
                out.append(f"{where}: missing")
            elif not check(value):
                out.append(f"{where}: {value!r} fails {check.__name__}")
    return out


def test_every_entry_names_a_bench() -> None:
    gone = sorted(set(REQUIRED) - set(BENCHES))
    assert gone == [], "REQUIRED has entries for benches that are gone"


def test_make_bench_runs_every_bench() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^bench:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target, "no bench target in the Makefile"
    run = set(re.findall(r"bench/(\w+)\.py", target[1]))
    assert sorted(set(BENCHES) - run) == [], "`make bench` leaves these out"


@pytest.mark.parametrize("name", BENCHES)
def test_quick_bench_prints_its_fields(name: str) -> None:
    if name not in REQUIRED:
        pytest.fail(f"bench/{name}.py has no entry in REQUIRED: add the fields of its JSON")
    proc = subprocess.run([sys.executable, f"bench/{name}.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    tail = "\n".join(proc.stderr.splitlines()[-30:])
    assert proc.returncode == 0, f"bench/{name}.py --quick exited {proc.returncode}:\n{tail}"
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"bench/{name}.py --quick: stdout is not one JSON document ({exc}):\n"
                    f"{proc.stdout[:2000]}")
    found = problems(doc, REQUIRED[name])
    assert not found, f"bench/{name}.py --quick JSON:\n" + "\n".join(found)
    assert doc["quick"] is True
