"""Server-side digest authentication: challenges, verification (the RFC 7616 §3.9.1
example, MD5 and SHA-256), stale nonces, replays, unknown users like wrong passwords,
missing fields, and the per-source lockout."""

from __future__ import annotations

import pytest

from signaling.auth import Challenge, Credentials, authorize, parse_challenges
from signaling.authserver import DigestAuthenticator
from signaling.message import Headers, Request

USERS = {"alice": "secret", "Mufasa": "Circle of Life"}
REALM = "voxswitch"
RFC_REALM = "http-auth@example.org"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616 = [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
]


def request(method: str = "REGISTER", uri: str = "sip:127.0.0.1",
            authorization: str | None = None) -> Request:
    headers = Headers([
        ("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKa1"),
        ("From", "<sip:alice@127.0.0.1>;tag=1"), ("To", "<sip:alice@127.0.0.1>"),
        ("Call-ID", "c@t"), ("CSeq", f"1 {method}")])
    if authorization is not None:
        headers.add("Authorization", authorization)
    return Request(method, uri, headers)


def authenticator(**kw: object) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, USERS.get, **kw)  # type: ignore[arg-type]


def answer(auth: DigestAuthenticator, user: str, password: str, now: float = 0.0,
           algorithm: str = "SHA-256", nc: int = 1) -> str:
    challenges = parse_challenges(
        ", ".join(auth.challenge(request(), now).headers.getall("WWW-Authenticate")))
    challenge = next(c for c in challenges if c.algorithm == algorithm)
    return str(authorize(challenge, Credentials(user, password), method="REGISTER",
                         uri="sip:127.0.0.1", nc=nc))


def test_challenge_offers_sha256_then_md5_with_qop_auth() -> None:
    response = authenticator().challenge(request(), 0.0)
    assert response.status == 401
    values = response.headers.getall("WWW-Authenticate")
    challenges = [Challenge.parse(v) for v in values]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.qop == ("auth",) and c.realm == REALM for c in challenges)
    assert challenges[0].nonce == challenges[1].nonce


def test_no_credentials_is_challenged() -> None:
    decision = authenticator().check(request(), "127.0.0.1", 0.0)
    assert decision.user is None and decision.response is not None
    assert decision.response.status == 401


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_right_password_authenticates(algorithm: str) -> None:
    auth = authenticator()
    creds = answer(auth, "alice", "secret", algorithm=algorithm)
    decision = auth.check(request(authorization=creds), "127.0.0.1", 1.0)
    assert decision.user == "alice" and decision.response is None


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "secret")])
def test_wrong_password_and_unknown_user_look_the_same(user: str, password: str) -> None:
    auth = authenticator()
    decision = auth.check(request(authorization=answer(auth, user, password)), "127.0.0.1", 1.0)
    assert decision.response is not None
    assert (decision.response.status, decision.response.reason) == (403, "Forbidden")
    assert decision.response.headers.get("WWW-Authenticate") is None
    assert auth.failures("127.0.0.1", 1.0) == 1


@pytest.mark.parametrize(("algorithm", "response"), RFC7616)
def test_rfc7616_example_verifies(algorithm: str, response: str) -> None:
    """The RFC's credentials are right; its nonce is not ours, so: stale, not refused."""
    auth = DigestAuthenticator(RFC_REALM, USERS.get, opaque=RFC_OPAQUE)
    creds = (f'Digest username="Mufasa", realm="{RFC_REALM}", uri="/dir/index.html", '
             f'algorithm={algorithm}, nonce="{RFC_NONCE}", nc=00000001, '
             f'cnonce="{RFC_CNONCE}", qop=auth, response="{response}", '
             f'opaque="{RFC_OPAQUE}"')
    decision = auth.check(request("GET", "/dir/index.html", creds), "10.0.0.1", 0.0)
    assert decision.response is not None and decision.response.status == 401
    assert all(Challenge.parse(v).stale
               for v in decision.response.headers.getall("WWW-Authenticate"))
    wrong = creds.replace(response, response[:-1] + ("0" if response[-1] != "0" else "1"))
    decision = auth.check(request("GET", "/dir/index.html", wrong), "10.0.0.1", 0.0)
    assert decision.response is not None and decision.response.status == 403


def test_expired_nonce_is_stale() -> None:
    auth = authenticator(nonce_lifetime=300.0)
    creds = answer(auth, "alice", "secret", now=0.0)
    decision = auth.check(request(authorization=creds), "127.0.0.1", 301.0)
    assert decision.response is not None and decision.response.status == 401
    assert Challenge.parse(decision.response.headers.getall("WWW-Authenticate")[0]).stale


def test_replayed_nc_is_stale() -> None:
    auth = authenticator()
    creds = answer(auth, "alice", "secret")
    assert auth.check(request(authorization=creds), "127.0.0.1", 1.0).user == "alice"
    again = auth.check(request(authorization=creds), "127.0.0.1", 2.0)
    assert again.user is None and again.response is not None
    assert again.response.status == 401


@pytest.mark.parametrize("creds", [
    'Digest username="alice", realm="voxswitch", nonce="x", uri="sip:127.0.0.1"',
    'Digest realm="voxswitch", nonce="x", uri="sip:127.0.0.1", response="00"',
    'Digest username="alice" realm=',
])
def test_unreadable_credentials_are_400(creds: str) -> None:
    auth = authenticator()
    decision = auth.check(request(authorization=creds), "127.0.0.1", 0.0)
    assert decision.response is not None and decision.response.status == 400
    assert "Authorization" in decision.response.reason


def test_failures_lock_the_source_out() -> None:
    auth = authenticator(max_failures=3, window=60.0, lockout=30.0)
    for i in range(3):
        creds = answer(auth, "alice", f"guess{i}", now=float(i))
        assert auth.check(request(authorization=creds), "10.0.0.9", float(i)).response
    assert auth.locked("10.0.0.9", 3.0)
    right = answer(auth, "alice", "secret", now=4.0)
    locked = auth.check(request(authorization=right), "10.0.0.9", 4.0)
    assert locked.response is not None and locked.response.status == 403
    # another source is not affected, and the lockout ends
    assert auth.check(request(authorization=right), "10.0.0.8", 4.0).user == "alice"
    right = answer(auth, "alice", "secret", now=40.0)
    assert auth.check(request(authorization=right), "10.0.0.9", 40.0).user == "alice"


def test_failures_outside_the_window_do_not_add_up() -> None:
    auth = authenticator(max_failures=2, window=10.0)
    auth.check(request(authorization=answer(auth, "alice", "x")), "10.0.0.7", 0.0)
    auth.check(request(authorization=answer(auth, "alice", "y", now=20.0)), "10.0.0.7", 20.0)
    assert not auth.locked("10.0.0.7", 21.0)


def test_md5_only_for_old_clients() -> None:
    """Some clients give up at a challenge they cannot answer (baresip 1.0 at SHA-256)."""
    auth = authenticator(algorithms=("MD5",))
    values = auth.challenge(request(), 0.0).headers.getall("WWW-Authenticate")
    assert [Challenge.parse(v).algorithm for v in values] == ["MD5"]
    sha = DigestAuthenticator(REALM, USERS.get)
    creds = answer(sha, "alice", "secret", algorithm="SHA-256")
    decision = auth.check(request(authorization=creds), "127.0.0.1", 1.0)
    assert decision.response is not None and decision.response.status == 401


@pytest.mark.parametrize("creds", ["Basic YWxpY2U6c2VjcmV0",
                                   "NoOneKnowsThisScheme opaque-data=here"])
def test_other_schemes_are_challenged(creds: str) -> None:
    """RFC 4475 §3.3.7 (regaut01): an unknown scheme gets our challenge."""
    decision = authenticator().check(request(authorization=creds), "127.0.0.1", 0.0)
    assert decision.response is not None and decision.response.status == 401
