"""Conference audio routing end to end, judged by the spectrum of what each peer received.

Four SIPp participants stream their own tone (400, 700, 1000, 1300 Hz µ-law files, looped)
and a baresip phone plays a 1600 Hz tone; their callback puts each into one CONFERENCE
(then HANGUP). The test steers them over REST (Mute, Unmute, Hold, Resume,
JoinToWhisper of a sixth call streaming 1900 Hz, Leave) and one tshark capture records
the RTP the switch sends to every peer. Between REST steps, a time window (margins of
~300-400 ms around each step, by capture packet time against the REST call's wall-clock
time) is decoded and each tone's level measured: a tone at >= HEARD_DB is heard, one at
<= SILENT_DB is not, and anything in between fails as ambiguous. Hold audio is a 2200 Hz
WAV served by the callback app, so hold music is one more tone to look for. The views
(GET /v1/LiveCalls/Conferences, .../{conf_id}, .../Participants/{part_id}) are checked at
every step.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import audio, g711
from tests.support.baresip import Baresip, BaresipRunner
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, decode_as, tshark_fields
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippResult, SippRunner
from tests.support.switch import RunningSwitch, rest

LEVEL_DBFS = -18.0  # peak of each participant's tone: six of them sum without clipping
HEARD_DB = -32.0  # a tone heard through the mix is at about -21 dBFS RMS
SILENT_DB = -48.0
HOLD_HZ = 2200
PROBE_HZ = (400, 700, 1000, 1300, 1600, 1900, HOLD_HZ)
MARGIN_AFTER_S = 0.4  # after a step before its window opens
MARGIN_BEFORE_S = 0.3  # before the next step, after the window closes
WINDOW_S = 1.6


# --- peers -------------------------------------------------------------------------------

def tone_ulaw(workdir: Path, hz: int) -> Path:
    """One second of `hz` (whole cycles, so it loops seamlessly) as raw µ-law for SIPp."""
    return audio.to_ulaw_file(audio.sine(hz, 1.0, LEVEL_DBFS), workdir / f"tone-{hz}.ulaw")


def wav_bytes(pcm: audio.Pcm) -> bytes:

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.RATE)
        w.writeframes(np.asarray(pcm, np.int16).astype("<i2").tobytes())
    return buf.getvalue()


HOLD_WAV = wav_bytes(audio.sine(HOLD_HZ, 1.0, LEVEL_DBFS))


def serve_hold_audio(request: CallbackRequest) -> Reply | None:
    """The hold audio (a 2200 Hz tone) for GET /hold.wav on the callback app, else None."""
    if request.path.endswith("/hold.wav"):
        return Reply(body=HOLD_WAV, content_type="audio/wav")
    return None


def is_webhook(request: CallbackRequest) -> bool:
    return bool(request.fields.get("is_webhook"))


def is_live_call(request: CallbackRequest) -> bool:
    return request.type == "live_call" and not is_webhook(request)


@dataclass
class SippPeer:
    """A SIPp call streaming a tone to `service`, waiting for the switch's BYE."""

    service: str
    hz: int
    media_port: int
    task: asyncio.Task[SippResult]


def start_sipp(sipp: SippRunner, sw: RunningSwitch, workdir: Path, service: str, hz: int,
               scenario: str = "uac_wait_bye.xml", timeout: float = 60.0,
               media_port: int | None = None, **params: Any) -> SippPeer:
    """Start the call in the background (its task ends when SIPp exits)."""
    media_port = media_port or free_rtp_port()
    params.setdefault("BYE_TIMEOUT_MS", int(timeout * 1000) - 5000)
    task = asyncio.create_task(sipp.run(
        scenario, sw.sip_udp, service=service, params=params, media_port=media_port,
        audio_file=tone_ulaw(workdir, hz), audio_loops=-1, timeout=timeout))
    return SippPeer(service, hz, media_port, task)


def baresip_rtp_ports(phone: Baresip) -> list[int]:
    low, high = phone.config.rtp_ports
    return list(range(low, high + 1))


# --- what each peer received ---------------------------------------------------------------

@dataclass
class Received:
    """RTP audio packets sent to one peer: (epoch seconds, decoded PCM) in arrival order."""

    packets: list[tuple[float, audio.Pcm]] = field(default_factory=list)

    def window(self, t0: float, t1: float) -> audio.Pcm:
        parts = [pcm for t, pcm in self.packets if t0 <= t < t1]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def received_by_port(pcap: Path, ports: Iterable[int]) -> dict[int, Received]:
    """G.711 RTP sent to each of `ports`, with capture times (epoch)."""
    plist = sorted(set(ports))
    wanted = ", ".join(str(p) for p in plist)
    rows = tshark_fields(pcap, ("frame.time_epoch", "udp.dstport", "rtp.p_type", "rtp.payload"),
                         f"rtp && udp.dstport in {{{wanted}}}", decode_as(rtp_ports=plist))
    out: dict[int, Received] = {p: Received() for p in plist}
    for r in rows:
        pt = int(r[2])
        if pt not in (0, 8) or len(r) < 4:
            continue
        payload = bytes.fromhex(r[3].replace(":", "").replace("|", ""))
        out[int(r[1])].packets.append((float(r[0]), g711.decode(payload, pt)))
    return out


def tone_levels(pcm: audio.Pcm, freqs: Iterable[int] = PROBE_HZ) -> dict[int, float]:
    """Each tone's level (dBFS RMS) over the whole of `pcm`, averaged over 20 ms frames."""
    out = {}
    for hz in freqs:
        level, _ = audio.tone_power(pcm, hz)
        power = float(np.mean(10 ** (level / 10))) if level.size else 0.0
        out[hz] = 10 * np.log10(power) if power > 0 else audio.SILENCE_DB
    return out


def heard(pcm: audio.Pcm, what: str) -> set[int]:
    """The probe tones heard in `pcm`; AssertionError when one is neither clearly heard
    nor clearly absent, or when the window holds under 1 s of audio."""
    assert len(pcm) >= audio.RATE, f"{what}: only {len(pcm) / audio.RATE:.2f} s of audio"
    levels = tone_levels(pcm)
    unclear = {hz: round(db, 1) for hz, db in levels.items() if SILENT_DB < db < HEARD_DB}
    assert not unclear, f"{what}: ambiguous tone levels {unclear} (all: {levels})"
    return {hz for hz, db in levels.items() if db >= HEARD_DB}


@dataclass
class Step:
    """One state between two REST steps: its window and who should hear which tones."""

    name: str
    t0: float
    t1: float
    expect: dict[str, set[int]]


def check_steps(steps: list[Step], received: Mapping[str, Received]) -> None:
    problems = []
    for step in steps:
        for who, want in step.expect.items():
            got = heard(received[who].window(step.t0, step.t1), f"{step.name}/{who}")
            if got != want:
                problems.append(f"{step.name}: {who} heard {sorted(got)}, want {sorted(want)}")
    assert not problems, "\n".join(problems)


# --- REST ------------------------------------------------------------------------------------

async def get_json(sw: RunningSwitch, path: str) -> tuple[int, Any]:
    async with rest(sw) as http, http.get(path) as resp:
        return resp.status, await resp.json()


async def post(sw: RunningSwitch, path: str, body: Any) -> int:
    async with rest(sw) as http, http.post(path, json=body) as resp:
        text = await resp.text()
        assert resp.status == 204, f"POST {path} {body}: {resp.status} {text}"
        return resp.status


async def conference_action(sw: RunningSwitch, call_id: str, what: str, name: str,
                            **extra: Any) -> float:
    """POST .../Actions/Conference/{what}; the wall-clock time it returned."""
    await post(sw, f"/v1/LiveCalls/{call_id}/Actions/Conference/{what}",
               {"conference_name": name, **extra})
    return time.time()


async def conferences(sw: RunningSwitch) -> list[dict[str, Any]]:
    status, body = await get_json(sw, "/v1/LiveCalls/Conferences")
    assert status == 200, body
    return list(body["conferences"])


async def until_view(sw: RunningSwitch, check: Callable[[list[dict[str, Any]]], bool],
                     what: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Poll the conference list until `check` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await conferences(sw)
        if check(found):
            return found
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; conferences: {found}")
        await asyncio.sleep(0.1)


async def until_count(sw: RunningSwitch, n: int, timeout: float = 15.0) -> dict[str, Any]:
    found = await until_view(sw, lambda c: len(c) == 1 and c[0]["num_participants"] == n,
                             f"{n} participants", timeout)
    return found[0]


def by_call(conf: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["call"]["id"]: p for p in conf["participants"]}


async def check_views(sw: RunningSwitch, name: str, want: Mapping[str, tuple[bool, bool]],
                      status: str = "in-progress") -> dict[str, Any]:
    """The list, the conference and each participant's detail show exactly the calls of
    `want` (call id -> (muted, on_hold)) with those flags."""
    listed = await conferences(sw)
    assert len(listed) == 1, listed
    conf = listed[0]
    assert (conf["name"], conf["status"]) == (name, status), conf
    assert conf["num_participants"] == len(want) == len(conf["participants"]), conf
    status_code, detail = await get_json(sw, f"/v1/LiveCalls/Conferences/{conf['id']}")
    assert status_code == 200 and detail == conf, (detail, conf)
    parts = by_call(conf)
    assert set(parts) == set(want), (sorted(parts), sorted(want))
    for call_id, (muted, on_hold) in want.items():
        p = parts[call_id]
        assert (p["muted"], p["on_hold"]) == (muted, on_hold), p
        code, one = await get_json(
            sw, f"/v1/LiveCalls/Conferences/{conf['id']}/Participants/{p['id']}")
        assert code == 200 and one["id"] == p["id"] and one["call"]["id"] == call_id, one
        assert (one["muted"], one["on_hold"]) == (muted, on_hold), one
    return conf


def call_ids(app: CallbackApp) -> dict[str, str]:
    """Called number (api_no) -> call id, from init_call requests."""
    return {str(r.fields["api_no"]): str(r.fields["call_id"]) for r in app.of_type("init_call")}


async def hang_up(sw: RunningSwitch, ids: Iterable[str]) -> None:
    """End these live calls over REST (LiveCalls HangUp)."""
    async with rest(sw) as http:
        for cid in ids:
            async with http.post(f"/v1/LiveCalls/{cid}/Actions/HangUp", json={}):
                pass


async def settle_window(sleep_from: float) -> tuple[float, float]:
    """Wait out one window that starts MARGIN_AFTER_S after `sleep_from`."""
    t0 = sleep_from + MARGIN_AFTER_S
    t1 = t0 + WINDOW_S
    await asyncio.sleep(max(0.0, t1 + MARGIN_BEFORE_S - time.time()))
    return t0, t1


# --- the test ----------------------------------------------------------------------------------

ROOM = "audio-room"
SIPP_TONES = {"a": ("1001", 400), "b": ("1002", 700), "c": ("1003", 1000), "d": ("1004", 1300)}
BARESIP = ("e", "1005", 1600)
WHISPERER = ("w", "1006", 1900)


async def test_who_hears_whom_through_mute_hold_whisper_and_leave(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    baresip_runner: BaresipRunner, tmp_path: Path,
) -> None:
    hold_url = callback_app.url + "hold.wav"

    def script(req: CallbackRequest) -> Any:
        served = serve_hold_audio(req)
        if served is not None:
            return served
        if req.type == "init_call":
            if req.fields["api_no"] == WHISPERER[1]:
                return [{"type": "PAUSE", "params": {"seconds": 60}}, {"type": "HANGUP"}]
            return [{"type": "CONFERENCE", "params": {"name": ROOM, "hold_audio": hold_url}},
                    {"type": "HANGUP"}]
        if req.type == "live_call":
            return [{"type": "HANGUP"}]
        return Reply(json={})

    callback_app.set_script(script)
    sw = await switch(default_callback=callback_app.url)
    hz = {k: tone for k, (_, tone) in SIPP_TONES.items()}
    hz[BARESIP[0]] = BARESIP[2]
    hz[WHISPERER[0]] = WHISPERER[2]
    members = "abcde"

    def others(me: str, gone: str = "", *extra: int) -> set[int]:
        return {hz[p] for p in members if p != me and p not in gone} | set(extra)

    async with baresip_runner.start(audio.sine(BARESIP[2], 40.0, LEVEL_DBFS), 42.0,
                                    lifetime=60) as phone:
        async with Capture(tmp_path, "conference") as cap:
            ports = {k: free_rtp_port() for k in (*SIPP_TONES, WHISPERER[0])}
            await cap.start([*ports.values(), *baresip_rtp_ports(phone)], duration=80)
            sipp = {key: start_sipp(sipp_runner, sw, tmp_path, svc, tone, media_port=ports[key])
                    for key, (svc, tone) in [*SIPP_TONES.items(), (WHISPERER[0], WHISPERER[1:])]}
            await phone.dial(f"sip:{BARESIP[1]}@{sw.sip_uri_host}")
            await phone.wait_event("CALL_ESTABLISHED", timeout=15)
            await until_count(sw, 5)
            ids = {k: call_ids(callback_app)[svc] for k, (svc, _) in SIPP_TONES.items()}
            ids[BARESIP[0]] = call_ids(callback_app)[BARESIP[1]]
            ids[WHISPERER[0]] = call_ids(callback_app)[WHISPERER[1]]
            steps: list[Step] = []

            def flags(**changed: tuple[bool, bool]) -> dict[str, tuple[bool, bool]]:
                return {ids[p]: changed.get(p, (False, False)) for p in members}

            # everybody in, nobody muted or held; the whisperer is still in its PAUSE
            await check_views(sw, ROOM, flags())
            t0, t1 = await settle_window(time.time() - MARGIN_AFTER_S)
            steps.append(Step("all", t0, t1, {**{p: others(p) for p in members}, "w": set()}))

            # Mute a: nobody hears 400; a still hears everybody
            done = await conference_action(sw, ids["a"], "Mute", ROOM)
            await check_views(sw, ROOM, flags(a=(True, False)))
            t0, t1 = await settle_window(done)
            steps.append(Step("mute a", t0, t1, {**{p: others(p, "a") for p in members},
                                                 "a": others("a"), "w": set()}))

            # Unmute a, Hold b: b hears the hold audio only, nobody hears b
            await conference_action(sw, ids["a"], "Unmute", ROOM)
            done = await conference_action(sw, ids["b"], "Hold", ROOM)
            await check_views(sw, ROOM, flags(b=(False, True)))
            t0, t1 = await settle_window(done)
            steps.append(Step("hold b", t0, t1, {**{p: others(p, "b") for p in members},
                                                 "b": {HOLD_HZ}, "w": set()}))

            # Resume b: back to everybody hearing everybody, no hold audio
            done = await conference_action(sw, ids["b"], "Resume", ROOM)
            await check_views(sw, ROOM, flags())
            t0, t1 = await settle_window(done)
            steps.append(Step("resume b", t0, t1, {**{p: others(p) for p in members},
                                                   "w": set()}))

            # w joins to whisper to c: only c hears 1900; w hears the whole conference
            await post(sw, f"/v1/LiveCalls/{ids['w']}/Actions/Conference/JoinToWhisper",
                       {"conference_name": ROOM, "target_call": {"id": ids["c"]}})
            await until_count(sw, 6)
            done = time.time()
            conf = await check_views(sw, ROOM, {**flags(), ids["w"]: (False, False)})
            assert by_call(conf)[ids["w"]]["start_on_join"] is True
            t0, t1 = await settle_window(done)
            steps.append(Step("whisper w->c", t0, t1, {
                **{p: others(p) for p in members}, "c": others("c", "", hz["w"]),
                "w": {hz[p] for p in members}}))

            # Leave d: nobody hears 1300 any more; d's flow goes on (HANGUP → BYE)
            done = await conference_action(sw, ids["d"], "Leave", ROOM)
            live = {k: v for k, v in flags().items() if k != ids["d"]}
            await check_views(sw, ROOM, {**live, ids["w"]: (False, False)})
            t0, t1 = await settle_window(done)
            steps.append(Step("leave d", t0, t1, {
                **{p: others(p, "d") for p in members if p != "d"},
                "c": others("c", "d", hz["w"]), "w": {hz[p] for p in members if p != "d"}}))
            (await sipp["d"].task).assert_ok()

            for key in ("w", "a", "b", "c", "e"):
                await conference_action(sw, ids[key], "Leave", ROOM)
            await phone.wait_event("CALL_CLOSED", timeout=15)
            for peer in sipp.values():
                (await peer.task).assert_ok()
            assert await conferences(sw) == []
            pcap = await cap.stop()
        rx = phone.rx_audio()

    by_port = received_by_port(pcap, [*ports.values(), *baresip_rtp_ports(phone)])
    to_baresip = [r for p, r in by_port.items() if p not in ports.values() and r.packets]
    assert len(to_baresip) == 1, "expected the switch's RTP to one baresip port"
    received = {key: by_port[port] for key, port in ports.items()}
    received["e"] = to_baresip[0]
    check_steps(steps, received)
    # baresip's own recording of what it heard: every other participant, never itself,
    # never the whisper meant for c
    levels = tone_levels(rx)
    assert all(levels[hz[p]] >= HEARD_DB for p in "abcd"), levels
    assert levels[hz["e"]] <= SILENT_DB and levels[hz["w"]] <= SILENT_DB, levels
    # the flows went on after the conference: HANGUP ran for every call (no errors)
    ends = await asyncio.gather(*(callback_app.wait_for(
        type="end_call", predicate=lambda r, n=n: r.fields["api_no"] == n, timeout=20)
        for n in (*[s for s, _ in SIPP_TONES.values()], BARESIP[1], WHISPERER[1])))
    assert all(e.fields["error_code"] is None for e in ends), [e.fields for e in ends]
