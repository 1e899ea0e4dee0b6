"""control.timeline (bounds, since_ms, expiry, SIP filing, the log bridge), control.logs
(the call id context, both formats) and their settings, with a hand-driven clock."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest

from control import logs
from control.cli import build_parser
from control.settings import SettingsError, load
from control.timeline import LogBridge, Timeline, TimelineStore
from signaling.events import Destination
from signaling.message import parse_message

PEER = Destination("udp", "127.0.0.1", 5070)
INVITE = (
    "INVITE sip:1000@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
    "From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:1000@127.0.0.1>\r\n"
    "Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    "Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n{sdp}")
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def invite(call_id: str) -> bytes:
    return INVITE.format(call_id=call_id, length=len(SDP), sdp=SDP).encode()


def test_events_are_bounded_oldest_dropped_and_counted() -> None:
    clock = Clock()
    timeline = Timeline("1@1", 0, max_events=3, clock=clock)
    for i in range(5):
        clock.now += 0.010
        timeline.add("digit", f"digit {i}", digit=str(i))
    view = timeline.view()
    assert view["dropped"] == 2
    assert [e["digit"] for e in view["events"]] == ["2", "3", "4"]
    assert [e["ms"] for e in view["events"]] == [30, 40, 50]
    assert [e["seq"] for e in view["events"]] == [2, 3, 4]  # numbered counting the dropped
    assert view["live"] is True and view["call_id"] == "1@1"


def test_since_ms_returns_only_newer_events() -> None:
    clock = Clock()
    timeline = Timeline("1@1", 0, clock=clock)
    for ms in (0, 250, 250, 900):
        clock.now = 100.0 + ms / 1000
        timeline.add("action", f"at {ms}")
    assert [e["ms"] for e in timeline.view(250)["events"]] == [900]
    assert [e["ms"] for e in timeline.view(0)["events"]] == [250, 250, 900]
    assert timeline.view(900)["events"] == []
    assert len(timeline.view()["events"]) == 4


def test_finished_timelines_expire_after_keep_s_and_past_max_calls() -> None:
    clock = Clock()
    store = TimelineStore(keep_s=10, max_calls=2, clock=clock)
    gone: list[str] = []
    store.expired.append(gone.append)
    for n in ("1@1", "2@1", "3@1"):
        store.open(n).add("call", "started")
    store.finish("1@1")
    clock.now += 5
    store.finish("2@1")
    assert store.get("1@1") is not None and store.get("1@1").live is False  # type: ignore[union-attr]
    clock.now += 6  # 1@1 ended 11 s ago, 2@1 6 s ago
    assert store.get("1@1") is None and gone == ["1@1"]
    assert store.get("2@1") is not None
    assert store.get("3@1") is not None and store.get("3@1").live  # type: ignore[union-attr]
    # more finished calls than max_calls: the oldest go at once, whatever their age
    for n in ("4@1", "5@1"):
        store.open(n)
        store.finish(n)
    assert gone == ["1@1", "2@1"] and len(store) == 3  # 3@1 live, 4@1 and 5@1 finished
    store.finish("3@1")
    assert gone == ["1@1", "2@1", "4@1"]


def test_sip_seen_before_the_call_joins_it_and_starts_its_clock() -> None:
    clock = Clock()
    store = TimelineStore(clock=clock)
    store.observe_sip("in", parse_message(invite("abc")), PEER)
    store.observe_sip("in", parse_message(invite("other")), PEER)  # never linked
    clock.now += 0.2
    timeline = store.open("1@1")
    timeline.add("call", "inbound call")
    store.link_sip(timeline, "abc")
    clock.now += 0.1
    bye = parse_message(invite("abc").replace(b"INVITE sip", b"BYE sip", 1)
                        .replace(b"1 INVITE", b"2 BYE"))
    store.observe_sip("out", bye, PEER)
    events = timeline.view()["events"]
    assert [(e["kind"], e["ms"]) for e in events] == [("sip", 0), ("call", 200), ("sip", 300)]
    first = events[0]
    assert first["method"] == "INVITE" and first["direction"] == "in"
    assert first["cseq"] == "1 INVITE" and first["remote"] == "127.0.0.1:5070"
    assert first["sdp"] == {"codecs": ["PCMU", "telephone-event"], "port": 40000,
                            "host": "127.0.0.1", "direction": "sendrecv"}
    assert "PCMU/telephone-event port 40000" in first["summary"]
    assert events[2]["summary"].startswith("sent BYE sip:1000@127.0.0.1:5060 (2 BYE) to ")
    # the unlinked dialog stays out of every timeline
    assert all("other" not in json.dumps(e) for e in events)


def test_the_log_bridge_files_known_per_call_events() -> None:
    store = TimelineStore()
    timeline = store.open("7@1")
    bridge = LogBridge(store)
    log = logging.getLogger("test.timeline.bridge")
    log.setLevel(logging.INFO)
    bridge.attach()
    try:
        log.info("recording.started", extra={"call_id": "7@1", "recording_id": "r1",
                                             "group": "g"})
        log.info("recording.started", extra={"call_id": "8@1", "recording_id": "r2"})
        log.info("conference.joined", extra={"call_id": "7@1", "conference": "room",
                                             "num_participants": 2, "participant": "p"})
        log.info("something.else", extra={"call_id": "7@1"})
    finally:
        bridge.detach()
    events = timeline.view()["events"]
    assert [(e["kind"], e["summary"]) for e in events] == [
        ("recording", "recording r1 started"),
        ("conference", "joined conference room (2 in it)")]
    assert events[0]["recording_id"] == "r1" and events[0]["log_event"] == "recording.started"


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("voxswitch.test", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


async def test_the_bound_call_id_reaches_lines_of_tasks_started_later() -> None:
    fmt = logs.JsonFormatter()
    seen: dict[str, dict[str, object]] = {}

    async def deeper(name: str) -> None:
        seen[name] = json.loads(fmt.format(_record(name)))

    async def call_task(call_id: str) -> None:
        logs.bind_call(call_id)
        seen[f"own-{call_id}"] = json.loads(fmt.format(_record("own")))
        await asyncio.create_task(deeper(f"nested-{call_id}"))
        # a line about another call keeps the id it names
        seen[f"other-{call_id}"] = json.loads(fmt.format(_record("x", call_id="9@9")))

    await asyncio.gather(call_task("1@1"), call_task("2@1"))
    await asyncio.create_task(deeper("unbound"))
    assert seen["own-1@1"]["call_id"] == "1@1" and seen["nested-1@1"]["call_id"] == "1@1"
    assert seen["own-2@1"]["call_id"] == "2@1" and seen["nested-2@1"]["call_id"] == "2@1"
    assert seen["other-1@1"]["call_id"] == "9@9"
    assert "call_id" not in seen["unbound"]


async def test_text_lines_put_the_call_id_last_and_quote_spaced_values() -> None:
    fmt = logs.TextFormatter()

    async def in_call() -> str:
        logs.bind_call("3@1")
        return fmt.format(_record("call.digit", digit="5", error="no such thing"))

    line = await asyncio.create_task(in_call())
    assert re.fullmatch(r'\d\d:\d\d:\d\d\.\d{3} INFO    call\.digit digit=5 '
                        r'error="no such thing" call_id=3@1', line), line


def test_taps_and_log_format_settings(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text('log_format = "text"\n[taps]\nkeep_s = 0.5\nmax_calls = 10\n'
                    'audio = false\naudio_max_s = 30\nmax_events = 100\n')
    settings = load(path, {}, {})
    assert (settings.log_format, settings.taps_keep_s, settings.taps_max_calls,
            settings.taps_audio, settings.taps_audio_max_s, settings.taps_max_events) == (
        "text", 0.5, 10, False, 30.0, 100)
    defaults = load(None, {}, {})
    assert (defaults.log_format, defaults.taps_keep_s, defaults.taps_max_calls,
            defaults.taps_audio, defaults.taps_audio_max_s) == ("json", 3600, 1000, True, 600)
    env = load(None, {"VOXSWITCH_TAPS_AUDIO": "off", "VOXSWITCH_LOG_FORMAT": "TEXT"}, {})
    assert env.taps_audio is False and env.log_format == "text"
    for bad, what in (("[taps]\nkeep_s = 0\n", "taps keep_s"),
                      ("[taps]\nmax_calls = 2.5\n", "taps max_calls"),
                      ("[taps]\naudio = \"maybe\"\n", "taps audio"),
                      ('log_format = "xml"\n', "log format")):
        path.write_text(bad)
        with pytest.raises(SettingsError, match=what):
            load(path, {}, {})


def test_serve_takes_log_format() -> None:
    args = build_parser().parse_args(["serve", "--log-format", "text"])
    assert args.log_format == "text"
    assert build_parser().parse_args(["serve"]).log_format is None  # settings decide
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-format", "xml"])
