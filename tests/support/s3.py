"""A real S3 server for tests: moto's, in a thread of the test process, on 127.0.0.1 and
an ephemeral port. Buckets are moto's process-wide state, so every test makes its own
(`new_bucket`). moto accepts any credentials and checks no signature unless its IAM
checks are switched on (`iam_checks`), as its /moto-api/reset-auth allows."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime

import aiohttp

from control import sigv4
from control.objectstore import ObjectStore, S3Config

ACCESS_KEY = "AKIAVOXSWITCHTEST"
SECRET_KEY = "voxswitch/test/secret+key"
REGION = "us-east-1"


@contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    """Start moto on 127.0.0.1 (port 0: any free one); its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def config(endpoint: str, bucket: str | None = None, **changes: str) -> S3Config:
    values = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "region": REGION,
              "bucket": bucket or f"vox-{uuid.uuid4().hex[:12]}", "endpoint_url": endpoint,
              **changes}
    return S3Config(**values)


async def new_bucket(endpoint: str, **changes: str) -> S3Config:
    """A new, empty bucket on the server; the configuration that reaches it."""
    cfg = config(endpoint, **changes)
    async with aiohttp.ClientSession() as session:
        await ObjectStore(cfg, session).create_bucket()
    return cfg


async def iam(session: aiohttp.ClientSession, endpoint: str, action: str,
              **params: str) -> str:
    """One IAM query-API call (signed as service iam); the response body."""
    form = sorted({"Action": action, "Version": "2010-05-08", **params}.items())
    body = sigv4.canonical_query(form).encode()
    host = endpoint.split("//", 1)[1]
    headers = {"Host": host, "Content-Type": "application/x-www-form-urlencoded"}
    signed = sigv4.sign("POST", "/", [], headers, hashlib.sha256(body).hexdigest(),
                        sigv4.Credentials(ACCESS_KEY, SECRET_KEY), REGION, "iam",
                        datetime.now(UTC))
    async with session.post(endpoint + "/", data=body, headers=signed.headers) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text


@asynccontextmanager
async def iam_checks(endpoint: str, unchecked: int) -> AsyncIterator[None]:
    """moto checks credentials and signatures on every request after the next
    `unchecked` ones, until the block ends."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{endpoint}/moto-api/reset-auth", data=str(unchecked)) as r:
            assert r.status == 200
        try:
            yield
        finally:
            async with session.post(f"{endpoint}/moto-api/reset-auth", data="inf") as r:
                assert r.status == 200
