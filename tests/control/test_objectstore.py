"""The S3 client against a real S3 server (moto, on 127.0.0.1): round trips, S3's own
error codes, and — with moto's IAM checks on, which recompute every signature with
botocore — real credentials accepted and wrong ones refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from control.objectstore import ConfigError, ObjectStore, ObjectStoreError, S3Config
from tests.support import s3
from tests.support.ports import free_tcp_port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3.moto_server() as url:
        yield url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def store(endpoint: str, session: aiohttp.ClientSession) -> ObjectStore:
    return ObjectStore(await s3.new_bucket(endpoint), session)


async def test_put_head_get_delete_a_file(store: ObjectStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several chunks
    src = tmp_path / "rec.wav"
    src.write_bytes(data)
    key = "recordings/a b+c~d.wav"  # encoded in the path exactly as it is signed
    etag = await store.put_file(key, src, "audio/wav")
    assert re.fullmatch(r"[0-9a-f]{32}", etag)
    info = await store.head(key)
    assert (info.size, info.etag, info.content_type) == (len(data), etag, "audio/wav")
    dest = tmp_path / "back.wav"
    assert await store.get_file(key, dest) == len(data)
    assert dest.read_bytes() == data
    await store.delete(key)
    with pytest.raises(ObjectStoreError) as err:
        await store.head(key)
    assert (err.value.code, err.value.status) == ("NotFound", 404)
    with pytest.raises(ObjectStoreError) as err:
        await store.get_file(key, dest)
    assert (err.value.code, err.value.status) == ("NoSuchKey", 404)
    assert "does not exist" in err.value.message
    await store.delete(key)  # deleting what is gone is not an error in S3


async def test_bytes_round_trip_and_an_empty_object(store: ObjectStore) -> None:
    await store.put_bytes("x/empty", b"")
    assert await store.get_bytes("x/empty") == b""
    await store.put_bytes("x/small", b"hello")
    assert await store.get_bytes("x/small") == b"hello"


async def test_a_missing_bucket_is_s3_s_no_such_bucket(
    endpoint: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store = ObjectStore(s3.config(endpoint, bucket="no-such-bucket-here"), session)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ObjectStoreError) as err:
        await store.put_file("k", tmp_path / "f")
    assert (err.value.code, err.value.status) == ("NoSuchBucket", 404)
    assert err.value.message == "The specified bucket does not exist"
    assert str(err.value) == "NoSuchBucket: The specified bucket does not exist"


async def test_an_unreachable_store_is_request_failed(session: aiohttp.ClientSession,
                                                      tmp_path: Path) -> None:
    port = free_tcp_port()
    store = ObjectStore(s3.config(f"http://127.0.0.1:{port}", bucket="b-1"), session)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ObjectStoreError) as err:
        await store.put_file("k", tmp_path / "f")
    assert err.value.code == "RequestFailed" and err.value.status is None
    assert f"127.0.0.1:{port}" in err.value.message


async def test_signatures_are_checked_when_moto_checks_them(
    endpoint: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """moto's IAM checks: the first calls (a user, its key, its policy, the bucket) go
    unchecked; after them every request is authenticated with the user's key."""
    cfg = s3.config(endpoint)
    async with s3.iam_checks(endpoint, unchecked=4):
        await s3.iam(session, endpoint, "CreateUser", UserName="vox")
        created = await s3.iam(session, endpoint, "CreateAccessKey", UserName="vox")
        key_id = re.search(r"<AccessKeyId>(.+?)</AccessKeyId>", created)
        secret = re.search(r"<SecretAccessKey>(.+?)</SecretAccessKey>", created)
        assert key_id and secret
        await s3.iam(session, endpoint, "PutUserPolicy", UserName="vox", PolicyName="s3",
                     PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": '
                                    '"Allow", "Action": "s3:*", "Resource": "*"}]}')
        await ObjectStore(cfg, session).create_bucket()
        good = ObjectStore(s3.config(endpoint, bucket=cfg.bucket, access_key=key_id[1],
                                     secret_key=secret[1]), session)
        src = tmp_path / "rec.wav"
        src.write_bytes(b"RIFF" + bytes(5000))
        await good.put_file("recordings/r.wav", src, "audio/wav")
        assert (await good.head("recordings/r.wav")).size == 5004
        assert await good.get_bytes("recordings/r.wav") == src.read_bytes()

        wrong_secret = ObjectStore(s3.config(endpoint, bucket=cfg.bucket, access_key=key_id[1],
                                             secret_key="not-the-secret"), session)
        with pytest.raises(ObjectStoreError) as err:
            await wrong_secret.put_file("recordings/r2.wav", src)
        assert (err.value.code, err.value.status) == ("SignatureDoesNotMatch", 403)
        unknown = ObjectStore(s3.config(endpoint, bucket=cfg.bucket,
                                        access_key="AKIANOBODYKNOWS"), session)
        with pytest.raises(ObjectStoreError) as err:
            await unknown.get_bytes("recordings/r.wav")
        assert (err.value.code, err.value.status) == ("InvalidAccessKeyId", 403)
        await good.delete("recordings/r.wav")


def test_addressing_styles() -> None:
    aws = S3Config("AK", "SK", "eu-west-1", "my-bucket")
    assert ObjectStore(aws, None).url_for("recordings/x y.wav") == (  # type: ignore[arg-type]
        "https://my-bucket.s3.eu-west-1.amazonaws.com", "my-bucket.s3.eu-west-1.amazonaws.com",
        "/recordings/x%20y.wav")
    dotted = S3Config("AK", "SK", "eu-west-1", "my.bucket")
    assert ObjectStore(dotted, None).url_for("k") == (  # type: ignore[arg-type]
        "https://s3.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com", "/my.bucket/k")
    minio = S3Config("AK", "SK", "us-east-1", "my-bucket", "http://127.0.0.1:9000/s3/")
    assert ObjectStore(minio, None).url_for("k") == (  # type: ignore[arg-type]
        "http://127.0.0.1:9000", "127.0.0.1:9000", "/s3/my-bucket/k")
    assert "SK" not in repr(minio)


@pytest.mark.parametrize("changes, field", [
    ({"access_key": ""}, "access_key"),
    ({"secret_key": " "}, "security_key"),
    ({"region": "US East"}, "s3.region"),
    ({"bucket": "Bad_Bucket"}, "s3.bucket"),
    ({"bucket": "ab"}, "s3.bucket"),
    ({"endpoint_url": "ftp://x"}, "s3.endpoint_url"),
    ({"endpoint_url": "http://"}, "s3.endpoint_url"),
])
def test_bad_settings_name_their_field(changes: dict[str, str], field: str) -> None:
    values = {"access_key": "AK", "secret_key": "SK", "region": "us-east-1",
              "bucket": "bucket-1", "endpoint_url": None, **changes}
    with pytest.raises(ConfigError) as err:
        S3Config(**values)  # type: ignore[arg-type]
    assert err.value.field == field
