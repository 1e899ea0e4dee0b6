"""The web dashboard: one static page at `/` that drives the REST API from the browser.

Everything it shows and does goes through `/v1` with the API key the user types in, so
the page has no powers of its own and the server keeps no sessions: the files here are
public, the data is not. Live views come from `GET /v1/LiveEvents` (server-sent events).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PATH = "/"
ASSET_PREFIX = "/dashboard/"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml"}


def _assets() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, content type) of every file under static/, read once at start."""
    out: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind("."):]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


def add_routes(app: web.Application) -> None:
    """`GET /` (the page) and `GET /dashboard/{name}` (its scripts and styles)."""
    assets = _assets()
    # no-cache: a browser left open across an upgrade revalidates instead of mixing
    # an old script with a new API
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    async def page(request: web.Request) -> web.Response:
        body, ctype = assets["index.html"]
        return web.Response(body=body, content_type=ctype, headers=headers)

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="no such dashboard file")
        return web.Response(body=found[0], content_type=found[1], headers=headers)

    app.router.add_get(PATH, page)
    app.router.add_get(ASSET_PREFIX + "{name}", asset)
