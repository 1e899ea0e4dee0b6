"""Recording REST methods: LiveCalls Actions/Recording/* and History/Recordings, over a
real RecordingService (real media engine, ticked by the test; real storage and files).
The live call is a stand-in session whose recordings go through the real service."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.api import ApiContext
from control.calls import Call
from control.recordings import RecordingService
from control.storage import Storage
from media import g711
from media.channel import Channel
from media.engine import MediaEngine
from media.transcode import FORMATS
from tests.control.api.conftest import MakeCall, RecordingControl
from tests.support.audio import decode_file, dominant_frequency, sine, tone_segments
from tests.support.udp import UdpPeer

Client = TestClient[web.Request, web.Application]
CheckError = Callable[[dict[str, Any], int, int], None]
BASE = "/v1"


class Session(RecordingControl):
    """The call session's recording side: the real service, a real channel."""

    def __init__(self, call: Call, channel: Channel, service: RecordingService) -> None:
        super().__init__()
        self.call, self.channel, self.service = call, channel, service

    def media_channel(self) -> Channel | None:
        return self.channel

    async def start_recording(self, group: str | None, pre_message: list[str] | None,
                              message: list[str] | None) -> None:
        self.calls.append(("start_recording", (group, pre_message, message)))
        await self.service.start(self, group, "rest_recording")

    async def recording(self, what: str) -> None:
        self.calls.append(("recording", what))
        if what == "stop":
            await self.service.stop(self.call)
        else:
            getattr(self.service, what)(self.call)


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


async def request(client: Client, auth: dict[str, str], method: str, path: str,
                  body: Any = None) -> tuple[int, Any, bytes]:
    kwargs = {} if body is None else {"json": body}
    resp = await client.request(method, BASE + path, headers=auth, **kwargs)
    raw = await resp.read()
    is_json = resp.content_type == "application/json" and raw
    return resp.status, (json.loads(raw) if is_json else None), raw


def ticks(engine: MediaEngine, count: int) -> None:
    for i in range(count):
        engine.tick(i * 0.02)


async def recorded(client: Client, auth: dict[str, str], session: Session,
                   engine: MediaEngine, group: str | None = None) -> str:
    """Start a recording over REST, play 0.5 s of 1209 Hz into it, stop it; its id."""
    status, _, _ = await request(client, auth, "POST", "/LiveCalls/7@1/Actions/Recording/Start",
                                 {"group": group} if group else None)
    assert status == 204
    session.channel.play(sine(1209, 0.5))
    ticks(engine, 25)
    status, _, _ = await request(client, auth, "POST", "/LiveCalls/7@1/Actions/Recording/Stop")
    assert status == 204
    return session.call.recordings[-1]["id"]


@pytest.mark.parametrize("action", ["Start", "Pause", "Resume", "Stop"])
async def test_unknown_call_is_404404(client: Client, auth: dict[str, str],
                                      service: RecordingService, check_error: CheckError,
                                      action: str) -> None:
    status, body, _ = await request(client, auth, "POST",
                                    f"/LiveCalls/9@9/Actions/Recording/{action}")
    assert status == 404
    check_error(body, 404, 404404)


@pytest.mark.parametrize("body, field", [
    ({"group": 5}, "group"),
    ({"pre_message": [""]}, "pre_message"),
    ({"message": 7}, "message"),
    ([1], "body"),
])
async def test_bad_start_bodies_are_400001(client: Client, auth: dict[str, str],
                                           session: Session, check_error: CheckError,
                                           body: Any, field: str) -> None:
    status, got, _ = await request(client, auth, "POST",
                                   "/LiveCalls/7@1/Actions/Recording/Start", body)
    assert status == 400
    check_error(got, 400, 400001)
    assert field in got["message"]
    assert session.calls == []


async def test_start_on_a_call_without_media_is_404404(
    client: Client, auth: dict[str, str], session: Session, check_error: CheckError
) -> None:
    session.channel.close()
    status, body, _ = await request(client, auth, "POST",
                                    "/LiveCalls/7@1/Actions/Recording/Start")
    assert status == 404
    check_error(body, 404, 404404)


async def test_record_download_list_detail_delete(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    check_error: CheckError
) -> None:
    rid = await recorded(client, auth, session, engine, group="support")
    assert session.calls[0] == ("start_recording", ("support", None, None))
    status, body, _ = await request(client, auth, "GET", "/History/Recordings")
    assert status == 200 and body["is_truncated"] is False
    [item] = body["recordings"]
    assert item["id"] == rid and item["group"] == "support" and item["duration"] == 500
    assert item["caller_no"] == "+17145551212" and item["call_id"] == "7@1"
    assert set(item) >= {"id", "app_id", "subaccount_id", "group", "caller_no", "start_time",
                         "end_time", "duration"}
    status, body, _ = await request(client, auth, "GET", "/History/Recordings/7@1")
    assert status == 200 and [r["id"] for r in body["recordings"]] == [rid]
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}")
    assert status == 200 and body == item
    status, _, raw = await request(client, auth, "GET", f"/History/Recordings/{rid}/wav")
    assert status == 200
    with wave.open(io.BytesIO(raw), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 4000)
        pcm = np.frombuffer(w.readframes(4000), "<i2").reshape(-1, 2)
    assert tone_segments(pcm[:, 1].astype(np.int16), 1209, min_db=-30) == [(0.0, 0.5)]
    status, _, _ = await request(client, auth, "DELETE", f"/History/Recordings/{rid}")
    assert status == 204
    for method, path in (("GET", f"/History/Recordings/{rid}"),
                         ("GET", f"/History/Recordings/{rid}/wav"),
                         ("DELETE", f"/History/Recordings/{rid}")):
        status, body, _ = await request(client, auth, method, path)
        assert status == 404, path
        check_error(body, 404, 404002)


async def test_list_filters(client: Client, auth: dict[str, str], session: Session,
                            engine: MediaEngine, check_error: CheckError) -> None:
    await recorded(client, auth, session, engine, group="a")
    await recorded(client, auth, session, engine, group="b")

    async def count(query: str) -> int:
        status, body, _ = await request(client, auth, "GET", "/History/Recordings?" + query)
        assert status == 200, body
        return len(body["recordings"])

    assert await count("") == 2
    assert await count("group=a") == 1
    assert await count("call_no=%2B17145551212&direction=inbound") == 2
    assert await count("direction=outbound") == 0
    assert await count("call_id=7%401") == 2
    assert await count("end_date=2016-03-29T22:05:34.249Z") == 0
    assert await count("app_id=other") == 0
    status, body, _ = await request(client, auth, "GET", "/History/Recordings?direction=up")
    assert status == 400
    check_error(body, 400, 400001)


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_download_formats(client: Client, auth: dict[str, str], session: Session,
                                engine: MediaEngine, fmt: str) -> None:
    rid = await recorded(client, auth, session, engine)
    resp = await client.get(f"{BASE}/History/Recordings/{rid}/{fmt}", headers=auth)
    assert resp.status == 200
    spec = FORMATS[fmt]
    assert resp.headers["Content-Type"] == spec.content_type
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{rid}.{spec.extension}"'
    got = decode_file(await resp.read(), fmt)
    assert got.channels == (1 if spec.mono else 2)
    assert (got.declared_s or got.seconds) == pytest.approx(0.5, abs=0.05)
    heard = got.pcm[:, -1]  # what the caller heard: the right channel, or the mixdown
    assert dominant_frequency(heard[len(heard) // 4: -len(heard) // 4], got.rate) == \
        pytest.approx(1209, abs=10)


@pytest.mark.parametrize("fmt", ["flac", "WAV", "wavm", "mp3 "])
async def test_a_format_outside_the_spec_s_list_is_400001(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    check_error: CheckError, fmt: str
) -> None:
    rid = await recorded(client, auth, session, engine)
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}/{fmt}")
    assert status == 400
    check_error(body, 400, 400001)
    assert "ulw, vox, mp3, wav, wavM, ogg, aac, au" in body["message"]


async def test_a_recording_that_cant_be_transcoded_is_500101(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, check_error: CheckError
) -> None:
    rid = await recorded(client, auth, session, engine)
    service.path_of(rid).write_bytes(b"RIFF\x00\x00 damaged on disk")
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}/mp3")
    assert status == 500
    check_error(body, 500, 500101)
    assert list(service.directory.iterdir()) == [service.path_of(rid)]  # no temporary left


async def test_pause_resume_and_a_recording_in_progress(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    check_error: CheckError
) -> None:
    status, _, _ = await request(client, auth, "POST", "/LiveCalls/7@1/Actions/Recording/Start")
    assert status == 204
    rid = session.call.recordings[-1]["id"]
    ticks(engine, 10)
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}/wav")
    assert status == 400
    check_error(body, 400, 400001)
    for action in ("Pause", "Pause", "Resume"):
        assert (await request(client, auth, "POST",
                              f"/LiveCalls/7@1/Actions/Recording/{action}"))[0] == 204
        ticks(engine, 10)
    for _ in range(2):  # a second Stop finds nothing open: a no-op
        assert (await request(client, auth, "POST",
                              "/LiveCalls/7@1/Actions/Recording/Stop"))[0] == 204
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{rid}")
    assert body["duration"] == 400 and body["status"] == "completed"  # 600 ms, 200 paused


async def test_an_unsaved_message_is_not_found_until_saved(
    client: Client, auth: dict[str, str], session: Session, engine: MediaEngine,
    service: RecordingService, check_error: CheckError
) -> None:
    message = await service.start_message(session, None, "vm", timeout_s=5, max_s=30)
    ticks(engine, 10)
    await service.stop_message(session.call)
    for path in (f"/History/Recordings/{message.id}", f"/History/Recordings/{message.id}/wav"):
        status, body, _ = await request(client, auth, "GET", path)
        assert status == 404, path
        check_error(body, 404, 404002)
    status, body, _ = await request(client, auth, "GET", "/History/Recordings")
    assert body["recordings"] == []
    await service.save_message(session.call)
    status, body, _ = await request(client, auth, "GET", f"/History/Recordings/{message.id}")
    assert status == 200 and (body["duration"], body["channels"], body["name"]) == (200, 1, "vm")
