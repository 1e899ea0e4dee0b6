"""Headless Chromium for the dashboard tests: Debian's own browser driven by Playwright.

Playwright's bundled browsers are never downloaded (this machine has no route to them);
`executable_path` points at the system `chromium` that `make apt` installs. The flags are
the ones /work/.library's machine notes found necessary here: no sandbox (root), and no
background networking (every connection Chromium makes on its own is refused). Fake
media devices stand in for a microphone: `--use-file-for-fake-audio-capture` loops a WAV
of a known tone, so what the page sends can be recognised by frequency at the far end.

    async with chromium(tmp_path, fake_audio=wav) as browser:
        page = await browser.new_page()
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str:
    """The system Chromium; AssertionError saying how to install it when there is none."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("no chromium on PATH: `make apt` installs Debian's chromium and "
                         "chromium-driver (the dashboard tests drive the system browser)")


def tone_wav(path: Path, hz: float, seconds: float = 10.0, rate: int = 48000,
             dbfs: float = -12.0) -> Path:
    """A mono 16-bit WAV of whole cycles of `hz`, so Chromium's loop of it is seamless."""
    n = int(rate * seconds)
    cycles = round(hz * seconds)
    t = np.arange(n) / n
    amp = 32767 * 10 ** (dbfs / 20)
    pcm = (amp * np.sin(2 * np.pi * cycles * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@asynccontextmanager
async def chromium(tmp_path: Path, fake_audio: Path | None = None) -> AsyncIterator[Browser]:
    """A headless system Chromium (closed on exit), its fake microphone playing
    `fake_audio` when given."""
    from playwright.async_api import async_playwright

    args = list(FLAGS)
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=args,
                                           headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def signed_in_page(browser: Browser, http_url: str, api_key: str) -> Page:
    """The dashboard, signed in through its login form, its live stream connected; page
    errors are collected in `page.errors` (a list) for the test to assert on."""
    page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(http_url + "/")
    await page.fill("#login-key", api_key)
    await page.click("#login-submit")
    await page.wait_for_selector("#stream-state.live", timeout=15_000)
    return page
