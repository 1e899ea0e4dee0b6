"""The WebRTC gateway end to end: aiortc in the test plays the browser against the real
switch (POST /v1/WebRTC/Calls with a gathered offer, the answer applied), and what is
judged is what each caller hears and what the REST views say.

The test's browser is an `RTCPeerConnection` whose microphone is a track of exact 48 kHz
sine frames (1000 Hz) and whose speaker records every decoded frame it receives. ICE is
host candidates only and, on the test's side, 127.0.0.1 only (aioice leaves loopback
out by default; the test puts it back in, alone); the gateway, inside the switch, offers
the host's own addresses, so no packet leaves the host. The cases:

1. the browser in a conference with a SIPp caller streaming 700 Hz (opus and PCMU): SIPp
   hears 1000 Hz (its RTP captured with tshark and decoded), the browser hears 700 Hz;
   the WebRTC list shows the session connected and LiveCalls its call; DELETE ends both;
2. the browser calls a number whose own callback COLLECTs digits: POST .../Digits 42#
   reaches the callback as the key presses;
3. bad input: 400001 naming the field, 404002 for unknown ids, 503001 with
   [webrtc] max_sessions=1, 409001 for digits while the switch has not answered (the
   callback holds init_call, so "not answered" lasts as long as the test wants), and a
   DELETE in that time cancels the leg (the waiting POST gets 502001);
4. the far end ending the call (PLAY then HANGUP) closes the browser's connection and
   the session leaves the list; the browser closing its connection hangs up the call;
5. an INVITE from SIPp carrying a forged X-Voxswitch-WebRTC header for a live session
   runs the number's own call flow, not the gateway's conference flow.

Every wait is bounded (a deadline, then a failure saying what was seen instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.ice
import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from tests.integration.test_conference_audio import (
    call_ids,
    hang_up,
    heard,
    received_by_port,
    start_sipp,
    until_count,
    until_view,
    wav_bytes,
)
from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture
from tests.support.fixtures import SwitchFactory
from tests.support.ports import HOST, free_rtp_port, free_udp_port
from tests.support.procs import start_process
from tests.support.sipp import (
    SippFiles,
    SippResult,
    SippRunner,
    collect_result,
    render_scenario,
    sipp_binary,
)
from tests.support.switch import RunningSwitch, rest

BROWSER_HZ = 1000
PEER_HZ = 700
PLAY_HZ = 1300
MIC_DBFS = -18.0  # the browser's tone peak, as the conference tests' participants
ROOM = "webrtc-room"
WINDOW_S = 1.5
DIGITS_NO = "+15551230000"
HANGUP_NO = "+15551230001"
HOLD_NO = "+15551230002"
WAIT_S = 15.0

Pcm = npt.NDArray[np.int16]


# ---- the test's browser ----------------------------------------------------------------


class ToneTrack(MediaStreamTrack):
    """A microphone playing a sine: 20 ms 48 kHz mono s16 frames, paced on the loop's
    clock (as a browser's capture would)."""

    kind = "audio"
    RATE = 48000
    FRAME = 960

    def __init__(self, hz: float, level_dbfs: float = MIC_DBFS) -> None:
        super().__init__()
        self.hz = hz
        self.amplitude = 32767 * 10 ** (level_dbfs / 20)
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        await asyncio.sleep(max(0.0, self._start + self._n / self.RATE - loop.time()))
        t = (self._n + np.arange(self.FRAME)) / self.RATE
        samples = np.round(self.amplitude * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.RATE
        frame.pts = self._n
        frame.time_base = fractions.Fraction(1, self.RATE)
        self._n += self.FRAME
        return frame


@dataclass
class Heard:
    """What the browser's speaker received: (loop time, mono samples) per decoded frame."""

    rate: int = 0
    frames: list[tuple[float, Pcm]] = field(default_factory=list)

    def since(self, t0: float) -> Pcm:
        parts = [pcm for t, pcm in self.frames if t >= t0]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def seconds_since(self, t0: float) -> float:
        return len(self.since(t0)) / self.rate if self.rate else 0.0


def mono(frame: av.AudioFrame) -> Pcm:
    """The first channel of a decoded frame as int16 (aiortc decodes to packed s16)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        return np.asarray(data[0], np.int16)
    return np.asarray(data.reshape(-1, channels)[:, 0], np.int16)


class Browser:
    """The browser side of one WebRTC call: offer, answer, a tone out, a recorder in."""

    def __init__(self, hz: float = BROWSER_HZ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(ToneTrack(hz))
        self.heard = Heard()
        self.states: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.get_running_loop().create_task(self._record(track))
            self._tasks.add(task)

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            self.states.append(self.pc.connectionState)
            if self.pc.connectionState in ("closed", "failed"):
                self._closed.set()

    async def offer(self) -> str:
        """The offer with its candidates gathered (aiortc gathers in setLocalDescription)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        assert "a=candidate:" in sdp and "127.0.0.1" in sdp, sdp
        return str(sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def _record(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.heard.rate = frame.sample_rate
                self.heard.frames.append((loop.time(), mono(frame)))

    async def until_connected(self, timeout: float = WAIT_S) -> None:
        await until(lambda: self.pc.connectionState == "connected",
                    f"the browser's connection connected (states {self.states})", timeout)

    async def until_closed(self, timeout: float = WAIT_S) -> str:
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"the browser's connection did not close or fail within "
                                 f"{timeout} s (states {self.states})") from None
        return self.pc.connectionState

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's ICE agent offers 127.0.0.1 alone (aioice's default skips loopback)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
async def browsers() -> AsyncIterator[Callable[..., Browser]]:
    """Factory of Browsers; every one made is closed at teardown."""
    made: list[Browser] = []

    def make(hz: float = BROWSER_HZ) -> Browser:
        made.append(Browser(hz))
        return made[-1]

    yield make
    for browser in made:
        await browser.close()


# ---- REST and waiting ------------------------------------------------------------------


async def until(check: Callable[[], bool | Awaitable[bool]], what: str,
                timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def call_api(sw: RunningSwitch, method: str, path: str,
                   json: Any = None, data: str | None = None) -> tuple[int, Any]:
    """(status, parsed JSON body or None) of one REST call."""
    async with rest(sw) as http:
        kwargs: dict[str, Any] = {"json": json} if data is None else {
            "data": data, "headers": {"Content-Type": "application/json"}}
        async with http.request(method, path, **kwargs) as resp:
            text = await resp.text()
            return resp.status, (await resp.json(content_type=None)) if text else None


async def webrtc_calls(sw: RunningSwitch) -> list[dict[str, Any]]:
    status, body = await call_api(sw, "GET", "/v1/WebRTC/Calls")
    assert status == 200, body
    return list(body["calls"])


async def live_call_ids(sw: RunningSwitch) -> set[str]:
    status, body = await call_api(sw, "GET", "/v1/LiveCalls")
    assert status == 200, body
    return {c["id"] for c in body["calls"]}


async def no_sessions(sw: RunningSwitch) -> bool:
    return await webrtc_calls(sw) == []


async def not_live(sw: RunningSwitch, call_id: str) -> bool:
    return call_id not in await live_call_ids(sw)


async def place(sw: RunningSwitch, browser: Browser, **request: Any) -> dict[str, Any]:
    """POST the browser's offer, apply the answer; the 201 body."""
    status, body = await call_api(sw, "POST", "/v1/WebRTC/Calls",
                                  {"type": "offer", "sdp": await browser.offer(), **request})
    assert status == 201, (status, body, sw.logs())
    assert body["type"] == "answer" and body["webrtc_id"], body
    await browser.accept(body["sdp"])
    return dict(body)


def answered_pt_name(answer_sdp: str) -> str:
    """The rtpmap name of the answer's first audio payload type (the codec in use)."""
    m = re.search(r"^m=audio \d+ \S+ (\d+)", answer_sdp, re.M)
    assert m, answer_sdp
    rtpmap = re.search(rf"^a=rtpmap:{m[1]} ([^/\s]+)", answer_sdp, re.M)
    assert rtpmap, answer_sdp
    return rtpmap[1]


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a peer's task the test no longer waits for (done ones are left alone)."""
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def assert_error(status: int, body: Any, want_status: int, code: int,
                 field: str | None = None) -> None:
    """The spec's error body with `code`; for 400001, its help names `field` first."""
    assert status == want_status and body["code"] == code, (status, body)
    if field is not None:
        assert body["help"].split()[0] == field, (field, body)


async def assert_gone(sw: RunningSwitch, webrtc_id: str) -> None:
    status, body = await call_api(sw, "GET", f"/v1/WebRTC/Calls/{webrtc_id}")
    assert_error(status, body, 404, 404002)


def tone_wav(hz: float, seconds: float = 1.0) -> bytes:
    return wav_bytes(audio.sine(hz, seconds, MIC_DBFS))


def conference_flow(req: CallbackRequest) -> Any:
    """Every caller into ROOM, then HANGUP."""
    if req.type == "init_call":
        return [{"type": "CONFERENCE", "params": {"name": ROOM}}, {"type": "HANGUP"}]
    if req.type == "live_call":
        return [{"type": "HANGUP"}]
    return Reply(json={})


# ---- 1. a conference: who hears whom, and the REST views ---------------------------------


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_the_browser_in_a_conference_hears_and_is_heard_and_delete_ends_it(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    browsers: Callable[..., Browser], tmp_path: Path, codec: str,
) -> None:
    callback_app.set_script(conference_flow)
    sw = await switch(default_callback=callback_app.url)
    port = free_rtp_port()
    browser = browsers()
    loop = asyncio.get_running_loop()
    async with Capture(tmp_path, "webrtc") as cap, contextlib.AsyncExitStack() as cleanup:
        await cap.start([port], duration=50)
        peer = start_sipp(sipp_runner, sw, tmp_path, "1002", PEER_HZ, media_port=port,
                          timeout=45)
        cleanup.push_async_callback(cancel, peer.task)
        await until_count(sw, 1)
        body = await place(sw, browser, conference=ROOM, codec=codec)
        webrtc_id, call_id = body["webrtc_id"], body["call_id"]
        assert body["codec"] == codec, body
        assert answered_pt_name(body["sdp"]).lower() == codec.lower(), body["sdp"]
        await browser.until_connected()
        await until_count(sw, 2)
        joined_wall, joined = time.time(), loop.time()

        # the REST views: the session connected, its call live and in the room
        listed = await webrtc_calls(sw)
        assert [(c["webrtc_id"], c["state"], c["codec"], c["conference"], c["to"],
                 c["call_id"]) for c in listed] == [
            (webrtc_id, "connected", codec, ROOM, None, call_id)], listed
        status, one = await call_api(sw, "GET", f"/v1/WebRTC/Calls/{webrtc_id}")
        assert status == 200 and one == listed[0], one
        assert call_id is not None and call_id in await live_call_ids(sw)

        # let the browser hear the room for a window, then hang up over REST
        await until(lambda: browser.heard.seconds_since(joined + 0.5) >= WINDOW_S + 0.3,
                    "the browser heard a window of the room")
        status, gone = await call_api(sw, "DELETE", f"/v1/WebRTC/Calls/{webrtc_id}")
        assert status == 204 and gone is None, (status, gone)
        assert await browser.until_closed() in ("closed", "failed")
        await until(lambda: not_live(sw, call_id), f"{call_id} left LiveCalls")
        await assert_gone(sw, webrtc_id)
        assert await webrtc_calls(sw) == []
        await until_count(sw, 1)  # the SIPp caller is still in the room

        await hang_up(sw, call_ids(callback_app).values())
        (await asyncio.wait_for(peer.task, timeout=30)).assert_ok()
        pcap = await cap.stop()

    # what the SIPp caller heard while the browser was in the room: the browser's tone
    got = received_by_port(pcap, [port])[port]
    assert heard(got.window(joined_wall + 0.5, joined_wall + 0.5 + WINDOW_S),
                 "the SIPp caller while the browser was in the room") == {BROWSER_HZ}
    # what the browser heard: the SIPp caller's tone (never its own), decoded by aiortc
    # at the codec's own rate
    assert browser.heard.rate == (48000 if codec == "opus" else 8000)
    pcm = browser.heard.since(joined + 0.5)[:int(WINDOW_S * browser.heard.rate)]
    rate = browser.heard.rate
    assert audio.dominant_frequency(pcm, rate) == pytest.approx(PEER_HZ, abs=10)
    peer_db = float(np.mean(audio.tone_power(pcm, PEER_HZ, rate)[0]))
    own_db = float(np.mean(audio.tone_power(pcm, BROWSER_HZ, rate)[0]))
    assert peer_db > -35 and own_db < -50, (peer_db, own_db)


# ---- 2. digits from the browser reach the number's own call flow -------------------------


def collect_flow(req: CallbackRequest) -> Any:
    if req.type == "init_call":
        return [{"type": "COLLECT", "name": "menu",
                 "params": {"num_digits": 5, "finish_on_key": "#", "timeout": 10000}}]
    if req.type == "live_call":
        return [{"type": "HANGUP"}]
    return Reply(json={})


async def route_number(sw: RunningSwitch, number: str, url: str) -> None:
    status, body = await call_api(
        sw, "PUT", "/v1/CallFlows/Configurations/PhoneNumbers/" + number.replace("+", "%2B"),
        {"callback": {"url": url}})
    assert status == 200, body


async def test_digits_from_the_browser_reach_the_numbers_collect(
    switch: SwitchFactory, callback_app: CallbackApp, browsers: Callable[..., Browser],
) -> None:
    callback_app.set_script(collect_flow)
    sw = await switch(default_callback=callback_app.url + "default")
    await route_number(sw, DIGITS_NO, callback_app.url + "digits")
    browser = browsers()
    body = await place(sw, browser, to=DIGITS_NO, caller_id_no="+15559870000")
    webrtc_id = body["webrtc_id"]
    init = await callback_app.wait_for("init_call", timeout=WAIT_S)
    # the number's own configuration ran, for the browser's caller id
    assert init.path == "/digits", init.path
    assert (init.fields["call_id"], init.fields["caller_no"]) == (body["call_id"],
                                                                  "+15559870000"), init.fields
    await browser.until_connected()
    status, sent = await call_api(sw, "POST", f"/v1/WebRTC/Calls/{webrtc_id}/Digits",
                                  {"digits": "42#"})
    assert (status, sent) == (200, {"webrtc_id": webrtc_id, "digits": "42#"})
    live = await callback_app.wait_for("live_call", timeout=WAIT_S)
    assert live.fields["key_presses"] == [
        {"name": "menu", "digits": "42", "history": ["42"]}], live.fields
    # its HANGUP ends the browser's call too
    assert await browser.until_closed() in ("closed", "failed")
    await until(lambda: no_sessions(sw), "the session left the list")


# ---- 3. bad input ------------------------------------------------------------------------

MAX_ONE = "[webrtc]\nmax_sessions = 1\n"


def hold_flow(release: asyncio.Event) -> Callable[[CallbackRequest], Awaitable[Any]]:
    """HOLD_NO's init_call is answered only once `release` is set (at most 10 s): until
    then the switch has not answered the gateway's leg."""
    async def script(req: CallbackRequest) -> Any:
        if req.type == "init_call":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), 10)
            return [{"type": "PAUSE", "params": {"seconds": 30}}, {"type": "HANGUP"}]
        return Reply(json={})
    return script


async def test_bad_requests_unknown_ids_a_full_gateway_and_a_call_not_yet_connected(
    switch: SwitchFactory, callback_app: CallbackApp, browsers: Callable[..., Browser],
    tmp_path: Path,
) -> None:
    release = asyncio.Event()
    callback_app.set_script(hold_flow(release))
    config = tmp_path / "webrtc.toml"
    config.write_text(MAX_ONE)
    sw = await switch(default_callback=callback_app.url, extra_args=["--config", str(config)])
    offer = await browsers().offer()
    calls = "/v1/WebRTC/Calls"

    # bodies that are not an offer: 400001 naming the field
    for request, field_name in [
        ({"type": "offer", "to": HOLD_NO}, "sdp"),
        ({"type": "offer", "sdp": "hello", "to": HOLD_NO}, "sdp"),
        ({"type": "answer", "sdp": offer, "to": HOLD_NO}, "type"),
        ({"type": "offer", "sdp": offer}, "to"),
        ({"type": "offer", "sdp": offer, "to": HOLD_NO, "conference": ROOM}, "to"),
        ({"type": "offer", "sdp": offer, "to": "not a number"}, "to"),
        ({"type": "offer", "sdp": offer, "to": HOLD_NO, "codec": "G729"}, "codec"),
        # a v=0 offer with an audio m-line that aiortc cannot use (no ICE credentials)
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n", "to": HOLD_NO}, "sdp"),
    ]:
        status, body = await call_api(sw, "POST", calls, request)
        assert_error(status, body, 400, 400001, field_name)
    status, body = await call_api(sw, "POST", calls, data="{not json")
    assert status == 400 and body["code"] == 400010, body  # the spec's "not JSON" code
    assert callback_app.requests == [] and await webrtc_calls(sw) == []

    # an offer with no codec the gateway speaks (G.722 only) is refused as bad SDP (the
    # one that prefers G.722 but has PCMU too is answered PCMU, at the end)
    g722 = browsers()
    only_g722 = [c for c in RTCRtpSender.getCapabilities("audio").codecs
                 if c.mimeType == "audio/G722"]
    g722.pc.getTransceivers()[0].setCodecPreferences(only_g722)
    status, body = await call_api(sw, "POST", calls, {"sdp": await g722.offer(),
                                                      "to": HOLD_NO})
    assert_error(status, body, 400, 400001, "sdp")
    assert await webrtc_calls(sw) == []

    # unknown ids: 404002 everywhere
    unknown = "0" * 32
    for method, path, digits in [("GET", f"{calls}/{unknown}", None),
                                 ("DELETE", f"{calls}/{unknown}", None),
                                 ("POST", f"{calls}/{unknown}/Digits", {"digits": "1"})]:
        status, body = await call_api(sw, method, path, digits)
        assert_error(status, body, 404, 404002)

    # a call the switch has not answered yet (its init_call is held): listed as
    # connecting, digits refused with 409001, and the one session max_sessions allows
    first = browsers()
    creating = asyncio.create_task(call_api(sw, "POST", calls, {
        "sdp": await first.offer(), "to": HOLD_NO, "codec": "PCMA"}))
    try:
        await callback_app.wait_for("init_call", timeout=WAIT_S)
        listed = await webrtc_calls(sw)
        assert [(c["state"], c["to"], c["codec"]) for c in listed] == [
            ("connecting", HOLD_NO, "PCMA")], listed
        webrtc_id = listed[0]["webrtc_id"]
        status, body = await call_api(sw, "POST", f"{calls}/{webrtc_id}/Digits",
                                      {"digits": "1"})
        assert_error(status, body, 409, 409001)
        second = browsers()
        status, body = await call_api(sw, "POST", calls, {"sdp": await second.offer(),
                                                          "to": HOLD_NO})
        assert_error(status, body, 503, 503001)
        assert len(callback_app.of_type("init_call")) == 1  # the second never dialled
    except BaseException:
        await cancel(creating)
        raise
    finally:
        release.set()
    status, body = await asyncio.wait_for(creating, WAIT_S)
    assert status == 201 and body["webrtc_id"] == webrtc_id and body["codec"] == "PCMA", body
    await first.accept(body["sdp"])
    await first.until_connected()
    # connected now: bad digits are a 400, good ones are taken
    status, body = await call_api(sw, "POST", f"{calls}/{webrtc_id}/Digits", {"digits": "9x"})
    assert_error(status, body, 400, 400001, "digits")
    status, body = await call_api(sw, "POST", f"{calls}/{webrtc_id}/Digits", {"digits": 5})
    assert_error(status, body, 400, 400001, "digits")
    status, body = await call_api(sw, "POST", f"{calls}/{webrtc_id}/Digits", {"digits": "1"})
    assert status == 200, body
    status, _ = await call_api(sw, "DELETE", f"{calls}/{webrtc_id}")
    assert status == 204
    status, body = await call_api(sw, "DELETE", f"{calls}/{webrtc_id}")
    assert_error(status, body, 404, 404002)
    assert await webrtc_calls(sw) == []

    # an offer that prefers G.722 but has PCMU too is answered PCMU, not refused
    g722_first = browsers()
    g722_first.pc.getTransceivers()[0].setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("audio").codecs
         if c.mimeType in ("audio/G722", "audio/PCMU")])
    body = await place(sw, g722_first, to=HOLD_NO)
    assert body["codec"] == "PCMU" and answered_pt_name(body["sdp"]) == "PCMU", body
    await g722_first.until_connected()
    status, _ = await call_api(sw, "DELETE", f"{calls}/{body['webrtc_id']}")
    assert status == 204


async def test_hanging_up_before_the_switch_answered_cancels_the_call(
    switch: SwitchFactory, callback_app: CallbackApp, browsers: Callable[..., Browser],
) -> None:
    release = asyncio.Event()
    callback_app.set_script(hold_flow(release))
    sw = await switch(default_callback=callback_app.url)
    creating = asyncio.create_task(call_api(sw, "POST", "/v1/WebRTC/Calls", {
        "sdp": await browsers().offer(), "to": HOLD_NO}))
    try:
        init = await callback_app.wait_for("init_call", timeout=WAIT_S)
        [listed] = await webrtc_calls(sw)
        status, _ = await call_api(sw, "DELETE", f"/v1/WebRTC/Calls/{listed['webrtc_id']}")
        assert status == 204
        # the POST still waiting for the answer learns the call did not go through
        status, body = await asyncio.wait_for(creating, WAIT_S)
        assert_error(status, body, 502, 502001)
    except BaseException:
        await cancel(creating)
        raise
    finally:
        release.set()
    assert await webrtc_calls(sw) == []
    await until(lambda: not_live(sw, init.fields["call_id"]), "the cancelled call ended")
    end = await callback_app.wait_for("end_call", timeout=WAIT_S)
    assert end.fields["status"] == "canceled", end.fields


# ---- 4. the far end ending the call ends the session -------------------------------------


async def test_the_call_flow_hanging_up_closes_the_browsers_connection(
    switch: SwitchFactory, callback_app: CallbackApp, browsers: Callable[..., Browser],
) -> None:
    tone = tone_wav(PLAY_HZ, 1.0)

    def flow(req: CallbackRequest) -> Any:
        if req.path.endswith("/tone.wav"):
            return Reply(body=tone, content_type="audio/wav")
        if req.type == "init_call":
            return [{"type": "PLAY", "params": {"url": callback_app.url + "tone.wav"}},
                    {"type": "HANGUP"}]
        return Reply(json={})

    callback_app.set_script(flow)
    sw = await switch(default_callback=callback_app.url + "default")
    await route_number(sw, HANGUP_NO, callback_app.url + "hangup")
    browser = browsers()
    body = await place(sw, browser, to=HANGUP_NO)
    assert await browser.until_closed() in ("closed", "failed")
    await until(lambda: no_sessions(sw), "the session left the list")
    await assert_gone(sw, body["webrtc_id"])
    end = await callback_app.wait_for("end_call", timeout=WAIT_S)
    assert (end.fields["call_id"], end.fields["status"]) == (body["call_id"], "completed")
    # before it ended, the browser heard what the flow played
    rate = browser.heard.rate
    pcm = browser.heard.since(0.0)
    loud = audio.frames(pcm, rate)[audio.frame_dbfs(pcm, rate) > -40]
    assert len(loud) * 0.02 >= 0.5, f"only {len(loud) * 0.02:.2f} s of audio heard"
    assert audio.dominant_frequency(loud.reshape(-1), rate) == pytest.approx(PLAY_HZ, abs=10)


async def test_the_browser_going_away_hangs_up_its_call(
    switch: SwitchFactory, browsers: Callable[..., Browser],
) -> None:
    sw = await switch()
    browser = browsers()
    body = await place(sw, browser, conference=ROOM)
    await browser.until_connected()
    await until_count(sw, 1)
    assert body["call_id"] in await live_call_ids(sw)
    await browser.pc.close()  # DTLS close_notify: the gateway's connection closes too
    await until(lambda: no_sessions(sw), "the session left the list")
    await until(lambda: not_live(sw, body["call_id"]), "its call left LiveCalls")
    await until_view(sw, lambda found: found == [], "the room ended with its only member")


# ---- 5. a forged gateway header from anyone else is ignored ------------------------------


async def run_sipp_with_header(sipp: SippRunner, sw: RunningSwitch, service: str,
                               header: str, timeout: float = 30.0) -> SippResult:
    """uac_wait_bye.xml with one more INVITE header, run as SippRunner.run would."""
    rundir = sipp.workdir / "sipp-forged"
    rundir.mkdir(parents=True, exist_ok=True)
    scenario = render_scenario("uac_wait_bye.xml", {"STREAM_ACTION": ""},
                               rundir / "uac_forged.xml")
    text = scenario.read_text(encoding="iso-8859-1")
    marker = "User-Agent: voxswitch-harness SIPp\n"
    assert text.count(marker) == 1
    scenario.write_text(text.replace(marker, marker + f"      {header}\n"),
                        encoding="iso-8859-1")
    files = SippFiles(rundir / "uac_forged")
    argv = [sipp_binary(), f"{sw.sip_udp[0]}:{sw.sip_udp[1]}", "-sf", str(scenario),
            "-s", service, "-i", HOST, "-p", str(free_udp_port()), "-mi", HOST,
            "-mp", str(free_rtp_port()), "-cp", str(free_udp_port()), "-m", "1",
            "-nostdin", "-timeout", f"{round(timeout)}s", "-timeout_error", *files.args()]
    proc = await start_process("uac_forged", argv, rundir, cwd=rundir)
    try:
        await proc.wait(timeout + 5)
    finally:  # also when the test gives up on it (cancelled)
        if proc.returncode is None:
            await proc.stop(term_timeout=3.0)
    return collect_result("uac_forged.xml", proc, files, rundir)


async def test_a_forged_gateway_header_from_sipp_runs_the_numbers_own_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    browsers: Callable[..., Browser],
) -> None:
    def flow(req: CallbackRequest) -> Any:
        if req.type == "init_call":
            return [{"type": "PAUSE", "params": {"seconds": 1}}, {"type": "HANGUP"}]
        return Reply(json={})

    callback_app.set_script(flow)
    sw = await switch(default_callback=callback_app.url + "default")
    browser = browsers()
    body = await place(sw, browser, conference=ROOM)  # the gateway's own flow: no callback
    await until_count(sw, 1)
    assert callback_app.of_type("init_call") == []
    # the header of a live session, as the gateway's INVITEs carry it, with a made-up
    # token, to the user the gateway calls: from SIPp, not the gateway
    forged = f"X-Voxswitch-WebRTC: {body['webrtc_id']} {'0' * 32}"
    sipp = asyncio.create_task(run_sipp_with_header(sipp_runner, sw, "webrtc", forged))
    try:
        init = await callback_app.wait_for("init_call", timeout=WAIT_S)
        assert init.path == "/default", init.path  # the Default call flow, as for any call
        assert init.fields["call_id"] != body["call_id"]
        conf = await until_count(sw, 1)  # the browser alone: the SIPp call is not in it
        assert [p["call"]["id"] for p in conf["participants"]] == [body["call_id"]], conf
        result = await asyncio.wait_for(asyncio.shield(sipp), 40)
    finally:
        await cancel(sipp)
    result.assert_ok()  # answered, paused, BYE: the Default flow ran to its HANGUP
    assert sw.logged("webrtc.untrusted_header")
    listed = await webrtc_calls(sw)
    assert [c["webrtc_id"] for c in listed] == [body["webrtc_id"]], listed
