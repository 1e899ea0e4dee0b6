"""Audio files and URLs, decoded to int16 mono 8 kHz for the players.

Sources are ``http://`` and ``https://`` URLs (fetched with aiohttp) and local files
(``file://`` URLs or plain paths) that resolve, after symlinks, under the configured media
directory. Anything PyAV's FFmpeg can read is accepted: WAV (PCM, µ-law, A-law), MP3,
OGG/Opus, FLAC, AU, …

Caching, from cheapest to dearest:
1. memory: an LRU of decoded arrays bounded in bytes, keyed by URL (local files also by
   mtime and size, so an edited prompt is picked up);
2. disk: decoded arrays of HTTP sources that came with an ``ETag`` or ``Last-Modified``,
   revalidated with a conditional GET once per process (a 304 skips download and decode);
3. single-flight: concurrent loads of one source share one fetch and one decode.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import av
import numpy as np

from media.cache import DiskCache, MemoryCache, SingleFlight, cache_key, frozen
from media.errors import AudioFetchError

RATE = 8000
_CHUNK = 1 << 16

# What PyAV raises on hostile input is not one class: FFmpegError (a ValueError or an
# OSError depending on the errno), plus plain ValueError/IndexError from its wrappers.
_DECODE_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError, IndexError, RuntimeError)


def decode_audio(
    data: bytes, *, source: str = "audio", max_samples: int | None = None
) -> np.ndarray:
    """Decode a whole file held in memory to read-only int16 mono 8 kHz samples.

    Blocking (FFmpeg work): call it through `asyncio.to_thread`. `source` names the
    input in error messages. Raises AudioFetchError when the data is not decodable audio
    or decodes to more than `max_samples` samples.
    """
    if not data:
        raise AudioFetchError(f"can't decode {source}: it is empty", url=source)
    try:
        return frozen(_decode(data, source, max_samples))
    except AudioFetchError:
        raise
    except _DECODE_ERRORS as exc:
        raise AudioFetchError(f"can't decode {source}: {exc}", url=source) from exc


def _decode(data: bytes, source: str, max_samples: int | None) -> np.ndarray:
    blocks: list[np.ndarray] = []
    total = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise AudioFetchError(f"can't decode {source}: it has no audio stream", url=source)
        stream = container.streams.audio[0]
        # libswresample low-passes before decimating: measured on 22.05 kHz input it
        # passes 3.4 kHz at -0.1 dB and puts 4.5 kHz (would alias to 3.5 kHz) at -62 dB.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in _frames_then_flush(container, stream):
            for out in resampler.resample(frame):
                block = out.to_ndarray().reshape(-1)
                total += block.size
                if max_samples is not None and total > max_samples:
                    raise AudioFetchError(
                        f"can't decode {source}: longer than {max_samples / RATE:g} s",
                        url=source,
                    )
                blocks.append(block)
    if not blocks:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(blocks).astype(np.int16, copy=False)


def _frames_then_flush(container: Any, stream: Any) -> Any:
    yield from container.decode(stream)
    yield None  # flushes the resampler's delay line


class AudioLoader:
    """Fetches, decodes and caches audio for PLAY-style actions.

    `media_dir` is the only place local files may come from; with None, only http(s)
    URLs are accepted. `max_bytes` bounds a download or file, `timeout` (seconds) a whole
    HTTP fetch, `max_duration_s` the decoded audio, `memory_bytes` the in-memory cache.
    Returned arrays are shared and read-only.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        media_dir: Path | None = None,
        max_bytes: int = 50 << 20,
        timeout: float = 15.0,
        max_duration_s: float = 3600.0,
        memory_bytes: int = 64 << 20,
    ) -> None:
        self.media_dir = Path(media_dir) if media_dir is not None else None
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_samples = int(max_duration_s * RATE)
        self._disk = DiskCache(Path(cache_dir))
        self._memory = MemoryCache(memory_bytes)
        self._flight: SingleFlight[tuple[object, ...], np.ndarray] = SingleFlight()
        self._session: aiohttp.ClientSession | None = None
        self.fetches = 0  # HTTP requests sent; tests use it to see cache hits

    async def load(self, url: str) -> np.ndarray:
        """Return the audio at `url` as read-only int16 mono 8 kHz samples."""
        url = url.strip()
        if not url:
            raise AudioFetchError("no audio URL given", url=url)
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            return await self._load_http(url)
        if scheme in ("", "file"):
            return await self._load_file(url)
        raise AudioFetchError(
            f"can't fetch {url}: unsupported URL scheme {scheme!r} "
            "(use http, https, file or a path under the media directory)",
            url=url,
        )

    async def close(self) -> None:
        """Close the HTTP session; a later `load` opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- HTTP ---------------------------------------------------------------------------

    async def _load_http(self, url: str) -> np.ndarray:
        key = ("url", url)
        cached = self._memory.get(key)
        if cached is not None:
            return cached
        samples = await self._flight.run(key, lambda: self._fetch_http(url))
        self._memory.put(key, samples)
        return samples

    async def _fetch_http(self, url: str) -> np.ndarray:
        disk_key = cache_key("audio-url", url)
        meta = await asyncio.to_thread(self._disk.load_meta, disk_key)
        conditional = _conditional_headers(meta) if meta and meta.get("url") == url else {}
        status, body, headers = await self._http_get(url, conditional)
        if status == 304:
            samples = await asyncio.to_thread(self._disk.load, disk_key)
            if samples is not None:
                await asyncio.to_thread(self._disk.touch, disk_key)
                return samples
            # The cached copy vanished between the metadata read and now: fetch in full.
            status, body, headers = await self._http_get(url, {})
        samples = await asyncio.to_thread(
            decode_audio, body, source=url, max_samples=self.max_samples
        )
        validators = _validators(headers)
        if validators:
            await asyncio.to_thread(self._disk.store, disk_key, samples, {"url": url, **validators})
        return samples

    async def _http_get(
        self, url: str, headers: Mapping[str, str]
    ) -> tuple[int, bytes, Mapping[str, str]]:
        session = self._get_session()
        self.fetches += 1
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with session.get(url, headers=dict(headers), timeout=timeout) as resp:
                if resp.status == 304 and headers:
                    return 304, b"", resp.headers
                if not 200 <= resp.status < 300:
                    raise AudioFetchError(
                        f"HTTP {resp.status} fetching {url}", url=url, status=resp.status
                    )
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    raise self._too_large(url, resp.content_length)
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise self._too_large(url, len(body))
                return resp.status, bytes(body), resp.headers
        except TimeoutError as exc:
            raise AudioFetchError(
                f"timed out after {self.timeout:g} s fetching {url}", url=url
            ) from exc
        except aiohttp.ClientError as exc:
            raise AudioFetchError(f"can't fetch {url}: {exc}", url=url) from exc

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use because a ClientSession belongs to the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _too_large(self, url: str, size: int) -> AudioFetchError:
        return AudioFetchError(
            f"{url} is too large: {size} bytes or more, limit {self.max_bytes}", url=url
        )

    # -- local files ----------------------------------------------------------------------

    async def _load_file(self, url: str) -> np.ndarray:
        path, st = await asyncio.to_thread(self._resolve_local, url)
        # mtime and size in the key: replacing a prompt file takes effect on the next load.
        key = ("file", str(path), st.st_mtime_ns, st.st_size)
        cached = self._memory.get(key)
        if cached is not None:
            return cached
        samples = await self._flight.run(
            key, lambda: asyncio.to_thread(self._read_and_decode, path, url)
        )
        self._memory.put(key, samples)
        return samples

    def _resolve_local(self, url: str) -> tuple[Path, os.stat_result]:
        if self.media_dir is None:
            raise AudioFetchError(
                f"refusing local file {url}: no media directory is configured, "
                "only http:// and https:// URLs are allowed",
                url=url,
            )
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):
                raise AudioFetchError(f"refusing {url}: file URLs must be local", url=url)
            raw = Path(unquote(parts.path))
        else:
            raw = Path(url)
        root = self.media_dir.resolve()
        path = (root / raw).resolve()  # an absolute `raw` replaces `root` here
        if not path.is_relative_to(root):
            raise AudioFetchError(
                f"refusing {url}: {path} is not under the media directory {root}", url=url
            )
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise AudioFetchError(f"can't read {url}: {path} not found", url=url) from exc
        except OSError as exc:
            raise AudioFetchError(f"can't read {url}: {exc.strerror}", url=url) from exc
        if not stat.S_ISREG(st.st_mode):
            raise AudioFetchError(f"can't read {url}: {path} is not a regular file", url=url)
        if st.st_size > self.max_bytes:
            raise self._too_large(url, st.st_size)
        return path, st

    def _read_and_decode(self, path: Path, url: str) -> np.ndarray:
        try:
            with path.open("rb") as f:
                data = f.read(self.max_bytes + 1)
        except OSError as exc:
            raise AudioFetchError(f"can't read {url}: {exc.strerror}", url=url) from exc
        if len(data) > self.max_bytes:
            raise self._too_large(url, len(data))
        return decode_audio(data, source=url, max_samples=self.max_samples)


def _validators(headers: Mapping[str, str]) -> dict[str, str]:
    found = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    return {name: value for name, value in found.items() if value}


def _conditional_headers(meta: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if meta.get("etag"):
        headers["If-None-Match"] = str(meta["etag"])
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = str(meta["last_modified"])
    return headers
