"""The SigV4 signer against AWS's published examples: the four requests of "Signature
Calculations for the Authorization Header: Transferring Payload in a Single Chunk" (S3
API reference; credentials AKIAIOSFODNN7EXAMPLE) and cases of the Signature Version 4
test suite (get-vanilla and friends; credentials AKIDEXAMPLE, service "service"). The
expected strings and signatures are AWS's, reproduced as data."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from control.sigv4 import (
    EMPTY_SHA256,
    Credentials,
    canonical_headers,
    canonical_query,
    sign,
    signing_key,
    uri_encode,
)

S3_DOCS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
S3_DOCS_TIME = datetime(2013, 5, 24, tzinfo=UTC)
S3_HOST = {"Host": "examplebucket.s3.amazonaws.com"}
SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
SUITE_HOST = {"Host": "example.amazonaws.com"}

# method, path, query, extra headers, payload, canonical request, string-to-sign hash,
# signature — from the S3 API reference's examples
S3_EXAMPLES = [
    pytest.param(
        "GET", "/test.txt", [], {"Range": "bytes=0-9"}, b"",
        "GET\n/test.txt\n\n"
        "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        f"x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n"
        f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}",
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        id="get-object"),
    pytest.param(
        "PUT", "/" + uri_encode("test$file.text"), [],
        {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
        b"Welcome to Amazon S3.",
        "PUT\n/test%24file.text\n\n"
        "date:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        id="put-object"),
    pytest.param(
        "GET", "/", [("lifecycle", "")], {}, b"",
        "GET\n/\nlifecycle=\n"
        f"host:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:{EMPTY_SHA256}\n"
        f"x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}",
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        id="get-bucket-lifecycle"),
    pytest.param(
        "GET", "/", [("prefix", "J"), ("max-keys", "2")], {}, b"",
        "GET\n/\nmax-keys=2&prefix=J\n"
        f"host:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:{EMPTY_SHA256}\n"
        f"x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}",
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        id="list-objects"),
]


@pytest.mark.parametrize("method, path, query, headers, payload, canonical, sts_hash, signature",
                         S3_EXAMPLES)
def test_the_s3_reference_examples(method: str, path: str, query: list[tuple[str, str]],
                                   headers: dict[str, str], payload: bytes, canonical: str,
                                   sts_hash: str, signature: str) -> None:
    signed = sign(method, path, query, {**S3_HOST, **headers},
                  hashlib.sha256(payload).hexdigest(), S3_DOCS, "us-east-1", "s3",
                  S3_DOCS_TIME)
    assert signed.canonical_request == canonical
    assert signed.string_to_sign == ("AWS4-HMAC-SHA256\n20130524T000000Z\n"
                                     f"20130524/us-east-1/s3/aws4_request\n{sts_hash}")
    assert hashlib.sha256(canonical.encode()).hexdigest() == sts_hash
    assert signed.signature == signature
    assert signed.authorization == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        f"SignedHeaders={signed.signed_headers}, Signature={signature}")
    assert signed.headers["x-amz-date"] == "20130524T000000Z"
    assert signed.headers["x-amz-content-sha256"] == hashlib.sha256(payload).hexdigest()


def test_get_vanilla_step_by_step() -> None:
    """The test suite's get-vanilla: every intermediate string, and the derived key."""
    signed = sign("GET", "/", [], SUITE_HOST, EMPTY_SHA256, SUITE, "us-east-1", "service",
                  SUITE_TIME)
    assert signed.canonical_request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        f"host;x-amz-date\n{EMPTY_SHA256}")
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
    assert signing_key(SUITE.secret_key, "20150830", "us-east-1", "service").hex() == \
        "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
    assert signed.authorization == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    assert "x-amz-content-sha256" not in signed.headers  # only S3 asks for it


@pytest.mark.parametrize("method, query, signature", [
    ("GET", [("Param2", "value2"), ("Param1", "value1")],  # get-vanilla-query-order-key-case
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("POST", [],  # post-vanilla
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
])
def test_more_of_the_test_suite(method: str, query: list[tuple[str, str]],
                                signature: str) -> None:
    signed = sign(method, "/", query, SUITE_HOST, EMPTY_SHA256, SUITE, "us-east-1", "service",
                  SUITE_TIME)
    assert signed.signature == signature


def test_encoding_rules() -> None:
    assert uri_encode("a b/c~d*e+f") == "a%20b%2Fc~d%2Ae%2Bf"
    assert uri_encode("recordings/x y.wav", keep_slash=True) == "recordings/x%20y.wav"
    assert uri_encode("é") == "%C3%A9"
    assert canonical_query([("b", "2"), ("a", "x y"), ("A", "0"), ("a", "1")]) == \
        "A=0&a=1&a=x%20y&b=2"
    block, signed = canonical_headers({"My-Header1": "  a   b  c ", "HOST": "h",
                                       "x-amz-date": "d"})
    assert block == "host:h\nmy-header1:a b c\nx-amz-date:d\n"
    assert signed == "host;my-header1;x-amz-date"


def test_a_naive_time_is_utc_and_a_session_token_is_signed() -> None:
    token = Credentials(SUITE.access_key, SUITE.secret_key, "TOKEN")
    signed = sign("GET", "/", [], SUITE_HOST, EMPTY_SHA256, token, "us-east-1", "service",
                  SUITE_TIME.replace(tzinfo=None))
    assert signed.headers["x-amz-date"] == "20150830T123600Z"
    assert signed.headers["x-amz-security-token"] == "TOKEN"
    assert signed.signed_headers == "host;x-amz-date;x-amz-security-token"
    assert "TOKEN" not in repr(token) and SUITE.secret_key not in repr(SUITE)
