"""Digest authentication (RFC 7616, RFC 8760, RFC 3261 §22): the maths against the RFCs'
published examples, the header forms, the client's retry rules and the server's checks."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from signaling.auth import (
    AuthError,
    Authorization,
    Challenge,
    Credentials,
    DigestClient,
    authorize,
    compute_response,
    make_challenge,
    new_nonce,
    nonce_age,
    parse_challenges,
    verify,
)

# RFC 7616 §3.9.1: the challenge and the MD5 and SHA-256 answers of its example.
RFC7616_CHALLENGE = """Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm={algorithm},
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""
RFC7616_AUTHORIZATION = """Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm={algorithm},
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="{response}",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA = Credentials("Mufasa", "Circle of Life")
RFC7616 = [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
]


def unfold(text: str) -> str:
    return " ".join(text.split())  # header folding is undone by the message parser


@pytest.mark.parametrize("algorithm, response", RFC7616)
def test_rfc7616_example_client(algorithm: str, response: str) -> None:
    challenge = Challenge.parse(unfold(RFC7616_CHALLENGE.format(algorithm=algorithm)))
    assert challenge.qop == ("auth", "auth-int") and challenge.algorithm == algorithm
    answer = authorize(challenge, MUFASA, method="GET", uri="/dir/index.html",
                       cnonce=RFC7616_CNONCE)
    assert answer.response == response
    assert (answer.qop, answer.nc, answer.opaque) == ("auth", "00000001", challenge.opaque)
    expected = Authorization.parse(unfold(RFC7616_AUTHORIZATION.format(
        algorithm=algorithm, response=response)))
    assert answer == expected


@pytest.mark.parametrize("algorithm, response", RFC7616)
def test_rfc7616_example_server(algorithm: str, response: str) -> None:
    challenge = Challenge.parse(unfold(RFC7616_CHALLENGE.format(algorithm=algorithm)))
    credentials = Authorization.parse(unfold(RFC7616_AUTHORIZATION.format(
        algorithm=algorithm, response=response)))
    assert verify(credentials, password="Circle of Life", method="GET", challenge=challenge)
    assert not verify(credentials, password="Circle of life", method="GET")
    assert not verify(credentials, password="Circle of Life", method="POST")
    other = Challenge.parse(unfold(RFC7616_CHALLENGE.format(algorithm=algorithm))
                            .replace("7ypf", "8ypf"))
    assert not verify(credentials, password="Circle of Life", method="GET", challenge=other)


def test_rfc2617_example() -> None:
    # RFC 2617 §3.5 (the MD5 qop=auth example RFC 7616 replaced).
    assert compute_response(
        algorithm="MD5", username="Mufasa", realm="testrealm@host.com",
        password="Circle Of Life", method="GET", uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", nc="00000001",
        cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def h(name: str, text: str | bytes) -> str:
    return hashlib.new(name, text.encode() if isinstance(text, str) else text).hexdigest()


@pytest.mark.parametrize("algorithm, name", [
    ("MD5", "md5"), ("SHA-256", "sha256"), ("SHA-512-256", "sha512_256")])
def test_no_qop_auth_int_and_sess_forms(algorithm: str, name: str) -> None:
    common: dict[str, Any] = dict(username="alice", realm="r", password="pw", method="INVITE",
                  uri="sip:bob@192.0.2.1", nonce="n")
    ha1 = h(name, "alice:r:pw")
    ha2 = h(name, "INVITE:sip:bob@192.0.2.1")
    assert compute_response(algorithm=algorithm, **common) == h(name, f"{ha1}:n:{ha2}")
    body = b"v=0\r\n"
    ha2_int = h(name, f"INVITE:sip:bob@192.0.2.1:{h(name, body)}")
    assert compute_response(algorithm=algorithm, qop="auth-int", nc="00000001", cnonce="c",
                            body=body, **common) == h(
        name, f"{ha1}:n:00000001:c:auth-int:{ha2_int}")
    ha1_sess = h(name, f"{ha1}:n:c")
    assert compute_response(algorithm=f"{algorithm}-sess", qop="auth", nc="00000002",
                            cnonce="c", **common) == h(
        name, f"{ha1_sess}:n:00000002:c:auth:{ha2}")


def test_userhash() -> None:
    challenge = Challenge(realm="api@example.org", nonce="n", algorithm="SHA-256",
                          qop=("auth",), userhash=True)
    answer = authorize(challenge, Credentials("Jason", "pw"), method="GET", uri="/")
    assert answer.username == h("sha256", "Jason:api@example.org") and answer.userhash
    assert verify(answer, password="pw", method="GET", username="Jason")


def test_unsupported_algorithm() -> None:
    challenge = Challenge(realm="r", nonce="n", algorithm="SHA-999")
    with pytest.raises(AuthError, match="unsupported digest algorithm 'SHA-999'"):
        authorize(challenge, MUFASA, method="INVITE", uri="sip:x@192.0.2.1")


def test_sess_needs_qop() -> None:
    challenge = Challenge(realm="r", nonce="n", algorithm="MD5-sess")
    with pytest.raises(AuthError, match="MD5-sess needs a qop"):
        authorize(challenge, MUFASA, method="INVITE", uri="sip:x@192.0.2.1")


# ---- header forms -----------------------------------------------------------------------------


def test_parse_several_challenges() -> None:
    text = ('Digest realm="a, b", nonce="x\\"y", algorithm=SHA-256, qop="auth", '
            'Basic realm="basic", Digest realm="c", nonce="z", stale=true')
    first, second = parse_challenges(text)
    assert (first.realm, first.nonce, first.algorithm, first.qop) == (
        "a, b", 'x"y', "SHA-256", ("auth",))
    assert (second.realm, second.nonce, second.algorithm, second.stale) == (
        "c", "z", "MD5", True)


@pytest.mark.parametrize("text, message", [
    ('Digest nonce="n"', "Digest challenge without realm or nonce"),
    ('realm="r"', "auth header does not start with a scheme"),
    ('Digest realm="unterminated', "malformed auth header"),
])
def test_malformed_challenges(text: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        parse_challenges(text)


def test_challenge_round_trip() -> None:
    challenge = make_challenge("voxswitch", "n1", algorithm="SHA-256", qop=("auth", "auth-int"),
                               opaque="o", stale=True)
    text = str(challenge)
    assert text == ('Digest realm="voxswitch", nonce="n1", opaque="o", stale=TRUE, '
                    'algorithm=SHA-256, qop="auth,auth-int"')
    assert Challenge.parse(text) == challenge


def test_authorization_round_trip_and_order() -> None:
    answer = authorize(Challenge(realm="r", nonce="n", qop=("auth",), opaque="o"),
                       Credentials("alice", "pw"), method="INVITE", uri="sip:b@192.0.2.1",
                       cnonce="c")
    text = str(answer)
    # nonce before cnonce: SIPp 3.6's verifyauth takes the first "nonce=" it finds
    assert text.index("nonce=") < text.index("cnonce=")
    assert text.startswith('Digest username="alice", realm="r", nonce="n", ')
    assert Authorization.parse(text) == answer


def test_authorization_missing_fields() -> None:
    with pytest.raises(AuthError, match="without uri, response"):
        Authorization.parse('Digest username="a", realm="r", nonce="n"')


# ---- the client's rules ------------------------------------------------------------------------


def test_digest_client_one_retry_per_realm() -> None:
    client = DigestClient(Credentials("alice", "pw"), cnonce=lambda: "c")
    assert client.challenged(407, ['Digest realm="proxy", nonce="p1", qop="auth"'])
    [(name, value)] = client.headers("INVITE", "sip:b@192.0.2.1")
    assert name == "Proxy-Authorization" and Authorization.parse(value).nc == "00000001"
    assert client.challenged(401, ['Digest realm="uas", nonce="u1"'])
    headers = dict(client.headers("INVITE", "sip:b@192.0.2.1"))
    assert Authorization.parse(headers["Proxy-Authorization"]).nc == "00000002"
    assert Authorization.parse(headers["Authorization"]).realm == "uas"
    assert not client.challenged(401, ['Digest realm="uas", nonce="u2"'])
    assert client.refusal == "credentials for realm 'uas' refused"


def test_digest_client_picks_first_supported_per_realm() -> None:
    client = DigestClient(Credentials("alice", "pw"))
    assert client.challenged(401, ['Digest realm="r", nonce="n", algorithm=SHA-256',
                                   'Digest realm="r", nonce="n", algorithm=MD5'])
    [(_, value)] = client.headers("INVITE", "sip:b@192.0.2.1")
    assert Authorization.parse(value).algorithm == "SHA-256"


@pytest.mark.parametrize("status, values, refusal", [
    (401, ['Digest realm="r", nonce="n", algorithm=AKAv1-MD5'],
     "no Digest challenge we can answer (algorithms: AKAv1-MD5)"),
    (401, ['Basic realm="r"'], "no Digest challenge we can answer (algorithms: none)"),
    (401, ['Digest realm="r'], "unreadable challenge: malformed auth header at"),
    (403, [], "403 is not a challenge"),
])
def test_digest_client_refusals(status: int, values: list[str], refusal: str) -> None:
    client = DigestClient(Credentials("alice", "pw"))
    assert not client.challenged(status, values)
    assert client.refusal.startswith(refusal)


# ---- the server --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_server_challenge_and_verify(algorithm: str) -> None:
    secret = b"registrar-secret"
    nonce = new_nonce(secret, 1000.0)
    challenge = make_challenge("voxswitch", nonce, algorithm=algorithm)
    answer = authorize(challenge, Credentials("alice", "pw"), method="REGISTER",
                       uri="sip:voxswitch")
    received = Authorization.parse(str(answer))
    assert verify(received, password="pw", method="REGISTER", challenge=challenge)
    assert not verify(received, password="pw2", method="REGISTER", challenge=challenge)
    assert nonce_age(received.nonce, secret, 1030.0) == pytest.approx(30.0)


def test_nonce_forgery_is_detected() -> None:
    nonce = new_nonce(b"a", 5.0)
    assert nonce_age(nonce, b"b", 6.0) is None
    assert nonce_age(nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB"), b"a", 6.0) is None
    assert nonce_age("not base64!", b"a", 6.0) is None
    assert nonce_age("", b"a", 6.0) is None


def test_verify_refuses_unknown_qop_and_algorithm() -> None:
    answer = authorize(Challenge(realm="r", nonce="n", qop=("auth",)),
                       Credentials("alice", "pw"), method="INVITE", uri="sip:b@192.0.2.1")
    assert verify(answer, password="pw", method="INVITE")
    bad_qop = Authorization(**{**answer.__dict__, "qop": "auth-conf"})
    bad_algorithm = Authorization(**{**answer.__dict__, "algorithm": "SHA-999"})
    assert not verify(bad_qop, password="pw", method="INVITE")
    assert not verify(bad_algorithm, password="pw", method="INVITE")


def test_credentials_repr_hides_password() -> None:
    assert "pw" not in repr(Credentials("alice", "pw"))
