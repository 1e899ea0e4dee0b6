"""In-band DTMF detector: cost per 20 ms tick at 1-1000 channels, and talk-off; prints JSON.

- Cost: `DtmfDetector.process` on one (N, 160) int16 frame per tick, median and p99 over
  the ticks, for four loads: ``speech`` (every channel talking, each at its own offset
  into the speech set); ``ivr`` (the same, and every channel also presses a 100 ms key,
  12 dB over its speech, once every 5 s — a busy IVR: N/250 presses per tick);
  ``keying5pct`` (speech, and 5 % of the channels keying 60 ms on / 60 ms off without
  pause, the pace of an autodialler) and ``dtmf`` (every channel keying so, the worst
  case). ``pct_core`` is ``us / 20000 * 100``; ``channel_frames_per_s`` is N / median.
  OpenBLAS is pinned to one thread (set before numpy loads) so the figures are per core.
- Talk-off: about ten minutes of espeak-ng speech (several voices and languages, numbers
  included, generated afresh in a temporary directory), each clip on its own detector
  row; every key reported is a talk-off hit. ``hits_per_hour`` scales to one hour. The
  long run (hours of speech and music, tuning and held-out parts, Q.24 accept/reject
  rates) is ``bench/talkoff.py``.

``--kernel`` picks the implementation after the DFT matmul (``c``, the compiled kernel,
which ``auto`` picks when it is built; or ``numpy``, the reference); the JSON says which ran.

``--quick`` (what tests/bench runs) measures 1 and 10 channels over 20 ticks, with the
speech (and so the talk-off run) of the first two voices only; the JSON has the same fields.

Run: ``.venv/bin/python bench/dtmf.py [--ticks N] [--channels 1,100,1000] [--kernel K] [--quick]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.dsp.dtmf import KEYS, DtmfDetector
from media.tones import dtmf_digits, dtmf_tone
from tests.support.audio import espeak_pcm

PTIME_US = 20_000
IVR_PRESS_EVERY_S = 5
LOADS = ("speech", "ivr", "keying5pct", "dtmf")
QUICK = {"ticks": 20, "channels": "1,10", "voices": 2}

TEXTS = {
    "en": (
        "Thank you for calling. For account balances and recent transactions, press or say "
        "one. To report a lost or stolen card, say two. For mortgages and loans, say three. "
        "Please enter your date of birth as eight digits: zero four, one nine, nineteen "
        "eighty seven. Your reference number is 7 3 0 0 2 9 1 4 5 8. The next available "
        "appointment is on Tuesday the 14th at 3:45 in the afternoon. "
        "It was the best of times, it was the worst of times, it was the age of wisdom, it "
        "was the age of foolishness. Peter Piper picked a peck of pickled peppers. "
        "The quick brown fox jumps over the lazy dog while the five boxing wizards jump "
        "quickly. Hold music will now play; an agent will be with you in about 6 minutes. "
        "Eleven, twelve, thirteen, fourteen, fifteen, sixteen, seventeen, eighteen, twenty."
    ),
    "fr": (
        "Merci de votre appel. Pour consulter votre solde, tapez un. Pour signaler une "
        "carte perdue, tapez deux. Votre code client est le 58 19 03 77. Le rendez-vous est "
        "fixé au mardi quatorze à quinze heures quarante cinq. Soixante dix, quatre vingts, "
        "quatre vingt dix, cent, mille deux cent trente quatre."
    ),
    "de": (
        "Vielen Dank für Ihren Anruf. Für Kontostand und Umsätze drücken Sie die Eins. "
        "Ihre Vorgangsnummer lautet 8 4 2 6 1 9 0 3. Der nächste freie Termin ist am "
        "Dienstag, dem vierzehnten, um fünfzehn Uhr fünfundvierzig. Einundzwanzig, "
        "zweiundzwanzig, dreiunddreißig, vierundvierzig, hundertfünfundfünfzig."
    ),
    "es": (
        "Gracias por llamar. Para consultar su saldo, marque uno. Para hablar con un "
        "agente, marque cero. Su número de referencia es 4 4 7 1 9 2 6. Quinientos "
        "cincuenta y cinco, setecientos setenta y siete, novecientos noventa y nueve."
    ),
    "it": (
        "Grazie per aver chiamato. Per conoscere il saldo, prema uno. Il suo codice è "
        "3 8 5 0 2 7. Trecentotrentatré, quattrocentoquarantaquattro, novecentonovanta."
    ),
}

VOICES = [  # (voice, text, words per minute, pitch 0-99)
    ("en-us+f1", "en", 150, 55),
    ("en-us+f2", "en", 170, 65),
    ("en-us+f4", "en", 140, 75),
    ("en-us+m1", "en", 160, 40),
    ("en-us+m4", "en", 145, 30),
    ("en-us+m7", "en", 175, 50),
    ("en-gb+f4", "en", 155, 60),
    ("en-gb-x-rp+m2", "en", 165, 45),
    ("en-029+m5", "en", 150, 50),
    ("en-us-nyc+f3", "en", 185, 70),
    ("fr-fr+m2", "fr", 155, 45),
    ("fr-be+f2", "fr", 145, 65),
    ("de+f4", "de", 150, 70),
    ("de+m1", "de", 140, 40),
    ("es+f3", "es", 160, 60),
    ("es-419+m3", "es", 150, 40),
    ("it+f2", "it", 155, 65),
    ("it+m4", "it", 150, 35),
]


def speech_set(voices: int = len(VOICES)) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        return [
            espeak_pcm(TEXTS[lang], Path(tmp) / f"{i}.wav", voice, wpm, pitch)
            for i, (voice, lang, wpm, pitch) in enumerate(VOICES[:voices])
        ]


def talk_off(clips: list[np.ndarray]) -> dict[str, object]:
    length = max(c.size for c in clips)
    length += -length % 160
    pcm = np.zeros((len(clips), length), np.int16)
    for i, clip in enumerate(clips):
        pcm[i, : clip.size] = clip
    detector = DtmfDetector(len(clips))
    hits = [e for s in range(0, length, 160) for e in detector.process(pcm[:, s : s + 160])]
    seconds = sum(c.size for c in clips) / 8000
    return {
        "speech_s": round(seconds, 1),
        "voices": len(clips),
        "hits": len(hits),
        "hits_per_hour": round(len(hits) * 3600 / seconds, 2),
        "hit_keys": [f"{VOICES[row][0]}:{key}" for row, key in hits],
    }


def load_frames(kind: str, n: int, ticks: int, speech: np.ndarray) -> list[np.ndarray]:
    """`ticks` (n, 160) frames of one load (see the module docstring)."""
    rng = np.random.default_rng(7)
    start = rng.integers(0, speech.size - 160 * ticks, n)
    fast = dtmf_digits(KEYS * 4, tone_s=0.06, gap_s=0.06)  # continuous 60/60 ms keying
    press = np.stack([dtmf_tone(k, 0.1) for k in KEYS])  # one 100 ms press per key
    period = {"ivr": IVR_PRESS_EVERY_S * 8000, "speech": 0}
    phase, key = rng.integers(0, max(period.get(kind, 1), 1), n), rng.integers(0, 16, n)
    keyed = rng.permutation(n)[: {"keying5pct": n // 20, "dtmf": n}.get(kind, 0)]
    frames = []
    for t in range(ticks):
        at = t * 160 + np.arange(160)
        pcm = np.zeros((n, 160), np.int16) if kind == "dtmf" else speech[start[:, None] + at]
        if kind == "ivr":
            pos = (phase[:, None] + at) % period["ivr"]
            on = pos < press.shape[1]
            tone = press[key[:, None], np.minimum(pos, press.shape[1] - 1)]
            pcm = np.where(on, np.clip(pcm // 4 + tone, -32768, 32767), pcm).astype(np.int16)
        pcm[keyed] = fast[(37 * keyed[:, None] + at) % fast.size]
        frames.append(np.ascontiguousarray(pcm))
    return frames


def cost(kind: str, n: int, ticks: int, speech: np.ndarray, kernel: str) -> dict[str, object]:
    frames = load_frames(kind, n, ticks, speech)
    detector = DtmfDetector(n, kernel=kernel)
    for f in frames[:10]:
        detector.process(f)
    spent = []
    for f in frames:
        t0 = time.perf_counter()
        detector.process(f)
        spent.append((time.perf_counter() - t0) * 1e6)
    us = float(np.median(spent))
    return {
        "channels": n,
        "load": kind,
        "kernel": detector.kernel,
        "median_us": round(us, 1),
        "p99_us": round(float(np.percentile(spent, 99)), 1),
        "pct_core": round(us / PTIME_US * 100, 3),
        "channel_frames_per_s": round(n / us * 1e6),
    }


def main(sizes: list[int], ticks: int, kernel: str, voices: int = len(VOICES),
         quick: bool = False) -> dict[str, object]:
    clips = speech_set(voices)
    speech = np.concatenate(clips)
    results = [cost(k, n, ticks, speech, kernel) for n in sizes for k in LOADS]
    target = [r for r in results if r["channels"] == 1000 and r["load"] in ("speech", "ivr")]
    return {
        "bench": "dtmf_detector",
        "quick": quick,
        "ptime_ms": 20,
        "ticks_measured": ticks,
        "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "results": results,
        "target_1000_speech_ivr_under_5pct_core": all(float(str(r["pct_core"])) < 5 for r in target)
        if target
        else None,
        "talk_off": talk_off(clips),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500)
    parser.add_argument("--channels", default="1,100,1000")
    parser.add_argument("--kernel", choices=("auto", "c", "numpy"), default="auto")
    parser.add_argument("--voices", type=int, default=len(VOICES), help="speech voices used")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1,10 channels x 20 ticks, 2 voices")
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    sizes = [int(x) for x in args.channels.split(",")]
    print(json.dumps(main(sizes, args.ticks, args.kernel, args.voices, args.quick), indent=2))
