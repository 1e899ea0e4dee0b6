"""The harness's audio helpers and G.711 tables, on seeded synthetic signals."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio, g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # removed in 3.13; only a reference here


ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def test_g711_decode_tables_match_audioop() -> None:
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).tolist() == np.frombuffer(
        audioop.ulaw2lin(codes, 2), np.int16).tolist()
    assert g711.alaw_decode(codes).tolist() == np.frombuffer(
        audioop.alaw2lin(codes, 2), np.int16).tolist()


def test_g711_encoders_match_audioop_for_every_sample() -> None:
    assert g711.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.tobytes(), 2)
    assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM.tobytes(), 2)


@pytest.mark.parametrize("pt", [g711.PT_PCMU, g711.PT_PCMA])
def test_g711_round_trip_keeps_a_tone(pt: int) -> None:
    tone = audio.sine(1000, 0.5, level=-6)
    encoded = g711.ulaw_encode(tone) if pt == g711.PT_PCMU else g711.alaw_encode(tone)
    decoded = g711.decode(encoded, pt)
    noise_db = audio.rms_dbfs(decoded.astype(np.int32) - tone)
    assert audio.rms_dbfs(tone) - noise_db > 30  # G.711 SNR is ~38 dB


def test_g711_rejects_other_payload_types() -> None:
    with pytest.raises(ValueError, match=r"not a G\.711 payload type: 101"):
        g711.decode(b"\x00", 101)


def test_ulaw_file_matches_sox(tmp_path: Path) -> None:
    tone = audio.sine(440, 0.2)
    wav = audio.write_wav(tmp_path / "t.wav", tone)
    ours = audio.to_ulaw_file(tone, tmp_path / "ours.ulaw").read_bytes()
    subprocess.run(["sox", str(wav), "-t", "ul", str(tmp_path / "sox.ulaw")], check=True,
                   timeout=30)
    theirs = (tmp_path / "sox.ulaw").read_bytes()
    assert len(ours) == len(theirs) == 1600
    # sox rounds to the nearest code where audioop truncates: allow one step of difference
    diff = g711.ulaw_decode(ours).astype(np.int32) - g711.ulaw_decode(theirs)
    assert np.abs(diff).max() <= 1024 and np.mean(diff != 0) < 0.5


def test_wav_round_trip(tmp_path: Path) -> None:
    pcm = audio.noise(0.3, level=-20, seed=7)
    pcm2, rate = audio.read_wav(audio.write_wav(tmp_path / "n.wav", pcm, 16000))
    assert rate == 16000
    assert pcm2.tolist() == pcm.tolist()


def test_sine_level_and_length() -> None:
    tone = audio.sine(1000, 1.5, level=-6)
    assert len(tone) == 12000
    assert audio.rms_dbfs(tone) == pytest.approx(-9.03, abs=0.05)
    assert audio.rms_dbfs(audio.silence(1)) == audio.SILENCE_DB
    assert audio.rms_dbfs(np.zeros(0, np.int16)) == audio.SILENCE_DB


@pytest.mark.parametrize("freq", [350.0, 440.0, 697.0, 1000.0, 1633.0, 3000.0])
def test_dominant_frequency(freq: float) -> None:
    sig = audio.mix(audio.sine(freq, 1.0, level=-10), audio.noise(1.0, level=-40, seed=3))
    assert audio.dominant_frequency(sig) == pytest.approx(freq, abs=2.0)


def test_dominant_frequency_of_silence_is_zero() -> None:
    assert audio.dominant_frequency(audio.silence(0.5)) == 0.0


def test_tone_segments_find_beeps_in_noise() -> None:
    sig = audio.concat(audio.silence(0.5), audio.sine(1000, 0.4), audio.silence(0.3),
                       audio.sine(1000, 0.6), audio.silence(0.2))
    sig = audio.mix(sig, audio.noise(len(sig) / 8000, level=-45, seed=5))
    spans = audio.tone_segments(sig, 1000, min_db=-30)
    assert len(spans) == 2
    (s1, e1), (s2, e2) = spans
    assert s1 == pytest.approx(0.5, abs=0.021) and e1 == pytest.approx(0.9, abs=0.021)
    assert s2 == pytest.approx(1.2, abs=0.021) and e2 == pytest.approx(1.8, abs=0.021)
    assert audio.tone_segments(sig, 440, min_db=-30) == []
    assert audio.tone_duration(sig, 1000, min_db=-30) == pytest.approx(1.0, abs=0.05)


def test_tone_segments_respect_level_and_min_duration() -> None:
    sig = audio.concat(audio.sine(440, 0.06, level=-6), audio.silence(0.2),
                       audio.sine(440, 1.0, level=-50))
    assert audio.tone_segments(sig, 440, min_db=-30) == [(0.0, 0.06)]
    assert audio.tone_segments(sig, 440, min_db=-30, min_duration=0.1) == []
    quiet = audio.tone_segments(sig, 440, min_db=-60)
    assert quiet[-1][1] - quiet[-1][0] == pytest.approx(1.0, abs=0.041)


def test_dtmf_digits_carry_both_tones() -> None:
    sig = audio.dtmf("5#", tone_s=0.1, gap_s=0.1)
    assert len(sig) == 3200
    for freq in (770, 1336):
        spans = audio.tone_segments(sig, freq, min_fraction=0.3)
        assert spans == [(0.0, 0.1)]
    assert audio.tone_segments(sig, 1477, min_fraction=0.3) == [(0.2, 0.3)]
    assert audio.tone_segments(sig, 1209, min_fraction=0.3) == []


def test_speech_like_tells_speech_from_tone_and_silence(tmp_path: Path) -> None:
    speech, rate = audio.read_wav(audio.tts_wav("Welcome to the test line.", tmp_path / "s.wav"))
    assert rate == 8000
    active, fraction = audio.speech_like(speech)
    assert active > 0.5 and fraction > 0.7
    assert audio.level_spread(speech) > 3.0
    tone = audio.sine(1000, 1.0)
    t_active, t_fraction = audio.speech_like(tone)
    assert t_active == pytest.approx(1.0) and t_fraction > 0.99
    assert audio.level_spread(tone) < 0.5
    assert audio.speech_like(audio.silence(1.0)) == (0.0, 0.0)
    assert audio.band_fraction(audio.sine(100, 1.0), 300, 3400) < 0.01


def test_trim_silence() -> None:
    sig = audio.concat(audio.silence(0.3), audio.sine(500, 0.2), audio.silence(0.5))
    trimmed = audio.trim_silence(sig)
    assert len(trimmed) == 1600
    assert len(audio.trim_silence(audio.silence(1.0))) == 0


def test_best_alignment_finds_a_delayed_copy() -> None:
    ref = audio.noise(0.5, level=-20, seed=11)
    sig = audio.mix(audio.concat(audio.silence(0.123), ref // 2, audio.silence(0.3)),
                    audio.noise(0.923, level=-50, seed=12))
    lag, corr = audio.best_alignment(ref, sig)
    assert lag == 984
    assert corr > 0.95
    _, unrelated = audio.best_alignment(audio.noise(0.5, seed=13), sig)
    assert unrelated < 0.3


def test_pad_to_never_truncates() -> None:
    tone = audio.sine(440, 1.0)
    assert len(audio.pad_to(tone, 2.5)) == 20000
    assert len(audio.pad_to(tone, 0.5)) == 8000
