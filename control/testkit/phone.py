"""The test phone: a SIP user agent with G.711 audio that calls the switch (or is called by
it) and judges what it hears.

    call = await phone.dial("+15551230000")
    await call.hears_speech(min_s=0.5)        # the menu prompt
    await call.send_digits("2")               # RFC 4733 (mode="inband" or "info" too)
    await call.hears_tone(440, min_s=0.3)
    await call.hangup()

Signalling is `signaling.stack.SipStack` on its own ephemeral port (UAC for `dial`, UAS
for calls to `phone.uri`); media is `control.testkit.rtp.RtpEndpoint`; what is heard is
labelled by `control.testkit.listen.Listener`.

The `hears_*` assertions read the heard audio in order: each one looks from where the
previous one matched, or from when the last digits or audio were sent (`call.cursor`),
waits up to `timeout` seconds for what it expects, and fails with what was heard
instead, the call's state and the path of a WAV of all the audio heard so far. They give
up early once the call has ended and all its audio is judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import wave
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from control.testkit.listen import FRAME, FRAME_S, RATE, SPEECH_GAP_S, Listener, Segment
from control.testkit.rtp import RtpEndpoint
from media.tones import dtmf_digits, tone
from signaling import sdp
from signaling.client import ClientSession
from signaling.dtmf_info import DtmfInfoError, parse_dtmf_info
from signaling.events import (
    ByeReceived,
    CallAcked,
    CallAnswered,
    CallFailed,
    CallProgressed,
    InfoReceived,
    SessionTerminated,
)
from signaling.session import ServerSession
from signaling.stack import SipStack

log = logging.getLogger("voxswitch.testkit.phone")

POLL_S = 0.05
DEFAULT_TIMEOUT_S = 10.0
DIGIT_MODES = ("rfc4733", "inband", "info")
# SessionTerminated's reasons, as a failure message says them
END_REASONS = {"remote bye": "hung up by the far end", "local bye": "hung up by the test"}
T = TypeVar("T")
Pcm = npt.NDArray[np.int16]
AudioSource = Pcm | str | Path | bytes


class CallStatus(StrEnum):
    CALLING = "calling"  # INVITE sent (or received), no answer yet
    RINGING = "ringing"  # a provisional response 180/183 came
    ANSWERED = "answered"
    ENDED = "ended"  # answered, then hung up by either side
    FAILED = "failed"  # never answered: rejected, cancelled, timed out


class PhoneCall:
    """One call of the test phone, outgoing (`Phone.dial`) or incoming (`Phone.incoming`)."""

    def __init__(self, phone: Phone, name: str, direction: str, rtp: RtpEndpoint) -> None:
        self.phone = phone
        self.name = name
        self.direction = direction
        self.status = CallStatus.CALLING
        self.final_status: int | None = None  # the INVITE's final response (outgoing)
        self.final_reason: str | None = None
        self.end_reason: str | None = None  # SessionTerminated's: "remote bye", "local bye", …
        self.info_keys: list[tuple[float, str]] = []  # digits the far end sent as SIP INFO
        self.cursor = 0.0  # seconds of heard audio the assertions have read past
        self.wav_path = phone.directory / f"{name}-heard.wav"
        self._rtp = rtp
        self._listener = Listener()
        self._session: ClientSession | ServerSession | None = None
        self._offer: sdp.SessionDescription | None = None  # ours, for an outgoing call
        self._pending_answer: tuple[bytes, sdp.NegotiatedMedia] | None = None
        self._answered = asyncio.Event()
        self._ended = asyncio.Event()

    def __repr__(self) -> str:
        return f"<PhoneCall {self.name} {self.direction} {self.status}>"

    # ---- state ------------------------------------------------------------------------------

    @property
    def answered(self) -> bool:
        """Whether the call was answered (it may have ended since)."""
        return self._answered.is_set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def heard_seconds(self) -> float:
        return len(self._rtp.heard) / RATE

    @property
    def heard(self) -> Pcm:
        """All the audio heard so far, 8 kHz int16, from the first packet."""
        return self._rtp.heard

    @property
    def heard_digits(self) -> str:
        """The DTMF keys heard in-band (the switch's own detector run on the audio)."""
        self._analyse()
        return "".join(key for _, key in self._listener.keys)

    @property
    def rfc4733_digits(self) -> str:
        """The keys the far end sent as RFC 4733 telephone-events."""
        return "".join(key for _, key in self._rtp.rfc4733_keys)

    def segments(self, since: float = 0.0) -> list[Segment]:
        """What was heard from `since` on, as runs of silence, speech and tones."""
        self._analyse()
        return self._listener.segments(since)

    def describe(self) -> str:
        """The call's state in one line, for messages."""
        parts = [f"call {self.name} ({self.direction}) {self.status}"]
        if self.final_status is not None:
            parts.append(f"final response {self.final_status} {self.final_reason}")
        if self.end_reason:
            parts.append(END_REASONS.get(self.end_reason, f"session end: {self.end_reason}"))
        parts.append(f"{self.heard_seconds:.2f} s of audio heard "
                     f"({self._rtp.packets_in} RTP packets in, {self._rtp.packets_out} out)")
        return "; ".join(parts)

    # ---- actions ----------------------------------------------------------------------------

    async def wait_answered(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait for the answer; AssertionError if the call failed or nobody answered."""
        __tracebackhide__ = True
        waiter = asyncio.ensure_future(self._answered.wait())
        ender = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({waiter, ender}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            ender.cancel()
        if not self.answered:
            why = "was not answered" if self.ended else f"was not answered within {timeout:g} s"
            raise AssertionError(f"the call {why}: {self.describe()}")

    async def send_digits(self, digits: str, *, mode: str = "rfc4733", tone_ms: int = 100,
                          gap_ms: int = 100, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Press `digits` ("0"-"9", "*", "#", "A"-"D", "-" for a pause) and wait until sent:
        as RFC 4733 telephone-events (`mode="rfc4733"`), as tones in the audio ("inband")
        or as SIP INFO application/dtmf-relay ("info"). The assertions after it look at
        what is heard from then on (`cursor` moves up to now)."""
        self._require_up("send digits")
        try:
            await self._send_digits(digits, mode, tone_ms, gap_ms, timeout)
        finally:
            self._mark()

    async def _send_digits(self, digits: str, mode: str, tone_ms: int, gap_ms: int,
                           timeout: float) -> None:
        if mode == "rfc4733":
            await asyncio.wait_for(self._rtp.send_digits(digits, tone_ms, gap_ms), timeout)
        elif mode == "inband":
            pcm = dtmf_digits(digits.replace("-", ""), tone_s=tone_ms / 1000,
                              gap_s=gap_ms / 1000)
            await asyncio.wait_for(self._rtp.play(pcm), timeout)
        elif mode == "info":
            for digit in digits:
                if digit == "-":
                    await asyncio.sleep(0.25)
                    continue
                if not isinstance(self._session, ClientSession):
                    raise AssertionError("SIP INFO digits go out on calls the phone placed "
                                         "only: use mode='rfc4733' or 'inband'")
                body = f"Signal={digit}\r\nDuration={tone_ms}\r\n".encode()
                self._session.send_info(body)
                await asyncio.sleep((tone_ms + gap_ms) / 1000)
        else:
            raise ValueError(f"mode must be one of {', '.join(DIGIT_MODES)}, not {mode!r}")

    async def play(self, audio: AudioSource, *, wait: bool = True) -> None:
        """Send audio to the far end after what is queued: int16 samples at 8 kHz, or a
        sound file (path or its bytes; decoded to 8 kHz mono). With `wait`, return once
        it is all sent (and the assertions after it look from then on)."""
        self._require_up("play audio")
        if isinstance(audio, str | Path | bytes):
            audio = await asyncio.to_thread(_decode_file, audio)
        done = self._rtp.play(audio)
        if wait:
            await done
            self._mark()

    async def send_tone(self, freq: float, seconds: float, *, level_dbm0: float = -10.0,
                        wait: bool = True) -> None:
        """Send a sine of `freq` Hz for `seconds`."""
        await self.play(tone(freq, seconds, level_dbm0=level_dbm0), wait=wait)

    async def answer(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Answer an incoming call (the phone's `auto_answer=False`) and wait for the ACK."""
        if not isinstance(self._session, ServerSession) or self._pending_answer is None:
            raise AssertionError(f"nothing to answer: {self.describe()}")
        body, media = self._pending_answer
        self._pending_answer = None
        self._session.answer(body)
        self._rtp.start((media.remote_host, media.remote_port), media.codec.pt,
                        media.telephone_event_pt, media.ptime)
        await self.wait_answered(timeout)

    async def hangup(self) -> None:
        """End the call (BYE once answered, CANCEL before) and wait for it to end."""
        if self._session is not None and not self.ended:
            self._session.hangup()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), 10.0)
        await self._finish()

    async def wait_hangup(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait for the far end to end the call."""
        __tracebackhide__ = True
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            self._analyse()
            self.save_wav()
            raise AssertionError(
                f"the far end did not hang up within {timeout:g} s: {self.describe()}\n"
                f"  heard since {self.cursor:.2f} s: {self._listener.describe(self.cursor)}\n"
                f"  recording: {self.wav_path}") from None

    # ---- assertions on what is heard --------------------------------------------------------

    async def hears_tone(self, freq: float, min_s: float = 0.2, *,
                         timeout: float = DEFAULT_TIMEOUT_S,
                         tolerance_hz: float | None = None) -> Segment:
        """Wait until a tone of `freq` Hz (± `tolerance_hz`, default 3 % or 10 Hz) has
        lasted `min_s`; the matched stretch (start, and where `min_s` was reached)."""
        __tracebackhide__ = True
        tol = tolerance_hz if tolerance_hz is not None else max(10.0, 0.03 * freq)

        def check() -> Segment | None:
            run = self._listener.tone_run(freq, min_s, self.cursor, tol)
            return None if run is None else Segment("tone", run[0], run[1], freq)

        seg = await self._until(check, timeout,
                                f"a {freq:g} Hz tone (±{tol:g} Hz) of at least {min_s:g} s")
        self.cursor = seg.end
        return seg

    async def hears_speech(self, min_s: float = 0.3, max_s: float | None = None, *,
                           timeout: float = DEFAULT_TIMEOUT_S) -> Segment:
        """Wait for an utterance of at least `min_s` (pauses between words stay inside one)
        to end, and check it lasted at most `max_s`; shorter ones are passed over."""
        __tracebackhide__ = True
        if max_s is not None and max_s < min_s:
            raise ValueError(f"max_s ({max_s}) is less than min_s ({min_s})")
        too_long: list[Segment] = []

        def check() -> Segment | None:
            segments = self._listener.segments(self.cursor)
            heard = self._listener.seconds
            for i, seg in enumerate(segments):
                # An utterance is over once a pause too long to be inside one follows
                # (shorter ones may still turn out to be between its words), or a tone.
                closed = (self._all_judged() or heard - seg.end >= SPEECH_GAP_S
                          or any(s.kind == "tone" for s in segments[i + 1:]))
                if seg.kind != "speech" or not closed or seg.length < min_s:
                    continue
                if max_s is not None and seg.length > max_s:
                    too_long.append(seg)
                    raise _Mismatch(f"speech of {seg.length:.2f} s ({seg}), longer than "
                                    f"max_s={max_s:g} s")
                return seg
            return None

        what = f"speech of at least {min_s:g} s" + (
            f" and at most {max_s:g} s" if max_s is not None else "")
        seg = await self._until(check, timeout, what)
        self.cursor = seg.end
        return seg

    async def hears_silence(self, min_s: float = 0.5, *,
                            timeout: float = DEFAULT_TIMEOUT_S) -> Segment:
        """Wait until `min_s` of silence (below -45 dBFS) has been heard."""
        __tracebackhide__ = True

        def check() -> Segment | None:
            run = self._listener.silence_run(min_s, self.cursor)
            return None if run is None else Segment("silence", run[0], run[1])

        seg = await self._until(check, timeout, f"silence of at least {min_s:g} s")
        self.cursor = seg.end
        return seg

    async def hears_digits(self, digits: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> float:
        """Wait until the keys heard from the cursor on (in-band, RFC 4733 or INFO,
        whichever the far end used) hold `digits` in a row; when the last of them came."""
        __tracebackhide__ = True
        wanted = digits.upper()

        def check() -> float | None:
            keys = [(at, key) for at, key in self._keys() if at >= self.cursor]
            text = "".join(key for _, key in keys)
            found = text.find(wanted)
            return None if found < 0 or not wanted else keys[found + len(wanted) - 1][0]

        at = await self._until(check, timeout, f"the DTMF digits {digits!r}")
        self.cursor = max(self.cursor, at)
        return at

    # ---- internals --------------------------------------------------------------------------

    def _mark(self) -> None:
        # What the caller hears after pressing keys or speaking is what the next
        # assertion is about: move the cursor up to what has been heard by now.
        self.cursor = max(self.cursor, self.heard_seconds)

    def _keys(self) -> list[tuple[float, str]]:
        return sorted([*self._listener.keys, *self._rtp.rfc4733_keys, *self.info_keys])

    def _all_keys(self) -> str:
        return "".join(k for _, k in self._keys())

    def _require_up(self, what: str) -> None:
        if self.status is not CallStatus.ANSWERED:
            raise AssertionError(f"can't {what}: {self.describe()}")

    def _analyse(self) -> None:
        heard = self._rtp.heard
        # Keep two frames back while the call is up: a late packet may still fill them.
        end = len(heard) if self.ended else max(0, len(heard) - 2 * FRAME)
        self._listener.feed(heard[:end])

    def _all_judged(self) -> bool:
        return self.ended and self._listener.seconds >= len(self._rtp.heard) // FRAME * FRAME_S

    async def _until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        __tracebackhide__ = True  # pytest: the failure is the test's line, not ours
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        why = f"not heard within {timeout:g} s"
        while True:
            self._analyse()
            try:
                result = check()
            except _Mismatch as exc:
                why = str(exc)
                break
            if result is not None:
                return result
            if self._all_judged():
                why = "not heard before the call ended"
                break
            if self.status is CallStatus.FAILED:
                why = "the call was never answered"
                break
            if loop.time() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        path = self.save_wav()
        keys = self._all_keys()
        raise AssertionError(
            f"expected {what}: {why}\n"
            f"  heard since {self.cursor:.2f} s: {self._listener.describe(self.cursor)}\n"
            f"  DTMF heard: {keys or 'none'}\n"
            f"  {self.describe()}\n"
            f"  recording of everything heard: {path}")

    def save_wav(self, path: Path | None = None) -> Path:
        """Write everything heard so far to a WAV (8 kHz mono); its path."""
        path = path or self.wav_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.ascontiguousarray(self._rtp.heard, dtype="<i2").tobytes())
        return path

    async def _finish(self) -> None:
        await self._rtp.close()
        self.save_wav()

    # ---- signalling events ------------------------------------------------------------------

    def _on_event(self, event: object) -> None:
        if isinstance(event, CallProgressed) and self.status is CallStatus.CALLING:
            self.status = CallStatus.RINGING
        elif isinstance(event, CallAnswered):
            session = self._session
            if isinstance(session, ClientSession):
                self.final_status, self.final_reason = session.final_status, session.final_reason
            self._media_up(event.sdp)
        elif isinstance(event, CallFailed):
            self.final_status, self.final_reason = event.status, event.reason
            if not self.answered:
                self.status = CallStatus.FAILED
        elif isinstance(event, CallAcked):
            self.status = CallStatus.ANSWERED
            self._answered.set()
        elif isinstance(event, InfoReceived):
            self._info(event)
        elif isinstance(event, ByeReceived):
            pass  # SessionTerminated follows with reason "remote bye"
        elif isinstance(event, SessionTerminated):
            self.end_reason = event.reason
            if self.answered:
                self.status = CallStatus.ENDED
            elif self.status is not CallStatus.FAILED:
                self.status = CallStatus.FAILED
            self._ended.set()
            task = asyncio.get_running_loop().create_task(self._finish())
            self.phone._tasks.add(task)
            task.add_done_callback(self.phone._tasks.discard)

    def _media_up(self, answer: sdp.SessionDescription | None) -> None:
        offer = self._offer
        if answer is None or offer is None:
            log.warning("answered without a usable SDP answer: hanging up",
                        extra={"call": self.name})
            assert self._session is not None
            self._session.hangup()
            return
        try:
            media = sdp.negotiate_answer(offer, answer)
        except sdp.SdpError as exc:
            log.warning("unusable SDP answer: %s", exc, extra={"call": self.name})
            assert self._session is not None
            self._session.hangup()
            return
        self._rtp.start((media.remote_host, media.remote_port), media.codec.pt,
                        media.telephone_event_pt, media.ptime)
        self.status = CallStatus.ANSWERED
        self._answered.set()

    def _info(self, event: InfoReceived) -> None:
        request = event.request
        try:
            digit = parse_dtmf_info(request.content_type or "", request.body)
        except DtmfInfoError:
            return
        self.info_keys.append((self.heard_seconds, digit.digit))  # as far as heard by then


class _Mismatch(Exception):
    """What was heard contradicts the expectation: fail now rather than at the timeout."""


def _decode_file(source: str | Path | bytes) -> Pcm:
    from media.audio import decode_audio  # PyAV: only when a file is played

    if isinstance(source, bytes):
        return np.asarray(decode_audio(source, source="audio bytes"), np.int16)
    data = Path(source).read_bytes()
    return np.asarray(decode_audio(data, source=str(source)), np.int16)


class Phone:
    """The test phone: `await start()`, then `dial(number)` calls the switch; calls to
    `uri` are answered (`incoming()` hands them over). `close()` ends everything."""

    def __init__(self, directory: Path, switch: tuple[str, int] | None = None, *,
                 user: str = "testphone", host: str = "127.0.0.1",
                 auto_answer: bool = True) -> None:
        self.directory = directory
        self.switch = switch
        self.user = user
        self.host = host
        self.auto_answer = auto_answer
        self.calls: list[PhoneCall] = []
        self._stack = SipStack(host, 0, on_invite=self._on_invite,
                               user_agent="voxswitch-testkit-phone")
        self._incoming: asyncio.Queue[PhoneCall] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._names = itertools.count(1)
        self._started = False

    @property
    def uri(self) -> str:
        """Where the phone takes calls: `sip:USER@HOST:PORT`, e.g. for a DIAL action."""
        return f"sip:{self.user}@{self.host}:{self._stack.udp_port}"

    async def start(self) -> None:
        await self._stack.start()
        self._started = True

    async def close(self) -> None:
        """Hang up every call still up, stop the SIP stack and the RTP sockets."""
        for call in self.calls:
            if not call.ended:
                with contextlib.suppress(Exception):
                    await call.hangup()
        if self._started:
            await self._stack.stop()
        for call in self.calls:
            await call._finish()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5.0)

    async def dial(self, number: str, *, wait_answer: bool = True,
                   timeout: float = DEFAULT_TIMEOUT_S, caller: str | None = None,
                   headers: tuple[tuple[str, str], ...] = ()) -> PhoneCall:
        """Call `number` at the switch (a full `sip:` URI goes where it says); with
        `wait_answer`, return once answered (AssertionError if it is not)."""
        __tracebackhide__ = True
        if number.startswith("sip:"):
            target = number
        elif self.switch is None:
            raise ValueError("this phone has no switch to call: give a sip: URI")
        else:
            target = f"sip:{number}@{self.switch[0]}:{self.switch[1]}"
        call = await self._new_call("out")
        offer = sdp.offer(local_host=self.host, local_port=call._rtp.port,
                          session_id=random.getrandbits(31), session_version=1,
                          user="testphone")
        call._offer = offer
        session = self._stack.invite(target, from_user=caller or self.user, sdp=bytes(offer),
                                     headers=headers)
        call._session = session
        session.on_event = call._on_event
        log.info("test phone dials %s", target, extra={"call": call.name, "target": target})
        if wait_answer:
            await call.wait_answered(timeout)
        return call

    async def incoming(self, timeout: float = DEFAULT_TIMEOUT_S) -> PhoneCall:
        """The next call to `uri` (answered already when `auto_answer`)."""
        __tracebackhide__ = True
        try:
            call = await asyncio.wait_for(self._incoming.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no call reached the test phone at {self.uri} within "
                                 f"{timeout:g} s") from None
        if self.auto_answer:
            await call.wait_answered(timeout)
        return call

    async def _new_call(self, direction: str) -> PhoneCall:
        rtp = RtpEndpoint(self.host)
        from control.testkit.ports import free_rtp_port  # an even port with its RTCP pair

        await rtp.open(free_rtp_port())
        call = PhoneCall(self, f"call{next(self._names)}", direction, rtp)
        self.calls.append(call)
        return call

    def _on_invite(self, session: ServerSession) -> None:
        task = asyncio.get_running_loop().create_task(self._take(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take(self, session: ServerSession) -> None:
        call = await self._new_call("in")
        call._session = session
        session.on_event = call._on_event
        if session.offer is None:
            session.reject(488, "The test phone needs an SDP offer")
            call.status = CallStatus.FAILED
            await self._incoming.put(call)
            return
        try:
            answer, media = sdp.answer(session.offer, local_host=self.host,
                                       local_port=call._rtp.port,
                                       session_id=random.getrandbits(31), session_version=1,
                                       user="testphone")
        except sdp.SdpError as exc:
            session.reject(488, str(exc)[:80])
            call.status = CallStatus.FAILED
            await self._incoming.put(call)
            return
        session.ring()
        call._pending_answer = (bytes(answer), media)
        await self._incoming.put(call)
        if self.auto_answer:
            body, _ = call._pending_answer
            call._pending_answer = None
            session.answer(body)
            call._rtp.start((media.remote_host, media.remote_port), media.codec.pt,
                            media.telephone_event_pt, media.ptime)
