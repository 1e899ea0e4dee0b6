"""control.testkit.listen on synthetic audio: what the test phone takes for silence, a tone
(and its frequency), speech and in-band DTMF, and how long each lasted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from control.testkit.listen import Listener, Segment
from media.tones import busy, dtmf_digits, tone
from tests.support import audio


def listen(*parts: np.ndarray) -> Listener:
    listener = Listener()
    listener.feed(np.concatenate(parts).astype(np.int16))
    return listener


def kinds(segments: list[Segment], min_s: float = 0.06) -> list[str]:
    return [s.kind for s in segments if s.length >= min_s]


def test_a_tone_between_silences_is_measured() -> None:
    heard = listen(audio.silence(0.5), tone(440, 1.0, level_dbm0=-15), audio.silence(0.5))
    segments = heard.segments()
    assert kinds(segments) == ["silence", "tone", "silence"], segments
    seg = next(s for s in segments if s.kind == "tone")
    assert seg.freq is not None and abs(seg.freq - 440) < 3, seg
    assert abs(seg.start - 0.5) <= 0.04 and abs(seg.length - 1.0) <= 0.06, seg
    run = heard.tone_run(440, 0.9, since=0.0, tolerance_hz=13)
    assert run is not None and abs(run[0] - 0.5) <= 0.04, run
    assert heard.tone_run(440, 1.2, since=0.0, tolerance_hz=13) is None  # not that long
    assert heard.tone_run(1000, 0.1, since=0.0, tolerance_hz=30) is None  # nor that pitch


def test_two_tones_one_after_the_other_are_two_segments() -> None:
    heard = listen(tone(600, 0.5), tone(1000, 0.5))
    tones = [s for s in heard.segments() if s.kind == "tone"]
    assert [round(s.freq or 0, -1) for s in tones] == [600, 1000], tones


def test_each_tone_of_a_pair_is_heard() -> None:
    heard = listen(busy(1.0))  # 480 + 620 Hz, 0.5 s on, 0.5 s off
    assert heard.tone_run(480, 0.45, 0.0, 14) is not None
    assert heard.tone_run(620, 0.45, 0.0, 18) is not None
    assert heard.tone_run(480, 0.7, 0.0, 14) is None  # the cadence's off half
    assert heard.tone_run(440, 0.2, 0.0, 13) is None


def test_quiet_audio_is_silence() -> None:
    heard = listen(audio.noise(1.0, level=-60.0), audio.silence(0.5))
    run = heard.silence_run(1.4, since=0.0)
    assert run is not None and run[0] == 0.0, heard.describe()
    assert heard.silence_run(1.6, since=0.0) is None


def test_spoken_words_are_one_utterance(tmp_path: Path) -> None:
    wav = audio.tts_wav("Thanks for calling. For sales, press one. For support, press two.",
                        tmp_path / "menu.wav")
    speech, _ = audio.read_wav(wav)
    spoken = audio.trim_silence(speech)
    heard = listen(audio.silence(0.5), speech, audio.silence(1.0))
    utterances = [s for s in heard.segments() if s.kind == "speech" and s.length >= 0.3]
    assert len(utterances) == 1, heard.describe()
    assert abs(utterances[0].length - len(spoken) / 8000) <= 0.5, (utterances, len(spoken))
    assert not [s for s in heard.segments() if s.kind == "tone" and s.length >= 0.15], \
        heard.describe()


def test_in_band_keys_are_what_the_switch_detector_hears() -> None:
    heard = listen(audio.silence(0.3), dtmf_digits("159#", tone_s=0.08, gap_s=0.08),
                   audio.silence(0.3))
    assert "".join(k for _, k in heard.keys) == "159#"


def test_describe_lists_what_was_heard() -> None:
    heard = listen(audio.silence(0.4), tone(1000, 0.6))
    assert heard.describe() == "silence 0.00-0.40 s, tone 1000 Hz 0.40-1.00 s"
    assert heard.describe(since=2.0) == "nothing"


@pytest.mark.parametrize("chunk", [160, 333, 4000])
def test_feeding_in_pieces_labels_the_same(chunk: int) -> None:
    pcm = np.concatenate([audio.silence(0.3), tone(700, 0.7), audio.silence(0.3)])
    whole = listen(pcm)
    pieces = Listener()
    for end in range(chunk, len(pcm) + chunk, chunk):
        pieces.feed(pcm[:end])
    assert pieces.frames == whole.frames
