"""The WebRTC phone gateway: a browser's call becomes an ordinary SIP call into the switch.

For each session (POST /v1/WebRTC/Calls) the gateway answers the browser's offer with an
aiortc `RTCPeerConnection` and places a real SIP call from its own `SipStack` (an
ephemeral UDP port on the switch's SIP host) to the switch's own listener, with a small
RTP endpoint on the same host speaking G.711 at 20 ms. The browser's call is therefore an
inbound call like any other: the number's call flow runs, and LiveCalls, conferences,
recordings and timelines see it with no special case in the call path.

Audio, browser → switch: aiortc's decoded frames (Opus 48 kHz or G.711 8 kHz) are
resampled to 8 kHz mono s16 (`Resampler`) into a `PcmQueue`; the RTP endpoint sends one
packet every 20 ms from it on the loop's clock (silence when it is empty). Switch →
browser: decoded G.711 goes into another `PcmQueue` that `SwitchTrack.recv()` reads 20 ms
at a time, paced on the loop's clock, with silence when nothing arrived so aiortc's
encoder never stalls. The queues hold at most a few hundred ms (the oldest audio is
dropped): a late or bursty peer costs a click, never a growing delay.

A leg that joins a conference, or calls a `sip:` URI, needs a call flow the number's own
configuration does not give. Its INVITE carries `X-Voxswitch-WebRTC: <webrtc_id>
<token>` (an HMAC of the id under a per-process secret), and the switch asks
`vouched_config()`: only an INVITE from the gateway's own address and port with the right
token gets the built-in flow at CALLFLOW_ROUTE (CONFERENCE name=room, or DIAL no=uri).
Any other INVITE, with or without the header, runs its number's flow as usual.

Either side ending ends the other: the peer connection closing or failing hangs up the
SIP leg, the SIP leg ending (BYE from the switch, failure) closes the peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import hmac
import logging
import random
import re
import secrets
import socket
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import OperationError
from aiortc.mediastreams import MediaStreamError

from control.calls import CallRegistry
from control.flowconfig import CallFlowConfig
from media import g711
from media.rtp import is_rtcp, pack_header, unpack_rtp
from media.telephone_event import TelephoneEventSender
from signaling import sdp
from signaling.client import ClientSession
from signaling.events import CallAnswered, CallFailed, SessionTerminated
from signaling.session import ServerSession
from signaling.stack import SipStack

log = logging.getLogger("voxswitch.webrtc")

RATE = 8000
PTIME_MS = 20
FRAME = RATE * PTIME_MS // 1000  # 160 samples
MAX_QUEUE_S = 0.3  # the most audio a direction holds; older is dropped (latency bound)
PREFILL_S = 0.04  # after running dry, wait for this much before playing again (jitter)
STALL_S = 0.2  # a tick this late: resume pacing from now rather than burst to catch up
ANSWER_TIMEOUT_S = 20.0  # the SIP leg must be answered within this
HEADER = "X-Voxswitch-WebRTC"
CALLFLOW_ROUTE = "/webrtc/callflow/{webrtc_id}"
CODECS = {"opus": "audio/opus", "PCMU": "audio/PCMU", "PCMA": "audio/PCMA"}
DIGITS_RE = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
NUMBER_RE = re.compile(r"^\+?[0-9]{2,20}$")
SIP_URI_RE = re.compile(r"^sips?:[^@\s]+@[^@\s]+$")
_TS_MOD = 1 << 32

Pcm = npt.NDArray[np.int16]


class WebRtcError(Exception):
    """A request the gateway cannot serve; `kind` says which (the API maps it)."""

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # "validation", "no_route", "busy", "failed", "not_connected"
        self.message = message
        self.field = field


class SessionState(StrEnum):
    CONNECTING = "connecting"  # SIP leg placed, not answered yet
    CONNECTED = "connected"
    ENDED = "ended"


# ---- audio pieces (unit-tested on their own) ---------------------------------------------


class PcmQueue:
    """8 kHz int16 audio between a producer and a 20 ms consumer, jitter-tolerant.

    `push` appends (dropping the oldest beyond `max_samples`, so delay stays bounded);
    `pop(n)` always returns n samples: audio while there is some, silence after a
    run-dry until `prefill` samples are buffered again (so a steady producer with jitter
    plays smoothly instead of alternating audio and silence frame by frame)."""

    def __init__(self, max_samples: int = int(MAX_QUEUE_S * RATE),
                 prefill: int = int(PREFILL_S * RATE)) -> None:
        self.max_samples = max_samples
        self.prefill = prefill
        self.dropped = 0  # samples dropped for being too late
        self._chunks: deque[Pcm] = deque()
        self._size = 0
        self._playing = False

    def __len__(self) -> int:
        return self._size

    def push(self, pcm: Pcm) -> None:
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        if not len(samples):
            return
        self._chunks.append(samples)
        self._size += len(samples)
        while self._size > self.max_samples:
            excess = self._size - self.max_samples
            head = self._chunks[0]
            if len(head) <= excess:
                self._chunks.popleft()
                self._size -= len(head)
                self.dropped += len(head)
            else:
                self._chunks[0] = head[excess:]
                self._size -= excess
                self.dropped += excess

    def pop(self, n: int) -> Pcm:
        out = np.zeros(n, np.int16)
        if not self._playing:
            if self._size < max(self.prefill, 1):
                return out
            self._playing = True
        filled = 0
        while filled < n and self._chunks:
            head = self._chunks[0]
            take = min(n - filled, len(head))
            out[filled:filled + take] = head[:take]
            filled += take
            self._size -= take
            if take == len(head):
                self._chunks.popleft()
            else:
                self._chunks[0] = head[take:]
        if filled < n:
            self._playing = False  # ran dry: prefill again before playing
        return out


class Resampler:
    """Any `av.AudioFrame` (Opus' 48 kHz stereo, G.711's 8 kHz mono, ...) to 8 kHz mono
    int16 samples."""

    def __init__(self, rate: int = RATE) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def convert(self, frame: av.AudioFrame) -> Pcm:
        out = [np.asarray(f.to_ndarray(), np.int16).reshape(-1)
               for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)


class Pacer:
    """Ticks every `period` seconds on the loop's clock: `wait()` sleeps until the next
    tick; a tick more than STALL_S late restarts the schedule from now (no burst)."""

    def __init__(self, period: float, clock: Callable[[], float]) -> None:
        self.period = period
        self._clock = clock
        self._next: float | None = None
        self.resyncs = 0

    def delay(self) -> float:
        """How long until the next tick is due (0 when due), and move on to it."""
        now = self._clock()
        if self._next is None:
            self._next = now
        due = self._next - now
        if due < -STALL_S:
            self.resyncs += 1
            self._next = now
            due = 0.0
        self._next += self.period
        return max(due, 0.0)

    async def wait(self) -> None:
        await asyncio.sleep(self.delay())


class SwitchTrack(MediaStreamTrack):
    """What the switch sends, as the browser's audio track: 20 ms 8 kHz mono frames from
    `queue`, paced on the loop's clock (silence when nothing arrived)."""

    kind = "audio"

    def __init__(self, queue: PcmQueue) -> None:
        super().__init__()
        self.queue = queue
        self._pts = 0
        self._pacer: Pacer | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._pacer is None:
            self._pacer = Pacer(PTIME_MS / 1000, asyncio.get_running_loop().time)
        await self._pacer.wait()
        samples = self.queue.pop(FRAME)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class RtpLeg(asyncio.DatagramProtocol):
    """The SIP leg's media: G.711 every 20 ms from `outgoing` (or RFC 4733 digits while a
    string is going out), decoded G.711 from the switch into `incoming`."""

    def __init__(self, host: str, outgoing: PcmQueue, incoming: PcmQueue) -> None:
        self.host = host
        self.outgoing = outgoing
        self.incoming = incoming
        self.port = 0
        self.remote: tuple[str, int] | None = None
        self.payload_type = g711.PCMU
        self.event_pt: int | None = None
        self.packets_in = self.packets_out = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._digits: deque[TelephoneEventSender] = deque()
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._event_ts = 0

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, 0), family=socket.AF_INET)
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def start(self, remote: tuple[str, int], payload_type: int, event_pt: int | None) -> None:
        if payload_type not in g711.DECODE_TABLES:
            raise ValueError(f"the gateway's SIP leg speaks G.711 only, not {payload_type}")
        self.remote, self.payload_type, self.event_pt = remote, payload_type, event_pt
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_loop())

    def send_digits(self, digits: str) -> None:
        if self.event_pt is None:
            raise WebRtcError("not_connected", "the switch did not accept telephone-event "
                              "on this call, so digits cannot be sent", "digits")
        self._digits.append(TelephoneEventSender(digits, tone_ms=100, gap_ms=100,
                                                 ptime_ms=PTIME_MS))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def closed(self) -> bool:
        return self._transport is None

    async def _send_loop(self) -> None:
        pacer = Pacer(PTIME_MS / 1000, asyncio.get_running_loop().time)
        while True:
            self._tick()
            await pacer.wait()

    def _tick(self) -> None:
        if self._transport is None or self.remote is None:
            return
        while self._digits and self._digits[0].done:
            self._digits.popleft()
        if self._digits:
            sender = self._digits[0]
            packet = sender.tick()
            if packet is not None:
                assert self.event_pt is not None
                if packet.start:
                    self._event_ts = self._ts
                self._send(pack_header(self.event_pt, packet.marker, self._seq,
                                       self._event_ts, self._ssrc) + packet.payload)
                self.outgoing.pop(FRAME)  # the browser's audio of this tick is not sent
                self._ts = (self._ts + FRAME) % _TS_MOD
                return
        payload = g711.encode(self.payload_type, self.outgoing.pop(FRAME))
        self._send(pack_header(self.payload_type, False, self._seq, self._ts, self._ssrc)
                   + payload)
        self._ts = (self._ts + FRAME) % _TS_MOD

    def _send(self, data: bytes) -> None:
        assert self._transport is not None and self.remote is not None
        self._transport.sendto(data, self.remote)
        self._seq = (self._seq + 1) & 0xFFFF
        self.packets_out += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable once the switch released the call's port: expected at the end
        log.debug("webrtc.rtp_socket_error", extra={"port": self.port, "error": str(exc)})

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            return
        try:
            pt, _marker, _seq, _ts, _ssrc, payload = unpack_rtp(data)
        except ValueError as exc:
            log.debug("webrtc.rtp_unreadable", extra={"port": self.port, "error": str(exc)})
            return
        if pt not in g711.DECODE_TABLES:
            return  # telephone-events and comfort noise: nothing the browser plays
        self.packets_in += 1
        self.incoming.push(g711.decode(pt, payload))


# ---- sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CallRequest:
    """What POST /WebRTC/Calls asks for, checked (`parse_request`)."""

    offer_sdp: str
    to: str | None = None
    conference: str | None = None
    caller_id_no: str | None = None
    codec: str | None = None


def parse_request(body: Any) -> CallRequest:
    """The request body, or WebRtcError("validation") naming the bad field."""
    if not isinstance(body, dict):
        raise WebRtcError("validation", "the body must be a JSON object", "body")
    if body.get("type", "offer") != "offer":
        raise WebRtcError("validation", "type must be \"offer\"", "type")
    offer = body.get("sdp")
    if not isinstance(offer, str) or not offer.strip().startswith("v=0"):
        raise WebRtcError("validation", "sdp must be the browser's full offer SDP (starting "
                          "v=0), with its ICE candidates gathered", "sdp")
    if not re.search(r"^m=audio [1-9]", offer, re.MULTILINE):
        raise WebRtcError("validation", "the offer has no audio m-line: add an audio "
                          "transceiver (addTransceiver('audio')) before createOffer", "sdp")
    to, conference = body.get("to"), body.get("conference")
    if (to is None) == (conference is None):
        raise WebRtcError("validation", "give either to (a number or sip: URI) or "
                          "conference (a room name), not both or neither", "to")
    if to is not None and (not isinstance(to, str) or not (
            NUMBER_RE.match(to) or SIP_URI_RE.match(to))):
        raise WebRtcError("validation", "to must be a number such as +15551230000 or a "
                          "URI such as sip:user@host", "to")
    if conference is not None and (not isinstance(conference, str)
                                   or not 1 <= len(conference.strip()) <= 128):
        raise WebRtcError("validation", "conference must be a room name of 1 to 128 "
                          "characters", "conference")
    caller = body.get("caller_id_no")
    if caller is not None and (not isinstance(caller, str) or not NUMBER_RE.match(caller)):
        raise WebRtcError("validation", "caller_id_no must be a number such as "
                          "+15551230000", "caller_id_no")
    codec = body.get("codec")
    if codec is not None and codec not in CODECS:
        raise WebRtcError("validation", f"codec must be one of {', '.join(CODECS)}", "codec")
    return CallRequest(offer, to, conference.strip() if conference else None, caller, codec)


@dataclass
class WebRtcSession:
    """One browser call: its peer connection, its SIP leg and the media between them."""

    webrtc_id: str
    request: CallRequest
    pc: RTCPeerConnection
    rtp: RtpLeg
    track: SwitchTrack
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: SessionState = SessionState.CONNECTING
    codec: str = ""
    call_id: str | None = None
    sip: ClientSession | None = None
    end_reason: str | None = None
    answered: asyncio.Future[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        return {
            "webrtc_id": self.webrtc_id,
            "call_id": self.call_id,
            "state": str(self.state),
            "codec": self.codec,
            "to": self.request.to,
            "conference": self.request.conference,
            "started": self.started.isoformat().replace("+00:00", "Z"),
        }


class WebRtcGateway:
    """The browser phone's switch side: `start()`, `create(request)`, `hangup(id)`..."""

    def __init__(self, host: str, switch_sip: Callable[[], tuple[str, int]],
                 registry: CallRegistry, http_url: Callable[[], str], *,
                 max_sessions: int = 20) -> None:
        # Wildcard listeners: the gateway still talks to the switch over loopback.
        self.host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.max_sessions = max_sessions
        self.sessions: dict[str, WebRtcSession] = {}
        self._switch_sip = switch_sip
        self._registry = registry
        self._http_url = http_url
        self._secret = secrets.token_bytes(32)  # per process: tokens die with it
        self._stack = SipStack(self.host, 0, on_invite=self._refuse,
                               user_agent="voxswitch-webrtc-gateway")
        self._started = False
        self._ending: set[asyncio.Task[None]] = set()  # _end()s run off SIP events

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._stack.start()
        self._started = True
        log.info("webrtc.started", extra={"host": self.host, "udp_port": self._stack.udp_port})

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await self._end(session, "switch stopping")
        if self._ending:
            await asyncio.wait(set(self._ending), timeout=5.0)
        if self._started:
            await self._stack.stop()
            self._started = False

    def _refuse(self, sip: ServerSession) -> None:
        sip.reject(403, "The WebRTC gateway takes no calls")

    # ---- the switch's side of the trust check -------------------------------------------

    def token(self, webrtc_id: str) -> str:
        return hmac.new(self._secret, webrtc_id.encode(), hashlib.sha256).hexdigest()[:32]

    def vouched_config(self, sip: ServerSession, config: CallFlowConfig) -> CallFlowConfig:
        """The built-in flow for the gateway's own conference or URI legs; `config` for
        any other INVITE. Trusted only from the gateway's address with a valid token."""
        value = sip.invite.headers.get(HEADER)
        if value is None:
            return config
        parts = value.split()
        source = tuple(sip.remote_addr[:2])
        trusted = (self._started and len(parts) == 2
                   and source == (self.host, self._stack.udp_port)
                   and hmac.compare_digest(parts[1], self.token(parts[0]))
                   and parts[0] in self.sessions)
        if not trusted:
            log.warning("webrtc.untrusted_header", extra={
                "source": f"{source[0]}:{source[1]}", "sip_call_id": sip.call_id})
            return config
        url = self._http_url() + CALLFLOW_ROUTE.format(webrtc_id=parts[0])
        return CallFlowConfig.from_request({"callback": {"url": url}}, None, None)

    def add_routes(self, app: web.Application) -> None:
        """The built-in call flow of conference and URI legs (CALLFLOW_ROUTE)."""

        async def callflow(request: web.Request) -> web.Response:
            session = self.sessions.get(request.match_info["webrtc_id"])
            kind = request.query.get("type")
            if request.can_read_body:
                with contextlib.suppress(ValueError):
                    body = await request.json()
                    kind = body.get("type") if isinstance(body, dict) else kind
            if session is None or kind != "init_call":
                return web.json_response({})  # reports, and sessions gone: nothing to do
            req = session.request
            if req.conference is not None:
                action = {"type": "CONFERENCE", "params": {"name": req.conference}}
            else:
                params: dict[str, Any] = {"no": req.to}
                if req.caller_id_no:
                    params["caller_id_no"] = req.caller_id_no
                action = {"type": "DIAL", "params": params}
            return web.json_response({"name": "voxswitch-webrtc",
                                      "actions": [action, {"type": "HANGUP"}]})

        app.router.add_route("POST", CALLFLOW_ROUTE, callflow)
        app.router.add_route("GET", CALLFLOW_ROUTE, callflow)

    # ---- sessions -----------------------------------------------------------------------

    async def create(self, req: CallRequest) -> tuple[WebRtcSession, str]:
        """Answer the browser's offer and place the SIP leg; the session and the answer
        SDP once the switch answered. WebRtcError when it cannot be done."""
        if not self._started:
            raise WebRtcError("failed", "the WebRTC gateway is not running")
        if len(self.sessions) >= self.max_sessions:
            raise WebRtcError("busy", f"{len(self.sessions)} WebRTC calls are up, the most "
                              f"[webrtc] max_sessions allows: hang one up or raise it")
        webrtc_id = uuid.uuid4().hex
        upstream, downstream = PcmQueue(), PcmQueue()
        rtp = RtpLeg(self.host, upstream, downstream)
        # No STUN/TURN: there is no outside network, and the browser reaches the host's
        # own addresses (aiortc's default would ask a public STUN server).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = WebRtcSession(webrtc_id, req, pc, rtp, SwitchTrack(downstream))
        self.sessions[webrtc_id] = session
        try:
            answer_sdp = await self._answer_browser(session, upstream)
            await rtp.open()
            await self._place(session)
        except BaseException:
            await self._end(session, "setup failed")
            raise
        return session, answer_sdp

    async def _answer_browser(self, session: WebRtcSession, upstream: PcmQueue) -> str:
        pc, req = session.pc, session.request

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(session, self._pump_browser(session, track, upstream))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._end(session, f"browser connection {pc.connectionState}")

        # The audio transceiver and its codec preferences come before the offer: aiortc
        # negotiates an m-line's codecs in setRemoteDescription (preferences set after it
        # never reach the answer). Only the gateway's own codecs, the wanted one first.
        transceiver = pc.addTransceiver(session.track, direction="sendrecv")
        caps = [c for c in RTCRtpSender.getCapabilities("audio").codecs
                if c.mimeType in CODECS.values()]
        wanted = CODECS[req.codec] if req.codec else None
        transceiver.setCodecPreferences(
            sorted(caps, key=lambda c: 0 if c.mimeType == wanted else 1))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(req.offer_sdp, "offer"))
        except OperationError:
            raise WebRtcError("validation", "the offer has no codec in common with the "
                              "gateway: offer opus, PCMU or PCMA", "sdp") from None
        except (ValueError, TypeError) as exc:
            raise WebRtcError("validation", f"the offer SDP could not be used: {exc}",
                              "sdp") from None
        if transceiver.mid is None:
            raise WebRtcError("validation", "the offer has no audio m-line", "sdp")
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, TypeError) as exc:
            raise WebRtcError("validation", f"no answer to this offer: {exc} (offer opus, "
                              "PCMU or PCMA audio)", "sdp") from None
        local = pc.localDescription
        session.codec = _answered_codec(local.sdp)
        if session.codec not in CODECS:
            raise WebRtcError("validation", "the offer has no codec in common with the "
                              "gateway: offer opus, PCMU or PCMA", "sdp")
        return str(local.sdp)

    async def _place(self, session: WebRtcSession) -> None:
        req, rtp = session.request, session.rtp
        host, port = self._switch_sip()
        offer = sdp.offer(local_host=self.host, local_port=rtp.port,
                          session_id=random.getrandbits(31), session_version=1,
                          user="webrtc")
        headers: tuple[tuple[str, str], ...] = ()
        if req.to is not None and NUMBER_RE.match(req.to):
            target = f"sip:{req.to}@{host}:{port}"
        else:
            # conference or sip: URI: the built-in flow does it (see vouched_config)
            target = f"sip:webrtc@{host}:{port}"
            headers = ((HEADER, f"{session.webrtc_id} {self.token(session.webrtc_id)}"),)
        loop = asyncio.get_running_loop()
        session.answered = loop.create_future()
        sip = self._stack.invite(target, from_user=req.caller_id_no or "webrtc",
                                 from_display="WebRTC", sdp=bytes(offer), headers=headers)
        session.sip = sip
        sip.on_event = lambda event: self._sip_event(session, offer, event)
        log.info("webrtc.dial", extra={"webrtc_id": session.webrtc_id, "target": target,
                                       "sip_call_id": sip.call_id, "codec": session.codec})
        try:
            await asyncio.wait_for(asyncio.shield(session.answered), ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise WebRtcError("failed", f"the switch did not answer within "
                              f"{ANSWER_TIMEOUT_S:g} s") from None
        session.call_id = self._find_call_id(sip.call_id)
        session.state = SessionState.CONNECTED

    def _find_call_id(self, sip_call_id: str) -> str | None:
        for call in self._registry.live():
            if call.sip_call_id == sip_call_id:
                return call.id
        return None

    def _sip_event(self, session: WebRtcSession, offer: sdp.SessionDescription,
                   event: object) -> None:
        answered = session.answered
        if isinstance(event, CallAnswered):
            try:
                if event.sdp is None:
                    raise sdp.SdpError(event.sdp_error or "no SDP answer")
                media = sdp.negotiate_answer(offer, event.sdp)
                session.rtp.start((media.remote_host, media.remote_port), media.codec.pt,
                                  media.telephone_event_pt)
            except (sdp.SdpError, ValueError) as exc:
                log.warning("webrtc.sip_answer_unusable", extra={
                    "webrtc_id": session.webrtc_id, "error": str(exc)})
                if answered is not None and not answered.done():
                    answered.set_exception(WebRtcError("failed", f"the switch's answer "
                                                       f"could not be used: {exc}"))
                assert session.sip is not None
                session.sip.hangup()
                return
            if answered is not None and not answered.done():
                answered.set_result(None)
        elif isinstance(event, CallFailed):
            if answered is not None and not answered.done():
                kind = "no_route" if event.status in (404, 484, 604) else "failed"
                answered.set_exception(WebRtcError(
                    kind, f"the switch refused the call: {event.status} {event.reason}"))
        elif isinstance(event, SessionTerminated):
            session.end_reason = session.end_reason or event.reason
            if answered is not None and not answered.done():
                answered.set_exception(WebRtcError("failed", f"the call ended before it "
                                                   f"was answered ({event.reason})"))
            if session.state is not SessionState.ENDED:
                self._spawn(session, self._end(session, f"sip {event.reason}"), own=False)

    async def _pump_browser(self, session: WebRtcSession, track: MediaStreamTrack,
                            upstream: PcmQueue) -> None:
        resampler = Resampler()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return  # the browser's track ended: the connection state says why
            if isinstance(frame, av.AudioFrame):
                upstream.push(resampler.convert(frame))

    def _spawn(self, session: WebRtcSession, coro: Any, own: bool = True) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        # `own` tasks are cancelled when the session ends; the ending task itself is not
        (session.tasks if own else self._ending).add(task)
        task.add_done_callback((session.tasks if own else self._ending).discard)

    def get(self, webrtc_id: str) -> WebRtcSession | None:
        return self.sessions.get(webrtc_id)

    def send_digits(self, webrtc_id: str, digits: str) -> WebRtcSession:
        session = self.sessions.get(webrtc_id)
        if session is None:
            raise WebRtcError("not_found", f"no live WebRTC call {webrtc_id!r}")
        if not DIGITS_RE.match(digits):
            raise WebRtcError("validation", "digits must be 1 to 32 of 0-9, *, # and A-D",
                              "digits")
        if session.state is not SessionState.CONNECTED:
            raise WebRtcError("not_connected", f"the call is {session.state}, not connected",
                              "digits")
        session.rtp.send_digits(digits.upper())
        return session

    async def hangup(self, webrtc_id: str) -> bool:
        session = self.sessions.get(webrtc_id)
        if session is None:
            return False
        await self._end(session, "hung up over REST")
        return True

    async def _end(self, session: WebRtcSession, reason: str) -> None:
        """End both sides and release everything; safe to call more than once."""
        if session.state is SessionState.ENDED:
            await session.ended.wait()
            return
        session.state = SessionState.ENDED
        session.end_reason = session.end_reason or reason
        self.sessions.pop(session.webrtc_id, None)
        log.info("webrtc.end", extra={"webrtc_id": session.webrtc_id, "reason": reason,
                                      "call_id": session.call_id})
        sip = session.sip
        if sip is not None:
            sip.hangup()  # BYE once answered, CANCEL before; a no-op once terminated
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sip.wait_terminated(), 5.0)
        session.track.stop()
        await session.rtp.close()
        current = asyncio.current_task()
        for task in list(session.tasks):
            if task is not current:
                task.cancel()
        await session.pc.close()
        session.ended.set()


def _answered_codec(answer: str) -> str:
    """The codec of the answer's audio m-line (its first payload type), by rtpmap name."""
    match = re.search(r"^m=audio \d+ \S+ (\d+)", answer, re.MULTILINE)
    if not match:
        return ""
    pt = match.group(1)
    rtpmap = re.search(rf"^a=rtpmap:{pt} ([^/\s]+)", answer, re.MULTILINE)
    name = rtpmap.group(1) if rtpmap else {"0": "PCMU", "8": "PCMA"}.get(pt, "")
    return "opus" if name.lower() == "opus" else name.upper()
