"""SAY voices and the espeak-ng engine (real espeak-ng, as `make install` provides)."""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from media.errors import MediaError, TtsError, UnsupportedVoice
from media.tts import MAX_TEXT_CHARS, TtsEngine, VoiceChoice, resolve_voice

RATE = 8000
SENTENCE = "Hello, and thank you for calling the test line."

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make install)"
)


# -- resolve_voice -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice", "language", "gender", "expected"),
    [
        (None, None, None, "en-us+f3"),
        ("Kate", "english", None, "en-us+f3"),
        ("Kevin", "english", None, "en-us+m3"),
        ("kevin", None, None, "en-us+m3"),
        ("KATE", "ENGLISHGB", None, "en-gb+f3"),
        (None, "englishUS", None, "en-us+f3"),
        ("Watson", "french", None, "fr-fr+f3"),
        ("Watson", "german", "male", "de+m3"),
        ("Watson", "italian", "female", "it+f3"),
        ("Watson", "japanese", None, "ja+f3"),
        ("Watson", "portuguese", None, "pt-br+f3"),
        ("Watson", "spanish", "male", "es+m3"),
        ("Kate", "english", "male", "en-us+m3"),  # explicit gender wins
        ("Kevin", "english", "female", "en-us+f3"),
        ("Kevin", "spanish", None, "es+m3"),  # any voice with any language
        (" Kate ", " english ", " Female ", "en-us+f3"),
    ],
)
def test_resolve_voice(
    voice: str | None, language: str | None, gender: str | None, expected: str
) -> None:
    choice = resolve_voice(voice, language, gender)
    assert choice == VoiceChoice(expected, choice.speed)
    assert 80 <= choice.speed <= 450


@pytest.mark.parametrize(
    ("voice", "language", "gender", "message"),
    [
        ("Bob", None, None, "unsupported SAY voice 'Bob': accepted Kate, Kevin, Watson"),
        (None, "klingon", None, "unsupported SAY language 'klingon': accepted english, "
         "englishUS, englishGB, french, german, italian, japanese, portuguese, spanish"),
        (None, None, "robot", "unsupported SAY gender 'robot': accepted female, male"),
        ("", None, None, "unsupported SAY voice '': accepted Kate, Kevin, Watson"),
    ],
)  # fmt: skip
def test_resolve_voice_rejects(
    voice: str | None, language: str | None, gender: str | None, message: str
) -> None:
    with pytest.raises(UnsupportedVoice) as info:
        resolve_voice(voice, language, gender)
    assert str(info.value) == message
    assert isinstance(info.value, MediaError)


# -- helpers -------------------------------------------------------------------------------


def band_fractions(x: np.ndarray) -> tuple[float, float, float]:
    """Energy below 300 Hz, in 300-3400 Hz and above 3400 Hz, as fractions of the total."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    total = power.sum()
    low = power[freqs < 300].sum() / total
    high = power[freqs > 3400].sum() / total
    return low, 1.0 - low - high, high


def median_f0(x: np.ndarray) -> float:
    """Median autocorrelation pitch (60-400 Hz) over the louder 40 ms frames."""
    x = x.astype(np.float64)
    overall = np.sqrt(np.mean(x**2))
    n, lo, hi = 320, RATE // 400, RATE // 60
    estimates = []
    for start in range(0, x.size - n, n // 2):
        frame = x[start : start + n] - x[start : start + n].mean()
        if np.sqrt(np.mean(frame**2)) < overall:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:  # voiced
            estimates.append(RATE / lag)
    assert len(estimates) > 10
    return float(np.median(estimates))


def wav_bytes(samples: np.ndarray, rate: int = 22050) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return buf.getvalue()


# -- synthesis -----------------------------------------------------------------------------


@needs_espeak
async def test_sentence_is_plausible_speech(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path)
    speech = await engine.synthesize(SENTENCE)
    assert speech.dtype == np.int16
    assert speech.ndim == 1
    assert 1.5 <= speech.size / RATE <= 5.0
    low, band, high = band_fractions(speech)
    assert low < 0.35
    assert band > 0.6
    assert high < 0.02  # resampled to 8 kHz without aliasing into the top of the band
    assert 1000 < np.abs(speech).max() < 32767  # audible, not clipped
    assert not speech.flags.writeable


@needs_espeak
async def test_longer_text_takes_longer(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path)
    short = await engine.synthesize("Goodbye.")
    long = await engine.synthesize(SENTENCE + " " + SENTENCE)
    assert 0.3 <= short.size / RATE <= 1.5
    assert long.size > 3 * short.size


@needs_espeak
async def test_second_call_is_a_memory_hit(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path)
    first = await engine.synthesize(SENTENCE)
    second = await engine.synthesize(SENTENCE)
    assert second is first
    assert engine.syntheses == 1


@needs_espeak
async def test_disk_cache_survives_a_new_engine(tmp_path: Path) -> None:
    first = await TtsEngine(tmp_path).synthesize(SENTENCE, voice="Kevin")
    [cached_file] = tmp_path.glob("*.npy")
    mtime = cached_file.stat().st_mtime_ns
    engine = TtsEngine(tmp_path)
    again = await engine.synthesize(SENTENCE, voice="Kevin")
    assert engine.syntheses == 0
    assert np.array_equal(again, first)
    assert cached_file.stat().st_mtime_ns == mtime  # read, not rewritten


@needs_espeak
async def test_cache_key_includes_voice_and_text(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path)
    await engine.synthesize(SENTENCE)
    await engine.synthesize(SENTENCE, voice="Kevin")
    await engine.synthesize(SENTENCE + "!")
    await engine.synthesize(SENTENCE, voice="kate", language="ENGLISH")  # same as the first
    assert engine.syntheses == 3
    assert len(list(tmp_path.glob("*.npy"))) == 3


@needs_espeak
async def test_concurrent_identical_requests_share_one_synthesis(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path)
    results = await asyncio.gather(*(engine.synthesize(SENTENCE) for _ in range(6)))
    assert engine.syntheses == 1
    assert all(r is results[0] for r in results)


@needs_espeak
async def test_kevin_is_lower_pitched_than_kate(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path)
    kate = median_f0(await engine.synthesize(SENTENCE, voice="Kate"))
    kevin = median_f0(await engine.synthesize(SENTENCE, voice="Kevin"))
    assert 150 < kate < 300
    assert 70 < kevin < 150
    assert kevin < 0.75 * kate


@needs_espeak
@pytest.mark.parametrize("language", ["french", "german", "spanish", "portuguese", "italian"])
async def test_languages_synthesize(tmp_path: Path, language: str) -> None:
    engine = TtsEngine(tmp_path)
    text = {"french": "Bonjour", "german": "Guten Tag", "spanish": "Buenos días",
            "portuguese": "Bom dia", "italian": "Buongiorno"}[language]  # fmt: skip
    speech = await engine.synthesize(text, voice="Watson", language=language)
    assert 0.3 <= speech.size / RATE <= 3.0


@needs_espeak
async def test_text_that_looks_like_options_is_spoken(tmp_path: Path) -> None:
    speech = await TtsEngine(tmp_path).synthesize("--help -v xx")
    assert speech.size / RATE > 0.5


@needs_espeak
async def test_non_ascii_text(tmp_path: Path) -> None:
    speech = await TtsEngine(tmp_path).synthesize("Ça coûte dix euros.", language="french")
    assert speech.size / RATE > 0.5


@pytest.mark.parametrize("text", ["", "   ", "\n"])
async def test_empty_text_runs_nothing(tmp_path: Path, text: str) -> None:
    # A missing binary proves no subprocess is started.
    engine = TtsEngine(tmp_path, espeak="/nonexistent/espeak-ng")
    speech = await engine.synthesize(text)
    assert speech.size == 0
    assert speech.dtype == np.int16


async def test_too_long_text(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path, espeak="/nonexistent/espeak-ng")
    with pytest.raises(TtsError, match=r"5001 characters long; the limit is 5000"):
        await engine.synthesize("a" * (MAX_TEXT_CHARS + 1))


async def test_bad_voice_raised_before_running_anything(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path, espeak="/nonexistent/espeak-ng")
    with pytest.raises(UnsupportedVoice, match="'Sam'"):
        await engine.synthesize("hello", voice="Sam")


async def test_missing_espeak_says_to_install_it(tmp_path: Path) -> None:
    engine = TtsEngine(tmp_path, espeak="/nonexistent/espeak-ng")
    with pytest.raises(TtsError, match=r"install espeak-ng \(Debian: apt-get install espeak-ng\)"):
        await engine.synthesize("hello")


async def test_failing_espeak_reports_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "fake-espeak"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo fake 1.0; exit 0; fi\n'
        'echo "voice exploded" >&2\nexit 3\n'
    )
    fake.chmod(0o755)
    engine = TtsEngine(tmp_path / "cache", espeak=str(fake))
    with pytest.raises(TtsError, match="espeak-ng failed for voice en-us\\+f3: voice exploded"):
        await engine.synthesize("hello")


async def test_concurrency_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = TtsEngine(tmp_path, max_concurrency=2)
    running = 0
    peak = 0
    wav = wav_bytes(np.zeros(2205, dtype=np.int16))

    async def fake_run(text: str, choice: VoiceChoice) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return wav

    async def fake_version() -> str:
        return "fake"

    monkeypatch.setattr(engine, "_run_espeak", fake_run)
    monkeypatch.setattr(engine, "_version", fake_version)
    results = await asyncio.gather(*(engine.synthesize(f"text {i}") for i in range(6)))
    assert peak == 2
    assert engine.syntheses == 6
    assert all(r.size == 800 for r in results)  # 0.1 s at 22.05 kHz → 0.1 s at 8 kHz


def _under_uvloop_with_a_busy_gil(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main` the way the switch does (uvloop), while two threads hold the GIL as the
    engine's clock does: a child that exits at once is then seen gone before its pipes
    are fed, which is the order that used to break the first SAY of a switch."""
    uvloop = pytest.importorskip("uvloop")
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(10_000))

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        uvloop.run(main())
    finally:
        stop.set()
        for t in threads:
            t.join()


def _fake_espeak(tmp_path: Path, body: str) -> Path:
    fake = tmp_path / "fake-espeak"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo fake 1.0; exit 0; fi\n{body}\n')
    fake.chmod(0o755)
    return fake


def test_version_of_a_child_that_exits_at_once_under_uvloop(tmp_path: Path) -> None:
    fake = _fake_espeak(tmp_path, "exit 0")
    versions: list[str] = []

    async def main() -> None:
        for i in range(40):
            versions.append(await TtsEngine(tmp_path / str(i), espeak=str(fake))._version())

    _under_uvloop_with_a_busy_gil(main)
    assert versions == ["fake 1.0"] * 40


def test_espeak_that_never_reads_its_text_is_a_tts_error_under_uvloop(tmp_path: Path) -> None:
    fake = _fake_espeak(tmp_path, 'echo "no such voice" >&2\nexit 2')
    errors: list[str] = []

    async def main() -> None:
        for i in range(20):
            engine = TtsEngine(tmp_path / str(i), espeak=str(fake))
            with pytest.raises(TtsError) as caught:
                await engine.synthesize("x" * MAX_TEXT_CHARS)
            errors.append(str(caught.value))

    _under_uvloop_with_a_busy_gil(main)
    # Whichever way the race went, the error names espeak-ng and its exit status.
    named = ["espeak-ng" in e and ("no such voice" in e or "status 2" in e) for e in errors]
    assert len(errors) == 20 and all(named), errors
