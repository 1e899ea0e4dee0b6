"""Text to speech for the SAY action, with espeak-ng, cached on disk.

espeak-ng runs as an asyncio subprocess (text on stdin, a 22.05 kHz WAV on stdout); the
WAV is decoded and resampled to 8 kHz by PyAV in a worker thread. Results are cached in
memory and on disk under the sha256 of (engine version, espeak-ng version, text, voice,
speed), and concurrent requests for the same speech share one synthesis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.audio import decode_audio
from media.cache import DiskCache, MemoryCache, SingleFlight, cache_key, frozen
from media.errors import AudioFetchError, TtsError, UnsupportedVoice

# Bump when a change here alters the audio produced for the same inputs.
ENGINE_VERSION = 1
MAX_TEXT_CHARS = 5000
DEFAULT_SPEED = 150  # words per minute; espeak-ng's 175 is hurried over a phone line
SYNTH_TIMEOUT_S = 60.0

_VOICES = {"kate": "female", "kevin": "male", "watson": None}
_LANGUAGES = {
    "english": "en-us",
    "englishus": "en-us",
    "englishgb": "en-gb",
    "french": "fr-fr",
    "german": "de",
    "italian": "it",
    "japanese": "ja",
    # Watson's only Portuguese voices were Brazilian (pt-BR), so the service meant pt-BR.
    "portuguese": "pt-br",
    "spanish": "es",
}
_GENDER_VARIANTS = {"female": "f3", "male": "m3"}
_SPELLING = {  # how error messages list the accepted values: as the spec spells them
    "voice": "Kate, Kevin, Watson",
    "language": "english, englishUS, englishGB, french, german, italian, japanese, "
    "portuguese, spanish",
    "gender": "female, male",
}


@dataclass(frozen=True)
class VoiceChoice:
    """What espeak-ng is run with: ``-v espeak_voice -s speed``."""

    espeak_voice: str  # e.g. "en-us+f3"
    speed: int  # words per minute


def resolve_voice(voice: str | None, language: str | None, gender: str | None) -> VoiceChoice:
    """Map the SAY action's voice, language and gender to an espeak-ng voice.

    Values are case-insensitive; None (parameter absent) takes the spec's default.

    - voice: Kate (default) is a female voice, Kevin a male one. Watson needs an IBM
      account in the hosted service; here it is espeak-ng's voice for the language with
      the requested gender (female unless given), so call flows written for Watson run.
    - language: english and englishUS → en-us, englishGB → en-gb, french → fr-fr,
      german → de, italian → it, japanese → ja (espeak-ng reads kana, not kanji),
      portuguese → pt-br (Watson's Portuguese was Brazilian), spanish → es. The spec
      lists english for Kate and Kevin and the rest for Watson; any voice is accepted
      with any language here, because rejecting a working combination helps nobody.
    - gender: when given it wins over the voice's own gender (``Kate`` + ``male`` speaks
      male); when None the voice decides. Callers must therefore pass None, not the
      spec's default "female", when the action did not set gender, or Kevin would become
      female.

    Raises UnsupportedVoice naming the bad value and the accepted ones.
    """
    voice_key = _pick("voice", voice, _VOICES) or "kate"
    lang = _LANGUAGES[_pick("language", language, _LANGUAGES) or "english"]
    chosen = _pick("gender", gender, _GENDER_VARIANTS) or _VOICES[voice_key] or "female"
    return VoiceChoice(f"{lang}+{_GENDER_VARIANTS[chosen]}", DEFAULT_SPEED)


def _pick(what: str, value: str | None, accepted: Mapping[str, object]) -> str | None:
    if value is None:
        return None
    key = value.strip().lower()
    if key not in accepted:
        raise UnsupportedVoice(f"unsupported SAY {what} {value!r}: accepted {_SPELLING[what]}")
    return key


class TtsEngine:
    """Synthesizes SAY text to int16 mono 8 kHz samples (shared, read-only arrays).

    `max_concurrency` bounds the espeak-ng processes running at once, so that a burst
    of calls entering an IVR does not fork one synthesizer per call.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        espeak: str = "espeak-ng",
        max_concurrency: int = 2,
        memory_bytes: int = 32 << 20,
    ) -> None:
        self.espeak = espeak
        self._disk = DiskCache(Path(cache_dir))
        self._memory = MemoryCache(memory_bytes)
        self._flight: SingleFlight[str, np.ndarray] = SingleFlight()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._espeak_version: str | None = None
        self._version_lock = asyncio.Lock()
        self.syntheses = 0  # espeak-ng runs that produced speech; tests watch it

    async def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        gender: str | None = None,
    ) -> np.ndarray:
        """Speech for `text`; empty (or blank) text gives an empty array."""
        choice = resolve_voice(voice, language, gender)
        if len(text) > MAX_TEXT_CHARS:
            raise TtsError(
                f"SAY text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}"
            )
        if not text.strip():
            return frozen(np.zeros(0, dtype=np.int16))
        version = await self._version()
        key = cache_key("tts", ENGINE_VERSION, version, text, choice.espeak_voice, choice.speed)
        cached = self._memory.get(key)
        if cached is not None:
            return cached
        samples = await self._flight.run(key, lambda: self._load_or_synthesize(key, text, choice))
        self._memory.put(key, samples)
        return samples

    async def _load_or_synthesize(self, key: str, text: str, choice: VoiceChoice) -> np.ndarray:
        samples = await asyncio.to_thread(self._disk.load, key)
        if samples is not None:
            return samples
        async with self._slots:
            wav = await self._run_espeak(text, choice)
        try:
            samples = await asyncio.to_thread(decode_audio, wav, source="espeak-ng output")
        except AudioFetchError as exc:
            raise TtsError(f"espeak-ng produced unusable audio: {exc}") from exc
        self.syntheses += 1
        await asyncio.to_thread(self._disk.store, key, samples)
        return samples

    async def _run_espeak(self, text: str, choice: VoiceChoice) -> bytes:
        # Text goes in on stdin, never argv: a leading "-" is then text, not an option,
        # and 5000 characters need no quoting. "-b 1" declares it UTF-8.
        args = ["-v", choice.espeak_voice, "-s", str(choice.speed), "-b", "1", "--stdout"]
        stdout, stderr, rc = await self._exec(args, text.encode("utf-8"))
        if rc != 0 or len(stdout) <= 44:  # 44 bytes: a WAV header with no samples
            detail = stderr.decode("utf-8", "replace").strip() or f"exit status {rc}"
            raise TtsError(f"espeak-ng failed for voice {choice.espeak_voice}: {detail}")
        return stdout

    async def _version(self) -> str:
        # Part of the cache key: an upgraded espeak-ng must not be answered by audio
        # the old one made. Asked once per engine.
        async with self._version_lock:  # a burst of first calls asks only once
            if self._espeak_version is None:
                stdout, _, rc = await self._exec(["--version"], None)
                if rc != 0:
                    raise TtsError(f"{self.espeak} --version failed (exit status {rc})")
                self._espeak_version = stdout.decode("utf-8", "replace").strip()
            return self._espeak_version

    async def _exec(self, args: list[str], stdin: bytes | None) -> tuple[bytes, bytes, int]:
        # No input: no stdin pipe at all. uvloop closes a child's pipes when it exits, and
        # feeding even b"" to an exited child then raises RuntimeError instead of the
        # BrokenPipeError asyncio's own loop gives (`--version` exits at once).
        try:
            proc = await asyncio.create_subprocess_exec(
                self.espeak,
                *args,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise TtsError(
                f"can't run {self.espeak!r} ({exc.strerror}): install espeak-ng "
                "(Debian: apt-get install espeak-ng)"
            ) from exc
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), SYNTH_TIMEOUT_S)
        except TimeoutError as exc:
            raise TtsError(f"espeak-ng took longer than {SYNTH_TIMEOUT_S:g} s") from exc
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            # The child exited without reading its text (uvloop: RuntimeError on the
            # closed pipe). Its exit status says why; the text was never spoken.
            await proc.wait()
            raise TtsError(
                f"espeak-ng exited (status {proc.returncode}) before reading its text: {exc}"
            ) from exc
        finally:
            # Timed out or cancelled: do not leave the child running or unreaped.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return stdout, stderr, proc.returncode or 0
