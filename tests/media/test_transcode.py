"""Recording download formats: each one decodes, with tools other than its encoder where
possible (sox for ulw/vox, FFmpeg for ogg), to the recording's length, channels and
tones."""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest

from media.transcode import FORMATS, TranscodeError, mixdown, transcode
from tests.support.audio import Decoded, decode_file, dominant_frequency, sine, tone_power

SPEC_FORMATS = ["ulw", "vox", "mp3", "wav", "wavM", "ogg", "aac", "au"]
LEFT_HZ, RIGHT_HZ = 440, 1209
AAC_FRAME_S = 1024 / 8000


def write_recording(path: Path, channels: int, seconds: float) -> Path:
    left = sine(LEFT_HZ, seconds, level=-12)
    pcm = np.stack((left, sine(RIGHT_HZ, seconds, level=-12)), -1) if channels == 2 \
        else left.reshape(-1, 1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def download(source: Path, fmt: str) -> bytes:
    with tempfile.TemporaryFile(dir=source.parent) as out:
        transcode(source, fmt, out)
        out.seek(0)
        return out.read()


def middle(decoded: Decoded, channel: int) -> np.ndarray:
    pcm = decoded.pcm[:, channel]
    quarter = len(pcm) // 4
    return pcm[quarter:-quarter]


def test_the_spec_s_formats() -> None:
    assert list(FORMATS) == SPEC_FORMATS


@pytest.mark.parametrize("fmt", SPEC_FORMATS)
@pytest.mark.parametrize("channels, seconds", [(2, 1.37), (1, 0.73)])
def test_each_format_decodes_to_the_recording(tmp_path: Path, fmt: str, channels: int,
                                              seconds: float) -> None:
    source = write_recording(tmp_path / "rec.wav", channels, seconds)
    got = decode_file(download(source, fmt), fmt)
    spec = FORMATS[fmt]
    assert got.channels == (1 if spec.mono else channels)
    if fmt == "aac":  # whole 1024-sample frames; the MP4 edit list holds the exact length
        assert got.declared_s == pytest.approx(seconds, abs=0.05)
        assert seconds - 0.05 <= got.seconds <= seconds + AAC_FRAME_S + 0.05
    else:
        assert got.seconds == pytest.approx(seconds, abs=0.05)
    if got.channels == 2:
        assert dominant_frequency(middle(got, 0), got.rate) == pytest.approx(LEFT_HZ, abs=10)
        assert dominant_frequency(middle(got, 1), got.rate) == pytest.approx(RIGHT_HZ, abs=10)
    else:  # the mixdown holds both sides at their own level (-12 dBFS sines: -15 dB RMS)
        for hz in (LEFT_HZ, RIGHT_HZ)[:channels]:
            level, _ = tone_power(middle(got, 0), hz, got.rate)
            assert np.median(level) == pytest.approx(-15, abs=2), hz


def test_wav_is_the_recording_and_wavm_its_mixdown(tmp_path: Path) -> None:
    source = write_recording(tmp_path / "rec.wav", 2, 0.5)
    assert download(source, "wav") == source.read_bytes()
    assert FORMATS["wav"].is_source(2) and not FORMATS["wavM"].is_source(2)
    assert FORMATS["wavM"].is_source(1) and not FORMATS["mp3"].is_source(1)
    mono = decode_file(download(source, "wavM"), "wav").pcm[:, 0]
    with wave.open(str(source), "rb") as w:
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    np.testing.assert_array_equal(mono, stereo.astype(np.int32).sum(axis=1))


def test_mixdown_saturates() -> None:
    block = np.array([[30000, 30000], [-30000, -30000], [100, -40]], dtype=np.int16)
    assert mixdown(block).tolist() == [[32767], [-32768], [60]]
    assert mixdown(block[:, :1]) is not None and mixdown(block[:, :1]).shape == (3, 1)


@pytest.mark.parametrize("content", [b"", b"not a wav file at all", b"RIFF\x00\x00"])
@pytest.mark.parametrize("fmt", ["mp3", "ogg", "wavM"])
def test_an_unreadable_recording_is_a_transcode_error(tmp_path: Path, content: bytes,
                                                      fmt: str) -> None:
    source = tmp_path / "bad.wav"
    source.write_bytes(content)
    with pytest.raises(TranscodeError, match=f"can't transcode bad.wav to {fmt}"):
        download(source, fmt)


def test_a_wav_at_another_rate_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "wide.wav"
    with wave.open(str(source), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 160)
    with pytest.raises(TranscodeError, match="not 16-bit PCM at 8000 Hz"):
        download(source, "mp3")
