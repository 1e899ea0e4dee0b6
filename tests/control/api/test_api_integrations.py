"""Integrations/RecordingStorage/AWS over REST: PUT, GET, DELETE, the spec's bodies and
error codes, the settings file's configuration as the default, and the OpenAPI entry.
The recording service behind it is real (engine, storage); no bucket is reached here
(tests/control/test_recordings_s3.py uploads to a real one)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.api import ApiContext
from control.objectstore import S3Config
from control.recordings import RecordingService
from control.recordingstore import INTEGRATION, RecordingStore
from control.storage import Storage
from media.engine import MediaEngine

Client = TestClient[web.Request, web.Application]
CheckError = Callable[[dict[str, Any], int, int], None]
URL = "/v1/Integrations/RecordingStorage/AWS"
NULLS = {"access_key": None, "security_key": None, "s3": {"region": None, "bucket": None}}
BODY: dict[str, Any] = {"access_key": "AKIAEXAMPLE", "security_key": "s3cr3t/key+",
                        "s3": {"region": "us-west-1", "bucket": "my-recordings"}}
FILE_DEFAULT = S3Config("AKIAFILE", "file-secret", "us-east-1", "file-bucket",
                        "http://127.0.0.1:9000")


@pytest.fixture
async def service(ctx: ApiContext, engine: MediaEngine, storage: Storage, tmp_path: Path
                  ) -> AsyncIterator[RecordingService]:
    svc = RecordingService(engine, storage, tmp_path / "recordings")
    ctx.recordings = svc
    yield svc
    await svc.close()


async def call(client: Client, auth: dict[str, str], method: str, body: Any = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {}
    if raw is not None:
        kwargs["data"] = raw
    elif body is not None:
        kwargs["json"] = body
    resp = await client.request(method, URL, headers=auth, **kwargs)
    return resp.status, await resp.json()


async def test_put_get_delete(client: Client, auth: dict[str, str], service: RecordingService,
                              storage: Storage) -> None:
    assert await call(client, auth, "GET") == (200, {**NULLS, "source": None})
    status, body = await call(client, auth, "PUT", BODY)
    assert status == 200
    assert body == {**BODY, "source": "api"}  # the spec's PUT answer echoes what was sent
    status, body = await call(client, auth, "GET")
    assert status == 200
    assert body == {**BODY, "security_key": True, "source": "api"}
    assert "s3cr3t" not in json.dumps(body)
    stored = await storage.get_integration(INTEGRATION)
    assert stored is not None and stored["bucket"] == "my-recordings"
    assert service.store.config == S3Config("AKIAEXAMPLE", "s3cr3t/key+", "us-west-1",
                                            "my-recordings")
    # a restarted switch reads it back
    again = RecordingStore(storage, Path("unused"))
    await again.load()
    assert again.config == service.store.config
    assert await call(client, auth, "DELETE") == (200, NULLS)
    assert service.store.config is None and await storage.get_integration(INTEGRATION) is None
    assert await call(client, auth, "GET") == (200, {**NULLS, "source": None})
    assert await call(client, auth, "DELETE") == (200, NULLS)  # idempotent


async def test_endpoint_url_for_an_s3_compatible_store(
    client: Client, auth: dict[str, str], service: RecordingService
) -> None:
    body = {**BODY, "s3": {**BODY["s3"], "endpoint_url": "http://127.0.0.1:9000"}}
    status, got = await call(client, auth, "PUT", body)
    assert status == 200 and got["s3"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert service.store.config is not None
    assert service.store.config.endpoint_url == "http://127.0.0.1:9000"
    status, got = await call(client, auth, "GET")
    assert status == 200 and got["s3"] == body["s3"] and got["security_key"] is True


async def test_the_settings_file_is_the_default_until_put_and_after_delete(
    client: Client, auth: dict[str, str], service: RecordingService
) -> None:
    service.store.default = FILE_DEFAULT
    status, body = await call(client, auth, "GET")
    assert status == 200
    assert body == {"access_key": "AKIAFILE", "security_key": True, "source": "settings",
                    "s3": {"region": "us-east-1", "bucket": "file-bucket",
                           "endpoint_url": "http://127.0.0.1:9000"}}
    await call(client, auth, "PUT", BODY)
    assert (await call(client, auth, "GET"))[1]["s3"]["bucket"] == "my-recordings"
    assert await call(client, auth, "DELETE") == (200, NULLS)
    status, body = await call(client, auth, "GET")
    assert status == 200
    assert body["source"] == "settings" and body["s3"]["bucket"] == "file-bucket"
    assert service.store.config == FILE_DEFAULT


def without(path: str) -> dict[str, Any]:
    body = json.loads(json.dumps(BODY))
    *parents, last = path.split(".")
    target = body
    for p in parents:
        target = target[p]
    del target[last]
    return body


def with_value(path: str, value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(BODY))
    *parents, last = path.split(".")
    target = body
    for p in parents:
        target = target[p]
    target[last] = value
    return body


@pytest.mark.parametrize("body, field", [
    (without("access_key"), "access_key"),
    (without("security_key"), "security_key"),
    (without("s3"), "s3"),
    (without("s3.bucket"), "s3.bucket"),
    (without("s3.region"), "s3.region"),
    (with_value("s3", "my-recordings"), "s3"),
    (with_value("s3", ["us-west-1", "my-recordings"]), "s3"),
    (with_value("access_key", 12345), "access_key"),
    (with_value("security_key", ""), "security_key"),
    (with_value("s3.bucket", 7), "s3.bucket"),
    (with_value("s3.bucket", "Not_A_Bucket"), "s3.bucket"),
    (with_value("s3.region", True), "s3.region"),
    (with_value("s3.endpoint_url", "minio:9000"), "s3.endpoint_url"),
    (with_value("s3.endpoint_url", 9000), "s3.endpoint_url"),
    ([BODY], "body"),
    ("AWS", "body"),
])
async def test_bad_bodies_are_400001_naming_the_field(
    client: Client, auth: dict[str, str], service: RecordingService, check_error: CheckError,
    body: Any, field: str
) -> None:
    status, got = await call(client, auth, "PUT", body)
    assert status == 400
    check_error(got, 400, 400001)
    assert got["message"].startswith(f"Validation Error: {field} ")
    assert got["help"].startswith(f"{field} ")
    assert service.store.config is None  # nothing was kept


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_400010(
    client: Client, auth: dict[str, str], service: RecordingService, check_error: CheckError,
    raw: bytes
) -> None:
    status, got = await call(client, auth, "PUT", raw=raw)
    assert status == 400
    check_error(got, 400, 400010)


async def test_without_the_api_key_is_401001(client: Client, service: RecordingService,
                                             check_error: CheckError) -> None:
    for method in ("GET", "PUT", "DELETE"):
        resp = await client.request(method, URL, json=BODY)
        assert resp.status == 401
        check_error(await resp.json(), 401, 401001)
    assert service.store.config is None


async def test_without_a_recording_service_is_404002(client: Client, auth: dict[str, str],
                                                     check_error: CheckError) -> None:
    status, got = await call(client, auth, "GET")
    assert status == 404
    check_error(got, 404, 404002)


async def test_the_openapi_document_lists_them(client: Client, auth: dict[str, str]) -> None:
    resp = await client.get("/v1/openapi.json", headers=auth)
    doc = await resp.json()
    item = doc["paths"]["/Integrations/RecordingStorage/AWS"]
    assert set(item) == {"put", "get", "delete"}
    assert item["put"]["requestBody"]["content"]["application/json"]["schema"]["required"] \
        == ["access_key", "security_key", "s3"]
    assert item["get"]["tags"] == ["Integrations"]
