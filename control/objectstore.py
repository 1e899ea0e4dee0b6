"""A thin S3 client over aiohttp: put, get, head and delete one object, signed with
`control.sigv4` (no boto).

Addressing: with an `endpoint_url` (MinIO, Ceph, moto, any S3-compatible store) requests
are path-style, `<endpoint>/<bucket>/<key>`; on AWS itself they are virtual-host style,
`https://<bucket>.s3.<region>.amazonaws.com/<key>`, unless the bucket's name is not a
plain DNS label (dots break the TLS wildcard, capitals are not host names): then
path-style `https://s3.<region>.amazonaws.com/<bucket>/<key>`.

Uploads stream from the file: it is hashed first (the signature covers the payload's
SHA-256) in a worker thread, in chunks, then sent by aiohttp, which reads it in its
executor; a recording is never read whole into memory. Downloads stream to a file the
same way. One PUT holds up to 5 GB (S3's limit for a single PUT), 43 hours of stereo
recording; multipart upload is left out.

Every failure is an `ObjectStoreError` carrying S3's error `code` and `message` (from its
XML error body; a HEAD's error has no body, so its code is the status: `NotFound`,
`Forbidden`), or `RequestFailed` when the store could not be reached at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from control import sigv4

CHUNK = 1 << 16
MAX_ERROR_BODY = 1 << 16
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules
_REGION = re.compile(r"^[a-z0-9-]{1,64}$")
_STATUS_CODES = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed"}


class ObjectStoreError(Exception):
    """S3 refused a request (`code`, `message` as S3 gave them; `status` its HTTP
    status) or could not be reached (`code` RequestFailed, `status` None)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status


class ConfigError(ValueError):
    """A storage setting is missing or malformed; `field` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class S3Config:
    """Where and as whom: the spec's access_key, security_key, s3.region and s3.bucket,
    plus `endpoint_url` for a store other than AWS."""

    access_key: str
    secret_key: str = field(repr=False)
    region: str
    bucket: str
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("access_key", self.access_key), ("security_key", self.secret_key)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name, "must be a non-empty string")
        if not isinstance(self.region, str) or not _REGION.match(self.region):
            raise ConfigError("s3.region", "must be a region name such as us-east-1")
        if not isinstance(self.bucket, str) or not _BUCKET.match(self.bucket) \
                or ".." in self.bucket:
            raise ConfigError("s3.bucket", "must be an S3 bucket name (3-63 characters: "
                                           "a-z, 0-9, '.', '-')")
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url) if isinstance(self.endpoint_url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
                    or parts.query or parts.fragment:
                raise ConfigError("s3.endpoint_url", "must be an http:// or https:// URL")

    @property
    def credentials(self) -> sigv4.Credentials:
        return sigv4.Credentials(self.access_key, self.secret_key)


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    content_type: str | None
    last_modified: str | None


class ObjectStore:
    """One bucket of an S3-compatible store. The session is the caller's (it may serve
    several stores); `clock` gives the signing time."""

    def __init__(self, config: S3Config, session: aiohttp.ClientSession, *,
                 timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self._session = session
        self._timeout = timeout
        self._clock = clock

    @property
    def bucket(self) -> str:
        return self.config.bucket

    def url_for(self, key: str, bucket: str | None = None) -> tuple[str, str, str]:
        """(origin, Host header, encoded path) of an object (`key` "" is the bucket)."""
        bucket = bucket or self.config.bucket
        encoded = sigv4.uri_encode(key, keep_slash=True)
        endpoint = self.config.endpoint_url
        if endpoint is not None:
            parts = urlsplit(endpoint)
            base = parts.path.rstrip("/")
            return (f"{parts.scheme}://{parts.netloc}", parts.netloc,
                    f"{base}/{bucket}/{encoded}" if key else f"{base}/{bucket}")
        region = self.config.region
        if _DNS_BUCKET.match(bucket):
            host = f"{bucket}.s3.{region}.amazonaws.com"
            return f"https://{host}", host, f"/{encoded}"
        host = f"s3.{region}.amazonaws.com"
        return f"https://{host}", host, f"/{bucket}/{encoded}" if key else f"/{bucket}"

    # ---- objects ------------------------------------------------------------------------

    async def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream",
                       *, bucket: str | None = None) -> str:
        """Upload a file (streamed); its ETag. ObjectStoreError, OSError."""
        digest, size = await asyncio.to_thread(_sha256_file, path)
        f = await asyncio.to_thread(path.open, "rb")
        try:
            headers = {"Content-Type": content_type, "Content-Length": str(size)}
            async with self._request("PUT", key, headers, digest, data=f,
                                     bucket=bucket) as resp:
                return resp.headers.get("ETag", "").strip('"')
        finally:
            await asyncio.to_thread(f.close)

    async def put_bytes(self, key: str, data: bytes,
                        content_type: str = "application/octet-stream") -> str:
        headers = {"Content-Type": content_type}
        async with self._request("PUT", key, headers, hashlib.sha256(data).hexdigest(),
                                 data=data) as resp:
            return resp.headers.get("ETag", "").strip('"')

    async def get_file(self, key: str, path: Path, *, bucket: str | None = None) -> int:
        """Download an object into `path` (created or truncated); the bytes written."""
        async with self._request("GET", key, bucket=bucket) as resp:
            out = await asyncio.to_thread(path.open, "wb")
            written = 0
            try:
                async for chunk in resp.content.iter_chunked(CHUNK * 4):
                    await asyncio.to_thread(out.write, chunk)
                    written += len(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _cut_short(key, exc) from exc
            finally:
                await asyncio.to_thread(out.close)
            return written

    async def get_bytes(self, key: str) -> bytes:
        async with self._request("GET", key) as resp:
            try:
                return await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _cut_short(key, exc) from exc

    async def head(self, key: str, *, bucket: str | None = None) -> ObjectInfo:
        """The object's size and type; ObjectStoreError NotFound when there is none."""
        async with self._request("HEAD", key, bucket=bucket) as resp:
            return ObjectInfo(int(resp.headers.get("Content-Length", "0")),
                              resp.headers.get("ETag", "").strip('"'),
                              resp.headers.get("Content-Type"),
                              resp.headers.get("Last-Modified"))

    async def delete(self, key: str, *, bucket: str | None = None) -> None:
        """Delete an object (S3 answers the same whether it existed or not)."""
        async with self._request("DELETE", key, bucket=bucket):
            pass

    # ---- buckets (set-up and tests) -----------------------------------------------------

    async def create_bucket(self) -> None:
        body = b""
        if self.config.region != "us-east-1":  # elsewhere S3 wants the region named
            body = ("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                    f"<LocationConstraint>{self.config.region}</LocationConstraint>"
                    "</CreateBucketConfiguration>").encode()
        async with self._request("PUT", "", {}, hashlib.sha256(body).hexdigest(), data=body):
            pass

    async def head_bucket(self) -> None:
        async with self._request("HEAD", ""):
            pass

    # ---- the wire ----------------------------------------------------------------------

    def _request(self, method: str, key: str, headers: Mapping[str, str] | None = None,
                 payload_hash: str = sigv4.EMPTY_SHA256, *, data: bytes | IO[bytes] | None = None,
                 bucket: str | None = None) -> _Exchange:
        origin, host, path = self.url_for(key, bucket)
        signed = sigv4.sign(method, path, [], {"Host": host, **(headers or {})}, payload_hash,
                            self.config.credentials, self.config.region, "s3", self._clock())
        url = URL(origin + path, encoded=True)
        return _Exchange(self._session, method, url, signed.headers, data, self._timeout)


class _Exchange:
    """`async with`: one request whose non-2xx answer raises ObjectStoreError."""

    def __init__(self, session: aiohttp.ClientSession, method: str, url: URL,
                 headers: dict[str, str], data: Any, timeout: aiohttp.ClientTimeout) -> None:
        self._args = (method, url)
        self._kwargs = {"headers": headers, "data": data, "timeout": timeout,
                        "skip_auto_headers": ("Content-Type",)}
        self._session = session
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        method, url = self._args
        try:
            resp = await self._session.request(method, url, **self._kwargs)  # type: ignore[arg-type]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ObjectStoreError("RequestFailed", f"{method} {url.host}:{url.port}: "
                                   f"{exc or type(exc).__name__}") from exc
        self._resp = resp
        if resp.status >= 300:
            try:
                raise await _error(resp)
            finally:
                resp.release()
        return resp

    async def __aexit__(self, *exc: object) -> None:
        if self._resp is not None:
            self._resp.release()


def _cut_short(key: str, exc: BaseException) -> ObjectStoreError:
    return ObjectStoreError("RequestFailed", f"GET {key}: the download was cut short: "
                            f"{exc or type(exc).__name__}")


async def _error(resp: aiohttp.ClientResponse) -> ObjectStoreError:
    try:
        body = await resp.content.read(MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    code, message = _parse_error(body)
    if code is None:
        code = _STATUS_CODES.get(resp.status, f"HTTP{resp.status}")
        message = message or resp.reason or ""
    return ObjectStoreError(code, message or "", resp.status)


def _parse_error(body: bytes) -> tuple[str | None, str | None]:
    """S3's `<Error><Code>…</Code><Message>…</Message></Error>`, namespaced or not."""
    if not body.strip():
        return None, None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, body[:200].decode(errors="replace").strip()
    found: dict[str, str] = {}
    for el in root.iter():
        name = el.tag.rsplit("}", 1)[-1]
        if name in ("Code", "Message") and name not in found:
            found[name] = (el.text or "").strip()
    return found.get("Code") or None, found.get("Message")


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK * 16):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
