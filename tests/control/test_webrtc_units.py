"""The WebRTC gateway's I/O-free parts (control.webrtc): the jitter queue between the two
media clocks, the resampler from whatever aiortc decodes to 8 kHz mono, the pacer, the
request checks of POST /v1/WebRTC/Calls, the answer's codec, the digits checks, and the
switch's trust check of the gateway's own INVITEs (`token` / `vouched_config`).

Signals are generated here (seeded or exact sines); the media clocks are fake clocks, so
nothing waits on the wall clock. The trust check runs against a started gateway (its SIP
stack on an ephemeral 127.0.0.1 port) because the address it trusts is that port.
"""

from __future__ import annotations

import fractions
import re
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any, cast

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from control.calls import CallRegistry
from control.flowconfig import CallFlowConfig
from control.webrtc import (
    CALLFLOW_ROUTE,
    FRAME,
    HEADER,
    MAX_QUEUE_S,
    PREFILL_S,
    RATE,
    STALL_S,
    CallRequest,
    Pacer,
    PcmQueue,
    Resampler,
    RtpLeg,
    SessionState,
    SwitchTrack,
    WebRtcError,
    WebRtcGateway,
    WebRtcSession,
    _answered_codec,
    parse_request,
)
from media import g711
from media.rtp import pack_header
from signaling.message import Request, parse_message
from signaling.session import ServerSession
from tests.support import audio

HTTP_URL = "http://127.0.0.1:8088"


def ramp(n: int, start: int = 1) -> np.ndarray:
    """Distinct, non-zero samples: start, start+1, ... (so order and drops are visible)."""
    return np.arange(start, start + n, dtype=np.int16)


# ---- PcmQueue ------------------------------------------------------------------------


def test_the_default_queue_holds_300ms_at_most_and_prefills_40ms() -> None:
    q = PcmQueue()
    assert (MAX_QUEUE_S, PREFILL_S) == (0.3, 0.04)
    assert (q.max_samples, q.prefill) == (2400, 320)


def test_push_beyond_the_bound_drops_the_oldest_samples() -> None:
    q = PcmQueue(max_samples=400, prefill=0)
    q.push(ramp(300, 1))
    q.push(ramp(300, 301))  # 600 pushed, 400 kept: samples 201..600
    assert len(q) == 400 and q.dropped == 200
    out = np.concatenate([q.pop(160), q.pop(160), q.pop(80)])
    assert out.tolist() == list(range(201, 601))
    assert len(q) == 0


def test_a_single_push_larger_than_the_bound_keeps_its_newest_part() -> None:
    q = PcmQueue(max_samples=160, prefill=0)
    q.push(ramp(500))
    assert len(q) == 160 and q.dropped == 340
    assert q.pop(160).tolist() == list(range(341, 501))


def test_whole_chunks_are_dropped_before_a_chunk_is_cut() -> None:
    q = PcmQueue(max_samples=250, prefill=0)
    for start in (1, 101, 201):  # three chunks of 100
        q.push(ramp(100, start))
    q.push(ramp(60, 301))  # 360 > 250: chunk 1..100 goes whole, then 10 of the next
    assert len(q) == 250 and q.dropped == 110
    assert q.pop(250).tolist() == list(range(111, 361))


def test_pop_always_returns_n_samples_and_pads_with_silence_after_the_audio() -> None:
    q = PcmQueue(max_samples=1000, prefill=0)
    q.push(ramp(100))
    out = q.pop(FRAME)
    assert out.dtype == np.int16 and len(out) == FRAME
    assert out[:100].tolist() == list(range(1, 101))
    assert not out[100:].any()
    assert len(q) == 0
    assert not q.pop(FRAME).any()  # empty: silence, still n samples


def test_nothing_plays_until_the_prefill_is_buffered() -> None:
    q = PcmQueue(max_samples=2000, prefill=320)
    q.push(ramp(160))
    assert not q.pop(FRAME).any()
    assert len(q) == 160  # held back, not consumed
    q.push(ramp(160, 161))
    assert q.pop(FRAME).tolist() == list(range(1, 161))
    # playing now: what is left plays even though it is below the prefill
    assert q.pop(FRAME).tolist() == list(range(161, 321))


def test_running_dry_waits_for_the_prefill_again() -> None:
    q = PcmQueue(max_samples=2000, prefill=320)
    q.push(ramp(400))
    q.pop(FRAME)
    q.pop(FRAME)
    tail = q.pop(FRAME)  # 80 left: they play, then silence, and the queue ran dry
    assert tail[:80].tolist() == list(range(321, 401)) and not tail[80:].any()
    q.push(ramp(160, 1000))  # below the prefill: held back
    assert not q.pop(FRAME).any()
    q.push(ramp(160, 2000))
    assert q.pop(FRAME).tolist() == list(range(1000, 1160))


def test_a_steady_producer_with_jitter_plays_without_gaps_once_prefilled() -> None:
    q = PcmQueue()  # prefill: two frames
    rng = np.random.default_rng(7)
    n_frames = 100
    source = (np.arange(n_frames * FRAME) % 1000 + 1).astype(np.int16)  # never silent
    # frame i arrives in order at tick i + 0 or i + 1 (up to 20 ms of jitter)
    arrival = np.maximum.accumulate(np.arange(n_frames) + rng.integers(0, 2, n_frames))
    bursts = np.bincount(arrival, minlength=n_frames + 2)
    assert bursts.max() >= 2 and bursts.min() == 0  # the jitter is really there
    pushed, played = 0, []
    for burst in bursts:
        for _ in range(burst):
            q.push(source[pushed:pushed + FRAME])
            pushed += FRAME
        played.append(q.pop(FRAME))
    out = np.concatenate(played)
    start = int(np.flatnonzero(out)[0])
    assert q.dropped == 0
    # once it plays, it plays the whole source in order with no inserted silence
    assert np.array_equal(out[start:start + len(source)], source)


def test_push_takes_any_shape_and_dtype_and_ignores_empty_input() -> None:
    q = PcmQueue(max_samples=1000, prefill=0)
    q.push(np.zeros(0, np.int16))
    assert len(q) == 0
    q.push(np.array([[1, 2], [3, 4]], dtype=np.int32))
    assert len(q) == 4
    assert q.pop(4).tolist() == [1, 2, 3, 4]


# ---- Resampler -----------------------------------------------------------------------


def opus_like_frames(hz: float, seconds: float, channels: int, rate: int = 48000,
                     frame_ms: int = 20) -> Iterator[av.AudioFrame]:
    """What aiortc's Opus decoder hands over: packed s16 frames (stereo or mono)."""
    per = rate * frame_ms // 1000
    pcm = audio.sine(hz, seconds, -12, rate=rate)
    for i in range(len(pcm) // per):
        chunk = pcm[i * per:(i + 1) * per]
        data = np.repeat(chunk, channels).reshape(1, -1)  # interleaved L R L R ...
        frame = av.AudioFrame.from_ndarray(data, format="s16",
                                           layout="stereo" if channels == 2 else "mono")
        frame.sample_rate = rate
        frame.pts = i * per
        frame.time_base = fractions.Fraction(1, rate)
        yield frame


@pytest.mark.parametrize("channels", [2, 1])
def test_48khz_frames_become_8khz_mono_and_a_1khz_tone_stays_1khz(channels: int) -> None:
    resampler = Resampler()
    chunks = [resampler.convert(f) for f in opus_like_frames(1000, 1.0, channels)]
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    out = np.concatenate(chunks)
    # one second in: about one second out (the resampler may hold back a few samples)
    assert RATE - FRAME <= len(out) <= RATE, len(out)
    steady = out[FRAME:]
    assert audio.dominant_frequency(steady) == pytest.approx(1000, abs=5)
    # the level survives: a -12 dBFS peak sine is -15 dBFS RMS
    assert audio.rms_dbfs(steady) == pytest.approx(-15.0, abs=1.0)


def test_an_8khz_mono_frame_passes_through_unchanged_in_rate() -> None:
    resampler = Resampler()
    out = np.concatenate([resampler.convert(f)
                          for f in opus_like_frames(700, 0.5, 1, rate=RATE)])
    assert len(out) == RATE // 2
    assert audio.dominant_frequency(out) == pytest.approx(700, abs=5)


# ---- Pacer ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_ticks_every_period_on_its_clock() -> None:
    clock = FakeClock()
    pacer = Pacer(0.02, clock)
    assert pacer.delay() == 0.0  # the first tick is now
    clock.now += 0.005
    assert pacer.delay() == pytest.approx(0.015)  # due at +0.02
    clock.now += 0.015
    assert pacer.delay() == pytest.approx(0.02)  # exactly on time: the next is +0.02
    assert pacer.resyncs == 0


def test_a_slightly_late_pacer_catches_up_without_losing_ticks() -> None:
    clock = FakeClock()
    pacer = Pacer(0.02, clock)
    pacer.delay()  # tick 0 due at 100.00
    clock.now += 0.1  # 100.10: ticks at 100.02 .. 100.10 are due, late by < STALL_S
    delays = [pacer.delay() for _ in range(6)]
    assert delays[:5] == [0.0] * 5  # tick 1..5 at once (100.02..100.10)
    assert delays[5] == pytest.approx(0.02)  # tick 6 due at 100.12: back on schedule
    assert pacer.resyncs == 0


def test_a_stalled_pacer_restarts_from_now_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(0.02, clock)
    pacer.delay()
    clock.now += STALL_S + 0.5
    assert pacer.delay() == 0.0
    assert pacer.resyncs == 1
    assert pacer.delay() == pytest.approx(0.02)  # the schedule restarted at the stall


# ---- SwitchTrack and RtpLeg ----------------------------------------------------------


async def test_the_switch_track_hands_aiortc_20ms_8khz_frames_from_its_queue() -> None:
    q = PcmQueue(prefill=0)
    q.push(ramp(FRAME))
    track = SwitchTrack(q)
    first = await track.recv()
    second = await track.recv()  # nothing queued: silence, never a stall
    assert isinstance(first, av.AudioFrame) and isinstance(second, av.AudioFrame)
    assert (first.sample_rate, first.samples, first.layout.name) == (RATE, FRAME, "mono")
    assert first.to_ndarray().reshape(-1).tolist() == list(range(1, FRAME + 1))
    assert not second.to_ndarray().any()
    assert (first.pts, second.pts) == (0, FRAME)
    assert first.time_base == fractions.Fraction(1, RATE)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_the_rtp_leg_speaks_g711_only_and_needs_telephone_event_for_digits() -> None:
    leg = RtpLeg("127.0.0.1", PcmQueue(), PcmQueue())
    with pytest.raises(ValueError, match=r"G\.711 only, not 9"):
        leg.start(("127.0.0.1", 4000), 9, None)
    with pytest.raises(WebRtcError) as err:
        leg.send_digits("1")
    assert (err.value.kind, err.value.field) == ("not_connected", "digits")


def test_the_rtp_leg_decodes_g711_into_its_incoming_queue_and_ignores_the_rest() -> None:
    incoming = PcmQueue(prefill=0)
    leg = RtpLeg("127.0.0.1", PcmQueue(), incoming)
    pcm = audio.sine(1000, 0.02, -12)
    payload = g711.encode(g711.PCMU, pcm)
    source = ("127.0.0.1", 4000)
    leg.datagram_received(pack_header(g711.PCMU, False, 1, 0, 1) + payload, source)
    # a telephone-event: not audio
    leg.datagram_received(pack_header(101, True, 2, 0, 1) + b"\x01\x80\x00\xa0", source)
    leg.datagram_received(b"\x01\x02", source)  # garbage: dropped quietly
    assert leg.packets_in == 1 and len(incoming) == FRAME
    assert np.array_equal(incoming.pop(FRAME), g711.decode(g711.PCMU, payload))


# ---- parse_request -------------------------------------------------------------------

OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 127.0.0.1\r\n"
         "a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
VIDEO_ONLY = OFFER.replace("m=audio 9", "m=video 9")
AUDIO_REJECTED = OFFER.replace("m=audio 9", "m=audio 0")


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "offer", "sdp": OFFER, "to": "+15551230000"}
    for key, value in fields.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


DROP = object()


@pytest.mark.parametrize(("request_body", "field"), [
    (["not", "an", "object"], "body"),
    ("sdp", "body"),
    (None, "body"),
    (body(type="answer"), "type"),
    (body(type="pranswer"), "type"),
    (body(sdp=DROP), "sdp"),
    (body(sdp=None), "sdp"),
    (body(sdp=42), "sdp"),
    (body(sdp=""), "sdp"),
    (body(sdp="hello"), "sdp"),
    (body(sdp=VIDEO_ONLY), "sdp"),
    (body(sdp=AUDIO_REJECTED), "sdp"),
    (body(to=DROP), "to"),  # neither to nor conference
    (body(conference="room"), "to"),  # both
    (body(to="abc"), "to"),
    (body(to="1"), "to"),
    (body(to=""), "to"),
    (body(to=15551230000), "to"),
    (body(to="sip:nohost"), "to"),
    (body(to="+1555123000012345678901"), "to"),
    (body(to=DROP, conference=""), "conference"),
    (body(to=DROP, conference="   "), "conference"),
    (body(to=DROP, conference="r" * 129), "conference"),
    (body(to=DROP, conference=7), "conference"),
    (body(caller_id_no="abc"), "caller_id_no"),
    (body(caller_id_no=15551230000), "caller_id_no"),
    (body(codec="G722"), "codec"),
    (body(codec="pcmu"), "codec"),
    (body(codec="opus/48000"), "codec"),
    (body(codec=0), "codec"),
])
def test_every_bad_request_is_a_validation_error_naming_its_field(
    request_body: Any, field: str,
) -> None:
    with pytest.raises(WebRtcError) as err:
        parse_request(request_body)
    assert (err.value.kind, err.value.field) == ("validation", field), err.value.message
    assert err.value.message


@pytest.mark.parametrize(("request_body", "want"), [
    (body(), CallRequest(OFFER, to="+15551230000")),
    (body(type=DROP), CallRequest(OFFER, to="+15551230000")),  # type defaults to offer
    (body(to="15551230000", caller_id_no="+15559870000", codec="PCMU"),
     CallRequest(OFFER, to="15551230000", caller_id_no="+15559870000", codec="PCMU")),
    (body(to="sip:alice@example.test"), CallRequest(OFFER, to="sip:alice@example.test")),
    (body(to=DROP, conference="  sales room  ", codec="opus"),
     CallRequest(OFFER, conference="sales room", codec="opus")),
    (body(to=None, conference="r" * 128), CallRequest(OFFER, conference="r" * 128)),
    (body(codec="PCMA"), CallRequest(OFFER, to="+15551230000", codec="PCMA")),
])
def test_good_requests_parse(request_body: Any, want: CallRequest) -> None:
    assert parse_request(request_body) == want


# ---- _answered_codec -----------------------------------------------------------------


def answer(m_line: str, *rtpmaps: str) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", m_line,
             "c=IN IP4 127.0.0.1", *rtpmaps]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(("sdp", "codec"), [
    (answer("m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 PCMU/8000"), "opus"),
    (answer("m=audio 9 UDP/TLS/RTP/SAVPF 0 111", "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 PCMU/8000"), "PCMU"),
    (answer("m=audio 9 UDP/TLS/RTP/SAVPF 8 0", "a=rtpmap:8 PCMA/8000"), "PCMA"),
    (answer("m=audio 9 RTP/AVP 0"), "PCMU"),  # static payload types need no rtpmap
    (answer("m=audio 9 RTP/AVP 8"), "PCMA"),
    (answer("m=audio 9 RTP/AVP 96", "a=rtpmap:96 OPUS/48000/2"), "opus"),
    (answer("m=audio 9 RTP/AVP 1 11", "a=rtpmap:11 PCMU/8000"), ""),  # 1: not a prefix
    (answer("m=audio 9 RTP/AVP 9", "a=rtpmap:9 G722/8000"), "G722"),
    (answer("m=audio 9 RTP/AVP 9"), ""),
    (answer("m=video 9 RTP/AVP 96", "a=rtpmap:96 VP8/90000"), ""),
])
def test_the_answered_codec_is_the_first_payload_type_by_name(sdp: str, codec: str) -> None:
    assert _answered_codec(sdp) == codec


# ---- the gateway: digits, tokens and the trust check ---------------------------------


@pytest.fixture
async def gateway() -> AsyncIterator[WebRtcGateway]:
    """A started gateway (its SIP stack on an ephemeral 127.0.0.1 port), stopped after."""
    gw = WebRtcGateway("0.0.0.0", lambda: ("127.0.0.1", 5060), CallRegistry(),
                       lambda: HTTP_URL, max_sessions=2)
    await gw.start()
    yield gw
    await gw.stop()


def gateway_addr(gw: WebRtcGateway) -> tuple[str, int]:
    """Where the gateway's INVITEs come from: its host and its SIP stack's port."""
    return gw.host, gw._stack.udp_port


def add_session(gw: WebRtcGateway, webrtc_id: str,
                state: SessionState = SessionState.CONNECTED) -> WebRtcSession:
    """A session as `create` registers it (nothing connected: the checks need none)."""
    session = WebRtcSession(webrtc_id, CallRequest(OFFER, conference="room"),
                            RTCPeerConnection(), RtpLeg(gw.host, PcmQueue(), PcmQueue()),
                            SwitchTrack(PcmQueue()), state=state)
    gw.sessions[webrtc_id] = session
    return session


def invite(header: str | None) -> Request:
    extra = f"{HEADER}: {header}\r\n" if header is not None else ""
    data = ("INVITE sip:webrtc@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKabc\r\n"
            "From: <sip:webrtc@127.0.0.1>;tag=1\r\nTo: <sip:webrtc@127.0.0.1>\r\n"
            "Call-ID: forged@test\r\nCSeq: 1 INVITE\r\nContact: <sip:webrtc@127.0.0.1:5999>\r\n"
            f"{extra}Content-Length: 0\r\n\r\n").encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def server_session(header: str | None, source: tuple[str, int]) -> ServerSession:
    """What vouched_config reads of a ServerSession: the INVITE and where it came from."""
    return cast(ServerSession, SimpleNamespace(invite=invite(header), remote_addr=source,
                                               call_id="forged@test"))


NUMBER_CONFIG = CallFlowConfig.from_request(
    {"callback": {"url": "http://127.0.0.1:9/number-flow"}}, None, None)


async def test_the_gateway_listens_on_loopback_for_a_wildcard_switch(
    gateway: WebRtcGateway,
) -> None:
    host, port = gateway_addr(gateway)
    assert host == "127.0.0.1" and port > 0


async def test_tokens_are_per_id_and_per_gateway(gateway: WebRtcGateway) -> None:
    other = WebRtcGateway("127.0.0.1", lambda: ("127.0.0.1", 5060), CallRegistry(),
                          lambda: HTTP_URL)
    token = gateway.token("a" * 32)
    assert re.fullmatch("[0-9a-f]{32}", token), token
    assert token == gateway.token("a" * 32)
    assert token != gateway.token("b" * 32)
    assert token != other.token("a" * 32)  # a per-process secret, not a fixed key


async def test_the_gateways_own_invite_with_the_right_token_gets_the_built_in_flow(
    gateway: WebRtcGateway,
) -> None:
    add_session(gateway, "c" * 32)
    got = gateway.vouched_config(
        server_session(f"{'c' * 32} {gateway.token('c' * 32)}", gateway_addr(gateway)),
        NUMBER_CONFIG)
    assert got is not NUMBER_CONFIG
    assert got.callback.url == HTTP_URL + CALLFLOW_ROUTE.format(webrtc_id="c" * 32)


@pytest.mark.parametrize("forgery", [
    "no header", "wrong token", "token of another id", "from another port",
    "from another address", "id with no session", "one part only", "three parts",
])
async def test_any_other_invite_keeps_the_numbers_own_config(
    gateway: WebRtcGateway, forgery: str,
) -> None:
    webrtc_id, other_id = "d" * 32, "e" * 32
    add_session(gateway, webrtc_id)
    add_session(gateway, other_id)
    host, port = gateway_addr(gateway)
    token = gateway.token(webrtc_id)
    header: str | None = f"{webrtc_id} {token}"
    source = (host, port)
    if forgery == "no header":
        header = None
    elif forgery == "wrong token":
        header = f"{webrtc_id} {'0' * 32}"
    elif forgery == "token of another id":
        header = f"{webrtc_id} {gateway.token(other_id)}"
    elif forgery == "from another port":
        source = (host, port + 1 if port < 65535 else port - 1)
    elif forgery == "from another address":
        source = ("127.0.0.2", port)
    elif forgery == "id with no session":
        await gateway.sessions.pop(webrtc_id).pc.close()
    elif forgery == "one part only":
        header = token
    elif forgery == "three parts":
        header = f"{webrtc_id} {token} extra"
    assert gateway.vouched_config(server_session(header, source), NUMBER_CONFIG) \
        is NUMBER_CONFIG


async def test_a_stopped_gateway_vouches_for_nothing() -> None:
    gw = WebRtcGateway("127.0.0.1", lambda: ("127.0.0.1", 5060), CallRegistry(),
                       lambda: HTTP_URL)
    await gw.start()
    add_session(gw, "f" * 32)
    addr = gateway_addr(gw)
    header = f"{'f' * 32} {gw.token('f' * 32)}"
    assert gw.vouched_config(server_session(header, addr), NUMBER_CONFIG) is not NUMBER_CONFIG
    await gw.stop()
    assert gw.vouched_config(server_session(header, addr), NUMBER_CONFIG) is NUMBER_CONFIG


@pytest.mark.parametrize(("digits", "kind"), [
    ("", "validation"), ("12x", "validation"), ("1" * 33, "validation"),
    ("1 2", "validation"), ("12#", "not_connected"),
])
async def test_digits_are_checked_before_a_connecting_call_refuses_them(
    gateway: WebRtcGateway, digits: str, kind: str,
) -> None:
    add_session(gateway, "1" * 32, SessionState.CONNECTING)
    with pytest.raises(WebRtcError) as err:
        gateway.send_digits("1" * 32, digits)
    assert (err.value.kind, err.value.field) == (kind, "digits")


async def test_digits_for_an_unknown_call_are_not_found(gateway: WebRtcGateway) -> None:
    with pytest.raises(WebRtcError) as err:
        gateway.send_digits("2" * 32, "1")
    assert err.value.kind == "not_found"
    assert await gateway.hangup("2" * 32) is False


async def test_a_full_gateway_is_busy_before_it_reads_the_offer(
    gateway: WebRtcGateway,
) -> None:
    add_session(gateway, "3" * 32)
    add_session(gateway, "4" * 32)  # max_sessions=2
    with pytest.raises(WebRtcError) as err:
        await gateway.create(CallRequest("v=0 not even an offer", conference="room"))
    assert err.value.kind == "busy"
    assert len(gateway.sessions) == 2
