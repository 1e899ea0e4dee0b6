"""Answering-machine detection on a labelled corpus, and its cost at 1,000 channels; JSON.

The corpus is bench/_amd_corpus.py's (espeak-ng live persons and voicemail greetings with
and without beeps, fax CNG/CED/V.21, silence, noise and hum; background noise; G.711),
in three parts with their own seeds, texts and voices: ``tuning`` (the detector's
thresholds were set on it, and only on it), ``held_out_v1_seen`` (the first held-out
part, whose results have been seen: no longer blind, kept for comparison) and
``held_out_v2`` (blind until the detector was final; ``targets_met`` is judged on it).
Every item is one
row of one `AmdBank`, all rows stepped together a 20 ms frame at a time, as the media
engine feeds the detector; an item's result is the last class decided over its audio
(``unknown`` if none), as `DetectionWatch.result` would say at its end.

Per part: ``accuracy`` over the four classes and the ``confusion`` matrix (true class →
decided class → items); ``first_accuracy``, the same for the first decision (before a
LIVE_PERSON is corrected to VOICEMAIL); ``live_decision_ms_p50``/``p90``, when the live
persons were first decided live (from the answer); ``beep_ready_within_1s_pct``, the
beep voicemails whose READY came at or after the true end of the beep and at most
1000 ms after it (``beep_ready_early``: READYs before the end; ``beep_end_early``:
beep ends reported before the true one); ``no_beep_ready_after_greeting_pct``, the
voicemails without a beep whose READY came after the greeting; ``fax_accuracy``;
``voicemail_first_live``, the voicemails first taken for a live person (and corrected);
``live_first_ms_after_speech_p50``/``p90``, how long after the end of a live person's
first utterance the live decision came.

``cost``: process CPU time of `AmdBank.step` over (1000, 160) frames of corpus audio (every
item's row repeated to 1000 channels, each from its own offset), as a percentage of one
core per 20 ms tick.

``--quick`` scores 27 items a part and times 50 ticks (seconds; the smoke test's mode).

Run: ``.venv/bin/python bench/amd.py [--quick] [--count N] [--cache DIR] [--details]
[--parts tuning,held_out_v1_seen,held_out_v2]`` (``--details`` lists the tuning part's
errors; the held-out parts' are never listed: tune on ``--parts tuning --details`` only).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._amd_corpus import CACHE, PARTS, SEED, Item, corpus
from media.dsp.amd import FRAME, FRAME_MS, AmdBank, AmdDecision, Outcome, outcome

CLASSES = ("live_person", "voicemail", "fax", "unknown")
FULL = {"count": 450, "ticks": 500}
TARGET_PART = "held_out_v2"
QUICK = {"count": 27, "ticks": 50}


def run_items(items: Sequence[Item], **config: float) -> list[Outcome]:
    """Every item through one bank (`config` overriding its defaults), a row each, side by
    side."""
    frames = [len(it.pcm) // FRAME for it in items]
    longest = max(frames)
    pcm = np.zeros((len(items), longest * FRAME), np.int16)
    for i, it in enumerate(items):
        pcm[i, : frames[i] * FRAME] = it.pcm[: frames[i] * FRAME]
    bank = AmdBank(len(items), **config)
    got: list[list[AmdDecision]] = [[] for _ in items]
    for k in range(longest):
        for d in bank.step(pcm[:, k * FRAME : (k + 1) * FRAME]):
            if k < frames[d.row]:
                got[d.row].append(d)
    return [outcome(got[i], frames[i] * FRAME_MS) for i in range(len(items))]


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def score(items: Sequence[Item], outs: Sequence[Outcome], details: bool) -> dict[str, object]:
    confusion = {c: dict.fromkeys(CLASSES, 0) for c in CLASSES}
    for it, o in zip(items, outs, strict=True):
        confusion[it.label][o.result] += 1
    right = sum(it.label == o.result for it, o in zip(items, outs, strict=True))
    first = sum(it.label == o.first for it, o in zip(items, outs, strict=True))
    live_ms = [o.first_ms for it, o in zip(items, outs, strict=True)
               if it.label == "live_person" and o.first == "live_person"]
    after_ms = [o.first_ms - 1000 * (it.greeting_end_s or 0.0)
                for it, o in zip(items, outs, strict=True)
                if it.label == "live_person" and o.first == "live_person"]
    vm_first_live = sum(it.label == "voicemail" and o.first == "live_person"
                        for it, o in zip(items, outs, strict=True))
    beeps = [(it, o) for it, o in zip(items, outs, strict=True) if it.beep_end_s is not None]
    true_end = [round(it.beep_end_s * 1000) for it, _ in beeps]  # type: ignore[operator]
    in_time = sum(o.ready_ms is not None and end <= o.ready_ms <= end + 1000
                  for (_, o), end in zip(beeps, true_end, strict=True))
    early = sum(o.ready_ms is not None and o.ready_ms < end
                for (_, o), end in zip(beeps, true_end, strict=True))
    end_early = sum(o.beep_end_ms is not None and o.beep_end_ms < end
                    for (_, o), end in zip(beeps, true_end, strict=True))
    quiet = [(it, o) for it, o in zip(items, outs, strict=True)
             if it.kind == "vm_nobeep"]
    quiet_ok = sum(o.ready_ms is not None and o.ready_ms >= 1000 * (it.greeting_end_s or 0)
                   for it, o in quiet)
    fax = [o.result == "fax" for it, o in zip(items, outs, strict=True) if it.label == "fax"]
    doc: dict[str, object] = {
        "items": len(items),
        "by_kind": {k: sum(it.kind == k for it in items) for k in sorted({i.kind for i in items})},
        "accuracy": right / len(items),
        "first_accuracy": first / len(items),
        "confusion": confusion,
        "live_decided": len(live_ms),
        "live_decision_ms_p50": percentile(live_ms, 50),
        "live_decision_ms_p90": percentile(live_ms, 90),
        "live_first_ms_after_speech_p50": percentile(after_ms, 50),
        "live_first_ms_after_speech_p90": percentile(after_ms, 90),
        "voicemail_first_live": vm_first_live,
        "beep_voicemails": len(beeps),
        "beep_ready_within_1s_pct": 100.0 * in_time / len(beeps) if beeps else None,
        "beep_ready_early": early,
        "beep_end_early": end_early,
        "no_beep_voicemails": len(quiet),
        "no_beep_ready_after_greeting_pct": 100.0 * quiet_ok / len(quiet) if quiet else None,
        "fax_accuracy": sum(fax) / len(fax) if fax else None,
    }
    if details:
        doc["errors"] = [
            {"id": it.id, "got": o.result, "first": o.first, "first_ms": o.first_ms,
             "ready_ms": o.ready_ms, "beep_end_ms": o.beep_end_ms,
             "true_beep_end_ms": None if it.beep_end_s is None else round(1000 * it.beep_end_s),
             "greeting_end_ms": None if it.greeting_end_s is None
             else round(1000 * it.greeting_end_s)}
            for it, o in zip(items, outs, strict=True)
            if it.label != o.result or (it.beep_end_s is not None and not (
                o.ready_ms is not None and round(1000 * it.beep_end_s) <= o.ready_ms
                <= round(1000 * it.beep_end_s) + 1000))
        ]
    return doc


def cost(items: Sequence[Item], channels: int, ticks: int) -> dict[str, object]:
    """CPU per tick of a bank of `channels` streams fed corpus audio."""
    rng = np.random.default_rng(SEED)
    rows = np.zeros((channels, ticks * FRAME), np.int16)
    for r in range(channels):
        x = items[r % len(items)].pcm
        x = np.tile(x, 1 + ticks * FRAME // max(len(x), 1))
        start = int(rng.integers(0, max(1, len(x) - ticks * FRAME)))
        rows[r] = x[start : start + ticks * FRAME]
    bank = AmdBank(channels)
    for k in range(10):  # warm-up
        bank.step(rows[:, k * FRAME : (k + 1) * FRAME])
    spent = []
    for k in range(ticks):
        block = rows[:, k * FRAME : (k + 1) * FRAME]
        t0 = time.process_time()
        bank.step(block)
        spent.append(time.process_time() - t0)
    mean_us = 1e6 * float(np.mean(spent))
    return {"channels": channels, "ticks": ticks, "mean_us": mean_us,
            "p99_us": 1e6 * float(np.percentile(spent, 99)),
            "pct_core": 100.0 * mean_us / (FRAME_MS * 1000)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--count", type=int, help="items per part")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--details", action="store_true", help="list the tuning errors")
    parser.add_argument("--parts", default=",".join(PARTS))
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    count = args.count or size["count"]
    began = time.monotonic()
    doc: dict[str, object] = {
        "bench": "amd", "quick": args.quick, "seed": SEED,
        "seeds": {part: spec.seed for part, spec in PARTS.items()},
        "split": "tuning (tuned on) / held_out_v1_seen (seen: no longer blind) / "
                 "held_out_v2 (blind until final; the targets): own seeds, texts, voices",
        "target_part": TARGET_PART}
    everything: list[Item] = []
    for part in args.parts.split(","):
        items = corpus(part, count, cache=args.cache)
        everything += items
        doc[part] = score(items, run_items(items), args.details and part == "tuning")
    doc["cost"] = cost(everything, 1000, size["ticks"])
    held = doc.get(TARGET_PART)
    if isinstance(held, dict):
        p90 = held["live_decision_ms_p90"]
        ready = held["beep_ready_within_1s_pct"]
        doc["targets_met"] = {
            "accuracy_97": held["accuracy"] >= 0.97,
            "live_p90_2000ms": p90 is not None and p90 <= 2000,
            "beep_ready_95pct": ready is not None and ready >= 95 and held["beep_ready_early"] == 0,
            "fax_100": held["fax_accuracy"] == 1.0,
            "cost_under_5pct": doc["cost"]["pct_core"] < 5,  # type: ignore[index]
        }
    doc["elapsed_s"] = time.monotonic() - began
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
