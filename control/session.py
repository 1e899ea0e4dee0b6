"""A call session: one SIP leg plus one media channel, running one call flow.

This is the glue the DESIGN puts in `control/`: it turns SIP session events into call
state, SDP into a configured media channel, and call-flow requests (speak, play, answer,
hang up) into SIP and media operations. It implements `CallPort` for the interpreter and
`CallControl` for the REST API.

`CallSession` holds what both directions share: the media channel, the CallPort
(prompts, digits, waits), the REST side and the end of the call (log, end_call). The
SIP side differs by direction and lives in the subclasses: `InboundSession`
(control.inbound, a ServerSession: ring, answer, reject) and `OutboundSession`
(control.outbound, a ClientSession: dial, early media, answer from the far end). A
session without a flow config is a bare leg (a transfer's far side): it is dialled,
bridged and hung up by its owner, and runs no callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from control.callflow.errors import FetchFailed, NoActions
from control.callflow.interpreter import compile_actions
from control.callflow.loop import CallFlowLoop
from control.calls import Call, CallStatus, HangupEnd
from control.detection import CallDetection
from control.flowconfig import CallbackTarget, CallFlowConfig
from control.recordings import RecordingRefused
from control.timeline import Timeline
from media.errors import AudioFetchError, MediaError, UnsupportedVoice
from media.events import DigitReceived
from signaling.dtmf_info import parse_dtmf_info
from signaling.message import Request
from signaling.sdp import NegotiatedMedia, SessionDescription, answer

if TYPE_CHECKING:
    from control.services import SwitchServices
    from media.engine import Channel

log = logging.getLogger("voxswitch.session")

DTMF_PREFIX = "dtmf://"
AUDIO_PREFIXES = ("http://", "https://", "file://")
REST_RECORDING = "rest_recording"  # the `name` of recordings started by REST Start


class SipLeg(Protocol):
    """What a session asks of its SIP side, server or client usage alike."""

    on_event: Callable[[object], None] | None
    on_reoffer: Callable[[SessionDescription], SessionDescription] | None

    def hangup(self) -> None: ...


class CallSession(ABC):
    """One call from its first SIP message to its log record (and end_call)."""

    leg: SipLeg

    def __init__(self, switch: SwitchServices, call: Call,
                 config: CallFlowConfig | None) -> None:
        self.switch = switch
        self.call = call
        self.config = config
        self.channel: Channel | None = None
        self.media: NegotiatedMedia | None = None
        self._answered = False
        self._ended = asyncio.Event()
        self._end_status: CallStatus | None = None
        self._flow_task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._takeover: asyncio.Future[None] | None = None
        self._digits: deque[str] = deque(maxlen=64)
        self._digit_event = asyncio.Event()
        self._sdp_version = random.randint(1, 1 << 30)
        self._sdp_session_id = random.randint(1, 1 << 30)
        self.loop: CallFlowLoop | None = None
        if config is not None:
            self.loop = CallFlowLoop(call, self, switch.callbacks, config)
            # the CONFERENCE action finds the service on its FlowContext
            self.loop.ctx.conferences = switch.conferences
            self.loop.ctx.queues = switch.queues
            self.loop.ctx.switchboard = switch.switchboard
            self.loop.ctx.recordings = switch.recordings
            self.loop.ctx.detection = switch.detection
            self.loop.ctx.messaging = getattr(switch, "messaging", None)
        call.control = RestControl(self)
        # its timeline (GET /LiveCalls/{id}/Timeline); None where the switch keeps none
        self.timeline: Timeline | None = None
        timelines = getattr(switch, "timelines", None)
        if timelines is not None:
            self.timeline = timelines.open(call.id, call.subaccount_id)
            timelines.link_sip(self.timeline, call.sip_call_id)
            inbound = call.direction.value == "inbound"
            self.timeline.add(
                "call", f"inbound call from {call.caller_no} to {call.api_no}" if inbound
                else f"outbound call to {call.caller_no} from {call.api_no}",
                phase="start", direction=call.direction.value, caller_no=call.caller_no,
                api_no=call.api_no, parent_call_id=call.parent_call_id)
        # Called once the call has ended and its log is saved (owners: transfers, queues).
        self.on_finished: list[Callable[[CallSession], None]] = []

    # ---- direction-specific (subclasses) ----------------------------------------------

    @abstractmethod
    async def run(self) -> None:
        """Take the call from its first SIP message to its end; never raises."""

    @abstractmethod
    async def answer(self) -> None:
        """Connect the call (idempotent)."""

    @abstractmethod
    async def reject(self, status: int, reason: str | None,
                     final: CallStatus | None = None) -> None:
        """Refuse an unanswered call with SIP `status`; its final status is `final`."""

    @abstractmethod
    async def hangup(self) -> None:
        """End the call from our side."""

    async def _send_final_callback(self) -> None:
        """end_call, to the callback target in force; bare legs send none."""
        if self.loop is not None:
            await self.loop.send_end_call()

    # ---- lifecycle -------------------------------------------------------------------

    async def _open_channel(self) -> bool:
        """A media channel for the call; False (the call failed, 503) when no RTP port
        is free."""
        try:
            self.channel = await self.switch.engine.open_channel()
        except OSError as exc:
            log.error("session.no_media_port", extra={"call_id": self.call.id,
                                                      "error": str(exc)})
            self.call.fail(503, f"no RTP port available: {exc}")
            return False
        self.channel.on_digit = self._on_digit
        taps = getattr(self.switch, "taps", None)
        if taps is not None:
            taps.start(self)  # the audio both sides heard (control.taps)
        return True

    async def _run_flow(self) -> None:
        """Run the call flow (if any) until it ends, then make sure the call ends."""
        if self.loop is not None:
            self._flow_task = asyncio.create_task(self.loop.run(), name=f"flow-{self.call.id}")
            with contextlib.suppress(asyncio.CancelledError):
                await self._flow_task
        # REST may have stopped the flow to take the call over (HangUp with a message);
        # the call is then its to end.
        while self._takeover is not None and not self._takeover.done():
            await asyncio.wait({self._takeover})
        # The loop ends the call itself when its flow ends or fails; a flow that stopped
        # without ending it was stopped from outside (REST End): hang up. A bare leg
        # waits for its owner or the far end.
        if self.loop is not None and not self._ended.is_set():
            await self.hangup()
        await self._ended.wait()

    def _crashed(self) -> None:
        log.exception("session.crashed", extra={"call_id": self.call.id})
        self.call.fail(500999, "internal error in the call session")
        try:
            leg = getattr(self, "leg", None)  # None: it failed before any SIP was sent
            if leg is not None:
                leg.hangup()
        except Exception:
            log.exception("session.cleanup_failed", extra={"call_id": self.call.id})
        self._mark_ended(CallStatus.COMPLETED if self._answered else CallStatus.FAILED,
                         HangupEnd.API)

    def _negotiate(self, offer: SessionDescription) -> tuple[SessionDescription,
                                                              NegotiatedMedia]:
        assert self.channel is not None
        self._sdp_version += 1
        return answer(offer, local_host=self.channel.local_host,
                      local_port=self.channel.local_port,
                      session_id=self._sdp_session_id,
                      session_version=self._sdp_version)

    def _configure_channel(self, media: NegotiatedMedia) -> None:
        assert self.channel is not None
        self.channel.configure(
            remote=(media.remote_host, media.remote_port),
            payload_type=media.codec.pt,
            telephone_event_pt=media.telephone_event_pt,
            send=media.direction in ("sendrecv", "sendonly"),
            receive=media.direction in ("sendrecv", "recvonly"),
            rtcp=media.rtcp,
            rtcp_mux=media.rtcp_mux,
        )

    async def _finish(self) -> None:
        if self._finished.is_set():
            return
        if self._flow_task is not None and not self._flow_task.done():
            self._flow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flow_task
        try:  # saved before the call log and end_call name them
            await self.switch.recordings.stop_call(self.call)
        except Exception:
            log.exception("call.recordings_stop_failed", extra={"call_id": self.call.id})
        self.switch.detection.forget(self.call)
        taps = getattr(self.switch, "taps", None)
        if taps is not None:
            taps.stop(self.call)  # before the channel closes, so its last audio is in
        if self.channel is not None:
            self.channel.close()
        # Only reached without a final status when something above gave up early.
        self._mark_ended(self._end_status or (
            CallStatus.COMPLETED if self._answered else CallStatus.FAILED), None)
        self.switch.registry.ended(self.call)
        log.info("call.ended", extra={"call_id": self.call.id, "status": self.call.status.value,
                                      "duration_ms": self.call.duration_ms(),
                                      "error_code": self.call.error_code})
        if self.timeline is not None:
            who = {"caller": "the caller" if self.call.direction.value == "inbound"
                   else "the far end", "api": "the switch"}.get(
                       self.call.hangup_end.value if self.call.hangup_end else "", "nobody")
            self.timeline.add(
                "call", f"call ended {self.call.status.value}, hung up by {who}",
                phase="end", status=self.call.status.value,
                hangup_end=self.call.hangup_end.value if self.call.hangup_end else None,
                duration_ms=self.call.duration_ms(), error_code=self.call.error_code)
        try:
            await self.switch.storage.save_call_log(self.call.log_record())
        except Exception:
            log.exception("call.log_failed", extra={"call_id": self.call.id})
        try:
            await self._send_final_callback()
        except Exception:
            log.exception("call.end_call_failed", extra={"call_id": self.call.id})
        timelines = getattr(self.switch, "timelines", None)
        if timelines is not None:
            timelines.finish(self.call.id)  # kept for [taps] keep_s from now
        self._finished.set()
        for hook in self.on_finished:
            try:
                hook(self)
            except Exception:
                log.exception("call.finished_hook_failed", extra={"call_id": self.call.id})

    async def wait_finished(self) -> None:
        """Until the call has ended and its log and final callback are out."""
        await self._finished.wait()

    async def wait_ended(self) -> None:
        """Until either side has hung up."""
        await self._ended.wait()

    def _mark_ended(self, status: CallStatus, end: HangupEnd | None) -> None:
        if self.call.end_time is None:
            self.call.mark_ended(status, end)
        self._ended.set()

    def _on_reoffer(self, offer: SessionDescription) -> SessionDescription:
        sdp, media = self._negotiate(offer)  # NotAcceptable → 488, dialog unchanged
        self.media = media
        self._configure_channel(media)
        return sdp

    # ---- CallPort --------------------------------------------------------------------

    @property
    def answered(self) -> bool:
        return self._answered

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def speech(self, text: str, *, voice: str | None, language: str | None,
                     gender: str | None) -> np.ndarray:
        try:
            return await self.switch.tts.synthesize(text, voice=voice, language=language,
                                                    gender=gender)
        except UnsupportedVoice as exc:
            raise NoActions(f"SAY: {exc}") from None

    async def audio(self, url: str) -> np.ndarray:
        try:
            return await self.switch.audio.load(url)
        except AudioFetchError as exc:
            raise FetchFailed(str(exc)) from None

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        if self.ended or self.channel is None or len(pcm) == 0:
            return not self.ended
        if stop_on_key and self._digits:
            return False
        return await self._until_done(self.channel.play(pcm), stop_on_key)

    async def send_dtmf(self, digits: str, *, delay_ms: float, dash_ms: float) -> bool:
        if self.ended or self.channel is None or not digits:
            return not self.ended
        if self.timeline is not None:
            self.timeline.add("digit", f"sending digits {digits}", direction="sent",
                              digits=digits)
        done = self.channel.send_dtmf(digits, gap_ms=int(delay_ms), dash_ms=int(dash_ms))
        return await self._until_done(done, False)

    async def _until_done(self, done: asyncio.Future[bool], stop_on_key: bool) -> bool:
        """Wait for a playback future, the end of the call, or (optionally) a key."""
        assert self.channel is not None
        waiters: set[asyncio.Future[Any]] = {done, asyncio.ensure_future(self._ended.wait())}
        if stop_on_key:
            self._digit_event.clear()
            waiters.add(asyncio.ensure_future(self._digit_event.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters - {done}:
                w.cancel()
        if not done.done():
            self.channel.stop_audio()
            return False
        return bool(done.result())

    async def sleep(self, seconds: float, *, stop_on_key: bool = False) -> None:
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._ended.wait())}
        if stop_on_key:
            if self._digits:
                return
            self._digit_event.clear()
            waiters.add(asyncio.ensure_future(self._digit_event.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds)
        finally:
            for w in waiters:
                w.cancel()

    def stop_audio(self) -> None:
        if self.channel is not None:
            self.channel.stop_audio()

    def media_channel(self) -> Channel | None:
        """The call's media channel (conferences put it into their mix)."""
        return self.channel

    # ---- digits ----------------------------------------------------------------------

    def _on_digit(self, event: DigitReceived) -> None:
        log.info("call.digit", extra={"call_id": self.call.id, "digit": event.digit,
                                      "source": event.source})
        if self.timeline is not None:
            self.timeline.add("digit", f"received digit {event.digit} ({event.source})",
                              direction="received", digit=event.digit, source=event.source)
        self._digits.append(event.digit)
        self._digit_event.set()

    def _on_info(self, request: Request) -> None:
        try:
            digit, duration = parse_dtmf_info(request.content_type or "", request.body)
        except ValueError as exc:
            log.info("call.info_ignored", extra={"call_id": self.call.id, "error": str(exc)})
            return
        if self.channel is not None:
            self.channel.receive_info_digit(digit, duration)

    def pending_digit(self) -> bool:
        return bool(self._digits)

    async def next_digit(self, timeout: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._digits:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.ended:
                return None
            self._digit_event.clear()
            ended = asyncio.ensure_future(self._ended.wait())
            arrived = asyncio.ensure_future(self._digit_event.wait())
            try:
                await asyncio.wait({ended, arrived}, timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                arrived.cancel()
        return self._digits.popleft()

    def clear_digits(self) -> None:
        self._digits.clear()

    # ---- REST --------------------------------------------------------------------------

    async def play_message(self, message: list[str]) -> None:
        """REST `message` items in order: TTS text, audio URLs, dtmf://digits."""
        for item in message:
            if self.ended:
                return
            try:
                if item.startswith(DTMF_PREFIX):
                    from control.callflow.actions.play import check_dtmf

                    await self.send_dtmf(check_dtmf(item[len(DTMF_PREFIX):], "message"),
                                         delay_ms=250, dash_ms=250)
                    continue
                if item.startswith(AUDIO_PREFIXES):
                    pcm = await self.audio(item)
                else:
                    pcm = await self.speech(item, voice=None, language=None, gender=None)
            except (NoActions, FetchFailed, MediaError) as exc:
                log.warning("message.item_failed", extra={"call_id": self.call.id,
                                                          "item": item, "error": str(exc)})
                continue
            if not await self.play(pcm):
                return

    async def hangup_with_message(self, message: list[str] | None) -> None:
        self._takeover = asyncio.ensure_future(self._hangup_with_message(message))
        await self._takeover

    async def _hangup_with_message(self, message: list[str] | None) -> None:
        await self._stop_flow()
        if message and not self.ended:
            if not self._answered:
                await self.answer()
            await self.play_message(message)
        await self.hangup()

    async def leave_voicemail(self, detection: CallDetection, message: list[str] | None
                              ) -> None:
        self._takeover = asyncio.ensure_future(self._leave_voicemail(detection, message))
        await self._takeover

    async def _leave_voicemail(self, detection: CallDetection, message: list[str] | None
                               ) -> None:
        await self._stop_flow()
        if not detection.done.is_set():
            waiting = {asyncio.ensure_future(detection.done.wait()),
                       asyncio.ensure_future(self._ended.wait())}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiting:
                    w.cancel()
        log.info("voicemail.leave", extra={"call_id": self.call.id,
                                           "detection": detection.result,
                                           "ready": detection.ready.is_set(),
                                           "beep_end_ms": detection.beep_end_ms})
        if message and not self.ended:
            await self.play_message(message)
        await self.hangup()

    def inject(self, raw: list[dict[str, Any]], once: CallbackTarget | None = None) -> None:
        """Replace the running actions (REST inject); ApiError 400001 for bad ones."""
        from control.api.errors import ApiError

        try:
            actions = compile_actions(raw)
        except NoActions as exc:
            raise ApiError.validation("actions", f"are not runnable: {exc.message}") from None
        if self.loop is None or not self.loop.replace(actions, once):
            raise ApiError.live_call_not_found(self.call.id)

    async def end(self) -> None:
        await self._stop_flow()
        await self.hangup()

    async def shutdown(self) -> None:
        """The switch is stopping: BYE an answered call; refuse a ringing one with 503
        (try elsewhere), a failure of ours, so its final status is failed."""
        if not self._answered and not self.ended:
            # Before stopping the flow, or the session would hang up as for REST End.
            self.call.fail(503, "the switch shut down before the call was answered")
            await self.reject(503, "Service Unavailable")
        await self._stop_flow()
        await self.hangup()

    async def _stop_flow(self) -> None:
        task = self._flow_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.channel is not None:
            self.channel.stop_audio()


def message_actions(message: list[str] | None) -> list[dict[str, Any]]:
    """REST `message` items as prompt actions (SAY / PLAY url / PLAY dtmf)."""
    out: list[dict[str, Any]] = []
    for item in message or []:
        if item.startswith(DTMF_PREFIX):
            out.append({"type": "PLAY", "params": {"dtmf": item[len(DTMF_PREFIX):]}})
        elif item.startswith(AUDIO_PREFIXES):
            out.append({"type": "PLAY", "params": {"url": item}})
        else:
            out.append({"type": "SAY", "params": {"text": item}})
    return out


class RestControl:
    """Adapts a CallSession to the REST API's CallControl protocol.

    Every method returns at once; what it starts runs on the call's own tasks.
    """

    def __init__(self, session: CallSession) -> None:
        self._session = session
        self._tasks: set[asyncio.Task[None]] = set()
        self._hangup: asyncio.Task[None] | None = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def hangup(self, message: list[str] | None = None) -> None:
        # The message plays and the BYE follows; the REST request does not wait.
        if self._hangup is None or self._hangup.done():
            self._hangup = asyncio.ensure_future(self._session.hangup_with_message(message))

    async def end(self) -> None:
        await self._session.end()

    async def collect(self, message: list[str] | None, options: dict[str, Any]) -> None:
        params = {k: options[k] for k in ("num_digits", "finish_on_key", "timeout")
                  if options.get(k) is not None}
        if params.get("timeout") is not None:
            params["timeout"] = params["timeout"] * 1000  # REST gives seconds, COLLECT ms
        actions: list[dict[str, Any]] = [{"type": "COLLECT", "name": "rest_collect",
                                          "params": params,
                                          "actions": message_actions(message)}]
        if self._session.loop is None:
            from control.api.errors import ApiError

            raise ApiError.live_call_not_found(self._session.call.id)
        callback = options.get("callback") or {}
        once = None
        if callback.get("url"):
            # The digits go to this URL in one live_call; later callbacks go where they
            # went before (REST Collect is not a REDIRECT).
            current = self._session.loop.target
            once = replace(current, url=callback["url"],
                           method=str(callback.get("method") or "POST").upper())
        self._session.inject(actions, once)

    async def stop(self, what: str = "AUDIO") -> None:
        self._session.stop_audio()

    async def tell(self, message: list[str]) -> None:
        self._spawn(self._session.play_message(message))

    async def inject(self, actions: list[dict[str, Any]]) -> None:
        self._session.inject(actions)

    async def transfer(self, message: list[str] | None, no: str,
                       caller_id_no: str | None) -> None:
        params: dict[str, Any] = {"no": no}
        if caller_id_no:
            params["caller_id_no"] = caller_id_no
        self._session.inject([*message_actions(message),
                              {"type": "TRANSFER", "params": params}])

    async def start_recording(self, group: str | None, pre_message: list[str] | None,
                              message: list[str] | None) -> None:
        if pre_message:
            self._spawn(self._record_after(group, pre_message, message))
            return
        await self._session.switch.recordings.start(self._session, group, REST_RECORDING)
        if message:
            self._spawn(self._session.play_message(message))

    async def _record_after(self, group: str | None, pre_message: list[str],
                            message: list[str] | None) -> None:
        session = self._session
        await session.play_message(pre_message)
        try:
            await session.switch.recordings.start(session, group, REST_RECORDING)
        except RecordingRefused as exc:
            log.warning("recording.refused", extra={"call_id": session.call.id,
                                                    "error": str(exc)})
            return
        if message:
            await session.play_message(message)

    async def recording(self, what: str) -> None:
        service, call = self._session.switch.recordings, self._session.call
        if what == "stop":
            await service.stop(call)
        elif what == "pause":
            service.pause(call)
        else:
            service.resume(call)

    async def leave_voicemail(self, message: list[str] | None) -> None:
        session = self._session
        detection = session.switch.detection.start(session)  # DetectionRefused: no media
        if self._hangup is None or self._hangup.done():
            self._hangup = asyncio.ensure_future(session.leave_voicemail(detection, message))

    async def set_session_data(self, data: dict[str, Any]) -> None:
        self._session.call.session_data = data
        if self._session.loop is not None:
            self._session.loop.vars.sync_from_call()
