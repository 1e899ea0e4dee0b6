"""The PSTN simulator: a range of virtual phone numbers that answer the switch's own calls.

Flows with DIAL, DETECT and TRANSFER need a far end that answers like the phone network
does: a person, a voicemail with its beep, a fax machine, a busy line, a phone nobody
picks up. The simulator is that far end, inside the switch and with nothing to set up:
a SIP UAS (a second `SipStack` on an ephemeral UDP/TCP port of the switch's SIP host)
whose media channels live in the switch's `MediaEngine`. A dial to one of its numbers
(`[simulator] numbers`, default `+1555010XXXX`) is routed to it by
`control.dialing.route_for` before any outbound proxy, so it works with none configured.
Its calls are real SIP and RTP over loopback: the switch's leg of the call is logged,
recorded and analysed (DETECT) as with any far end; the simulator's own side keeps no
call records.

What a number does is in its last four digits, `B SS x`:

- `B` the behaviour (`BEHAVIOURS`, by digit);
- `SS` seconds, what they mean depends on the behaviour (`00`: its default);
- `x` anything: numbers that differ only there behave alike (tell calls apart by it).

So with the default range +15550101000 is a live person, +15550102000 a voicemail,
+15550106150 a person who answers after 15 s of ringing, and +15550104000 is busy.
`table()` lists the behaviours, as README's "PSTN simulator" and
`GET /v1/Simulator/Numbers` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from control.dialing import Route
from control.numbers import PoolBlock, parse_pool_entry
from media import tones
from signaling import events as sev
from signaling.sdp import NotAcceptable, answer
from signaling.stack import SipStack

if TYPE_CHECKING:
    from control.settings import Settings
    from media.engine import Channel, MediaEngine
    from media.tts import TtsEngine
    from signaling.session import ServerSession

log = logging.getLogger("voxswitch.pstnsim")

USER_AGENT = "voxswitch-pstnsim/0.1"
DEFAULT_NUMBERS = "+1555010XXXX"
RING_S = 1.0  # how long a phone rings before it is answered, unless told otherwise
NO_ANSWER_CAP_S = 600.0  # a phone nobody answers gives up (480) after this at the most
LEAD_S = 0.4  # silence after the answer before the far end speaks: it lifts the receiver
HELLO = "Hello?"
GREETING = ("You have reached the voicemail box of the voxswitch simulator. Please leave "
            "your message after the tone.")
BEEP_HZ, BEEP_S = 1000.0, 0.5
CNG_HZ, CNG_ON_S, CNG_OFF_S = 1100.0, 0.5, 3.0  # T.30 calling tone


class Kind(Enum):
    """How a behaviour uses SIP: answers, refuses, or rings without end."""

    ANSWER = "answer"
    REJECT = "reject"
    RING = "ring"


@dataclass(frozen=True)
class Behaviour:
    digit: str
    name: str
    kind: Kind
    description: str
    seconds: str  # what SS means
    default_s: int
    status: int | None = None  # REJECT's SIP status
    reason: str | None = None


BEHAVIOURS: dict[str, Behaviour] = {b.digit: b for b in (
    Behaviour("0", "answer_hangup", Kind.ANSWER,
              "answers after a ring, stays silent and hangs up (BYE)",
              "seconds before it hangs up", 2),
    Behaviour("1", "live_person", Kind.ANSWER,
              "answers after a ring, says \"Hello?\", then listens; hangs up after a while",
              "seconds before it hangs up", 30),
    Behaviour("2", "voicemail", Kind.ANSWER,
              "answers after a ring, plays a greeting and a 1 kHz beep, then takes the "
              "message in silence until the caller hangs up",
              "longest message in seconds, then it hangs up", 60),
    Behaviour("3", "fax", Kind.ANSWER,
              "answers after a ring and sends the fax calling tone (CNG: 1100 Hz, 0.5 s "
              "on, 3 s off)", "seconds before it hangs up", 60),
    Behaviour("4", "busy", Kind.REJECT, "486 Busy Here at once", "unused", 0, 486,
              "Busy Here"),
    Behaviour("5", "no_answer", Kind.RING,
              "rings until the caller gives up (CANCEL)",
              f"seconds before it gives up with 480 (00: rings on, up to "
              f"{NO_ANSWER_CAP_S:g} s)", 0),
    Behaviour("6", "slow_answer", Kind.ANSWER,
              "rings, then answers as the live person", "seconds of ringing", 10),
    Behaviour("7", "not_found", Kind.REJECT, "404 Not Found at once: not in service",
              "unused", 0, 404, "Not Found"),
    Behaviour("8", "unavailable", Kind.REJECT,
              "503 Service Unavailable at once: a network failure", "unused", 0, 503,
              "Service Unavailable"),
    Behaviour("9", "decline", Kind.REJECT, "603 Decline at once: the callee refuses",
              "unused", 0, 603, "Decline"),
)}


@dataclass(frozen=True)
class Plan:
    """What one simulator number does."""

    number: str
    behaviour: Behaviour
    seconds: float  # SS, or the behaviour's default for 00

    @property
    def ring_s(self) -> float:
        return self.seconds if self.behaviour.name == "slow_answer" else RING_S

    @property
    def hold_s(self) -> float:
        """How long an answered call lasts at the most before the simulator hangs up."""
        if self.behaviour.name == "slow_answer":
            return float(BEHAVIOURS["1"].default_s)
        return self.seconds


def parse_numbers(text: str) -> PoolBlock:
    """The simulator's range: one number pool entry (control.numbers: `+1555010XXXX`,
    `+15550100000-+15550109999`); PoolError saying what fits otherwise."""
    return parse_pool_entry(text)


def e164(no: str) -> str | None:
    """`no` as E.164 when it is a plain number (`+15550101000` or `15550101000`)."""
    text = no.strip()
    digits = text[1:] if text.startswith("+") else text
    return "+" + digits if digits.isdigit() else None


def plan_for(no: str, block: PoolBlock) -> Plan | None:
    """What `no` does, None when it is not in the simulator's range."""
    number = e164(no)
    if number is None or number not in block:
        return None
    behaviour = BEHAVIOURS[number[-4]]
    ss = int(number[-3:-1])
    return Plan(number, behaviour, float(ss or behaviour.default_s))


def example(block: PoolBlock, digit: str, ss: str = "00") -> str | None:
    """The first number of `block` with behaviour `digit` and seconds `ss`; None when the
    range has none (a narrow one)."""
    base = block.first // 10_000
    for prefix in (base, base + 1):  # the first's own thousands, else the next ones
        for x in range(10):
            n = prefix * 10_000 + int(digit + ss) * 10 + x
            if block.first <= n <= block.last:
                return "+" + str(n).zfill(block.digits)
    return None


def table(block: PoolBlock | None) -> list[dict[str, Any]]:
    """The behaviours as a table: digit, name, what happens, what SS means, example."""
    out = []
    for b in BEHAVIOURS.values():
        out.append({"digit": b.digit, "behaviour": b.name, "description": b.description,
                    "sip_status": b.status, "seconds": b.seconds, "default_seconds": b.default_s,
                    "example": example(block, b.digit) if block is not None else None})
    return out


class PstnSimulator:
    """The simulator's SIP UAS and its calls."""

    def __init__(self, settings: Settings, engine: MediaEngine, tts: TtsEngine) -> None:
        self.settings = settings
        self._running = False  # locate() answers only while the stack listens
        self.block = parse_numbers(settings.simulator_numbers)
        self.engine = engine
        self.tts = tts
        # its own port on the switch's SIP host: the switch's stack keeps its INVITEs
        self.stack = SipStack(settings.sip_listen.host, 0, on_invite=self._on_invite,
                              user_agent=USER_AGENT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def address(self) -> tuple[str, int]:
        return self.stack.advertise, self.stack.udp_port

    async def start(self) -> None:
        await self.stack.start()
        self._running = True
        log.info("pstnsim.ready", extra={"numbers": self.settings.simulator_numbers,
                                         "sip_udp": self.stack.udp_port})

    async def stop(self) -> None:
        """Hang up live calls (the stack's BYE/480), then close the stack."""
        self._stopping = True
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        await self.stack.stop()

    def locate(self, no: str) -> Route | None:
        """The route to the simulator for one of its numbers; None for any other `no`."""
        plan = plan_for(no, self.block) if self._running else None
        if plan is None:
            return None
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return Route(f"sip:{plan.number}@{host}:{port}", None, None)

    # ---- calls -----------------------------------------------------------------------

    def _on_invite(self, sip: ServerSession) -> None:
        if self._stopping:
            sip.reject(503, "Shutting Down")
            return
        task = asyncio.create_task(self._run(sip), name=f"pstnsim-{sip.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, sip: ServerSession) -> None:
        plan = plan_for(sip.invite.ruri.user or "", self.block)
        if plan is None:
            log.info("pstnsim.unknown_number", extra={"sip_call_id": sip.call_id,
                                                      "ruri": str(sip.invite.ruri)})
            sip.reject(404, "Not a Simulator Number")
            return
        log.info("pstnsim.call", extra={"sip_call_id": sip.call_id, "number": plan.number,
                                        "behaviour": plan.behaviour.name,
                                        "seconds": plan.seconds})
        call = _SimCall(self, sip, plan)
        try:
            await call.run()
        except asyncio.CancelledError:
            sip.hangup()  # the switch is stopping
            raise
        except Exception:
            log.exception("pstnsim.call_failed", extra={"sip_call_id": sip.call_id,
                                                        "number": plan.number})
            sip.hangup()
        finally:
            call.close()


class _SimCall:
    """One call to a simulator number, from its INVITE to its end."""

    def __init__(self, sim: PstnSimulator, sip: ServerSession, plan: Plan) -> None:
        self.sim = sim
        self.sip = sip
        self.plan = plan
        self.channel: Channel | None = None
        self.ended = asyncio.Event()
        self.how = "open"
        sip.on_event = self._on_event

    def _on_event(self, event: object) -> None:
        if isinstance(event, sev.ByeReceived | sev.CallCancelled):
            self.how = "caller hung up" if isinstance(event, sev.ByeReceived) else "cancelled"
        if isinstance(event, sev.SessionTerminated):
            self.ended.set()
            if self.channel is not None:
                self.channel.stop_audio()

    async def _wait_end(self, seconds: float) -> bool:
        """Wait until the call ends or `seconds` pass; True when it ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), seconds)
        return self.ended.is_set()

    async def run(self) -> None:
        b = self.plan.behaviour
        if b.kind is Kind.REJECT:
            assert b.status is not None
            self.sip.reject(b.status, b.reason)
            return
        self.sip.ring()
        if b.kind is Kind.RING:
            limit = self.plan.seconds or NO_ANSWER_CAP_S
            if not await self._wait_end(limit):
                self.sip.reject(480, "Temporarily Unavailable")  # nobody picked up
            self._log_end()
            return
        audio = await self._audio()  # before the answer: espeak may take a moment
        if await self._wait_end(self.plan.ring_s):
            self._log_end()
            return
        if not await self._answer():
            return
        assert self.channel is not None
        if audio.size:
            self.channel.play(audio)
        if not await self._wait_end(self.plan.hold_s):
            self.how = "simulator hung up"
            self.sip.hangup()
            await self._wait_end(5.0)  # the BYE's response
        self._log_end()

    async def _audio(self) -> np.ndarray:
        """What the far end sends once it answers."""
        lead = tones.silence(LEAD_S)
        name = self.plan.behaviour.name
        if name in ("live_person", "slow_answer"):
            return np.concatenate([lead, await self.sim.tts.synthesize(HELLO)])
        if name == "voicemail":
            greeting = await self.sim.tts.synthesize(GREETING)
            return np.concatenate([lead, greeting, tones.silence(0.4),
                                   tones.beep(BEEP_S, BEEP_HZ, level_dbm0=-10.0)])
        if name == "fax":
            return tones.cadence(CNG_HZ, CNG_ON_S, CNG_OFF_S, self.plan.hold_s,
                                 level_dbm0=-12.0)
        return tones.silence(0)

    async def _answer(self) -> bool:
        """Open a media channel and answer the offer; False (and the call refused) when
        that cannot be done."""
        offer = self.sip.offer
        if offer is None:
            # The switch always offers in its INVITE; a late offer is not simulated.
            self.sip.reject(488, "Simulator Needs an SDP Offer")
            return False
        try:
            self.channel = await self.sim.engine.open_channel()
        except OSError as exc:
            log.error("pstnsim.no_media_port", extra={"sip_call_id": self.sip.call_id,
                                                      "error": str(exc)})
            self.sip.reject(503, "No Media Ports Available")
            return False
        try:
            sdp, media = answer(offer, local_host=self.channel.local_host,
                                local_port=self.channel.local_port,
                                session_id=random.randint(1, 1 << 30), session_version=1,
                                user="pstnsim")
        except NotAcceptable as exc:
            log.info("pstnsim.sdp_not_acceptable", extra={"sip_call_id": self.sip.call_id,
                                                          "detail": str(exc)})
            self.sip.reject(488, "Not Acceptable Here")
            return False
        self.channel.configure(remote=(media.remote_host, media.remote_port),
                               payload_type=media.codec.pt,
                               telephone_event_pt=media.telephone_event_pt,
                               send=media.direction in ("sendrecv", "sendonly"),
                               receive=media.direction in ("sendrecv", "recvonly"),
                               rtcp=media.rtcp, rtcp_mux=media.rtcp_mux)
        self.sip.answer(str(sdp).encode())
        return True

    def _log_end(self) -> None:
        log.info("pstnsim.call_ended", extra={"sip_call_id": self.sip.call_id,
                                              "number": self.plan.number,
                                              "behaviour": self.plan.behaviour.name,
                                              "how": self.how if self.ended.is_set()
                                              else "open"})

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
