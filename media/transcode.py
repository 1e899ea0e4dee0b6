"""Recording downloads: a recording's WAV transcoded to the spec's download formats.

The spec's Download Recording (`GET /History/Recordings/{id}/{format}`) lists ulw, vox,
mp3, wav, wavM, ogg, aac and au. A recording (see `media.recorder`) is a 16-bit PCM WAV
at 8 kHz, stereo or mono; `transcode` reads it in blocks and writes one of the formats
into a binary file object. Blocking and CPU-bound: run it with `asyncio.to_thread` (the
PyAV encoders release the GIL while they encode; sox runs as a child process).

Choices where the spec is silent (FORMATS holds them as data):
- `wav` is the recording itself; `wavM` its mono mixdown (the two channels summed,
  saturating, so each party keeps its level).
- `ulw` (raw µ-law) and `vox` (Dialogic/OKI 4-bit ADPCM) have no header that could say
  how many channels they hold, and telephony tools read them as 8 kHz mono: they are
  the mixdown. The formats with a header (mp3, ogg, aac, au) keep the recording's
  channels.
- `au` is Sun AU with µ-law samples, the format's classic telephone encoding.
- `ogg` is Ogg Vorbis (Xiph names `.ogg` for Vorbis, `.opus` for Opus), encoded by sox's
  libvorbis: FFmpeg's own Vorbis encoder is experimental and stereo only.
- `aac` is AAC-LC in an MP4 (`.m4a`) file rather than bare ADTS: ADTS cannot carry the
  encoder delay (128 ms at 8 kHz), MP4's edit list does, so the file plays for exactly
  the recording's length.
- mp3 and aac at 16 kbit/s per channel, ample for 8 kHz speech.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import numpy as np
import numpy.typing as npt

RATE = 8000
BLOCK = RATE * 4  # samples per channel read at a time
SOX_TIMEOUT_S = 600.0
BITS_PER_CHANNEL = 16_000

Block = npt.NDArray[np.int16]  # (samples, channels), interleaved
Encoder = Callable[[Iterator[Block], int, IO[bytes]], None]


class TranscodeError(Exception):
    """A recording could not be transcoded: unreadable source or a failed encoder."""


def mixdown(block: Block) -> Block:
    """One channel: the channels summed, saturating at full scale."""
    if block.shape[1] == 1:
        return block
    total = block.astype(np.int32).sum(axis=1, keepdims=True)
    return np.clip(total, -32768, 32767).astype(np.int16)


def _pyav(container: str, codec: str, *, bit_rate: bool = False) -> Encoder:
    def encode(blocks: Iterator[Block], channels: int, out: IO[bytes]) -> None:
        layout = "stereo" if channels == 2 else "mono"
        with av.open(out, "w", format=container) as c:
            stream = c.add_stream(codec, rate=RATE, layout=layout)
            assert isinstance(stream, av.AudioStream)
            if bit_rate:
                stream.bit_rate = BITS_PER_CHANNEL * channels
            pts = 0
            for block in blocks:
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(block).reshape(1, -1), format="s16", layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = RATE, pts, Fraction(1, RATE)
                pts += block.shape[0]
                c.mux(stream.encode(frame))
            c.mux(stream.encode(None))
    return encode


def _wav(blocks: Iterator[Block], channels: int, out: IO[bytes]) -> None:
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        for block in blocks:
            w.writeframes(block.astype("<i2", copy=False).tobytes())


def _sox(*output: str) -> Encoder:
    def encode(blocks: Iterator[Block], channels: int, out: IO[bytes]) -> None:
        sox = shutil.which("sox")
        if sox is None:
            raise TranscodeError("sox is not installed")
        raw_in = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-L",
                  "-r", str(RATE), "-c", str(channels), "-"]
        cmd = [sox, "-q", "-V1", *raw_in, *output, "-"]
        with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out,
                              stderr=subprocess.PIPE) as proc:
            assert proc.stdin is not None and proc.stderr is not None
            try:
                for block in blocks:
                    proc.stdin.write(block.astype("<i2", copy=False).tobytes())
            except BrokenPipeError:
                pass  # sox failed; its status and stderr say why
            finally:
                proc.stdin.close()
            err = proc.stderr.read()
            if proc.wait(SOX_TIMEOUT_S) != 0:
                raise TranscodeError(f"sox failed ({proc.returncode}): "
                                     f"{err.decode(errors='replace').strip()}")
    return encode


@dataclass(frozen=True, slots=True)
class Format:
    """One download format: its HTTP type, file extension, whether it is the mono
    mixdown, and its encoder."""

    content_type: str
    extension: str
    mono: bool
    encoder: Encoder

    def is_source(self, channels: int) -> bool:
        """True when a recording of `channels` channels is already in this format."""
        return self.encoder is _wav and (channels == 1 or not self.mono)


FORMATS: dict[str, Format] = {
    "ulw": Format("audio/basic", "ulw", True, _pyav("mulaw", "pcm_mulaw")),
    "vox": Format("audio/x-vox", "vox", True, _sox("-t", "vox", "-r", str(RATE))),
    "mp3": Format("audio/mpeg", "mp3", False, _pyav("mp3", "libmp3lame", bit_rate=True)),
    "wav": Format("audio/wav", "wav", False, _wav),
    "wavM": Format("audio/wav", "wav", True, _wav),
    "ogg": Format("audio/ogg", "ogg", False, _sox("-t", "ogg")),
    "aac": Format("audio/mp4", "m4a", False,
                  _pyav("ipod", "aac", bit_rate=True)),
    "au": Format("audio/basic", "au", False, _pyav("au", "pcm_mulaw")),
}


def _blocks(w: wave.Wave_read, mono: bool) -> Iterator[Block]:
    channels = w.getnchannels()
    while raw := w.readframes(BLOCK):
        block = np.frombuffer(raw, "<i2").reshape(-1, channels)
        yield mixdown(block) if mono else block


def transcode(source: Path, fmt: str, out: IO[bytes]) -> None:
    """Write the recording at `source` (16-bit PCM WAV, 8 kHz) to `out` in `fmt`, a key
    of FORMATS. `out` must be a real, seekable file (mp3 and aac seek back to finish
    their headers; sox writes to its descriptor). TranscodeError; KeyError for an
    unknown format."""
    spec = FORMATS[fmt]
    try:
        with wave.open(str(source), "rb") as w:
            if (w.getsampwidth(), w.getframerate()) != (2, RATE):
                raise TranscodeError(f"{source}: not 16-bit PCM at {RATE} Hz")
            channels = 1 if spec.mono else w.getnchannels()
            spec.encoder(_blocks(w, spec.mono), channels, out)
    except (OSError, EOFError, wave.Error, av.FFmpegError, ValueError) as exc:
        raise TranscodeError(f"can't transcode {source.name} to {fmt}: {exc}") from exc
    out.flush()
