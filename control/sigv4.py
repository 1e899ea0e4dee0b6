"""AWS Signature Version 4, sans-I/O: a request's parts in, its signed headers out.

Theory of operation: `sign()` builds the three strings the algorithm defines — the
canonical request, the string to sign and the signature (HMAC-SHA256 with a key derived
from the secret, the date, the region and the service) — and returns them with the
headers to send. It does no I/O and reads no clock: the caller passes `now`, so tests
replay AWS's published examples exactly ("Signature Calculations for the Authorization
Header" in the S3 API reference, and the Signature Version 4 test suite).

The path is given as it goes on the wire (each segment URI-encoded once, '/' kept). S3
signs that path as it is; every other service signs it encoded a second time (the rule
of the SigV4 documentation; dot segments are not normalised here, our paths have none).
The query is given decoded, as (name, value) pairs, and `canonical_query` is also the
query string to send, so the URL and the signature can never disagree.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SignedRequest:
    """What `sign()` computed: the headers to send, and the steps for tests and logs."""

    headers: dict[str, str]  # the caller's, plus x-amz-date (+ content hash) + Authorization
    canonical_request: str
    string_to_sign: str
    signature: str
    signed_headers: str

    @property
    def authorization(self) -> str:
        return self.headers["Authorization"]


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """Percent-encode every byte outside A-Z a-z 0-9 - _ . ~ (upper-case hex), the one
    encoding SigV4 accepts; '/' is kept only when asked (object keys in paths)."""
    out = []
    for byte in text.encode():
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """The canonical query string (also the one to send): encoded, sorted by name then
    value; a name without a value is `name=`."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_uri(path: str, service: str) -> str:
    path = path or "/"
    return path if service == "s3" else uri_encode(path, keep_slash=True)


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(the canonical header block, the signed header list): names lower-cased, values
    trimmed with inner runs of spaces collapsed, sorted by name; repeated names joined
    with commas."""
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.strip().lower(), []).append(" ".join(str(value).split()))
    names = sorted(merged)
    block = "".join(f"{n}:{','.join(merged[n])}\n" for n in names)
    return block, ";".join(names)


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def sign(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
         payload_hash: str, credentials: Credentials, region: str, service: str,
         now: datetime) -> SignedRequest:
    """Sign a request: `headers` must hold Host; all of them are signed. S3 requests
    also carry (and sign) x-amz-content-sha256, as S3 requires."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    date = stamp[:8]
    to_sign = {k: v for k, v in headers.items()
               if k.lower() not in ("x-amz-date", "authorization")}
    to_sign["x-amz-date"] = stamp
    if service == "s3" and not any(k.lower() == "x-amz-content-sha256" for k in to_sign):
        to_sign["x-amz-content-sha256"] = payload_hash
    if credentials.session_token:
        to_sign["x-amz-security-token"] = credentials.session_token
    block, signed = canonical_headers(to_sign)
    canonical = "\n".join((method.upper(), canonical_uri(path, service),
                           canonical_query(query), block, signed, payload_hash))
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join((ALGORITHM, stamp, scope,
                                hashlib.sha256(canonical.encode()).hexdigest()))
    key = signing_key(credentials.secret_key, date, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                     f"SignedHeaders={signed}, Signature={signature}")
    return SignedRequest({**to_sign, "Authorization": authorization}, canonical,
                         string_to_sign, signature, signed)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
