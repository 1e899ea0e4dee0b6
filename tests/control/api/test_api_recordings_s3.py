"""Recordings with recording storage on S3, end to end on a real S3 server (moto on
127.0.0.1), a real media engine ticked by the test, real SQLite and files: a recording
goes to the bucket once closed, is listed and downloads from it, and DELETE deletes the
object; a store that can't be reached keeps recordings local, listed and downloadable,
and they are uploaded once it answers (the next upload that succeeds, a new
configuration, or the next start)."""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from control.api import ApiContext
from control.objectstore import ObjectStore, ObjectStoreError, S3Config
from control.recordings import RecordingService
from control.recordingstore import RecordingStore, object_key
from control.storage import Storage
from media import g711
from media.engine import MediaEngine
from tests.control.api.conftest import MakeCall
from tests.control.api.test_api_recordings import Client, Session, recorded, request, ticks
from tests.support import s3
from tests.support.audio import decode_file, dominant_frequency, tone_segments
from tests.support.ports import free_tcp_port
from tests.support.udp import UdpPeer

WAV_BYTES = 44 + 4000 * 2 * 2  # recorded(): 0.5 s of 8 kHz 16-bit stereo


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3.moto_server() as url:
        yield url


@pytest.fixture
async def bucket(endpoint: str) -> S3Config:
    return await s3.new_bucket(endpoint)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def service(ctx: ApiContext, engine: MediaEngine, storage: Storage, tmp_path: Path
                  ) -> AsyncIterator[RecordingService]:
    svc = RecordingService(engine, storage, tmp_path / "recordings")
    ctx.recordings = svc
    yield svc
    await svc.close()


@pytest.fixture
async def session(make_call: MakeCall, engine: MediaEngine, service: RecordingService
                  ) -> AsyncIterator[Session]:
    peer = UdpPeer()
    ch = await engine.open_channel()
    ch.configure(remote=peer.addr, payload_type=g711.PCMU, latch=False)
    call = make_call("7@1", connected_s=3)
    s = Session(call, ch, service)
    call.control = s  # type: ignore[assignment]
    yield s
    peer.close()


def put_body(cfg: S3Config) -> dict[str, Any]:
    return {"access_key": cfg.access_key, "security_key": cfg.secret_key,
            "s3": {"region": cfg.region, "bucket": cfg.bucket, "endpoint_url": cfg.endpoint_url}}


async def configure(client: Client, auth: dict[str, str], cfg: S3Config) -> None:
    status, body, _ = await request(client, auth, "PUT", "/Integrations/RecordingStorage/AWS",
                                    put_body(cfg))
    assert status == 200, body


async def in_bucket(http: aiohttp.ClientSession, cfg: S3Config, rid: str) -> int | None:
    """The object's size, None when there is none."""
    try:
        return (await ObjectStore(cfg, http).head(object_key(rid))).size
    except ObjectStoreError as exc:
        assert exc.code == "NotFound"
        return None


def leftovers(service: RecordingService) -> list[str]:
    return sorted(p.name for p in service.directory.iterdir()) \
        if service.directory.exists() else []


async def test_a_recording_goes_to_the_bucket_downloads_from_it_and_deletes_from_it(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, storage: Storage, bucket: S3Config,
    http: aiohttp.ClientSession, check_error: Any
) -> None:
    await configure(client, auth, bucket)
    rid = await recorded(client, auth, session, engine, group="s3")
    await service.store.idle()
    row = await storage.get_recording(rid)
    assert row is not None
    assert (row["bucket"], row["object_key"]) == (bucket.bucket, f"recordings/{rid}.wav")
    assert await in_bucket(http, bucket, rid) == WAV_BYTES
    assert not Path(row["path"]).exists() and leftovers(service) == []

    status, body, _ = await request(client, auth, "GET", "/History/Recordings?group=s3")
    assert status == 200
    [item] = body["recordings"]
    assert (item["id"], item["duration"], item["storage"], item["status"]) == \
        (rid, 500, "s3", "completed")
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}")
    assert status == 200 and body == item

    status, _, raw = await request(client, auth, "GET", f"/History/Recordings/{rid}/wav")
    assert status == 200
    with wave.open(io.BytesIO(raw), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 4000)
        pcm = np.frombuffer(w.readframes(4000), "<i2").reshape(-1, 2)
    assert tone_segments(pcm[:, 1].astype(np.int16), 1209, min_db=-30) == [(0.0, 0.5)]
    for fmt in ("mp3", "wavM"):
        status, _, raw = await request(client, auth, "GET", f"/History/Recordings/{rid}/{fmt}")
        assert status == 200, fmt
        got = decode_file(raw, fmt)
        assert (got.declared_s or got.seconds) == pytest.approx(0.5, abs=0.05)
        heard = got.pcm[:, -1]
        assert dominant_frequency(heard[len(heard) // 4: -len(heard) // 4], got.rate) == \
            pytest.approx(1209, abs=10)
    assert leftovers(service) == []  # the fetched copies are gone

    status, _, _ = await request(client, auth, "DELETE", f"/History/Recordings/{rid}")
    assert status == 204
    assert await in_bucket(http, bucket, rid) is None
    assert await storage.get_recording(rid) is None
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}/wav")
    assert status == 404
    check_error(body, 404, 404002)


async def test_an_unreachable_store_keeps_recordings_local_until_it_answers(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, storage: Storage, http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture
) -> None:
    port = free_tcp_port()
    down = s3.config(f"http://127.0.0.1:{port}")
    await configure(client, auth, down)
    with caplog.at_level(logging.WARNING, "voxswitch.recordingstore"):
        first = await recorded(client, auth, session, engine)
        await service.store.idle()
    [warning] = [r for r in caplog.records if r.name == "voxswitch.recordingstore"]
    assert "recording.upload_failed" in warning.getMessage()
    assert "RequestFailed" in warning.getMessage() and f"127.0.0.1:{port}" in warning.getMessage()
    assert warning.recording_id == first  # type: ignore[attr-defined]
    row = await storage.get_recording(first)
    assert row is not None and row["object_key"] is None and Path(row["path"]).is_file()
    assert service.store.failed == {first}
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{first}")
    assert status == 200 and (body["storage"], body["status"]) == ("local", "completed")
    status, _, raw = await request(client, auth, "GET", f"/History/Recordings/{first}/wav")
    assert status == 200 and len(raw) == WAV_BYTES

    # the store comes up where it was configured; the next recording's upload succeeds,
    # and the one that failed goes with it
    with s3.moto_server(port) as url:
        assert url == down.endpoint_url
        await ObjectStore(down, http).create_bucket()
        second = await recorded(client, auth, session, engine)
        await service.store.idle()
        for rid in (first, second):
            row = await storage.get_recording(rid)
            assert row is not None and row["object_key"] == object_key(rid), rid
            assert await in_bucket(http, down, rid) == WAV_BYTES
        assert service.store.failed == set() and leftovers(service) == []


async def test_a_missing_bucket_is_logged_and_the_next_start_uploads(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, storage: Storage, endpoint: str, bucket: S3Config,
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    missing = s3.config(endpoint, bucket="no-such-bucket-vox")
    service.store.default = missing  # as the settings file would give it
    with caplog.at_level(logging.WARNING, "voxswitch.recordingstore"):
        rid = await recorded(client, auth, session, engine)
        await service.store.idle()
    assert any("NoSuchBucket: The specified bucket does not exist" in r.getMessage()
               for r in caplog.records)
    row = await storage.get_recording(rid)
    assert row is not None and row["object_key"] is None and Path(row["path"]).is_file()
    # restarted with the settings fixed: start-up uploads what is still local
    restarted = RecordingService(engine, storage, service.directory,
                                 RecordingStore(storage, service.directory, bucket))
    try:
        await restarted.store.load()
        await restarted.recover()
        await restarted.store.idle()
    finally:
        await restarted.close()
    row = await storage.get_recording(rid)
    assert row is not None and row["object_key"] == object_key(rid)
    assert await in_bucket(http, bucket, rid) == WAV_BYTES
    assert not Path(row["path"]).exists()


async def test_a_saved_message_goes_once_its_call_can_no_longer_play_it(
    session: Session, engine: MediaEngine, service: RecordingService, storage: Storage,
    bucket: S3Config, http: aiohttp.ClientSession
) -> None:
    service.store.default = bucket
    message = await service.start_message(session, None, "vm", timeout_s=5, max_s=30)
    ticks(engine, 10)
    await service.stop_message(session.call)
    await service.save_message(session.call)
    await service.store.idle()
    assert message.path.is_file() and await in_bucket(http, bucket, message.id) is None
    assert service.last_message(session.call) is message  # RECORDMESSAGE play reads it
    await service.stop_call(session.call)
    await service.store.idle()
    assert not message.path.exists()
    assert await in_bucket(http, bucket, message.id) == 44 + 1600 * 2  # 0.2 s mono


async def test_bucket_failures_on_download_and_delete_are_500501(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, storage: Storage, bucket: S3Config,
    http: aiohttp.ClientSession, check_error: Any
) -> None:
    await configure(client, auth, bucket)
    rid = await recorded(client, auth, session, engine)
    await service.store.idle()
    await ObjectStore(bucket, http).delete(object_key(rid))  # gone behind our back
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}/mp3")
    assert status == 500
    check_error(body, 500, 500501)
    assert "NoSuchKey" in body["help"]
    assert leftovers(service) == []
    # the store unreachable: DELETE fails and the recording stays listed
    await configure(client, auth, s3.config(f"http://127.0.0.1:{free_tcp_port()}",
                                            bucket=bucket.bucket))
    status, body, _ = await request(client, auth, "DELETE", f"/History/Recordings/{rid}")
    assert status == 500
    check_error(body, 500, 500501)
    assert await storage.get_recording(rid) is not None
    # no storage configured at all: an uploaded recording can't be read
    status, _, _ = await request(client, auth, "DELETE", "/Integrations/RecordingStorage/AWS")
    assert status == 200
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}/wav")
    assert status == 500
    check_error(body, 500, 500501)
    assert "NotConfigured" in body["help"]


async def test_delete_during_the_upload_leaves_nothing_behind(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, storage: Storage, bucket: S3Config,
    http: aiohttp.ClientSession
) -> None:
    await configure(client, auth, bucket)
    rid = await recorded(client, auth, session, engine)  # its upload is under way
    assert await service.delete(rid) is True  # waits for it, then deletes the object
    service.store.offload(rid)
    service.store.sweep()
    await service.store.idle()
    assert await in_bucket(http, bucket, rid) is None
    assert await storage.get_recording(rid) is None and leftovers(service) == []
