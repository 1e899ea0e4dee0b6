"""key_tail: how much of a message's end is the tone of the key that ended it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.dsp.dtmf import key_tail
from tests.support import audio


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = tmp_path_factory.mktemp("kt") / "speech.wav"
    pcm, _ = audio.read_wav(audio.tts_wav("Please call me back tomorrow about the invoice.",
                                          path))
    return pcm


@pytest.mark.parametrize("key", ["#", "1", "*", "9"])
@pytest.mark.parametrize("after_s", [0.0, 0.05, 0.25])
def test_the_key_and_what_follows_it_are_the_tail(speech: np.ndarray, key: str,
                                                  after_s: float) -> None:
    tone = audio.dtmf(key, tone_s=0.08, gap_s=0.0, level=-12.0)
    pcm = audio.concat(speech, audio.silence(0.2), tone, audio.silence(after_s))
    tail = key_tail(pcm, key) / 8000
    expected = len(tone) / 8000 + after_s
    assert expected <= tail <= expected + 0.02, (tail, expected)  # never into the speech


def test_speech_a_single_tone_or_another_key_are_no_tail(speech: np.ndarray) -> None:
    assert key_tail(speech, "#") == 0
    assert key_tail(audio.concat(speech, audio.sine(697.0, 0.2)), "1") == 0
    other = audio.dtmf("5", tone_s=0.1, gap_s=0.0)
    assert key_tail(audio.concat(speech, other), "#") == 0
    # a key pressed long before the end is not the one that ended the message
    early = audio.concat(speech, audio.dtmf("#", tone_s=0.1, gap_s=0.0), audio.silence(1.0))
    assert key_tail(early, "#") == 0


def test_a_key_over_background_noise_is_found(speech: np.ndarray) -> None:
    tone = audio.dtmf("0", tone_s=0.1, gap_s=0.0, level=-10.0)
    pcm = audio.concat(speech, tone)
    noisy = audio.mix(pcm, audio.noise(len(pcm) / 8000, level=-40.0))
    assert abs(key_tail(noisy, "0") / 8000 - 0.1) <= 0.02


def test_bad_keys_and_short_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'x' is not a DTMF key"):
        key_tail(np.zeros(800, np.int16), "x")
    assert key_tail(np.zeros(10, np.int16), "1") == 0
