"""Built-in hold music and conference beeps, generated from `media.tones`.

The hold music is a short, soft loop (a I–V–vi–IV arpeggio over a bass line, bell-like
notes that decay) played again and again while a conference participant is on hold
and its CONFERENCE has no `hold_audio`. It is generated once and shared: channels play
the same array without copying it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from media.tones import RATE, beep, tone

NOTE_S = 0.3
LEVEL_DBM0 = -24.0
# MIDI notes, four per chord: C, G, Am, F arpeggios; each chord's bass one octave down
_CHORDS = (
    ((60, 64, 67, 72), 48),
    ((59, 62, 67, 74), 43),
    ((57, 60, 64, 69), 45),
    ((57, 60, 65, 72), 41),
)


def _hz(midi: int) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _note(midi: int, duration_s: float, level_dbm0: float) -> np.ndarray:
    # a fundamental and a quieter octave, under an exponential decay: a soft bell
    n = round(duration_s * RATE)
    decay = np.exp(-np.arange(n) / (0.35 * n))
    wave = tone(_hz(midi), duration_s, level_dbm0=level_dbm0).astype(np.float64)
    wave += tone(_hz(midi + 12), duration_s, level_dbm0=level_dbm0 - 9).astype(np.float64)
    return wave * decay


@lru_cache(maxsize=1)
def hold_music() -> np.ndarray:
    """The built-in hold music: one loop of about 5 s (int16, 8 kHz mono)."""
    parts = []
    for notes, bass in _CHORDS:
        chord = np.concatenate([_note(m, NOTE_S, LEVEL_DBM0) for m in notes])
        chord += _note(bass, len(chord) / RATE, LEVEL_DBM0 - 3)
        parts.append(chord)
    music = np.clip(np.rint(np.concatenate(parts)), -32768, 32767).astype(np.int16)
    music.setflags(write=False)
    return music


@lru_cache(maxsize=1)
def join_beep() -> np.ndarray:
    """Played to the conference when a participant with announce_on_join enters."""
    return _frozen(beep(0.2, 1000.0, level_dbm0=-16.0))


@lru_cache(maxsize=1)
def leave_beep() -> np.ndarray:
    """Played to the conference when such a participant leaves: a lower beep."""
    return _frozen(beep(0.2, 600.0, level_dbm0=-16.0))


def _frozen(pcm: np.ndarray) -> np.ndarray:
    pcm.setflags(write=False)
    return pcm
