"""DTMF into COLLECT end to end: RFC 4733, SIP INFO and in-band tones reach the callback.

Every call runs the same kind of flow: `init_call` answers one COLLECT named "menu" (its
params chosen per called number, so several calls can share one switch), `live_call`
answers HANGUP. The digits are read from `key_presses` of `live_call` (and `end_call`).

Levels. The harness generators (tests/support/audio.py) take dBFS: `sine(level=L)` has a
*peak* of 32767·10^(L/20), `noise(level=L)` an *RMS* of 32768·10^(L/20). Tone levels in
the Q.24 cases are dBm0 per frequency, with the G.711 µ-law convention that media/tones.py
also uses (G.711 §5): a sine at the codec's full scale (decoded peak 32124) is +3.17 dBm0,
so a 0 dBm0 sine has a peak of 32124·10^(-3.17/20) ≈ 22301, i.e. -3.34 dBFS peak
(-6.35 dBFS RMS on audio.rms_dbfs's scale). `dbm0_to_dbfs_peak` does that conversion.
S/N is the dual tone's total power over the white noise's total power (0-4 kHz).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import audio
from tests.support.baresip import BaresipRunner
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, decode_as, tshark_fields
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippResult, SippRunner
from tests.support.switch import RunningSwitch

PCAP_DIR = Path("/usr/share/sip-tester")
MULAW_PEAK = 32124  # largest decoded µ-law magnitude (16-bit scale)
MULAW_FULL_SCALE_DBM0 = 3.17  # G.711: a full-scale sine is +3.17 dBm0
NOMINAL_DBM0 = -10.0
TELEPHONE_EVENT_PT = 101


def dbm0_to_dbfs_peak(level_dbm0: float) -> float:
    """The `audio.sine` level (dBFS peak) of a sine at `level_dbm0` (G.711 µ-law)."""
    return (level_dbm0 - MULAW_FULL_SCALE_DBM0
            + 20 * math.log10(MULAW_PEAK / (audio.FULL_SCALE - 1)))


# --- the flow --------------------------------------------------------------------------

def collect(**params: Any) -> dict[str, Any]:
    return {"type": "COLLECT", "name": "menu", "params": params}


def collect_flow(params_by_number: Mapping[str, Mapping[str, Any]]
                 ) -> Callable[[CallbackRequest], Any]:
    """A callback script: init_call -> COLLECT (params of the called number), live_call ->
    HANGUP, end_call -> {}."""
    def script(request: CallbackRequest) -> Any:
        if request.type == "init_call":
            return [collect(**params_by_number[str(request.fields["api_no"])])]
        if request.type == "live_call":
            return [{"type": "HANGUP"}]
        return Reply(json={})
    return script


def menu(digits: str) -> list[dict[str, Any]]:
    """`key_presses` after one visit to the "menu" COLLECT that got `digits`."""
    return [{"name": "menu", "digits": digits, "history": [digits] if digits else []}]


def of_number(number: str) -> Callable[[CallbackRequest], bool]:
    return lambda r: r.fields.get("api_no") == number


async def flow_result(app: CallbackApp, number: str, timeout: float = 30.0
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(live_call fields, end_call fields) of the call to `number`."""
    live = await app.wait_for(type="live_call", predicate=of_number(number), timeout=timeout)
    end = await app.wait_for(type="end_call", predicate=of_number(number), timeout=timeout)
    return live.fields, end.fields


def assert_completed(end: Mapping[str, Any], digits: str) -> None:
    assert end["status"] == "completed", end
    assert end["error_code"] is None and end["error"] is None, end
    assert end["key_presses"] == menu(digits), end["key_presses"]


def digit_log(sw: RunningSwitch) -> list[tuple[str, str]]:
    """(digit, source) of every `call.digit` line the switch logged, in order."""
    out = []
    for line in sw.process.stderr.lines:
        if '"call.digit"' in line:
            digit = re.search(r'"digit":\s*"([^"]*)"', line)
            source = re.search(r'"source":\s*"([^"]*)"', line)
            out.append((digit[1] if digit else "?", source[1] if source else "?"))
    return out


# --- signals ---------------------------------------------------------------------------

def dual_tone(digit: str, seconds: float, low_dbm0: float = NOMINAL_DBM0,
              high_dbm0: float = NOMINAL_DBM0, deviation: float = 0.0) -> audio.Pcm:
    """The Q.23 pair of `digit`, each frequency moved by `deviation` (0.015 = +1.5 %)."""
    low, high = audio.DTMF_FREQS[digit]
    return audio.mix(audio.sine(low * (1 + deviation), seconds, dbm0_to_dbfs_peak(low_dbm0)),
                     audio.sine(high * (1 + deviation), seconds, dbm0_to_dbfs_peak(high_dbm0)))


def keyed(*tones: audio.Pcm, lead_s: float = 0.4, gap_s: float = 0.15,
          tail_s: float = 0.6) -> audio.Pcm:
    """Silence, the tones `gap_s` apart, silence."""
    parts: list[audio.Pcm] = [audio.silence(lead_s)]
    for i, t in enumerate(tones):
        if i:
            parts.append(audio.silence(gap_s))
        parts.append(t)
    parts.append(audio.silence(tail_s))
    return audio.concat(*parts)


def with_noise(pcm: audio.Pcm, tone: audio.Pcm, snr_db: float, seed: int = 7) -> audio.Pcm:
    """`pcm` plus white noise over its whole length, `snr_db` below `tone`'s power."""
    return audio.mix(pcm, audio.noise(len(pcm) / audio.RATE, audio.rms_dbfs(tone) - snr_db,
                                      seed=seed))


def test_level_convention_matches_g711() -> None:
    """The stimulus levels: a 0 dBm0 sine peaks at ~22301, a -10 dBm0 pair at the expected
    RMS, and the G.711 full scale (+3.17 dBm0) is the µ-law maximum."""
    peak = int(np.abs(audio.sine(1000.0, 0.1, dbm0_to_dbfs_peak(0.0))).max())
    assert abs(peak - 22301) <= 2, peak
    full = int(np.abs(audio.sine(1000.0, 0.1, dbm0_to_dbfs_peak(3.17))).max())
    assert abs(full - MULAW_PEAK) <= 2, full
    pair = dual_tone("5", 1.0)
    # two sines at -10 dBm0: RMS of each is 22301/√2·10^(-1/2); together 3 dB more
    want = 20 * math.log10(22301 * 10 ** -0.5 / audio.FULL_SCALE)
    assert audio.rms_dbfs(pair) == pytest.approx(want, abs=0.05)


# --- 1. RFC 4733 from SIPp's bundled pcaps ----------------------------------------------

def pcap_events(path: Path) -> list[tuple[int, int, int, bool]]:
    """(payload type, timestamp, event, end) of every RTP packet in a bundled pcap."""
    rows = tshark_fields(path, ["rtp.p_type", "rtp.timestamp", "rtpevent.event_id",
                                "rtpevent.end_of_event"], "rtp",
                         ["-d", "udp.port==10000,rtp", *decode_as()])
    return [(int(r[0]), int(r[1]), int(r[2]), r[3] in ("1", "True")) for r in rows]


@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp's play_pcap_audio needs raw sockets (root)")
@pytest.mark.parametrize("num_digits", [3, 4])
async def test_rfc4733_from_sipp_pcaps_each_digit_once(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
    num_digits: int,
) -> None:
    """With num_digits 3 the COLLECT ends on the '#' event's first packet (the BYE stops
    SIPp's pcap play); with 4 it waits out its timeout, so all end packets of all three
    events reach the switch and a '#' counted twice would show."""
    pcaps = ["dtmf_2833_1.pcap", "dtmf_2833_5.pcap", "dtmf_2833_pound.pcap"]
    for name, event in zip(pcaps, (1, 5, 11), strict=True):
        packets = pcap_events(PCAP_DIR / name)
        # PT 101 (what the scenario offers), one event, three redundant end packets
        assert {(pt, ev) for pt, _, ev, _ in packets} == {(TELEPHONE_EVENT_PT, event)}
        assert len({ts for _, ts, _, _ in packets}) == 1
        assert sum(end for *_, end in packets) == 3
    callback_app.set_script(collect_flow(
        {"1000": {"num_digits": num_digits, "finish_on_key": "off", "timeout": 2500}}))
    sw = await switch(default_callback=callback_app.url)
    media_port = free_rtp_port()
    async with Capture(tmp_path, "pcap-dtmf") as cap:
        await cap.start([media_port], duration=40)
        result = await sipp_runner.run(
            "uac_pcap_dtmf.xml", sw.sip_udp, service="1000", media_port=media_port,
            params={"PCAP_DIR": PCAP_DIR, "PCAP_A": pcaps[0], "PCAP_B": pcaps[1],
                    "PCAP_C": pcaps[2]}, timeout=30)
        pcap = await cap.stop()
    result.assert_ok()
    # what reached the switch: the events with their three end packets each
    sent = tshark_fields(pcap, ["rtpevent.event_id", "rtpevent.end_of_event"],
                         f"rtpevent && udp.srcport=={media_port}",
                         decode_as(rtp_ports=[media_port]))
    events = [int(r[0]) for r in sent]
    ends = [int(r[0]) for r in sent if r[1] in ("1", "True")]
    assert events[0] == 1 and 11 in events, sent
    if num_digits == 4:
        assert ends == [1, 1, 1, 5, 5, 5, 11, 11, 11], sent
    else:
        assert ends[:6] == [1, 1, 1, 5, 5, 5], sent
    live, end = await flow_result(callback_app, "1000")
    assert live["key_presses"] == menu("15#")
    assert_completed(end, "15#")
    assert digit_log(sw) == [("1", "rfc4733"), ("5", "rfc4733"), ("#", "rfc4733")]


# --- 2. SIP INFO -----------------------------------------------------------------------

async def test_sip_info_dtmf_relay_and_dtmf_stop_at_the_finish_key(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(collect_flow(
        {"1000": {"num_digits": 5, "finish_on_key": "#", "timeout": 5000}}))
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_info_dtmf.xml", sw.sip_udp, service="1000",
                                   params={"DIGIT_A": "7", "DIGIT_B": "3", "DIGIT_C": "#"})
    result.assert_ok()  # every INFO was answered 200 (anything else fails the call)
    infos = re.findall(r"^INFO .*$", result.messages, re.M)
    assert len(infos) == 3, result.describe()
    live, end = await flow_result(callback_app, "1000")
    assert live["key_presses"] == menu("73")
    assert_completed(end, "73")
    assert digit_log(sw) == [("7", "info"), ("3", "info"), ("#", "info")]


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("text/plain", "5", 415),
    ("application/dtmf-relay", "Signal=x", 400),
])
async def test_unreadable_info_is_refused_and_the_call_goes_on(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
    content_type: str, body: str, status: int,
) -> None:
    """signaling/dtmf_info.py: an unreadable body is answered 400, another content type 415
    with an Accept header; neither gives a digit, and a good INFO afterwards still does."""
    callback_app.set_script(collect_flow(
        {"1000": {"num_digits": 1, "finish_on_key": "off", "timeout": 5000}}))
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_info_status.xml", sw.sip_udp, service="1000",
                                   params={"BAD_TYPE": content_type, "BAD_BODY": body,
                                           "BAD_STATUS": status, "DIGIT": "4"})
    answered = re.findall(r"^SIP/2\.0 (\d{3})[^\n]*\n(?:[^\n]+\n)*?CSeq:\s*2 INFO",
                          result.messages, re.M)
    assert answered and set(answered) == {str(status)}, (
        f"the bad INFO was answered {answered}, expected {status}")
    result.assert_ok()
    live, end = await flow_result(callback_app, "1000")
    if status == 415:
        assert re.search(r"^Accept:.*application/dtmf-relay", result.messages, re.M | re.I)
    assert live["key_presses"] == menu("4")
    assert_completed(end, "4")


# --- 3. baresip (RFC 4733 from a softphone) -------------------------------------------

async def test_baresip_keys_reach_collect(
    switch: SwitchFactory, callback_app: CallbackApp, baresip_runner: BaresipRunner,
) -> None:
    callback_app.set_script(collect_flow(
        {"1000": {"num_digits": 5, "finish_on_key": "#", "timeout": 8000}}))
    sw = await switch(default_callback=callback_app.url)
    async with baresip_runner.start(seconds=30.0, lifetime=45.0) as phone:
        await phone.dial(f"sip:1000@{sw.sip_uri_host}")
        await phone.wait_event("CALL_ESTABLISHED", timeout=15)
        await asyncio.sleep(0.5)
        await phone.send_dtmf("42#")
        await phone.wait_event("CALL_CLOSED", timeout=20)  # the switch hangs up
    live, end = await flow_result(callback_app, "1000")
    assert live["key_presses"] == menu("42")
    assert_completed(end, "42")
    assert digit_log(sw) == [("4", "rfc4733"), ("2", "rfc4733"), ("#", "rfc4733")]


# --- 4. in-band at the Q.24 limits ----------------------------------------------------

@dataclass(frozen=True)
class InbandCase:
    name: str
    pcm: audio.Pcm
    expected: str  # "" = must be rejected
    num_digits: int = 1


def q24_cases() -> list[InbandCase]:
    tone = dual_tone("5", 0.1)
    return [
        InbandCase("nominal 159 at -10 dBm0",
                   keyed(*(dual_tone(d, 0.1) for d in "159")), "159", num_digits=3),
        InbandCase("frequency +1.5 %", keyed(dual_tone("2", 0.1, deviation=0.015)), "2"),
        InbandCase("frequency -1.5 %", keyed(dual_tone("8", 0.1, deviation=-0.015)), "8"),
        InbandCase("frequency +3.5 %", keyed(dual_tone("2", 0.1, deviation=0.035)), ""),
        InbandCase("frequency -3.5 %", keyed(dual_tone("8", 0.1, deviation=-0.035)), ""),
        InbandCase("40 ms tone", keyed(dual_tone("6", 0.040)), "6"),
        InbandCase("22 ms tone", keyed(dual_tone("6", 0.022)), ""),
        InbandCase("twist +8 dB (low group louder)", keyed(dual_tone("3", 0.1, -10, -18)), "3"),
        InbandCase("twist -4 dB (high group louder)", keyed(dual_tone("9", 0.1, -14, -10)),
                   "9"),
        InbandCase("level -29 dBm0", keyed(dual_tone("0", 0.1, -29, -29)), "0"),
        InbandCase("white noise S/N 15 dB", with_noise(keyed(tone), tone, 15.0), "5"),
    ]


async def run_sipp_calls(sipp: SippRunner, sw: RunningSwitch, scenario: str,
                         calls: Mapping[str, Path], timeout: float,
                         params: Mapping[str, Any] | None = None) -> dict[str, SippResult]:
    """One SIPp per called number, all at once, each streaming its µ-law file."""
    numbers = list(calls)
    results = await asyncio.gather(*(
        sipp.run(scenario, sw.sip_udp, service=n, audio_file=calls[n], timeout=timeout,
                 params=dict(params or {})) for n in numbers))
    return dict(zip(numbers, results, strict=True))


async def test_inband_dtmf_at_the_q24_limits(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    cases = {str(2001 + i): c for i, c in enumerate(q24_cases())}
    callback_app.set_script(collect_flow({
        n: {"num_digits": c.num_digits, "finish_on_key": "off", "timeout": 2500}
        for n, c in cases.items()}))
    files = {n: audio.to_ulaw_file(c.pcm, tmp_path / "media" / f"{n}.ulaw")
             for n, c in cases.items()}
    sw = await switch(default_callback=callback_app.url)
    results = await run_sipp_calls(sipp_runner, sw, "uac_wait_bye.xml", files, timeout=30)
    for result in results.values():
        result.assert_ok()
    got: dict[str, str] = {}
    for n, c in cases.items():
        live, end = await flow_result(callback_app, n)
        got[c.name] = live["key_presses"][0]["digits"] if live["key_presses"] else "<none>"
        assert end["status"] == "completed" and end["error_code"] is None, (c.name, end)
        assert live["key_presses"] == end["key_presses"], c.name
    assert got == {c.name: c.expected for c in cases.values()}


# --- 5. talk-off ----------------------------------------------------------------------

TALK = [
    ("en-us+f3", "Thank you for calling. Your account number is 4 5 6 7 8 9 0 1. "
                 "The balance due on March 23rd is 1,234 dollars and 56 cents. "
                 "Please hold while we connect you to the next available agent. "),
    ("en-us+m3", "Hello, this is Robert from the service desk, ticket number 3 0 9 8. "
                 "Dial 1 800 555 0199 between 9 a.m. and 5 p.m., Monday to Friday. "
                 "Who is speaking? Sorry, could you repeat that, please? "),
    ("en-gb+m1", "The train to Edinburgh departs from platform 11 at 14:35. "
                 "Seven hundred and seventy seven passengers, forty four coaches. "
                 "Mind the gap, and have a pleasant journey with us today. "),
    ("fr", "Bonjour, votre numéro de dossier est le 2 4 6 8. "
           "Le rendez-vous est fixé au 15 juillet à 16 heures 30. "
           "Merci de patienter, un conseiller va vous répondre. "),
    ("de", "Guten Tag, Ihre Kundennummer lautet 9 8 7 6 5 4. "
           "Der Betrag von 321 Euro wird am 28. Februar abgebucht. "
           "Vielen Dank für Ihren Anruf und auf Wiederhören. "),
]
TALK_S = 40.0  # per voice: five voices, over three minutes of speech in all


def speech(tmp_path: Path, voice: str, text: str, seconds: float) -> audio.Pcm:
    """`text` spoken by `voice`, repeated (at speeds 130-190 wpm) to at least `seconds`."""
    parts: list[audio.Pcm] = []
    total, i = 0, 0
    while total < seconds * audio.RATE:
        speed = 130 + 30 * (i % 3)
        wav = audio.tts_wav(text, tmp_path / "tts" / f"{voice}-{i}.wav", voice=voice,
                            speed=speed)
        pcm, rate = audio.read_wav(wav)
        assert rate == audio.RATE
        parts += [pcm, audio.silence(0.3)]
        total += len(pcm) + round(0.3 * audio.RATE)
        i += 1
    return audio.concat(audio.silence(0.3), *parts)


async def test_talk_off_speech_gives_no_digit(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    talk = {str(3001 + i): speech(tmp_path, voice, text, TALK_S)
            for i, (voice, text) in enumerate(TALK)}
    for n, pcm in talk.items():
        active, in_band = audio.speech_like(pcm)
        assert active > 0.5 * TALK_S and in_band > 0.6, (n, active, in_band)
    assert sum(len(p) for p in talk.values()) / audio.RATE >= 180
    files = {n: audio.to_ulaw_file(p, tmp_path / "media" / f"{n}.ulaw")
             for n, p in talk.items()}
    # COLLECT waits for its first key longer than its caller talks
    callback_app.set_script(collect_flow({
        n: {"num_digits": 1, "finish_on_key": "off",
            "timeout": round(1000 * len(p) / audio.RATE) + 1500}
        for n, p in talk.items()}))
    sw = await switch(default_callback=callback_app.url)
    results = await run_sipp_calls(sipp_runner, sw, "uac_wait_bye.xml", files, timeout=80,
                                   params={"BYE_TIMEOUT_MS": 70000})
    for result in results.values():
        result.assert_ok()
    got = {}
    for n, pcm in talk.items():
        live, end = await flow_result(callback_app, n, timeout=80)
        got[n] = live["key_presses"]
        assert end["status"] == "completed" and end["error_code"] is None, end
        # the whole speech went by while COLLECT listened
        assert end["connect_time_sec"] >= int(len(pcm) / audio.RATE), end
    assert got == {n: menu("") for n in talk}, digit_log(sw)
    assert digit_log(sw) == []


# --- 6. in-band and INFO for the same key press ---------------------------------------

async def test_same_key_inband_and_info_counts_once(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    # the stream starts at the same scenario step as the INFO's timer: the tone begins
    # INFO_AT_MS into the stream and lasts 150 ms, so both reports' onsets coincide to a
    # few ms, far inside the switch's 200 ms merge window
    info_at_s = 1.0
    stream = keyed(dual_tone("5", 0.15), lead_s=info_at_s, tail_s=3.5)
    ulaw = audio.to_ulaw_file(stream, tmp_path / "media" / "both.ulaw")
    callback_app.set_script(collect_flow(
        {"1000": {"num_digits": 2, "finish_on_key": "off", "timeout": 2500}}))
    sw = await switch(default_callback=callback_app.url)
    result = await sipp_runner.run("uac_info_inband_dtmf.xml", sw.sip_udp, service="1000",
                                   audio_file=ulaw,
                                   params={"INFO_AT_MS": round(info_at_s * 1000),
                                           "DIGIT": "5"})
    result.assert_ok()
    live, end = await flow_result(callback_app, "1000")
    assert live["key_presses"] == menu("5"), digit_log(sw)
    assert_completed(end, "5")
    assert len(digit_log(sw)) == 1, digit_log(sw)

