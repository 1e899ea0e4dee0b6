"""DTMF talk-off over hours of speech and music, and the Q.24 must-accept/reject rates; JSON.

Talk-off material (every key the detector reports on it is a false hit):

- ``speech``: espeak-ng in every language voice ``espeak-ng --voices`` lists and every
  variant ``--voices=variant`` lists (the MBROLA ``mb-*`` voices need databases Debian
  does not ship), at 100-230 words a minute and pitch 20-80. The texts mix sentences of
  a small multilingual corpus (IVR prompts, dialogue, tongue twisters), numbers of every
  shape (spoken in the voice's language: digit strings, amounts, dates, phone numbers)
  and pseudo-words. Each clip is set to an active-speech level of -32 to -8 dBm0; three
  clips in five get background noise at 5-30 dB SNR: white, pink, car (brown, below
  ~500 Hz) or babble (three other clips of the same part).
- ``music``: synthetic pieces (wavetable instruments with their harmonics: flute,
  clarinet, strings, brass, reed, organ, electric piano; vibrato, attack and decay) in
  random keys, tunings (A4 = 435-445 Hz) and tempi: solo melodies, duets, block chords
  over a bass, arpeggios, melody and chords together; -30 to -8 dBm0.

Every clip is coded to µ-law and back (what the engine's detector sees); clips are laid
end to end, 0.3-1.5 s of silence apart, into rows (one row is one call), the rows side by
side, and the detector gets one (rows, 160) frame per call, as the media engine feeds it.

Split, fixed by seeded rules: the language voices are shuffled with `SEED` and every
third of them is *held out*; held-out clips also speak only the odd-numbered sentences of
each corpus list (tuning clips the even-numbered) and draw everything else from their own
seeded stream. Music piece ``i`` is held out when ``i % 3 == 2``. The held-out figures
are reported separately; never tune the detector on them.

``accept_reject`` measures the Q.24 limits on seeded presses (random key, phases and
frame alignment; 5 ms raised-cosine ramps, as `media.tones`): the share of must-accept
trials found exactly as expected (nominal keys; ±1.5 % offsets; -8/+4 dB twist; -3 and
-33 dBm0; 40 ms presses; 10 ms breaks ridden over; 20 ms gaps making two presses; a key
straight after one that shares a tone; 15 dB SNR, also on 40 ms presses; keys over
speech and music 12 dB under each tone; every limit at once) and of must-reject trials
giving nothing (±3.5 % offsets; -10/+6 dB twist; -38 dBm0; 23 ms presses; one limit
beyond its edge, the rest anywhere within). ``beyond_q24`` is the share found of keys
past what Q.24 asks for (12 and 9 dB SNR; speech and music 9 dB under each tone): it
shows where the margin ends, and is neither must-accept nor must-reject.

Speech is cached by its espeak-ng arguments in ``--cache`` (a temporary directory by
default); ``--jobs`` espeak-ng processes run at once. ``--quick`` runs the same sections
on a few minutes of material with fewer trials (same JSON fields).

Top-level JSON fields: ``bench``, ``kernel``, ``quick``, ``seed``, ``split``,
``speech``, ``music`` (each with ``tuning`` and ``held_out`` parts: ``clips``,
``hours``, ``hits``, ``hits_per_hour``, ``digits``, ``hit_list``), ``accept_reject``
(``trials_per_condition``, ``must_accept``, ``must_reject``, ``beyond_q24``, each
``trials``, ``ok``, ``rate``; and ``conditions``) and ``elapsed_s``.

Run: ``.venv/bin/python bench/talkoff.py [--quick] [--kernel auto|c|numpy] [--jobs N]
[--sections speech,music,accept_reject] [--cache DIR]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import g711
from media.dsp.dtmf import KEYS, DtmfDetector
from media.tones import DTMF_FREQS, dbm0_to_peak
from tests.support.audio import espeak_pcm

SEED = 20240612
RATE = 8000
FRAME = 160
Pcm = npt.NDArray[np.int16]
F64 = npt.NDArray[np.float64]

FULL = {"speech_s": (10800.0, 5400.0), "music_s": (3600.0, 1800.0), "clip_s": 30.0,
        "music_clip_s": 60.0, "rows": 64, "trials": 200}
QUICK = {"speech_s": (60.0, 30.0), "music_s": (40.0, 20.0), "clip_s": 10.0,
         "music_clip_s": 10.0, "rows": 8, "trials": 12}

# --- the speech ---------------------------------------------------------------------------

SENTENCES: dict[str, list[str]] = {
    "en": [
        "Thank you for calling. Your call is important to us, please stay on the line.",
        "For account balances and recent transactions, press or say one.",
        "To report a lost or stolen card, say two. For mortgages and loans, say three.",
        "Please enter your date of birth as eight digits, followed by the pound key.",
        "I'm sorry, I didn't catch that. Could you repeat it a little more slowly?",
        "The next available appointment is on Tuesday afternoon, shall I book it?",
        "Hold music will now play; an agent will be with you in about six minutes.",
        "She sells sea shells by the sea shore, and the shells she sells are sea shells.",
        "Peter Piper picked a peck of pickled peppers; where's the peck he picked?",
        "The quick brown fox jumps over the lazy dog while five boxing wizards jump.",
        "It was the best of times, it was the worst of times, it was the age of wisdom.",
        "Whose woods these are I think I know; his house is in the village though.",
        "Yes, absolutely, that's fine by me. No, no, not at all. Well, maybe next week.",
        "Oh really? Wow! Hmm, I see. Okay, okay. Right then, let's get going, shall we?",
        "Your parcel was delivered at the front door and signed for by a neighbour.",
        "We are experiencing higher call volumes than usual. Thank you for your patience.",
        "Good morning, this is the pharmacy calling about your repeat prescription.",
        "The weather tomorrow: sunny spells, a light breeze, highs of nineteen degrees.",
        "Please listen carefully, as our menu options have recently changed.",
        "Ahhh, eeee, oooh, mmmm, weee, yaaay, heeey, nooo, whoa, huh, uh huh, mm hmm.",
    ],
    "fr": [
        "Bonjour et bienvenue. Pour joindre le service client, dites un, deux ou trois.",
        "Nos bureaux sont ouverts du lundi au vendredi, de huit heures à dix huit heures.",
        "Merci de patienter, un conseiller va vous répondre dans quelques instants.",
        "Les chaussettes de l'archiduchesse sont-elles sèches, archi-sèches ?",
        "Je n'ai pas bien compris votre réponse. Pouvez-vous répéter, s'il vous plaît ?",
        "Le rendez-vous est fixé au mardi quatorze, à quinze heures quarante cinq.",
    ],
    "de": [
        "Guten Tag und herzlich willkommen. Bitte nennen Sie Ihre Kundennummer.",
        "Unsere Geschäftszeiten sind Montag bis Freitag von acht bis achtzehn Uhr.",
        "Fischers Fritz fischt frische Fische, frische Fische fischt Fischers Fritz.",
        "Vielen Dank für Ihren Anruf und auf Wiederhören. Einen schönen Tag noch!",
        "Bitte halten Sie Ihre Versicherungsnummer und Ihr Geburtsdatum bereit.",
        "Zwischen zwei Zwetschgenzweigen sitzen zwei zwitschernde Schwalben.",
    ],
    "es": [
        "Gracias por llamar. Para consultar su saldo, marque uno o diga saldo.",
        "Tres tristes tigres tragaban trigo en un trigal en tres tristes trastos.",
        "Todos nuestros agentes están ocupados. Por favor, no cuelgue.",
        "Su pedido será entregado mañana entre las nueve y las catorce horas.",
    ],
    "it": [
        "Grazie per aver chiamato. Per conoscere il saldo, prema uno.",
        "Trentatré trentini entrarono a Trento tutti e trentatré trotterellando.",
        "Tutti i nostri operatori sono occupati, la preghiamo di attendere.",
        "Il suo appuntamento è confermato per giovedì alle dieci e trenta.",
    ],
    "pt": [
        "Obrigado por ligar. Para falar com um atendente, digite zero.",
        "O rato roeu a roupa do rei de Roma, e a rainha com raiva resolveu remendar.",
        "A sua chamada é muito importante para nós, por favor aguarde.",
        "O seu saldo disponível é de trezentos e quarenta e dois reais.",
    ],
    "nl": [
        "Welkom bij de klantenservice. Kies één voor uw saldo en twee voor een adviseur.",
        "Achtentachtig prachtige grachten met lachende nachtwachten in de nacht.",
        "Al onze medewerkers zijn in gesprek, een moment geduld alstublieft.",
        "Uw pakket wordt morgen tussen negen en twaalf uur bezorgd.",
    ],
    "ru": [
        "Здравствуйте! Спасибо за звонок. Для связи с оператором нажмите ноль.",
        "Карл у Клары украл кораллы, а Клара у Карла украла кларнет.",
        "Все операторы заняты. Пожалуйста, оставайтесь на линии.",
        "Ваш баланс составляет триста сорок семь рублей и двадцать копеек.",
    ],
    "pl": [
        "Dzień dobry, dziękujemy za telefon. Aby połączyć się z konsultantem, wybierz zero.",
        "W Szczebrzeszynie chrząszcz brzmi w trzcinie i Szczebrzeszyn z tego słynie.",
        "Wszyscy konsultanci są zajęci, prosimy o cierpliwość.",
        "Pańska przesyłka zostanie doręczona jutro przed południem.",
    ],
    "sv": [
        "Tack för att du ringer. Tryck ett för saldo och två för kundtjänst.",
        "Sju sjösjuka sjömän på sjunkande skeppet Shanghai sköttes av sju sköna sjuksköterskor.",
    ],
    "tr": [
        "Aradığınız için teşekkür ederiz. Müşteri temsilcisi için sıfırı tuşlayın.",
        "Şu köşe yaz köşesi, şu köşe kış köşesi, ortada su şişesi.",
    ],
    "el": [
        "Καλημέρα σας, ευχαριστούμε που καλέσατε. Για τον λογαριασμό σας πατήστε ένα.",
        "Όλοι οι εκπρόσωποί μας είναι απασχολημένοι, παρακαλούμε περιμένετε.",
    ],
    "cmn": [
        "您好，欢迎致电客户服务中心。查询余额请按一，人工服务请按零。",
        "四是四，十是十，十四是十四，四十是四十。",
        "您的订单将于明天上午九点到十二点之间送达，请保持电话畅通。",
    ],
    "ja": [
        "お電話ありがとうございます。残高照会は一を、オペレーターは零を押してください。",
        "生麦生米生卵、隣の客はよく柿食う客だ。",
    ],
    "hi": [
        "नमस्ते, कॉल करने के लिए धन्यवाद। अपने खाते की जानकारी के लिए एक दबाएं।",
        "कच्चा पापड़, पक्का पापड़। हमारे सभी प्रतिनिधि व्यस्त हैं, कृपया प्रतीक्षा करें।",
    ],
    "ar": [
        "مرحبا بكم، شكرا لاتصالكم. لمعرفة رصيدكم اضغطوا واحد.",
        "جميع ممثلي خدمة العملاء مشغولون حاليا، يرجى الانتظار.",
    ],
}
_SYLLABLES = [c + v for c in ("", "b", "k", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s",
                              "t", "v", "w", "z", "sh", "ch", "tr", "pl", "st")
              for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]


def speech_voices() -> list[str]:
    """Every language voice espeak-ng ships, by its file name (unique; codes are not)."""
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True)
    return sorted({line.split()[4] for line in out.stdout.splitlines()[1:] if line.strip()})


def speech_variants() -> list[str]:
    """Every voice variant espeak-ng ships (``!v/name`` files), and "" for none."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True)
    names = {line.split()[4].removeprefix("!v/") for line in out.stdout.splitlines()[1:]
             if line.strip()}
    return ["", *sorted(names)]


def numbers(rng: np.random.Generator) -> str:
    """A number phrase in one of many shapes; espeak-ng speaks it in the voice's language."""
    kind = rng.integers(6)
    if kind == 0:
        return " ".join(str(d) for d in rng.integers(0, 10, rng.integers(4, 12)))
    if kind == 1:
        return f"{rng.integers(1, 100000)}"
    if kind == 2:
        return f"{rng.integers(1, 29)}/{rng.integers(1, 13)}/{rng.integers(1950, 2031)}"
    if kind == 3:
        return f"{rng.integers(1, 999)} {rng.integers(100, 999)} {rng.integers(1000, 9999)}"
    if kind == 4:
        return f"{rng.integers(0, 24)}:{rng.integers(0, 60):02d}"
    return f"{rng.integers(1, 9999)}.{rng.integers(0, 100):02d}"


def pseudo_words(rng: np.random.Generator, n: int) -> str:
    words = ("".join(rng.choice(_SYLLABLES, rng.integers(1, 5))) for _ in range(n))
    return " ".join(words) + "."


def speech_text(rng: np.random.Generator, voice: str, words: int, parity: int) -> str:
    """About `words` words for `voice`: corpus sentences (of the part's parity), numbers and
    pseudo-words, in a seeded order."""
    lang = voice.split("/")[-1].split("-")[0].lower()
    own = SENTENCES.get(lang, [])[parity::2]
    pools = [own, SENTENCES["en"][parity::2]] if own else [SENTENCES["en"][parity::2]]
    parts: list[str] = []
    count = 0
    while count < words:
        pick = rng.random()
        if pick < 0.55:
            pool = pools[0] if len(pools) == 1 or rng.random() < 0.7 else pools[1]
            part = pool[rng.integers(len(pool))]
        elif pick < 0.8:
            part = numbers(rng)
        else:
            part = pseudo_words(rng, int(rng.integers(3, 12)))
        parts.append(part)
        count += max(len(part.split()), len(part) // 6)
    return " ".join(parts)


@dataclass(frozen=True)
class SpeechClip:
    part: str
    index: int
    voice: str
    variant: str
    wpm: int
    pitch: int
    text: str
    level_dbm0: float
    noise: str
    snr_db: float

    @property
    def name(self) -> str:
        v = self.voice + (f"+{self.variant}" if self.variant else "")
        extra = f", {self.noise} {self.snr_db:.0f} dB" if self.noise != "none" else ""
        return f"{self.part}/{self.index} {v} {self.wpm}wpm p{self.pitch}{extra}"

    @property
    def espeak_args(self) -> tuple[str, str, int, int]:
        spec = self.voice + (f"+{self.variant}" if self.variant else "")
        return self.text, spec, self.wpm, self.pitch


def split_voices(voices: list[str]) -> dict[str, list[str]]:
    order = np.random.default_rng(SEED).permutation(len(voices))
    shuffled = [voices[i] for i in order]
    return {"tuning": [v for i, v in enumerate(shuffled) if i % 3 != 2],
            "held_out": [v for i, v in enumerate(shuffled) if i % 3 == 2]}


def plan_speech(part: str, voices: list[str], variants: list[str], index: int,
                clip_s: float) -> SpeechClip:
    """Clip `index` of `part`: its voice cycles through the part's voices, its variant
    through all variants (seeded orders), the rest is drawn from its own seed."""
    tag = {"tuning": 1, "held_out": 2}[part]
    rng = np.random.default_rng([SEED, tag, index])
    order = np.random.default_rng([SEED, tag]).permutation(len(variants))
    voice = voices[index % len(voices)]
    variant = variants[order[index % len(variants)]]
    wpm, pitch = int(rng.integers(100, 231)), int(rng.integers(20, 81))
    text = speech_text(rng, voice, round(0.66 * wpm * clip_s / 60), parity=tag - 1)
    noise = str(rng.choice(["none", "white", "pink", "car", "babble"], p=[0.4, 0.15, 0.15,
                                                                          0.15, 0.15]))
    return SpeechClip(part, index, voice, variant, wpm, pitch, text,
                      float(rng.uniform(-32, -8)), noise, float(rng.uniform(5, 30)))


def render(clip: SpeechClip, cache: Path) -> Pcm:
    """The clip's clean speech at 8 kHz, from the cache or espeak-ng."""
    key = hashlib.sha256(json.dumps(clip.espeak_args).encode()).hexdigest()[:24]
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    wav = cache / f"{key}.{threading.get_ident()}.wav"
    pcm = np.zeros(0, np.int16)
    # espeak-ng 1.51 crashes on some numbers in some languages (Greenlandic "47875"):
    # then the digits one by one, then no digits.
    texts = (clip.text, re.sub(r"(\d)", r" \1 ", clip.text), re.sub(r"\d", "", clip.text))
    for text in texts:
        try:
            pcm = espeak_pcm(text, wav, clip.espeak_args[1], clip.wpm, clip.pitch)
            break
        except subprocess.CalledProcessError:
            print(f"talkoff: espeak-ng failed on {clip.name}", file=sys.stderr)
        finally:
            wav.unlink(missing_ok=True)
    tmp = cache / f"{key}.{threading.get_ident()}.tmp.npy"
    np.save(tmp, pcm)
    tmp.replace(path)
    return pcm


def active_rms(x: F64) -> float:
    """RMS over the 20 ms frames within 30 dB of the loudest (the active speech level)."""
    f = x[: x.size // FRAME * FRAME].reshape(-1, FRAME)
    p = np.mean(f * f, axis=1)
    return float(np.sqrt(np.mean(p[p >= p.max() * 1e-3]))) if p.size and p.max() > 0 else 0.0


def shaped_noise(kind: str, n: int, rng: np.random.Generator) -> F64:
    """Unit-RMS noise: white, pink (1/f) or car (brown, rolled off above ~500 Hz)."""
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    shape = 1 / np.sqrt(f) if kind == "pink" else 1 / (f * (1 + (f / 500) ** 2))
    x = np.fft.irfft(np.fft.rfft(white) * shape, n)
    return x / max(float(np.sqrt(np.mean(x * x))), 1e-12)


def speech_set(part: str, total_s: float, clip_s: float, cache: Path, jobs: int,
               limit: int | None = None) -> list[tuple[str, Pcm]]:
    """The part's clips, ready for the channel (level, noise): at least `total_s` seconds."""
    voices = split_voices(speech_voices())[part]
    if limit is not None:
        voices = voices[:: max(1, len(voices) // limit)]
    variants = speech_variants()
    plans: list[SpeechClip] = []
    clean: list[Pcm] = []
    with ThreadPoolExecutor(jobs) as pool:
        while sum(c.size for c in clean) < total_s * RATE:
            missing = total_s * RATE - sum(c.size for c in clean)
            batch = [plan_speech(part, voices, variants, len(plans) + i, clip_s)
                     for i in range(max(1, round(missing / RATE / clip_s)))]
            clean += pool.map(lambda c: render(c, cache), batch)
            plans += batch
            print(f"talkoff: {part} speech {sum(c.size for c in clean) / RATE:.0f} s",
                  file=sys.stderr)
    return [(p.name, dress(p, clean, i)) for i, p in enumerate(plans)]


def dress(plan: SpeechClip, clean: list[Pcm], i: int) -> Pcm:
    """Clip `i` at its level, with its background noise."""
    rng = np.random.default_rng([SEED, 9, plan.index, plan.part == "held_out"])
    x = clean[i].astype(np.float64)
    level = active_rms(x)
    if level == 0:
        return clean[i]
    x *= dbm0_to_peak(plan.level_dbm0) / np.sqrt(2) / level
    if plan.noise == "babble":
        others = [clean[(i + k) % len(clean)].astype(np.float64) for k in (1, 2, 3)]
        noise = np.zeros(x.size)
        for o in others:
            reps = np.tile(o, -(-x.size // max(o.size, 1)))[: x.size] if o.size else noise
            noise += reps / max(active_rms(o), 1e-9)
        noise /= max(active_rms(noise), 1e-9)
    elif plan.noise != "none":
        noise = shaped_noise(plan.noise, x.size, rng)
    else:
        noise = np.zeros(x.size)
    x += noise * float(np.sqrt(np.mean(x * x))) * 10 ** (-plan.snr_db / 20)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


# --- the music ----------------------------------------------------------------------------

INSTRUMENTS: dict[str, list[float]] = {  # harmonic levels in dB, fundamental first
    "flute": [0, -9, -16, -24, -32, -40],
    "clarinet": [0, -28, -4, -30, -9, -32, -14, -36, -20, -40, -26],
    "strings": [-20 * np.log10(k) + (3 if 3 <= k <= 6 else 0) for k in range(1, 20)],
    "brass": [0, -1, -3, -5, -8, -11, -14, -18, -22, -26, -30],
    "reed": [0, -6, -4, -8, -7, -12, -11, -16, -18, -22],
    "organ": [0, -3, -10, -6, -20, -9, -25, -12],
    "epiano": [0, -14, -20, -30, -26],
}
SCALES = ([0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 7, 9], [0, 2, 3, 5, 7, 9, 10])


class Instrument:
    """A wavetable voice: one period of its harmonics (those below 3.8 kHz for the note),
    an attack-decay-release envelope, vibrato."""

    TABLE = 2048

    def __init__(self, name: str, rng: np.random.Generator) -> None:
        self.name = name
        self.levels = np.array(INSTRUMENTS[name]) + rng.uniform(-3, 3, len(INSTRUMENTS[name]))
        self.attack = {"epiano": 0.005, "brass": 0.04, "strings": 0.08}.get(name, 0.02)
        self.decay = {"epiano": 1.2}.get(name, 0.0)
        self.vibrato = (float(rng.uniform(4.5, 6.5)), float(rng.uniform(0, 0.006)))
        self.vibrato = self.vibrato if name in ("flute", "strings", "reed") else (5.0, 0.0)

    def note(self, freq: float, seconds: float, rng: np.random.Generator) -> F64:
        n = max(1, round(seconds * RATE))
        k = np.arange(1, self.levels.size + 1)
        amps = 10 ** (self.levels / 20) * (k * freq < 3800)
        phases = rng.uniform(0, 2 * np.pi, k.size)
        grid = np.arange(self.TABLE) / self.TABLE
        table = (amps[:, None] * np.sin(2 * np.pi * k[:, None] * grid + phases[:, None])).sum(0)
        t = np.arange(n) / RATE
        rate, depth = self.vibrato
        inst = freq * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3)))
        phase = (np.cumsum(inst) / RATE + rng.random()) % 1.0
        x = np.interp(phase * self.TABLE, np.arange(self.TABLE + 1), np.append(table, table[0]))
        env = np.minimum(1.0, t / self.attack)
        if self.decay:
            env *= np.exp(-t / self.decay)
        release = min(n, round(0.03 * RATE))
        env[n - release :] *= np.linspace(1, 0, release)
        return x * env / max(float(np.sqrt(np.mean(table**2))), 1e-12)


def music_piece(index: int, seconds: float) -> tuple[str, Pcm]:
    """Piece `index`: a seeded texture, instruments, key, tuning and tempo."""
    rng = np.random.default_rng([SEED, 3, index])
    texture = str(rng.choice(["melody", "duet", "chords", "arpeggio", "band"]))
    a4 = float(rng.uniform(435, 445))
    tonic = int(rng.integers(0, 12))
    scale = SCALES[rng.integers(len(SCALES))]
    beat = 60 / float(rng.uniform(60, 180))
    names = list(INSTRUMENTS)
    lead, second = (Instrument(str(rng.choice(names)), rng) for _ in range(2))
    out = np.zeros(round(seconds * RATE) + RATE * 4)

    def pitch_of(degree: int, octave: int) -> float:
        semis = tonic + scale[degree % len(scale)] + 12 * (octave + degree // len(scale))
        return a4 * 2 ** ((semis + 12 * 4 - 57) / 12)  # octave 0 is the fourth (C4 ..)

    def add(inst: Instrument, freq: float, at: float, dur: float, gain: float) -> None:
        x = inst.note(freq, dur, rng) * gain
        i = round(at * RATE)
        out[i : i + x.size] += x[: max(0, out.size - i)]

    t, degree = 0.0, int(rng.integers(0, 7))
    while t < seconds:
        dur = beat * float(rng.choice([0.25, 0.5, 1, 1, 2, 3]))
        degree = int(np.clip(degree + rng.integers(-3, 4), -7, 13))
        if texture in ("melody", "duet", "band"):
            add(lead, pitch_of(degree, 1), t, dur * 0.95, 1.0)
        if texture == "duet":
            add(second, pitch_of(degree - int(rng.choice([2, 4, 5, 7])), 1), t, dur, 0.8)
        if texture in ("chords", "band") and (texture == "chords" or rng.random() < 0.5):
            root = int(rng.integers(0, 7))
            for d in (0, 2, 4, 6)[: int(rng.integers(3, 5))]:
                add(second, pitch_of(root + d, int(rng.integers(0, 2))), t, dur, 0.5)
            add(second, pitch_of(root, -2), t, dur, 0.7)  # bass
        if texture == "arpeggio":
            root = int(rng.integers(0, 7))
            step = dur / 4
            for j, d in enumerate((0, 2, 4, 7)):
                add(lead, pitch_of(root + d, int(rng.integers(0, 2))), t + j * step,
                    step * 1.5, 0.8)
        t += dur
    out = out[: round(seconds * RATE)]
    level = float(rng.uniform(-30, -8))
    out *= dbm0_to_peak(level) / np.sqrt(2) / max(active_rms(out), 1e-9)
    name = f"{index} {texture} {lead.name}/{second.name} A4={a4:.1f}"
    return name, np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def music_set(part: str, total_s: float, clip_s: float) -> list[tuple[str, Pcm]]:
    pieces: list[tuple[str, Pcm]] = []
    index = 0
    while sum(p.size for _, p in pieces) < total_s * RATE:
        if (index % 3 == 2) == (part == "held_out"):
            pieces.append(music_piece(index, clip_s))
        index += 1
    return pieces


# --- streaming and counting ---------------------------------------------------------------

def layout(clips: Sequence[Pcm], rows: int) -> tuple[Pcm, list[list[tuple[int, int, int]]]]:
    """Clips end to end on `rows` rows (each clip on the shortest row so far), µ-law coded
    and decoded; and per row its (start, end, clip) spans."""
    rng = np.random.default_rng([SEED, 5, len(clips)])
    spans: list[list[tuple[int, int, int]]] = [[] for _ in range(min(rows, len(clips)))]
    ends = [0] * len(spans)
    for i, clip in enumerate(clips):
        r = int(np.argmin(ends))
        start = ends[r] + round(rng.uniform(0.3, 1.5) * RATE)
        spans[r].append((start, start + clip.size, i))
        ends[r] = start + clip.size
    length = max(ends) + RATE // 2
    length += -length % FRAME
    pcm = np.zeros((len(spans), length), np.int16)
    for r, row in enumerate(spans):
        for start, end, i in row:
            pcm[r, start:end] = clips[i]
    return g711.ulaw_decode(g711.ulaw_encode(pcm)), spans


def stream(pcm: Pcm, kernel: str) -> list[tuple[int, int, str]]:
    """(row, sample, key) of every key reported, one (rows, 160) frame per call."""
    detector = DtmfDetector(pcm.shape[0], kernel=kernel)
    return [(row, start, key) for start in range(0, pcm.shape[1], FRAME)
            for row, key in detector.process(np.ascontiguousarray(pcm[:, start : start + FRAME]))]


def talk_off(clips: list[tuple[str, Pcm]], rows: int, kernel: str) -> dict[str, object]:
    pcm, spans = layout([c for _, c in clips], rows)
    hits = []
    for row, at, key in stream(pcm, kernel):
        where = [(s, i) for s, e, i in spans[row] if s <= at < e + FRAME * 4]
        name, t = (clips[where[0][1]][0], (at - where[0][0]) / RATE) if where else ("gap", 0)
        hits.append({"key": key, "clip": name, "t_s": round(t, 2)})
    hours = sum(c.size for _, c in clips) / RATE / 3600
    return {
        "clips": len(clips),
        "hours": round(hours, 3),
        "hits": len(hits),
        "hits_per_hour": round(len(hits) / hours, 2) if hours else None,
        "digits": dict(sorted(Counter(str(h["key"]) for h in hits).items())),
        "hit_list": hits[:200],
    }


# --- Q.24 accept / reject -----------------------------------------------------------------

def press(key: str, seconds: float, rng: np.random.Generator, *, offsets: tuple[float, float]
          = (0.0, 0.0), level: float = -10.0, twist: float = 0.0) -> F64:
    """One press with 5 ms raised-cosine ramps and random phases; `twist` is the high
    tone's level minus the low's (dB), `level` the stronger tone's (dBm0)."""
    low, high = DTMF_FREQS[key]
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    lo_db, hi_db = (level, level + twist) if twist <= 0 else (level - twist, level)
    x = dbm0_to_peak(lo_db) * np.sin(2 * np.pi * low * (1 + offsets[0]) * t + rng.uniform(0, 7))
    x += dbm0_to_peak(hi_db) * np.sin(2 * np.pi * high * (1 + offsets[1]) * t + rng.uniform(0, 7))
    ramp = min(40, n // 2)
    env = np.ones(n)
    if ramp:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        env[:ramp], env[n - ramp :] = rise, rise[::-1]
    return x * env


Trial = Callable[[str, np.random.Generator], tuple[F64, str]]


def _one(make: Callable[[str, np.random.Generator], F64], expect: str = "key") -> Trial:
    """A trial whose signal is `make`'s, expected to give the key once ("key"), twice
    ("two") or nothing ("none")."""
    return lambda k, r: (make(k, r), {"key": k, "two": k + k, "none": ""}[expect])


def _offset(group: int, value: float) -> Callable[[str, np.random.Generator], F64]:
    return lambda k, r: press(k, 0.1, r, offsets=(value, 0.0) if group == 0 else (0.0, value))


def _noisy(level: float, snr: float, seconds: float = 0.1) -> Trial:
    """The press in white noise `snr` dB under its two tones, from 250 ms before it."""
    def make(k: str, r: np.random.Generator) -> tuple[F64, str]:
        x = np.concatenate([np.zeros(2000), press(k, seconds, r, level=level), np.zeros(400)])
        tone_power = dbm0_to_peak(level) ** 2  # two tones, each peak²/2
        return x + r.standard_normal(x.size) * np.sqrt(tone_power / 10 ** (snr / 10)), k
    return make


def _two(gap_s: float) -> Callable[[str, np.random.Generator], F64]:
    return lambda k, r: np.concatenate([press(k, 0.06, r), np.zeros(round(gap_s * RATE)),
                                        press(k, 0.06, r)])


def _change(k: str, r: np.random.Generator) -> tuple[F64, str]:
    """The key, then straight away (ramps only) a key that shares one of its tones."""
    low, high = KEYS.index(k) // 4, KEYS.index(k) % 4
    if r.random() < 0.5:
        other = KEYS[4 * low + (high + int(r.integers(1, 4))) % 4]
    else:
        other = KEYS[4 * ((low + int(r.integers(1, 4))) % 4) + high]
    return np.concatenate([press(k, 0.08, r), press(other, 0.08, r)]), k + other


def _over(background: list[Pcm], under_db: float = 12.0) -> Trial:
    """The press over speech or music whose active level is `under_db` under each tone's,
    from 400 ms before the press to 100 ms after it."""
    def make(k: str, r: np.random.Generator) -> tuple[F64, str]:
        x = press(k, 0.1, r)
        clip = background[int(r.integers(len(background)))].astype(np.float64)
        n = x.size + 4000
        at = int(r.integers(0, max(1, clip.size - n)))
        bed = np.pad(clip[at : at + n], (0, max(0, n - clip[at : at + n].size)))
        bed *= dbm0_to_peak(-10 - under_db) / np.sqrt(2) / (active_rms(bed) or 1.0)
        bed[3200 : 3200 + x.size] += x
        return bed, k
    return make


def _everything_within(k: str, r: np.random.Generator) -> F64:
    offsets = (float(r.uniform(-0.015, 0.015)), float(r.uniform(-0.015, 0.015)))
    twist = float(r.uniform(-8, 4))
    weaker = -33 - min(twist, 0) if twist <= 0 else -33 + twist
    level = float(r.uniform(weaker, -3))
    return press(k, float(r.uniform(0.04, 0.2)), r, offsets=offsets, level=level, twist=twist)


def _one_beyond(k: str, r: np.random.Generator) -> F64:
    offsets = [float(r.uniform(-0.015, 0.015)), float(r.uniform(-0.015, 0.015))]
    twist, seconds = float(r.uniform(-8, 4)), float(r.uniform(0.04, 0.2))
    which = r.integers(3)
    if which == 0:
        offsets[r.integers(2)] = float(r.choice([-1, 1]) * r.uniform(0.035, 0.06))
    elif which == 1:
        twist = float(r.choice([r.uniform(-14, -10), r.uniform(6, 10)]))
    else:
        seconds = float(r.uniform(0.01, 0.023))
    return press(k, seconds, r, offsets=(offsets[0], offsets[1]), level=float(r.uniform(-20, -3)),
                 twist=twist)


def conditions(speech: list[Pcm], music: list[Pcm]) -> dict[str, tuple[str, Trial]]:
    """name: (kind, trial maker): "accept" (Q.24 must-accept: the key, exactly),
    "reject" (must-reject: no key) or "margin" (a key beyond what Q.24 asks for)."""
    accept: dict[str, Trial] = {
        "nominal": _one(lambda k, r: press(k, 0.1, r)),
        "low_-1.5%": _one(_offset(0, -0.015)),
        "low_+1.5%": _one(_offset(0, 0.015)),
        "high_-1.5%": _one(_offset(1, -0.015)),
        "high_+1.5%": _one(_offset(1, 0.015)),
        "twist_-8dB": _one(lambda k, r: press(k, 0.1, r, twist=-8)),
        "twist_+4dB": _one(lambda k, r: press(k, 0.1, r, twist=4)),
        "level_-3dBm0": _one(lambda k, r: press(k, 0.1, r, level=-3)),
        "level_-33dBm0": _one(lambda k, r: press(k, 0.1, r, level=-33)),
        "duration_40ms": _one(lambda k, r: press(k, 0.04, r)),
        "break_10ms": _one(_two(0.010)),
        "gap_20ms": _one(_two(0.020), "two"),
        "key_change_no_gap": _change,
        "snr_15dB_-10dBm0": _noisy(-10, 15),
        "snr_15dB_-20dBm0": _noisy(-20, 15),
        "snr_15dB_40ms": _noisy(-10, 15, 0.04),
        "over_speech_-12dB": _over(speech),
        "over_music_-12dB": _over(music),
        "all_limits_within": _one(_everything_within),
    }
    reject: dict[str, Trial] = {
        "low_-3.5%": _one(_offset(0, -0.035), "none"),
        "low_+3.5%": _one(_offset(0, 0.035), "none"),
        "high_-3.5%": _one(_offset(1, -0.035), "none"),
        "high_+3.5%": _one(_offset(1, 0.035), "none"),
        "twist_-10dB": _one(lambda k, r: press(k, 0.1, r, twist=-10), "none"),
        "twist_+6dB": _one(lambda k, r: press(k, 0.1, r, twist=6), "none"),
        "level_-38dBm0": _one(lambda k, r: press(k, 0.1, r, level=-38), "none"),
        "duration_23ms": _one(lambda k, r: press(k, 0.023, r), "none"),
        "one_limit_beyond": _one(_one_beyond, "none"),
    }
    beyond: dict[str, Trial] = {  # past what Q.24 asks: how far the margin reaches
        "snr_12dB_-10dBm0": _noisy(-10, 12),
        "snr_9dB_-10dBm0": _noisy(-10, 9),
        "over_speech_-9dB": _over(speech, 9),
        "over_music_-9dB": _over(music, 9),
    }
    return {**{n: ("accept", t) for n, t in accept.items()},
            **{n: ("reject", t) for n, t in reject.items()},
            **{n: ("margin", t) for n, t in beyond.items()}}


def accept_reject(trials: int, speech: list[Pcm], music: list[Pcm],
                  kernel: str) -> dict[str, object]:
    """Every condition's trials on their own rows (after 0-40 ms of silence, at a random
    key, phase and frame alignment): how many gave exactly the keys expected."""
    cases = conditions(speech, music)
    signals, expected, names = [], [], []
    for c, (name, (_, make)) in enumerate(cases.items()):
        rng = np.random.default_rng([SEED, 7, c])
        for t in range(trials):
            lead = np.zeros(int(rng.integers(0, 2 * FRAME)))
            signal, keys = make(KEYS[(t + c) % 16], rng)
            signals.append(np.concatenate([lead, signal, np.zeros(800)]))
            expected.append(keys)
            names.append(name)
    length = max(s.size for s in signals)
    length += -length % FRAME
    pcm = np.zeros((len(signals), length), np.int16)
    for i, s in enumerate(signals):
        pcm[i, : s.size] = np.clip(np.rint(s), -32768, 32767)
    got = [""] * len(signals)
    for row, _, key in stream(pcm, kernel):
        got[row] += key
    table: dict[str, dict[str, object]] = {}
    for name, (kind, _) in cases.items():
        rows = [i for i, n in enumerate(names) if n == name]
        wrong = Counter(f"{expected[i] or '-'}->{got[i] or '-'}" for i in rows
                        if got[i] != expected[i])
        table[name] = {"must": kind, "trials": len(rows),
                       "ok": sum(got[i] == expected[i] for i in rows),
                       "misses": dict(wrong.most_common(5))}

    def total(must: str) -> dict[str, object]:
        sel = [v for v in table.values() if v["must"] == must]
        ok = sum(int(str(v["ok"])) for v in sel)
        n = sum(int(str(v["trials"])) for v in sel)
        return {"trials": n, "ok": ok, "rate": round(ok / n, 4) if n else None}

    return {"trials_per_condition": trials, "must_accept": total("accept"),
            "must_reject": total("reject"), "beyond_q24": total("margin"), "conditions": table}


# --- main ---------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="minutes of material, not hours")
    parser.add_argument("--kernel", choices=("auto", "c", "numpy"), default="auto")
    parser.add_argument("--jobs", type=int, default=2, help="espeak-ng processes at once")
    parser.add_argument("--sections", default="speech,music,accept_reject")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "voxswitch-talkoff")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    size = QUICK if args.quick else FULL
    sections = set(args.sections.split(","))
    args.cache.mkdir(parents=True, exist_ok=True)
    limit = 6 if args.quick else None
    result: dict[str, object] = {
        "bench": "dtmf_talkoff",
        "kernel": DtmfDetector(1, kernel=args.kernel).kernel,
        "quick": args.quick,
        "seed": SEED,
        "split": "held_out: every third language voice of a seeded shuffle (and the "
                 "odd-numbered corpus sentences); music piece i when i % 3 == 2",
    }
    speech: dict[str, list[tuple[str, Pcm]]] = {}
    music: dict[str, list[tuple[str, Pcm]]] = {}
    for p, part in enumerate(("tuning", "held_out")):
        if sections & {"speech", "accept_reject"}:
            seconds = size["speech_s"][p] if "speech" in sections else size["clip_s"] * 4
            speech[part] = speech_set(part, seconds, float(size["clip_s"]), args.cache,
                                      args.jobs, limit)
        if sections & {"music", "accept_reject"}:
            seconds = size["music_s"][p] if "music" in sections else size["music_clip_s"] * 2
            music[part] = music_set(part, seconds, float(size["music_clip_s"]))
    for name, material in (("speech", speech), ("music", music)):
        if name in sections:
            result[name] = {}
            for part, clips in material.items():
                print(f"talkoff: streaming {name} {part}", file=sys.stderr)
                result[name][part] = talk_off(clips, int(size["rows"]), args.kernel)  # type: ignore[index]
    if "accept_reject" in sections:
        print("talkoff: accept/reject", file=sys.stderr)
        result["accept_reject"] = accept_reject(
            int(size["trials"]), [c for _, c in speech["tuning"]],
            [c for _, c in music["tuning"]], args.kernel)
    result["elapsed_s"] = round(time.perf_counter() - began, 1)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, ensure_ascii=False))
