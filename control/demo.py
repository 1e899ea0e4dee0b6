"""The built-in demo call flow, served by the switch itself when no callback is set.

`make run` plus a softphone then shows the whole loop working: the switch calls its own
HTTP endpoint for actions like any callback server would, speaks a greeting, plays a
short tone file, and hangs up.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable

from aiohttp import web

from media.tones import tone

GREETING = (
    "Hello, and welcome to vox switch. This call is running the built in demo call flow. "
    "Here is a short tone."
)
ROUTE = "/demo/callflow"
TONE_ROUTE = "/demo/tone.wav"


def demo_actions(base_url: str) -> dict[str, object]:
    return {
        "name": "voxswitch-demo",
        "actions": [
            {"type": "SAY", "params": {"text": GREETING, "voice": "Kate"}},
            {"type": "PLAY", "params": {"url": base_url + TONE_ROUTE}},
            {"type": "SAY", "params": {"text": "Good bye.", "voice": "Kate"}},
            {"type": "HANGUP"},
        ],
    }


def _tone_wav() -> bytes:
    pcm = tone(1000.0, 1.0, level_dbm0=-12.0)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def add_routes(app: web.Application, base_url: Callable[[], str]) -> None:
    """Add the demo routes; `base_url()` gives the switch's HTTP URL once it listens."""
    tone_wav = _tone_wav()

    async def callflow(request: web.Request) -> web.Response:
        kind = request.query.get("type")
        if request.method == "POST" and request.can_read_body:
            try:
                body = await request.json()
                kind = body.get("type") if isinstance(body, dict) else kind
            except ValueError:
                kind = None
        if kind == "end_call":
            return web.json_response({})
        return web.json_response(demo_actions(base_url()))

    async def tone_file(request: web.Request) -> web.Response:
        return web.Response(body=tone_wav, content_type="audio/wav")

    app.router.add_route("POST", ROUTE, callflow)
    app.router.add_route("GET", ROUTE, callflow)
    app.router.add_route("GET", TONE_ROUTE, tone_file)
