"""Audio for the harness: generate signals, read and write files, and judge what was heard.

All signals are int16 mono numpy arrays at 8 kHz unless a `rate` says otherwise. Levels are
dBFS: `rms_dbfs` of a full-scale square wave is 0, of a full-scale sine -3.01. Analysis
works on 20 ms frames, as the switch's media engine does.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from media.dsp.dtmf import resample
from tests.support import g711

RATE = 8000
FRAME_S = 0.02
FULL_SCALE = 32768.0
SILENCE_DB = -120.0

Pcm = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]

DTMF_FREQS: dict[str, tuple[int, int]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


# --- files ------------------------------------------------------------------------------

def write_wav(path: Path, pcm: npt.ArrayLike, rate: int = RATE) -> Path:
    """Write int16 mono PCM as a 16-bit WAV file."""
    data = np.asarray(pcm, dtype=np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[Pcm, int]:
    """(int16 mono PCM, sample rate) of a 16-bit WAV; stereo is averaged to mono."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit WAV, expected 16-bit")
        channels, rate = w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return pcm, rate


def to_ulaw_file(pcm: npt.ArrayLike, path: Path) -> Path:
    """Write raw µ-law (no header), the format SIPp's rtp_stream sends as PT 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(g711.ulaw_encode(pcm))
    return path


def to_alaw_file(pcm: npt.ArrayLike, path: Path) -> Path:
    """Write raw A-law (no header), the format SIPp's rtp_stream sends as PT 8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(g711.alaw_encode(pcm))
    return path


def tts_wav(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    """Speak `text` with espeak-ng into an 8 kHz mono 16-bit WAV (sox resamples)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        raise RuntimeError("espeak-ng and sox are needed (make install apt-installs them)")
    path.parent.mkdir(parents=True, exist_ok=True)
    spoken = subprocess.run([espeak, "-v", voice, "-s", str(speed), "--stdout", text],
                            check=True, capture_output=True, timeout=30).stdout
    subprocess.run([sox, "-t", "wav", "-", "-r", str(RATE), "-c", "1", "-b", "16",
                    "-e", "signed-integer", str(path)], input=spoken, check=True,
                   capture_output=True, timeout=30)
    return path


@dataclass(frozen=True)
class Decoded:
    """A decoded audio file: int16 samples (samples, channels), their rate, and the length
    the container declares (an MP4 edit list, say), if any."""

    pcm: npt.NDArray[np.int16]
    rate: int
    declared_s: float | None = None

    @property
    def seconds(self) -> float:
        return self.pcm.shape[0] / self.rate

    @property
    def channels(self) -> int:
        return self.pcm.shape[1]


# Headerless formats: sox's name for each, read as 8 kHz mono.
_RAW_SOX = {"ulw": "ul", "vox": "vox"}


def decode_file(data: bytes, fmt: str) -> Decoded:
    """Decode a downloaded recording independently of the switch: sox for the headerless
    ulw and vox (8 kHz mono), PyAV (FFmpeg) for everything else."""
    if fmt in _RAW_SOX:
        sox = shutil.which("sox")
        if not sox:
            raise RuntimeError("sox is needed (make install apt-installs it)")
        raw = subprocess.run([sox, "-t", _RAW_SOX[fmt], "-r", str(RATE), "-c", "1", "-",
                              "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-"],
                             input=data, check=True, capture_output=True, timeout=30).stdout
        return Decoded(np.frombuffer(raw, "<i2").reshape(-1, 1).astype(np.int16), RATE)
    blocks = []
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        declared = (float(stream.duration * stream.time_base)
                    if stream.duration and stream.time_base else None)
        rate, layout = stream.rate, stream.layout.name
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                blocks.append(out.to_ndarray().reshape(-1, stream.channels))
    pcm = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.int16)
    return Decoded(pcm.astype(np.int16), rate, declared)


def espeak_pcm(text: str, path: Path, voice: str, wpm: int, pitch: int) -> Pcm:
    """espeak-ng's rendering of `text` (at `wpm` words a minute and pitch 0-99), written
    to the WAV `path` and returned as 8 kHz int16 (resampled by PyAV)."""
    command = ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(path), text]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with wave.open(str(path), "rb") as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    return resample(np.frombuffer(raw, "<i2"), rate)


# --- generators -------------------------------------------------------------------------

def _amplitude(level_db: float) -> float:
    return (FULL_SCALE - 1) * 10 ** (level_db / 20)


def sine(freq: float, seconds: float, level: float = -6.0, rate: int = RATE,
         phase: float = 0.0) -> Pcm:
    """A sine whose *peak* is `level` dBFS (its RMS is 3 dB lower)."""
    t = np.arange(round(seconds * rate)) / rate
    return np.round(_amplitude(level) * np.sin(2 * np.pi * freq * t + phase)).astype(np.int16)


def silence(seconds: float, rate: int = RATE) -> Pcm:
    return np.zeros(round(seconds * rate), dtype=np.int16)


def noise(seconds: float, level: float = -30.0, seed: int = 1, rate: int = RATE) -> Pcm:
    """Seeded white noise with RMS `level` dBFS."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(seconds * rate)) * FULL_SCALE * 10 ** (level / 20)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def mix(*signals: npt.ArrayLike) -> Pcm:
    """Sum signals (zero-padded to the longest), saturated to int16."""
    arrays = [np.asarray(s, dtype=np.int32) for s in signals]
    out = np.zeros(max(len(a) for a in arrays), dtype=np.int32)
    for a in arrays:
        out[: len(a)] += a
    return np.clip(out, -32768, 32767).astype(np.int16)


def concat(*signals: npt.ArrayLike) -> Pcm:
    return np.concatenate([np.asarray(s, dtype=np.int16) for s in signals])


def pad_to(pcm: npt.ArrayLike, seconds: float, rate: int = RATE) -> Pcm:
    """Append silence so the signal lasts `seconds` (never truncates)."""
    data = np.asarray(pcm, dtype=np.int16)
    missing = round(seconds * rate) - len(data)
    return concat(data, np.zeros(missing, dtype=np.int16)) if missing > 0 else data


def dtmf(digits: str, tone_s: float = 0.1, gap_s: float = 0.1, level: float = -9.0,
         rate: int = RATE) -> Pcm:
    """In-band DTMF: each digit's two tones (each at `level` dBFS peak) then a gap."""
    parts: list[Pcm] = []
    for d in digits.upper():
        low, high = DTMF_FREQS[d]
        parts += [mix(sine(low, tone_s, level, rate), sine(high, tone_s, level, rate)),
                  silence(gap_s, rate)]
    return concat(*parts) if parts else silence(0, rate)


# --- analysis ---------------------------------------------------------------------------

def rms_dbfs(pcm: npt.ArrayLike) -> float:
    """RMS level in dBFS; SILENCE_DB (-120) for digital silence or an empty signal."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size == 0:
        return SILENCE_DB
    rms = float(np.sqrt(np.mean(x * x)))
    return max(SILENCE_DB, 20 * np.log10(rms / FULL_SCALE)) if rms > 0 else SILENCE_DB


def frames(pcm: npt.ArrayLike, rate: int = RATE, frame_s: float = FRAME_S) -> FloatArray:
    """(n_frames, frame_len) float64 view of whole frames; a partial last frame is dropped."""
    x = np.asarray(pcm, dtype=np.float64)
    n = round(frame_s * rate)
    count = len(x) // n
    return x[: count * n].reshape(count, n)


def frame_dbfs(pcm: npt.ArrayLike, rate: int = RATE, frame_s: float = FRAME_S) -> FloatArray:
    """RMS dBFS of each 20 ms frame."""
    f = frames(pcm, rate, frame_s)
    rms = np.sqrt(np.mean(f * f, axis=1))
    with np.errstate(divide="ignore"):
        db: FloatArray = np.maximum(20 * np.log10(rms / FULL_SCALE), SILENCE_DB)
    return db


def dominant_frequency(pcm: npt.ArrayLike, rate: int = RATE) -> float:
    """Frequency (Hz) of the strongest spectral peak, refined by parabolic interpolation."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size < 16 or not np.any(x):
        return 0.0
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:])) + 1
    shift = 0.0
    if 1 <= k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom else 0.0
    return float((k + shift) * rate / len(x))


def tone_power(pcm: npt.ArrayLike, freq: float, rate: int = RATE,
               frame_s: float = FRAME_S) -> tuple[FloatArray, FloatArray]:
    """Per frame: (tone level in dBFS RMS, fraction of the frame's power in the tone).

    A Hann-windowed single-bin DFT (Goertzel in closed form) at exactly `freq`.
    """
    f = frames(pcm, rate, frame_s)
    n = f.shape[1] if f.size else round(frame_s * rate)
    w = np.hanning(n)
    t = np.arange(n) / rate
    basis = w * np.exp(-2j * np.pi * freq * t)
    amp = 2 * np.abs(f @ basis) / w.sum()           # amplitude of the tone component
    tone_pow = amp * amp / 2
    frame_pow = np.mean(f * f, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.maximum(10 * np.log10(tone_pow / FULL_SCALE**2), SILENCE_DB)
        fraction = np.where(frame_pow > 0, tone_pow / frame_pow, 0.0)
    return level, np.minimum(fraction, 1.0)


def tone_segments(pcm: npt.ArrayLike, freq: float, min_db: float = -40.0,
                  rate: int = RATE, min_fraction: float = 0.5,
                  min_duration: float = 0.0) -> list[tuple[float, float]]:
    """(start_s, end_s) spans where `freq` is present: per 20 ms frame, the tone is at least
    `min_db` dBFS RMS and carries at least `min_fraction` of the frame's power (use ~0.3 for
    one tone of a DTMF pair). Spans shorter than `min_duration` seconds are dropped."""
    level, fraction = tone_power(pcm, freq, rate)
    present = (level >= min_db) & (fraction >= min_fraction)
    spans: list[tuple[float, float]] = []
    start: int | None = None
    for i, on in enumerate([*present.tolist(), False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            spans.append((start * FRAME_S, i * FRAME_S))
            start = None
    return [s for s in spans if s[1] - s[0] >= min_duration - 1e-9]


def tone_duration(pcm: npt.ArrayLike, freq: float, min_db: float = -40.0, rate: int = RATE,
                  min_fraction: float = 0.5) -> float:
    """Total seconds in which `freq` is present (see tone_segments)."""
    spans = tone_segments(pcm, freq, min_db, rate, min_fraction)
    return float(sum(end - start for start, end in spans))


def band_fraction(pcm: npt.ArrayLike, low: float, high: float, rate: int = RATE) -> float:
    """Fraction of the signal's power between `low` and `high` Hz."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size == 0 or not np.any(x):
        return 0.0
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    total = power.sum()
    return float(power[(freqs >= low) & (freqs <= high)].sum() / total) if total else 0.0


def speech_like(pcm: npt.ArrayLike, rate: int = RATE,
                active_db: float = -45.0) -> tuple[float, float]:
    """(active_seconds, fraction of the active frames' power in 300-3400 Hz).

    Active frames are 20 ms frames at or above `active_db` dBFS. Speech over a phone line
    gives a fraction near 1 and a level that varies from frame to frame; see
    `level_spread` to tell speech from a steady tone.
    """
    f = frames(pcm, rate)
    active = frame_dbfs(pcm, rate) >= active_db
    if not active.any():
        return 0.0, 0.0
    return float(active.sum() * FRAME_S), band_fraction(f[active].reshape(-1), 300, 3400, rate)


def level_spread(pcm: npt.ArrayLike, rate: int = RATE, active_db: float = -45.0) -> float:
    """Standard deviation (dB) of active frames' levels: ~0 for a tone, several dB for speech."""
    levels = frame_dbfs(pcm, rate)
    active = levels[levels >= active_db]
    return float(active.std()) if active.size else 0.0


def trim_silence(pcm: npt.ArrayLike, threshold_db: float = -45.0, rate: int = RATE) -> Pcm:
    """Drop leading and trailing 20 ms frames quieter than `threshold_db` dBFS."""
    data = np.asarray(pcm, dtype=np.int16)
    loud = np.nonzero(frame_dbfs(data, rate) >= threshold_db)[0]
    if loud.size == 0:
        return data[:0]
    n = round(FRAME_S * rate)
    return data[loud[0] * n : (loud[-1] + 1) * n]


def best_alignment(reference: npt.ArrayLike, signal: npt.ArrayLike) -> tuple[int, float]:
    """(lag, normalised correlation) where `reference` best matches inside `signal`.

    `lag` is the sample offset of the reference's start in the signal; the correlation is
    1.0 for an exact (scaled) copy and near 0 for unrelated audio.
    """
    ref = np.asarray(reference, dtype=np.float64)
    sig = np.asarray(signal, dtype=np.float64)
    if ref.size == 0 or sig.size < ref.size:
        return 0, 0.0
    size = 1 << int(np.ceil(np.log2(ref.size + sig.size)))
    corr = np.fft.irfft(np.fft.rfft(sig, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[: sig.size - ref.size + 1]
    window = np.cumsum(np.concatenate([[0.0], sig * sig]))
    energy = window[ref.size :] - window[: sig.size - ref.size + 1]
    denom = np.sqrt(energy * float(ref @ ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(denom > 0, corr / denom, 0.0)
    lag = int(np.argmax(norm))
    return lag, float(norm[lag])
