"""The dashboard's files: the page at `/`, its assets below /dashboard/, public and
uncached; an unknown asset is a plain 404."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control import dashboard


async def test_the_page_and_its_assets_are_served_without_a_key() -> None:
    app = web.Application()
    dashboard.add_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/")
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-cache"
        for asset, ctype in (("app.js", "text/javascript"), ("phone.js", "text/javascript"),
                             ("style.css", "text/css")):
            assert f"/dashboard/{asset}" in page
            resp = await client.get(f"/dashboard/{asset}")
            assert resp.status == 200 and resp.content_type == ctype, asset
            assert len(await resp.read()) > 500
        for missing in ("/dashboard/nope.js", "/dashboard/..%2F__init__.py"):
            resp = await client.get(missing)
            assert resp.status == 404, missing
