"""DTMF talk-off: speech that contains no keys must give no keys.

The speech is generated afresh with espeak-ng (about 200x real time) in several voices,
English, French and German, at several speeds and pitches: about ten minutes in all,
numbers included. All clips run through one detector at once, one row per clip.
`bench/talkoff.py` runs hours of it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from media import g711
from media.dsp.dtmf import DtmfDetector
from media.tones import dtmf_digits
from tests.support.audio import espeak_pcm

TEXT = {
    "en": (
        "Welcome to the customer service line. Your call is important to us. "
        "Please say or enter your sixteen digit account number, followed by the pound key. "
        "I heard 4 7 1 9, 2 2 0 8, 6 6 3 1, 5 0 0 4. Is that correct? "
        "Our offices are open from 9 a.m. to 5:30 p.m., Monday through Friday, "
        "and from 10 until 2 on Saturdays. The balance due on March 21st, 2026 is "
        "one thousand, three hundred and forty seven dollars and eighty two cents. "
        "Call us back on 1 800 555 0199, or press star to return to the main menu. "
        "Whose woods these are I think I know; his house is in the village though. "
        "She sells sea shells by the sea shore, and the shells she sells are sea shells. "
        "Ninety nine bottles, eighty eight keys, seventy seven trombones, sixty six ships."
    ),
    "fr": (
        "Bonjour et bienvenue. Pour joindre le service client, dites un, deux ou trois. "
        "Votre numéro de dossier est le 06 42 17 88 93. Le montant dû est de "
        "quatre cent soixante dix sept euros et quatre vingt dix neuf centimes. "
        "Nos bureaux sont ouverts du lundi au vendredi, de huit heures à dix huit heures."
    ),
    "de": (
        "Guten Tag und herzlich willkommen. Bitte nennen Sie Ihre Kundennummer: "
        "vier drei sieben neun, null null zwei acht. Der offene Betrag beträgt "
        "neunhundertneunundneunzig Euro und siebenundvierzig Cent. Unsere Geschäftszeiten "
        "sind Montag bis Freitag von acht bis achtzehn Uhr, am Samstag bis zwölf Uhr."
    ),
}

VOICES = [  # (voice, language of the text, words per minute, pitch 0-99)
    ("en-us+f3", "en", 160, 60),
    ("en-us+m3", "en", 140, 35),
    ("en-gb+m1", "en", 175, 50),
    ("en-gb-scotland", "en", 150, 45),
    ("en-us+f5", "en", 130, 80),
    ("en-gb-x-rp+f2", "en", 190, 70),
    ("fr", "fr", 150, 50),
    ("fr+f3", "fr", 170, 70),
    ("de", "de", 150, 50),
    ("de+m3", "de", 130, 30),
    # High voices whose harmonics the detector took for keys before its onset checks
    ("en-us+Annie", "en", 164, 77),
    ("en-us+Mario", "en", 153, 77),
    ("en-us+belinda", "en", 164, 77),
]

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng"),
    pytest.mark.usefixtures("dtmf_kernel"),
]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    tmp = tmp_path_factory.mktemp("speech")
    return [
        espeak_pcm(TEXT[lang], tmp / f"{i}.wav", voice, wpm, pitch)
        for i, (voice, lang, wpm, pitch) in enumerate(VOICES)
    ]


def detect_rows(clips: list[np.ndarray], gain: float = 1.0) -> list[tuple[int, str]]:
    """Every clip on its own detector row, all rows in one call per frame."""
    length = max(c.size for c in clips)
    length += -length % 160
    pcm = np.zeros((len(clips), length), np.int16)
    for i, clip in enumerate(clips):
        pcm[i, : clip.size] = np.clip(clip * gain, -32768, 32767)
    detector = DtmfDetector(len(clips))
    return [
        e for start in range(0, length, 160) for e in detector.process(pcm[:, start : start + 160])
    ]


def test_speech_is_minutes_long(speech: list[np.ndarray]) -> None:
    assert sum(c.size for c in speech) / 8000 > 240


@pytest.mark.parametrize("gain_db", [-12.0, 0.0, 6.0])
def test_speech_gives_no_digits(speech: list[np.ndarray], gain_db: float) -> None:
    assert detect_rows(speech, 10 ** (gain_db / 20)) == []


def test_speech_through_g711_gives_no_digits(speech: list[np.ndarray]) -> None:
    coded = [g711.ulaw_decode(g711.ulaw_encode(c)) for c in speech]
    assert detect_rows(coded) == []


def test_digits_over_speech_are_still_found(speech: list[np.ndarray]) -> None:
    """Keys at -10 dBm0 over speech: each found exactly once, nothing else (control)."""
    keys = dtmf_digits("159#", tone_s=0.08, gap_s=0.3, level_dbm0=-10)
    mixed = []
    for clip in speech[:4]:
        mix = clip.astype(np.int32) * 10 ** (-12 / 20)  # speech 12 dB under the keys
        mix[8000 : 8000 + keys.size] += keys
        mixed.append(np.clip(mix, -32768, 32767).astype(np.int16))
    found = detect_rows(mixed)
    assert ["".join(k for r, k in found if r == row) for row in range(4)] == ["159#"] * 4
