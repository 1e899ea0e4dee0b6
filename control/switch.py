"""The switch: composes signaling, media and control into one running process."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace

import aiohttp
from aiohttp import web

from control import dashboard, demo, logs
from control.api import ApiContext, build_api
from control.callerids import CallerIdService
from control.callflow.client import AttemptReport, CallbackClient
from control.calls import Call, CallRegistry, Direction, new_call_id
from control.conferences import ConferenceService
from control.detection import DetectionService
from control.dialer import Dialer
from control.flowconfig import CallFlowConfig
from control.inbound import InboundSession
from control.inventory import InventoryService
from control.messagestore import MessageStore
from control.messaging import MessagingService
from control.metrics import SwitchMetrics, add_route
from control.pstnsim import PstnSimulator
from control.queues import QueueService
from control.recordings import RecordingService
from control.recordingstore import RecordingStore
from control.session import CallSession
from control.settings import Settings
from control.softphones import Softphones
from control.storage import Storage
from control.subaccountstore import config_key
from control.switchboard import SwitchboardService
from control.taps import TapService
from control.timeline import LogBridge, TimelineStore
from control.trunkcalls import TrunkCalls
from control.webrtc import WebRtcGateway
from media.audio import AudioLoader
from media.engine import MediaEngine
from media.tts import TtsEngine
from signaling.events import Destination
from signaling.message import Request, Response, make_response
from signaling.session import ServerSession
from signaling.stack import SipStack

log = logging.getLogger("voxswitch.switch")

USER_AGENT = "voxswitch/0.1"
SHUTDOWN_GRACE_S = 3.0
_E164ISH = re.compile(r"^\+?[0-9]{4,15}$")


class Switch:
    def __init__(self, settings: Settings) -> None:
        assert settings.api_key, "settings.api_key must be set (see ensure_api_key)"
        self.settings = settings
        self.registry = CallRegistry()
        self.storage = Storage(settings.data_dir / "voxswitch.db")
        self.tts = TtsEngine(settings.cache_dir / "tts")
        self.audio = AudioLoader(settings.cache_dir / "audio", media_dir=settings.media_dir)
        self.engine = MediaEngine(host=settings.sip_listen.host, port_range=settings.rtp_ports)
        self.conferences = ConferenceService(self.engine)  # conferences: shared by flows + API
        self.queues = QueueService(self.engine)  # call queues: shared by flows + API
        recordings_dir = settings.data_dir / "recordings"
        self.recordings = RecordingService(
            self.engine, self.storage, recordings_dir,
            RecordingStore(self.storage, recordings_dir, settings.recording_storage))
        self.detection = DetectionService(self.engine)  # answering-machine detection
        # registered softphones (REGISTER, digest) and SMS over SIP MESSAGE
        self.softphones = Softphones(settings, self.storage)
        self.stack = SipStack(settings.sip_listen.host, settings.sip_listen.port,
                              on_invite=self._on_invite, user_agent=USER_AGENT,
                              registrar=self.softphones.registrar,
                              authenticator=self.softphones.authenticator,
                              on_message=self._on_message)
        self.messaging = MessagingService(settings, MessageStore(self.storage),
                                          self.softphones, self.stack.message,
                                          self._sms_config, lambda: self.callbacks)
        self.sessions: set[CallSession] = set()
        self.dialer = Dialer(self)
        self.switchboard = SwitchboardService(self, self.dialer)
        # trunks and the number inventory: INVITEs for them are routed before call flows
        self.inventory = InventoryService(self.storage, settings.numbers_pool)
        self.trunk_calls = TrunkCalls(self, self.dialer, self.inventory)
        self.messaging.trunk_route = self.trunk_calls.message_route  # MESSAGE to a trunk's no
        self.messaging.subaccount_of = self.inventory.subaccount_of  # whose a MESSAGE is
        self.callerids = CallerIdService(self.storage, self.dialer)  # verified by a call
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.http_port = 0
        self._callbacks: CallbackClient | None = None
        self.metrics = SwitchMetrics(self)  # GET /metrics: this switch's own registry
        # every call's events (GET /LiveCalls/{id}/Timeline) and audio (.../Audio)
        self.timelines = TimelineStore(keep_s=settings.taps_keep_s,
                                       max_calls=settings.taps_max_calls,
                                       max_events=settings.taps_max_events)
        self.taps = TapService(self.engine, settings.data_dir / "taps",
                               enabled=settings.taps_audio, max_s=settings.taps_audio_max_s)
        self.timelines.expired.append(self.taps.delete)
        self.stack.on_wire = self.timelines.observe_sip
        self._log_bridge = LogBridge(self.timelines)
        # virtual numbers that answer our dials (a person, voicemail, fax, busy...)
        self.simulator = PstnSimulator(settings, self.engine, self.tts) \
            if settings.simulator_enabled else None
        # the browser phone: each WebRTC call is a SIP call from the gateway to us
        self.webrtc = WebRtcGateway(settings.sip_listen.host,
                                    lambda: (self.stack.advertise, self.stack.udp_port),
                                    self.registry, lambda: self.http_url,
                                    max_sessions=settings.webrtc_max_sessions)

    @property
    def callbacks(self) -> CallbackClient:
        assert self._callbacks is not None
        return self._callbacks

    @property
    def http_url(self) -> str:
        host = self.settings.http_listen.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}"

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.storage.open()
        await self.softphones.load()
        await self.recordings.store.load()  # the S3 bucket set over REST, if any
        # what a crash left open is closed and listed; what is still local is uploaded
        await self.recordings.recover()
        self._http = aiohttp.ClientSession()
        self._callbacks = CallbackClient(self._http, USER_AGENT,
                                         observe=self.metrics.observe_callback,
                                         trace=self._trace_callback)
        self.taps.clear()  # the timelines they belonged to did not survive the restart
        self.timelines.start_sweeping()
        self._log_bridge.attach()
        await self.engine.start()
        await self.stack.start()
        if self.simulator is not None:
            await self.simulator.start()
        self.softphones.attach(
            lambda: (self.stack.advertise, self.stack.udp_port, self.stack.tcp_port),
            self.stack.now)
        await self._start_http()
        await self.webrtc.start()
        if self.settings.default_callback:
            await self._set_default_callback(self.settings.default_callback)

    async def _start_http(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        ctx = ApiContext(api_key=self.settings.api_key or "", registry=self.registry,
                         storage=self.storage, app_id=self.settings.app_id,
                         conferences=self.conferences, switchboard=self.switchboard,
                         queues=self.queues, recordings=self.recordings,
                         inventory=self.inventory)
        ctx.softphones, ctx.messaging = self.softphones, self.messaging
        ctx.callerids = self.callerids
        ctx.timelines, ctx.taps = self.timelines, self.taps
        ctx.simulator = self.simulator
        ctx.webrtc = self.webrtc
        app.add_subapp("/v1", build_api(ctx))
        demo.add_routes(app, lambda: self.http_url)
        self.webrtc.add_routes(app)  # the call flow of its conference and sip: URI legs
        dashboard.add_routes(app)  # GET /: the web dashboard (a client of /v1)
        add_route(app, self.metrics,
                  self.settings.api_key if self.settings.metrics_require_key else None)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        listen = self.settings.http_listen
        site = web.TCPSite(self._runner, listen.host, listen.port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]

    async def _set_default_callback(self, url: str) -> None:
        existing = await self.storage.get_config(None)
        body = existing.to_api() if existing else {}
        body["callback"] = {**(body.get("callback") or {}), "url": url}
        cfg = CallFlowConfig.from_request(body, None, existing)
        await self.storage.put_config(cfg)

    def ready_line(self) -> str:
        s = self.settings
        host = s.sip_listen.host
        return (f"voxswitch ready sip=udp:{host}:{self.stack.udp_port},"
                f"tcp:{host}:{self.stack.tcp_port} http={self.http_url} "
                f"api_key={s.api_key}")

    def dashboard_url(self) -> str:
        """The dashboard's address, signed in: the key rides after '#', which the browser
        never sends to a server."""
        return f"{self.http_url}{dashboard.PATH}#key={self.settings.api_key}"

    async def stop(self) -> None:
        """Refuse new calls, hang up live ones with BYE, flush, close everything."""
        self._stopping = True
        await self.webrtc.stop()
        for session in list(self.sessions):
            try:
                await session.shutdown()
            except Exception:
                log.exception("switch.session_shutdown_failed",
                              extra={"call_id": session.call.id})
        tasks = self._tasks | self.dialer.tasks
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for task in tasks:
            task.cancel()
        await self.messaging.close()
        await self.callerids.close()
        await self.stack.stop()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.recordings.close()
        await self.taps.close()
        await self.timelines.close()
        self._log_bridge.detach()
        await self.engine.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.audio.close()
        if self._http is not None:
            await self._http.close()
        await self.storage.close()

    def _trace_callback(self, report: AttemptReport) -> None:
        """A callback attempt of a call, for its timeline."""
        timeline = self.timelines.get(report.call_id)
        if timeline is None:
            return
        answer = f"HTTP {report.status}" if report.status is not None else report.outcome
        summary = f"{report.kind} {report.method} {report.url} -> {answer} in " \
                  f"{report.latency_ms} ms"
        if report.actions is not None:
            summary += f": {', '.join(report.actions) or 'no actions'}"
        if report.error:
            summary += f" ({report.error})"
        timeline.add("callback", summary, event=report.kind, method=report.method,
                     url=report.url, status=report.status, outcome=report.outcome,
                     latency_ms=report.latency_ms, actions=report.actions,
                     error=report.error)

    # ---- inbound calls ---------------------------------------------------------------

    def _on_invite(self, sip: ServerSession) -> None:
        if self._stopping:
            sip.reject(503, "Shutting Down")
            return
        task = asyncio.create_task(self._run_call(sip), name=f"call-{sip.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_call(self, sip: ServerSession) -> None:
        if await self.trunk_calls.dispatch(sip):
            return  # a trunk's call, or a parked or trunk-assigned number
        invite = sip.invite
        ruri = invite.ruri
        api_no = ruri.user or ""
        caller = invite.from_.uri
        subaccount_id = await self.inventory.subaccount_of(api_no)
        config = await self.config_for(api_no, subaccount_id)
        config = self.webrtc.vouched_config(sip, config)  # its conference/URI legs' flow
        call = Call(
            subaccount_id=subaccount_id,
            id=new_call_id(self.settings.node_id),
            direction=Direction.INBOUND,
            caller_no=caller.user or caller.host,
            api_no=api_no,
            app_id=self.settings.app_id,
            custom_data=config.custom_data,
            sip_call_id=sip.call_id,
            sip_domain=self.settings.sip_domain or ruri.host,
            sip_forwarded_for=sip.remote_addr[0],
            config=config.to_api(),
        )
        self.registry.add(call)
        logs.bind_call(call.id)  # this task is the call's: its lines carry its id
        log.info("call.new", extra={"call_id": call.id, "caller_no": call.caller_no,
                                    "api_no": api_no, "sip_call_id": sip.call_id,
                                    "callback": config.callback.url})
        session = InboundSession(self, sip, call, config)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    # ---- inbound messages -----------------------------------------------------------

    def _on_message(self, request: Request, source: Destination) -> Response:
        if self._stopping:
            return make_response(request, 503, "Shutting Down")
        return self.messaging.receive(request, source)

    async def _sms_config(self, api_no: str) -> CallFlowConfig | None:
        """The number's own configuration, else the Default; None (no callback) without.
        A Sub Account's number tries that Sub Account's (its own, its Default) first."""
        return await self._stored_config(api_no, await self.inventory.subaccount_of(api_no))

    async def _stored_config(self, api_no: str, subaccount_id: int) -> CallFlowConfig | None:
        """A Sub Account's own (its number's, its Default), then the number's own, then
        the Default; None when none is stored."""
        if subaccount_id:
            for key in [*_number_variants(api_no), None]:
                cfg = await self.storage.get_config(config_key(subaccount_id, key))
                if cfg is not None:
                    return cfg
        for candidate in _number_variants(api_no):
            cfg = await self.storage.get_config(candidate)
            if cfg is not None:
                return cfg
        return await self.storage.get_config(None)

    def find_session(self, call_id: str) -> CallSession | None:
        """The session of a live call."""
        for session in self.sessions:
            if session.call.id == call_id:
                return session
        return None

    async def config_for(self, api_no: str, subaccount_id: int = 0) -> CallFlowConfig:
        """The number's own configuration, else the Default, else the built-in demo; a
        Sub Account's own (its number's, its Default) come first."""
        cfg = await self._stored_config(api_no, subaccount_id)
        if cfg is not None:
            return cfg
        demo_cfg = CallFlowConfig.from_request(
            {"callback": {"url": self.http_url + demo.ROUTE}}, None, None)
        return replace(demo_cfg, custom_data={"demo": True})


def _number_variants(api_no: str) -> list[str]:
    """The called user as given, plus its E.164 twin (with or without the '+')."""
    if not api_no:
        return []
    out = [api_no]
    if _E164ISH.match(api_no):
        out.append(api_no[1:] if api_no.startswith("+") else "+" + api_no)
    return out
