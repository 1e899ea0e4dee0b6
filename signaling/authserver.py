"""Digest authentication of requests we receive (RFC 3261 §22.4, RFC 7616, RFC 8760),
sans-I/O: the registrar's step 3 (§10.3).

Theory of operation
-------------------
`DigestAuthenticator.check(request, source, now)` answers either the authenticated user
name or the response to send instead:

- no credentials for our realm: 401 with one WWW-Authenticate per algorithm, by default
  SHA-256 first and MD5 second (RFC 8760 §2.4: a client answers the first it supports),
  qop=auth,
  a stateless nonce (`auth.new_nonce`: its time of issue signed with our secret, so
  nothing is kept per challenge) and an opaque;
- Digest credentials that do not parse or lack a field: 400 naming the fault (those of
  another scheme count as none: a 401 with ours, RFC 4475 §3.3.7);
- credentials whose digest is right but whose nonce is ours no more (older than
  `nonce_lifetime`, made before a restart, or an nc already used): 401 with a fresh nonce
  and stale=TRUE, so the client retries with the same password (RFC 7616 §3.3);
- a wrong digest: 403. An unknown user gets exactly that, after the same work (a digest
  computed with a stand-in password), so no answer tells which users exist.

Failures (wrong digests and unreadable credentials) are counted per source address: from
the `max_failures`-th within `window` seconds on, every request from that address is
answered 403 for `lockout` seconds, right password or not, before any digest is computed.
`failures` and `locked` expose that state to logs and tests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from signaling.auth import (
    AuthError,
    Authorization,
    compute_response,
    make_challenge,
    new_nonce,
    nonce_age,
)
from signaling.message import Request, Response, make_response

__all__ = ["AuthDecision", "DigestAuthenticator"]

ALGORITHMS = ("SHA-256", "MD5")
# Stands in for the password of a user who does not exist: the digest is computed all
# the same, so that unknown users cost what known ones do.
_NO_PASSWORD = secrets.token_hex(16)


@dataclass(frozen=True)
class AuthDecision:
    """What `check` decided: `user` when authenticated, else the `response` to send;
    `reason` says why (for the log)."""

    user: str | None
    response: Response | None
    reason: str


@dataclass
class DigestAuthenticator:
    """Challenges and verifies Digest credentials for one realm."""

    realm: str
    passwords: Callable[[str], str | None]
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # offered in this order; RFC 8760 §2.4 puts SHA-256 first. Some clients give up at a
    # challenge they cannot answer (baresip 1.0 with libre 1.1 at SHA-256): ("MD5",).
    algorithms: tuple[str, ...] = ALGORITHMS
    nonce_lifetime: float = 300.0
    max_failures: int = 5
    window: float = 60.0
    lockout: float = 60.0
    opaque: str = field(default_factory=lambda: secrets.token_hex(8))
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)
    _nc: dict[str, int] = field(default_factory=dict)  # nonce -> highest nc accepted

    def check(self, request: Request, source: str, now: float) -> AuthDecision:
        """Authenticate `request`, received from host `source`, at `now`."""
        until = self._locked.get(source)
        if until is not None and now < until:
            return self._deny(request, "source locked out after repeated failures")
        if until is not None:
            del self._locked[source]
        value = self._credentials(request)
        if value is None:
            return AuthDecision(None, self.challenge(request, now), "no credentials")
        try:
            credentials = Authorization.parse(value)
        except AuthError as exc:
            self._failed(source, now)
            reason = f"Malformed Authorization header: {exc}"
            return AuthDecision(None, make_response(request, 400, reason[:100]), reason)
        if credentials.algorithm.upper() not in self.algorithms:
            return AuthDecision(None, self.challenge(request, now),
                                f"algorithm {credentials.algorithm} not offered")
        if credentials.qop is not None and credentials.qop != "auth":
            return AuthDecision(None, self.challenge(request, now),
                                f"qop {credentials.qop} not offered")
        if not self._digest_ok(credentials, request.method):
            self._failed(source, now)
            return self._deny(request, f"wrong credentials for {credentials.username!r}")
        age = nonce_age(credentials.nonce, self.secret, now)
        if age is None or not 0 <= age <= self.nonce_lifetime or not self._fresh_nc(
                credentials):
            return AuthDecision(None, self.challenge(request, now, stale=True), "stale nonce")
        self._failures.pop(source, None)
        return AuthDecision(credentials.username, None, "authenticated")

    def challenge(self, request: Request, now: float, *, stale: bool = False) -> Response:
        """401 with a challenge per algorithm, sharing one nonce."""
        nonce = new_nonce(self.secret, now)
        headers = [("WWW-Authenticate", str(make_challenge(
            self.realm, nonce, algorithm=a, opaque=self.opaque, stale=stale)))
            for a in self.algorithms]
        return make_response(request, 401, headers=headers)

    def failures(self, source: str, now: float) -> int:
        """Failures counted for `source` within the window."""
        return len([t for t in self._failures.get(source, []) if now - t < self.window])

    def locked(self, source: str, now: float) -> bool:
        until = self._locked.get(source)
        return until is not None and now < until

    # ---- internals -------------------------------------------------------------------

    def _credentials(self, request: Request) -> str | None:
        """The Authorization value for our realm (a request may carry several)."""
        # other schemes are not ours to judge: challenged as if absent (RFC 4475 §3.3.7)
        values = [v for v in request.headers.getall_raw("Authorization")
                  if v.strip().split(" ", 1)[0].lower() == "digest"]
        for value in values:
            try:
                if Authorization.parse(value).realm == self.realm:
                    return value
            except AuthError:
                continue
        # none parses for our realm: hand back the first, whose parse error is reported
        return values[0] if values else None

    def _digest_ok(self, a: Authorization, method: str) -> bool:
        password = self.passwords(a.username) if a.realm == self.realm else None
        known = password is not None
        try:
            expected = compute_response(
                algorithm=a.algorithm, username=a.username, realm=a.realm,
                password=password if password is not None else _NO_PASSWORD,
                method=method, uri=a.uri, nonce=a.nonce, qop=a.qop, nc=a.nc,
                cnonce=a.cnonce)
        except AuthError:
            expected = hashlib.sha256(b"unusable").hexdigest()
        same = hmac.compare_digest(expected, a.response.lower())
        return known and same and (a.opaque is None or a.opaque == self.opaque)

    def _fresh_nc(self, a: Authorization) -> bool:
        """Each nc of a nonce counts once (RFC 7616 §3.4: replay protection)."""
        if a.qop is None or a.nc is None:
            return True
        try:
            nc = int(a.nc, 16)
        except ValueError:
            return False
        if nc <= self._nc.get(a.nonce, 0):
            return False
        if len(self._nc) > 10_000:  # nonces live minutes; forget the oldest half
            for old in list(self._nc)[:5_000]:
                del self._nc[old]
        self._nc[a.nonce] = nc
        return True

    def _failed(self, source: str, now: float) -> None:
        recent = [t for t in self._failures.get(source, []) if now - t < self.window]
        recent.append(now)
        self._failures[source] = recent
        if len(recent) >= self.max_failures:
            self._locked[source] = now + self.lockout
            del self._failures[source]
        if len(self._failures) > 10_000:
            for old in list(self._failures)[:5_000]:
                del self._failures[old]

    def _deny(self, request: Request, reason: str) -> AuthDecision:
        return AuthDecision(None, make_response(request, 403, "Forbidden"), reason)
