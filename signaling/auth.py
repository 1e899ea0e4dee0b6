"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-I/O.

Theory of operation
-------------------
A server challenges a request with 401 + WWW-Authenticate (a UAS or registrar) or 407 +
Proxy-Authenticate (a proxy); the client repeats the request with an Authorization or
Proxy-Authorization header whose `response` is a keyed hash of the password, the nonce
and the request (RFC 7616 §3.4.1). Both sides are here, as plain functions and values:

- the wire forms: `Challenge` (the -Authenticate value) and `Authorization` (the
  -Authorization value), each with `parse` and `str()`; `parse_challenges` reads every
  Digest challenge of a header value (several may share one, RFC 7235 §4.1);
- the maths: `compute_response` (MD5, SHA-256, SHA-512-256 and their -sess forms; qop
  auth, auth-int, or none as RFC 2069 had it);
- the client: `authorize` answers one challenge; `DigestClient` answers the challenges
  of one request's retries, once per realm (§22.2: a second challenge for a realm it
  answered means the credentials were refused);
- the server: `make_challenge`, `new_nonce`/`nonce_age` (stateless, HMAC-signed nonces)
  and `verify`.

Nothing here touches a socket or a clock: times and random values are parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALGORITHMS",
    "AuthError",
    "Authorization",
    "Challenge",
    "Credentials",
    "DigestClient",
    "authorize",
    "compute_response",
    "make_challenge",
    "new_nonce",
    "nonce_age",
    "parse_challenges",
    "verify",
]


class AuthError(ValueError):
    """A challenge or credentials header that cannot be read or answered."""


@dataclass(frozen=True)
class Credentials:
    """What we authenticate with; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)


# RFC 7616 §3.2 / RFC 8760 §2.1: algorithm name -> (hashlib name, -sess form).
ALGORITHMS: dict[str, tuple[str, bool]] = {
    "MD5": ("md5", False),
    "MD5-SESS": ("md5", True),
    "SHA-256": ("sha256", False),
    "SHA-256-SESS": ("sha256", True),
    "SHA-512-256": ("sha512_256", False),
    "SHA-512-256-SESS": ("sha512_256", True),
}


def _hash_name(algorithm: str) -> tuple[str, bool]:
    try:
        name, sess = ALGORITHMS[algorithm.upper()]
    except KeyError:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}") from None
    try:
        hashlib.new(name)
    except ValueError:  # OpenSSL without SHA-512/256
        raise AuthError(f"digest algorithm {algorithm!r} is not available here") from None
    return name, sess


def supported(algorithm: str) -> bool:
    try:
        _hash_name(algorithm)
    except AuthError:
        return False
    return True


def _h(name: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(name, raw).hexdigest()


# ---- the maths ---------------------------------------------------------------------------------


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The `response` value of RFC 7616 §3.4.1 (RFC 2069's form when `qop` is None).

    `username` is the one hashed into A1 (the user's name, not a userhash).
    """
    name, sess = _hash_name(algorithm)
    ha1 = _h(name, f"{username}:{realm}:{password}")
    if sess:
        if cnonce is None:
            raise AuthError(f"{algorithm} needs a cnonce, hence a qop")
        ha1 = _h(name, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(name, f"{method}:{uri}:{_h(name, body)}")
    else:
        ha2 = _h(name, f"{method}:{uri}")
    if qop is None:
        return _h(name, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise AuthError("qop needs nc and cnonce")
    return _h(name, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# ---- the wire forms ----------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_QUOTED = r'"(?:[^"\\]|\\[\s\S])*"'
# One item of an auth header: a bare token (a scheme) or name=value (an auth-param).
_ITEM_RE = re.compile(
    r"[\s,]*(" + _TOKEN + r")(?:\s*=\s*(" + _QUOTED + r"|[^\s,\"]*))?"
)
_QUOTED_PAIR_RE = re.compile(r"\\([\s\S])")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _QUOTED_PAIR_RE.sub(r"\1", value[1:-1])
    return value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scan(text: str) -> list[tuple[str, dict[str, str]]]:
    """(scheme, params) for each challenge or credentials in `text`; names lower-cased."""
    found: list[tuple[str, dict[str, str]]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _ITEM_RE.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip(" \t,") == "":
                break
            raise AuthError(f"malformed auth header at {text[pos:pos + 20]!r}")
        name, value = m.group(1), m.group(2)
        if value is None:
            found.append((name, {}))
        elif not found:
            raise AuthError("auth header does not start with a scheme")
        else:
            found[-1][1][name.lower()] = _unquote(value)
        pos = m.end()
    return found


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge: the value of a WWW-Authenticate or Proxy-Authenticate."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False

    @classmethod
    def parse(cls, text: str) -> Challenge:
        challenges = parse_challenges(text)
        if len(challenges) != 1:
            raise AuthError(f"expected one Digest challenge, found {len(challenges)}")
        return challenges[0]

    @classmethod
    def _from_params(cls, params: dict[str, str]) -> Challenge:
        if "realm" not in params or "nonce" not in params:
            raise AuthError("Digest challenge without realm or nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5"),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
            domain=params.get("domain"),
            userhash=params.get("userhash", "").lower() == "true",
        )

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def parse_challenges(text: str) -> list[Challenge]:
    """Every Digest challenge in a -Authenticate header value, in order; challenges of
    other schemes (Basic, Bearer ...) are skipped. Raises AuthError when malformed."""
    return [
        Challenge._from_params(params)
        for scheme, params in _scan(text)
        if scheme.lower() == "digest"
    ]


@dataclass(frozen=True)
class Authorization:
    """Digest credentials: the value of an Authorization or Proxy-Authorization."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None
    userhash: bool = False

    @classmethod
    def parse(cls, text: str) -> Authorization:
        items = _scan(text)
        if len(items) != 1 or items[0][0].lower() != "digest":
            raise AuthError("not one set of Digest credentials")
        p = items[0][1]
        missing = [n for n in ("username", "realm", "nonce", "uri", "response") if n not in p]
        if missing:
            raise AuthError(f"Digest credentials without {', '.join(missing)}")
        return cls(
            username=p["username"],
            realm=p["realm"],
            nonce=p["nonce"],
            uri=p["uri"],
            response=p["response"],
            algorithm=p.get("algorithm", "MD5"),
            cnonce=p.get("cnonce"),
            nc=p.get("nc"),
            qop=p.get("qop"),
            opaque=p.get("opaque"),
            userhash=p.get("userhash", "").lower() == "true",
        )

    def __str__(self) -> str:
        # nonce before cnonce: SIPp 3.6's parser takes the first "nonce=" it meets.
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


# ---- the client --------------------------------------------------------------------------------


def _pick_qop(offered: Sequence[str]) -> str | None:
    if not offered:
        return None
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    raise AuthError(f"no supported qop in {', '.join(offered)}")


def new_cnonce() -> str:
    return secrets.token_hex(16)


def authorize(
    challenge: Challenge,
    credentials: Credentials,
    *,
    method: str,
    uri: str,
    body: bytes = b"",
    nc: int = 1,
    cnonce: str | None = None,
) -> Authorization:
    """Answer `challenge` for a request `method` `uri` (the Request-URI, §22.4).

    qop: auth when offered, else auth-int, else none (RFC 2069 form). `cnonce` defaults
    to 128 random bits; `nc` counts the uses of this nonce.
    """
    qop = _pick_qop(challenge.qop)
    _, sess = _hash_name(challenge.algorithm)
    if qop is None and sess:
        raise AuthError(f"{challenge.algorithm} needs a qop in the challenge")
    nc_text = f"{nc:08x}" if qop is not None else None
    if qop is not None and cnonce is None:
        cnonce = new_cnonce()
    response = compute_response(
        algorithm=challenge.algorithm,
        username=credentials.username,
        realm=challenge.realm,
        password=credentials.password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce if qop is not None else None,
        body=body,
    )
    username = credentials.username
    if challenge.userhash:  # RFC 7616 §3.4.4
        name, _ = _hash_name(challenge.algorithm)
        username = _h(name, f"{credentials.username}:{challenge.realm}")
    return Authorization(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=cnonce if qop is not None else None,
        nc=nc_text,
        qop=qop,
        opaque=challenge.opaque,
        userhash=challenge.userhash,
    )


CHALLENGE_HEADERS = {401: ("WWW-Authenticate", "Authorization"),
                     407: ("Proxy-Authenticate", "Proxy-Authorization")}


class DigestClient:
    """Answers the challenges met by one request and its retries (RFC 3261 §22.2).

    `challenged(status, values)` takes a 401 or 407 and its -Authenticate header values
    and says whether to retry; `headers(method, uri, body)` then gives the credentials
    headers for the retry, one per realm challenged so far (a proxy's and the UAS's may
    both be needed). Per realm the first challenge with an algorithm we support is
    answered (RFC 8760 §2.4); a realm that challenges again is a refusal, unless its
    challenge says stale=true (a fresh nonce for the same credentials, RFC 7616 §3.3),
    which is answered once. `refusal` says why the last `challenged` returned False.
    """

    def __init__(self, credentials: Credentials,
                 cnonce: Callable[[], str] = new_cnonce) -> None:
        self.credentials = credentials
        self.refusal = ""
        self._cnonce = cnonce
        # (header name, realm) -> [challenge, cnonce, uses of its nonce, stale retried]
        self._answered: dict[tuple[str, str], _Answer] = {}

    def challenged(self, status: int, values: Iterable[str]) -> bool:
        if status not in CHALLENGE_HEADERS:
            self.refusal = f"{status} is not a challenge"
            return False
        header = CHALLENGE_HEADERS[status][1]
        try:
            challenges = [c for value in values for c in parse_challenges(value)]
        except AuthError as exc:
            self.refusal = f"unreadable challenge: {exc}"
            return False
        chosen: dict[str, Challenge] = {}
        for challenge in challenges:
            if challenge.realm not in chosen and supported(challenge.algorithm):
                chosen[challenge.realm] = challenge
        if not chosen:
            algorithms = ", ".join(sorted({c.algorithm for c in challenges})) or "none"
            self.refusal = f"no Digest challenge we can answer (algorithms: {algorithms})"
            return False
        for realm, challenge in chosen.items():
            previous = self._answered.get((header, realm))
            if previous is None:
                continue
            if not challenge.stale or previous.stale_retried:
                self.refusal = f"credentials for realm {realm!r} refused"
                return False
        for realm, challenge in chosen.items():
            previous = self._answered.get((header, realm))
            self._answered[(header, realm)] = _Answer(
                challenge, self._cnonce(), 0, previous is not None)
        return True

    def headers(self, method: str, uri: str, body: bytes = b"") -> list[tuple[str, str]]:
        out = []
        for (header, _), answer in self._answered.items():
            answer.uses += 1
            value = authorize(answer.challenge, self.credentials, method=method, uri=uri,
                              body=body, nc=answer.uses, cnonce=answer.cnonce)
            out.append((header, str(value)))
        return out


@dataclass
class _Answer:
    challenge: Challenge
    cnonce: str
    uses: int
    stale_retried: bool


# ---- the server --------------------------------------------------------------------------------


def new_nonce(secret: bytes, now: float) -> str:
    """A stateless nonce: the time it was made, signed with `secret` (RFC 7616 §5.4)."""
    stamp = struct.pack("!d", now)
    tag = hmac.new(secret, stamp, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(stamp + tag).decode("ascii").rstrip("=")


def nonce_age(nonce: str, secret: bytes, now: float) -> float | None:
    """Seconds since `new_nonce(secret, ...)` made `nonce`; None if we did not make it."""
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 24:
        return None
    stamp, tag = raw[:8], raw[8:]
    if not hmac.compare_digest(tag, hmac.new(secret, stamp, hashlib.sha256).digest()[:16]):
        return None
    return now - struct.unpack("!d", stamp)[0]


def make_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: Sequence[str] = ("auth",),
    opaque: str | None = None,
    stale: bool = False,
) -> Challenge:
    """A challenge to send; offer SHA-256 first and MD5 second for RFC 8760 clients."""
    _hash_name(algorithm)
    return Challenge(realm=realm, nonce=nonce, algorithm=algorithm, qop=tuple(qop),
                     opaque=opaque, stale=stale)


def verify(
    authorization: Authorization,
    *,
    password: str,
    method: str,
    body: bytes = b"",
    challenge: Challenge | None = None,
    username: str | None = None,
) -> bool:
    """Whether `authorization` proves knowledge of `password` for this request.

    With `challenge`, its realm, nonce, algorithm and opaque must also be the ones the
    credentials answer. `username` is the user's name when the credentials carry a
    userhash. Checking that the nonce is fresh and the nc not replayed is the caller's.
    """
    a = authorization
    if challenge is not None and (
        a.realm != challenge.realm
        or a.nonce != challenge.nonce
        or a.algorithm.upper() != challenge.algorithm.upper()
        or a.opaque != challenge.opaque
    ):
        return False
    name = username or a.username
    if a.qop is not None and a.qop not in ("auth", "auth-int"):
        return False
    try:
        expected = compute_response(
            algorithm=a.algorithm, username=name, realm=a.realm, password=password,
            method=method, uri=a.uri, nonce=a.nonce, qop=a.qop, nc=a.nc, cnonce=a.cnonce,
            body=body)
    except AuthError:
        return False
    return hmac.compare_digest(expected, a.response.lower())
