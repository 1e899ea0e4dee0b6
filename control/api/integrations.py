"""Integrations: the recording storage, `Integrations/RecordingStorage/AWS` (PUT, GET,
DELETE). With it set, closed recordings are uploaded to the S3 bucket and their local
files removed (`control.recordingstore`).

Choices where the spec is silent:
- `s3.endpoint_url` (a voxswitch extension) names an S3-compatible store (MinIO, Ceph,
  moto): requests go to it path-style. Without it the bucket is on AWS in `s3.region`.
- PUT answers the configuration as the spec's example does, `security_key` included
  (the caller has just sent it); GET answers `security_key: true`, never the secret.
- The settings file's `[recording_storage]` is the default; a PUT one takes its place
  until DELETE, after which the file's applies again. GET shows the one in force, and
  `source` (an extension) says whose it is: "api", "settings", or null when none is.
  GET with none answers the nulls body of the spec's DELETE; DELETE always answers it.
- PUT does not reach out to the bucket: a store that is down or refuses shows in the
  log at the first upload, and the recordings stay local until it works.
- The secret is kept in the database in clear, like the API key beside it in the data
  dir: protect the data dir.
- Fields: `access_key` and `security_key` non-empty strings, `s3` an object whose
  `region` is a region name (a-z, 0-9, '-') and `bucket` an S3 bucket name; anything else
  is 400001 naming the field. Unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.context import context
from control.api.errors import ApiError
from control.api.query import json_body
from control.api.routing import RouteTable, Schema
from control.objectstore import ConfigError, S3Config
from control.recordingstore import RecordingStore

routes = RouteTable("Integrations")

PATH = "/Integrations/RecordingStorage/AWS"
_STRING = {"type": "string"}
_S3_IN: Schema = {
    "type": "object",
    "required": ["region", "bucket"],
    "properties": {
        "region": {**_STRING, "description": "The region of the S3 bucket, e.g. us-west-1."},
        "bucket": {**_STRING, "description": "The name of the S3 bucket."},
        "endpoint_url": {**_STRING, "format": "uri",
                         "description": "voxswitch: an S3-compatible store (MinIO, Ceph, "
                                        "moto), e.g. http://127.0.0.1:9000"},
    },
}
PUT_SCHEMA: Schema = {
    "type": "object",
    "required": ["access_key", "security_key", "s3"],
    "properties": {
        "access_key": {**_STRING, "description": "Amazon IAM access key."},
        "security_key": {**_STRING, "description": "Its secret access key."},
        "s3": _S3_IN,
    },
}
_NULLABLE = {"type": ["string", "null"]}
CONFIG_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "access_key": _NULLABLE,
        "security_key": {"type": ["string", "boolean", "null"],
                         "description": "PUT: the key sent; GET: whether one is set"},
        "s3": {"type": "object", "properties": {"region": _NULLABLE, "bucket": _NULLABLE,
                                                "endpoint_url": _NULLABLE}},
        "source": {"enum": ["api", "settings", None],
                   "description": "voxswitch: whose configuration is in force"},
    },
}
NULLS: dict[str, Any] = {"access_key": None, "security_key": None,
                         "s3": {"region": None, "bucket": None}}


def _store(request: web.Request) -> RecordingStore:
    service = context(request).recordings
    if service is None:
        raise ApiError.not_supported()
    return service.store


def _view(store: RecordingStore, *, secret: bool = False) -> dict[str, Any]:
    config = store.config
    if config is None:
        return {**NULLS, "source": None}
    s3: dict[str, Any] = {"region": config.region, "bucket": config.bucket}
    if config.endpoint_url is not None:
        s3["endpoint_url"] = config.endpoint_url
    return {"access_key": config.access_key,
            "security_key": config.secret_key if secret else True,
            "s3": s3, "source": store.source}


def parse_config(body: Any) -> S3Config:
    """The configuration a PUT body gives; ApiError 400001 naming the field otherwise."""
    if not isinstance(body, dict):
        raise ApiError.validation("body", "must be a JSON object")
    for name in ("access_key", "security_key", "s3"):
        if body.get(name) is None:
            raise ApiError.validation(name, "is required")
    s3 = body["s3"]
    if not isinstance(s3, dict):
        raise ApiError.validation("s3", "must be an object with region and bucket")
    for name in ("region", "bucket"):
        if s3.get(name) is None:
            raise ApiError.validation(f"s3.{name}", "is required")
    try:
        return S3Config(body["access_key"], body["security_key"], s3["region"], s3["bucket"],
                        s3.get("endpoint_url"))
    except ConfigError as exc:
        raise ApiError.validation(exc.field, exc.problem) from None


@routes.route("PUT", PATH, summary="Set the S3 bucket recordings are saved to",
              body=PUT_SCHEMA, body_required=True, responses={200: CONFIG_SCHEMA})
async def put_recording_storage(request: web.Request) -> web.Response:
    """Recordings closed from now on go to the bucket, and so do those still local."""
    store = _store(request)
    config = parse_config(await json_body(request))
    await store.configure(config)
    return web.json_response(_view(store, secret=True))


@routes.route("GET", PATH, summary="The S3 bucket recordings are saved to",
              responses={200: CONFIG_SCHEMA})
async def get_recording_storage(request: web.Request) -> web.Response:
    """`security_key` is true when a secret is set; the secret is never shown."""
    return web.json_response(_view(_store(request)))


@routes.route("DELETE", PATH, summary="Stop saving recordings to the S3 bucket",
              responses={200: CONFIG_SCHEMA})
async def delete_recording_storage(request: web.Request) -> web.Response:
    """Recordings already uploaded stay in the bucket (and download from it while a
    configuration reaches it); the settings file's storage, if any, applies again."""
    await _store(request).unconfigure()
    return web.json_response(NULLS)
