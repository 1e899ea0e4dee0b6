"""AudioLoader: real files made in tmp_path, served by a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import web

from media.audio import AudioLoader, decode_audio
from media.errors import AudioFetchError, MediaError

RATE = 8000
TONE_HZ = 1000.0
TONE_S = 0.5


def sine(rate: int, seconds: float = TONE_S, freq: float = TONE_HZ) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def write_wav(path: Path, rate: int, seconds: float = TONE_S) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(sine(rate, seconds).tobytes())
    return path


def write_av(path: Path, fmt: str, codec: str, rate: int = 16000, stereo: bool = False) -> Path:
    """Encode the test tone with PyAV (its encoder reformats the s16 frame as needed)."""
    samples = sine(rate)
    layout = "stereo" if stereo else "mono"
    if stereo:
        samples = np.stack([samples, samples], axis=1)  # interleaved L R L R
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=layout)
        frame.rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def peak_hz(x: np.ndarray) -> float:
    mag = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / RATE)[np.argmax(mag)])


def assert_tone(x: np.ndarray, duration_tol: float = 0.01) -> None:
    assert x.dtype == np.int16
    assert x.ndim == 1
    assert x.size / RATE == pytest.approx(TONE_S, abs=duration_tol)
    assert peak_hz(x) == pytest.approx(TONE_HZ, abs=8)
    assert not x.flags.writeable  # shared with the cache


@dataclass
class Server:
    """A static file server with ETags, plus misbehaving routes; counts what it serves."""

    root: Path
    base: str = ""
    requests: list[str] = field(default_factory=list)
    not_modified: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    async def files(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(name)
        path = self.root / name
        if not path.is_file():
            raise web.HTTPNotFound()
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=data, headers={"ETag": etag})

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        # No Content-Length: the size limit must be enforced while reading.
        self.requests.append("chunked")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"\0" * 4096)
        await resp.write_eof()
        return resp

    async def slow(self, request: web.Request) -> web.StreamResponse:
        self.requests.append("slow")
        await self.release.wait()  # set at teardown, so the server stops promptly
        return web.Response(body=b"late")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    srv = Server(root)
    app = web.Application()
    app.router.add_get("/chunked", srv.chunked)
    app.router.add_get("/slow", srv.slow)
    app.router.add_get("/{name}", srv.files)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.base = f"http://127.0.0.1:{port}"
    yield srv
    srv.release.set()
    await runner.cleanup()


@pytest.fixture
async def loader(tmp_path: Path) -> AsyncIterator[AudioLoader]:
    media = tmp_path / "media"
    media.mkdir()
    audio = AudioLoader(tmp_path / "cache", media_dir=media)
    yield audio
    await audio.close()


# -- formats over HTTP -----------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
async def test_http_pcm_wav(server: Server, loader: AudioLoader, rate: int) -> None:
    write_wav(server.root / "tone.wav", rate)
    assert_tone(await loader.load(server.url("tone.wav")))


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "tolerance"),
    [
        ("ulaw.wav", "wav", "pcm_mulaw", 0.01),
        ("alaw.wav", "wav", "pcm_alaw", 0.01),
        ("tone.mp3", "mp3", "libmp3lame", 0.06),  # encoder delay and padding
        ("tone.ogg", "ogg", "libopus", 0.03),
    ],
)
async def test_http_compressed_formats(
    server: Server, loader: AudioLoader, name: str, fmt: str, codec: str, tolerance: float
) -> None:
    write_av(server.root / name, fmt, codec)
    assert_tone(await loader.load(server.url(name)), duration_tol=tolerance)


async def test_stereo_is_downmixed_without_gain(server: Server, loader: AudioLoader) -> None:
    write_av(server.root / "stereo.wav", "wav", "pcm_s16le", stereo=True)
    x = await loader.load(server.url("stereo.wav"))
    assert_tone(x)
    assert np.abs(x).max() == pytest.approx(8000, rel=0.05)


# -- HTTP failures -----------------------------------------------------------------------


async def test_http_404_names_status_and_url(server: Server, loader: AudioLoader) -> None:
    url = server.url("missing.wav")
    with pytest.raises(AudioFetchError) as info:
        await loader.load(url)
    assert str(info.value) == f"HTTP 404 fetching {url}"
    assert info.value.status == 404
    assert info.value.url == url
    assert isinstance(info.value, MediaError)


async def test_http_garbage_is_undecodable(server: Server, loader: AudioLoader) -> None:
    (server.root / "junk.wav").write_bytes(b"this is not audio, just some text\n" * 40)
    with pytest.raises(AudioFetchError, match=r"can't decode http://.*/junk\.wav"):
        await loader.load(server.url("junk.wav"))


async def test_http_oversize_by_content_length(server: Server, tmp_path: Path) -> None:
    write_wav(server.root / "tone.wav", 16000)  # 16 kB of samples
    audio = AudioLoader(tmp_path / "cache", max_bytes=4096)
    try:
        with pytest.raises(AudioFetchError, match="too large"):
            await audio.load(server.url("tone.wav"))
    finally:
        await audio.close()


async def test_http_oversize_while_streaming(server: Server, tmp_path: Path) -> None:
    audio = AudioLoader(tmp_path / "cache", max_bytes=10_000)
    try:
        with pytest.raises(AudioFetchError, match="too large"):
            await audio.load(server.url("chunked"))
    finally:
        await audio.close()


async def test_http_timeout(server: Server, tmp_path: Path) -> None:
    audio = AudioLoader(tmp_path / "cache", timeout=0.3)
    try:
        with pytest.raises(AudioFetchError, match=r"timed out after 0\.3 s fetching"):
            await audio.load(server.url("slow"))
    finally:
        await audio.close()


async def test_connection_refused(loader: AudioLoader) -> None:
    with pytest.raises(AudioFetchError, match=r"can't fetch http://127\.0\.0\.1:9/x\.wav"):
        await loader.load("http://127.0.0.1:9/x.wav")


@pytest.mark.parametrize("url", ["ftp://example.com/a.wav", "data:audio/wav;base64,AAAA"])
async def test_unsupported_scheme(loader: AudioLoader, url: str) -> None:
    with pytest.raises(AudioFetchError, match="unsupported URL scheme"):
        await loader.load(url)


async def test_empty_url(loader: AudioLoader) -> None:
    with pytest.raises(AudioFetchError, match="no audio URL"):
        await loader.load("  ")


# -- caching -------------------------------------------------------------------------------


async def test_memory_cache_hit_sends_no_request(server: Server, loader: AudioLoader) -> None:
    write_wav(server.root / "tone.wav", 8000)
    first = await loader.load(server.url("tone.wav"))
    second = await loader.load(server.url("tone.wav"))
    assert second is first
    assert server.requests == ["tone.wav"]


async def test_concurrent_loads_share_one_fetch(server: Server, loader: AudioLoader) -> None:
    write_wav(server.root / "tone.wav", 16000)
    results = await asyncio.gather(*(loader.load(server.url("tone.wav")) for _ in range(8)))
    assert server.requests == ["tone.wav"]
    assert all(r is results[0] for r in results)


async def test_cancelled_waiter_does_not_cancel_shared_fetch(
    server: Server, loader: AudioLoader
) -> None:
    write_wav(server.root / "tone.wav", 16000)
    first = asyncio.ensure_future(loader.load(server.url("tone.wav")))
    second = asyncio.ensure_future(loader.load(server.url("tone.wav")))
    await asyncio.sleep(0)
    first.cancel()
    assert_tone(await second)
    assert server.requests == ["tone.wav"]


async def test_failures_are_not_cached(server: Server, loader: AudioLoader) -> None:
    with pytest.raises(AudioFetchError):
        await loader.load(server.url("later.wav"))
    write_wav(server.root / "later.wav", 8000)
    assert_tone(await loader.load(server.url("later.wav")))


async def test_disk_cache_revalidates_with_etag(server: Server, tmp_path: Path) -> None:
    write_wav(server.root / "tone.wav", 16000)
    first = AudioLoader(tmp_path / "cache")
    try:
        original = await first.load(server.url("tone.wav"))
    finally:
        await first.close()
    # A new process: empty memory cache, same disk cache → conditional GET answered 304.
    second = AudioLoader(tmp_path / "cache")
    try:
        again = await second.load(server.url("tone.wav"))
    finally:
        await second.close()
    assert server.not_modified == 1
    assert np.array_equal(again, original)
    assert_tone(again)


async def test_disk_cache_sees_changed_content(server: Server, tmp_path: Path) -> None:
    write_wav(server.root / "tone.wav", 16000)
    first = AudioLoader(tmp_path / "cache")
    try:
        await first.load(server.url("tone.wav"))
    finally:
        await first.close()
    write_wav(server.root / "tone.wav", 16000, seconds=1.0)  # new content, new ETag
    second = AudioLoader(tmp_path / "cache")
    try:
        changed = await second.load(server.url("tone.wav"))
    finally:
        await second.close()
    assert server.not_modified == 0
    assert changed.size == 8000


async def test_too_long_after_decoding(server: Server, tmp_path: Path) -> None:
    write_wav(server.root / "tone.wav", 8000, seconds=2.0)
    audio = AudioLoader(tmp_path / "cache", max_duration_s=1.0)
    try:
        with pytest.raises(AudioFetchError, match="longer than 1 s"):
            await audio.load(server.url("tone.wav"))
    finally:
        await audio.close()


# -- local files ---------------------------------------------------------------------------


def media_dir(loader: AudioLoader) -> Path:
    assert loader.media_dir is not None
    return loader.media_dir


async def test_file_relative_path_absolute_path_and_file_url(loader: AudioLoader) -> None:
    root = media_dir(loader)
    (root / "prompts").mkdir()
    path = write_wav(root / "prompts" / "hello there.wav", 16000)
    assert_tone(await loader.load("prompts/hello there.wav"))
    assert_tone(await loader.load(str(path)))
    assert_tone(await loader.load(path.as_uri()))  # percent-encoded space
    assert_tone(await loader.load(f"file://localhost{path}"))


@pytest.mark.parametrize("spelling", ["absolute", "dotdot", "file_url"])
async def test_file_outside_media_dir_refused(
    loader: AudioLoader, tmp_path: Path, spelling: str
) -> None:
    outside = write_wav(tmp_path / "secret.wav", 8000)
    url = {
        "absolute": str(outside),
        "dotdot": "../secret.wav",
        "file_url": outside.as_uri(),
    }[spelling]
    with pytest.raises(AudioFetchError, match="is not under the media directory"):
        await loader.load(url)


async def test_symlink_out_of_media_dir_refused(loader: AudioLoader, tmp_path: Path) -> None:
    outside = write_wav(tmp_path / "secret.wav", 8000)
    (media_dir(loader) / "link.wav").symlink_to(outside)
    with pytest.raises(AudioFetchError, match="is not under the media directory"):
        await loader.load("link.wav")


async def test_symlink_inside_media_dir_allowed(loader: AudioLoader) -> None:
    target = write_wav(media_dir(loader) / "real.wav", 8000)
    (media_dir(loader) / "alias.wav").symlink_to(target)
    assert_tone(await loader.load("alias.wav"))


async def test_no_media_dir_refuses_all_files(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", 8000)
    audio = AudioLoader(tmp_path / "cache")
    for url in (str(path), path.as_uri(), "tone.wav"):
        with pytest.raises(AudioFetchError, match="no media directory is configured"):
            await audio.load(url)
    await audio.close()


async def test_remote_file_url_refused(loader: AudioLoader) -> None:
    with pytest.raises(AudioFetchError, match="file URLs must be local"):
        await loader.load("file://fileserver/share/a.wav")


async def test_file_not_found(loader: AudioLoader) -> None:
    with pytest.raises(AudioFetchError, match=r"can't read nope\.wav: .*nope\.wav not found"):
        await loader.load("nope.wav")


async def test_directory_is_not_a_file(loader: AudioLoader) -> None:
    (media_dir(loader) / "sub").mkdir()
    with pytest.raises(AudioFetchError, match="not a regular file"):
        await loader.load("sub")


async def test_garbage_file_is_undecodable(loader: AudioLoader) -> None:
    rng = np.random.default_rng(7)
    (media_dir(loader) / "noise.mp3").write_bytes(rng.integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(AudioFetchError, match=r"can't decode noise\.mp3"):
        await loader.load("noise.mp3")


async def test_oversize_file_refused(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    write_wav(media / "tone.wav", 16000)
    audio = AudioLoader(tmp_path / "cache", media_dir=media, max_bytes=1000)
    with pytest.raises(AudioFetchError, match=r"tone\.wav is too large"):
        await audio.load("tone.wav")


async def test_replaced_file_is_reloaded(loader: AudioLoader) -> None:
    path = write_wav(media_dir(loader) / "tone.wav", 8000)
    first = await loader.load("tone.wav")
    assert await loader.load("tone.wav") is first
    write_wav(path, 8000, seconds=1.0)
    assert (await loader.load("tone.wav")).size == 8000


# -- decode_audio ----------------------------------------------------------------------------


def test_decode_audio_empty_input() -> None:
    with pytest.raises(AudioFetchError, match="can't decode prompt: it is empty"):
        decode_audio(b"", source="prompt")


def test_decode_audio_truncated_wav_header() -> None:
    with pytest.raises(AudioFetchError, match="can't decode x"):
        decode_audio(b"RIFF\x00\x00", source="x")
