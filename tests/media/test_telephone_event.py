"""RFC 4733 receiver and sender, sans-I/O: packets in, events out, with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from media.events import TelephoneEventEnded, TelephoneEventStarted
from media.rtp import TelephoneEvent
from media.telephone_event import (
    TelephoneEventReceiver,
    TelephoneEventSender,
    parse_dtmf_string,
)

SSRC = 0x1234


@dataclass
class Pkt:
    seq: int
    ts: int
    event: int
    duration: int
    end: bool = False
    marker: bool = False
    ssrc: int = SSRC


def digit_event(
    code: int, seq: int, ts: int, *, steps: int = 5, step: int = 160, ends: int = 3
) -> list[Pkt]:
    """The packets a compliant sender emits for one event: marker, growing duration,
    the end packet `ends` times."""
    out = [Pkt(seq + i, ts, code, step * (i + 1), marker=i == 0) for i in range(steps - 1)]
    final = step * steps
    out += [Pkt(seq + steps - 1 + i, ts, code, final, end=True) for i in range(ends)]
    return out


def feed_all(
    rx: TelephoneEventReceiver, packets: list[Pkt], start: float = 0.0
) -> list[TelephoneEventStarted | TelephoneEventEnded]:
    out: list[TelephoneEventStarted | TelephoneEventEnded] = []
    for i, p in enumerate(packets):
        event = TelephoneEvent(event=p.event, end=p.end, volume=10, duration=p.duration)
        out.extend(rx.feed(p.seq, p.ts, p.marker, p.ssrc, event, start + 0.02 * i))
    return out


def started(events: list[TelephoneEventStarted | TelephoneEventEnded]) -> list[str | None]:
    return [e.digit for e in events if isinstance(e, TelephoneEventStarted)]


def ended(events: list[TelephoneEventStarted | TelephoneEventEnded]) -> list[TelephoneEventEnded]:
    return [e for e in events if isinstance(e, TelephoneEventEnded)]


# --- receiver ---


def test_one_event_starts_at_onset_and_ends_once() -> None:
    rx = TelephoneEventReceiver()
    events = feed_all(rx, digit_event(5, 100, 8000))
    assert events[0] == TelephoneEventStarted(event=5, timestamp=8000, ssrc=SSRC, at=0.0)
    assert started(events) == ["5"]
    (end,) = ended(events)
    assert end.duration == 800 and end.timestamp == 8000 and not end.timed_out
    assert end.at == pytest.approx(0.02 * 4)  # the first end packet, not the redundant ones
    assert not rx.active and rx.get_timer() is None


def test_several_digits_in_a_row() -> None:
    rx = TelephoneEventReceiver()
    packets = digit_event(1, 10, 1000) + digit_event(11, 20, 5000) + digit_event(10, 30, 9000)
    events = feed_all(rx, packets)
    assert started(events) == ["1", "#", "*"]
    assert [e.digit for e in ended(events)] == ["1", "#", "*"]


def test_repeated_digit_is_a_new_event_by_timestamp() -> None:
    rx = TelephoneEventReceiver()
    events = feed_all(rx, digit_event(7, 10, 1000) + digit_event(7, 20, 3000))
    assert started(events) == ["7", "7"]


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param([0, 4, 5, 6], id="continuations-lost"),
        pytest.param([4, 5, 6], id="only-end-packets"),
        pytest.param([2, 3, 4, 5, 6], id="start-lost"),
        pytest.param([1, 6], id="start-and-first-ends-lost"),
        pytest.param([6], id="one-redundant-end"),
        pytest.param([0, 1, 2], id="all-ends-lost"),
    ],
)
def test_loss_still_reports_once(keep: list[int]) -> None:
    rx = TelephoneEventReceiver()
    packets = digit_event(3, 100, 8000)
    events = feed_all(rx, [packets[i] for i in keep])
    assert started(events) == ["3"]
    # Then the next digit arrives normally and is reported once too.
    events = feed_all(rx, digit_event(4, 200, 12000), start=1.0)
    assert started(events) == ["4"]


def test_lost_end_is_ended_by_the_next_event_or_the_timer() -> None:
    rx = TelephoneEventReceiver(end_timeout=0.5)
    events = feed_all(rx, digit_event(2, 1, 100)[:3])
    assert ended(events) == [] and rx.active
    last_packet_at = 0.04
    assert rx.get_timer() == pytest.approx(last_packet_at + 0.5)
    assert rx.handle_timer(0.3) == ()
    (end,) = rx.handle_timer(0.6)
    assert isinstance(end, TelephoneEventEnded)
    assert end.timed_out and end.duration == 480 and end.digit == "2"
    assert rx.handle_timer(5.0) == () and rx.get_timer() is None
    # Late packets of the timed-out event are not a new press.
    assert started(feed_all(rx, digit_event(2, 1, 100)[3:], start=0.7)) == []
    # An unfinished event followed by another: the first is ended by the second.
    events = feed_all(rx, digit_event(8, 50, 4000)[:2] + digit_event(9, 60, 6000), start=1.0)
    assert started(events) == ["8", "9"]
    assert [(e.digit, e.duration) for e in ended(events)] == [("8", 320), ("9", 800)]


def test_out_of_order_packets() -> None:
    rx = TelephoneEventReceiver()
    a = digit_event(1, 100, 8000)
    b = digit_event(2, 110, 16000)
    # Within A: continuation before the start; A's last end after B's start.
    order = [a[1], a[0], a[2], a[4], a[3], a[5], b[0], a[6], b[1], b[2], b[3], b[4], b[5]]
    events = feed_all(rx, order)
    assert started(events) == ["1", "2"]
    durations = [(e.digit, e.duration) for e in ended(events)]
    assert durations == [("1", 800), ("2", 800)]


def test_timestamp_wrap() -> None:
    rx = TelephoneEventReceiver()
    near = 2**32 - 400
    packets = digit_event(6, 10, near) + digit_event(6, 20, (near + 2000) % 2**32)
    packets += [digit_event(5, 0, near)[-1]]  # a very late end of an old event: ignored
    events = feed_all(rx, packets)
    assert started(events) == ["6", "6"]


def test_sequence_wrap() -> None:
    rx = TelephoneEventReceiver()
    packets = digit_event(0, 65533, 1000) + digit_event(9, 4, 3000)
    for p in packets:
        p.seq %= 65536
    late = digit_event(0, 65533, 1000)[5]  # A's redundant end (seq 65537 -> 1), after B
    late.seq %= 65536
    events = feed_all(rx, [*packets, late])
    assert started(events) == ["0", "9"]


def test_sequence_space_used_up_by_audio_between_events() -> None:
    # 40000 audio packets between two events: the sequence number looks older, but the
    # timestamp is newer, so it is a new event.
    rx = TelephoneEventReceiver()
    events = feed_all(rx, digit_event(1, 1000, 0) + digit_event(2, 41000 % 65536, 160 * 40000))
    assert started(events) == ["1", "2"]


def test_sender_timestamp_reset_with_sequence_moving_on() -> None:
    rx = TelephoneEventReceiver()
    events = feed_all(rx, digit_event(1, 1000, 900_000) + digit_event(2, 1100, 5000))
    assert started(events) == ["1", "2"]


def test_new_ssrc_starts_afresh() -> None:
    rx = TelephoneEventReceiver()
    a = digit_event(4, 100, 8000)
    b = digit_event(4, 5, 8000)  # same timestamp, another source
    for p in b:
        p.ssrc = 99
    events = feed_all(rx, a[:3] + b)
    assert started(events) == ["4", "4"]
    assert ended(events)[0].timed_out  # the first stream's event was cut off


def test_long_event_in_segments_is_one_press() -> None:
    # RFC 4733 §2.5.1.3: at 0xFFFF samples a new segment starts at ts + duration.
    rx = TelephoneEventReceiver()
    seg1 = [Pkt(1, 1000, 5, 160, marker=True), Pkt(2, 1000, 5, 0xFFFF)]
    seg2 = [Pkt(3, 1000 + 0xFFFF, 5, 160), Pkt(4, 1000 + 0xFFFF, 5, 800, end=True)]
    events = feed_all(rx, seg1 + seg2)
    assert started(events) == ["5"]
    (end,) = ended(events)
    assert end.duration == 0xFFFF + 800 and end.timestamp == 1000


def test_non_dtmf_events_are_reported_without_digit() -> None:
    rx = TelephoneEventReceiver()
    events = feed_all(rx, digit_event(16, 1, 1))  # flash
    assert started(events) == [None]
    assert isinstance(events[0], TelephoneEventStarted) and events[0].event == 16


# --- sender ---


def sent(sender: TelephoneEventSender) -> list[TelephoneEvent | None]:
    out: list[TelephoneEvent | None] = []
    markers = []
    while not sender.done:
        packet = sender.tick()
        out.append(None if packet is None else TelephoneEvent.parse(packet.payload))
        if packet is not None:
            markers.append(packet.marker)
            assert packet.start == packet.marker
    assert sender.tick() is None
    return out


def test_sender_packet_sequence_for_one_digit() -> None:
    packets = sent(TelephoneEventSender("5"))
    assert packets == [
        TelephoneEvent(5, False, 10, 160),
        TelephoneEvent(5, False, 10, 320),
        TelephoneEvent(5, False, 10, 480),
        TelephoneEvent(5, False, 10, 640),
        TelephoneEvent(5, True, 10, 800),
        TelephoneEvent(5, True, 10, 800),
        TelephoneEvent(5, True, 10, 800),
    ]


def test_sender_marker_only_on_first_packet() -> None:
    sender = TelephoneEventSender("#", tone_ms=60)
    packets = []
    while not sender.done:
        packet = sender.tick()
        assert packet is not None
        packets.append(packet)
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert [TelephoneEvent.parse(p.payload).duration for p in packets] == [160, 320] + [480] * 3
    assert TelephoneEvent.parse(packets[0].payload).event == 11


def test_sender_gaps_dashes_and_odd_tone_length() -> None:
    packets = sent(TelephoneEventSender("1 2-3", tone_ms=90, gap_ms=100, dash_ms=60))
    events = [p for p in packets if p is not None]
    assert [e.event for e in events if e.end][::3] == [1, 2, 3]
    assert [e.duration for e in events[:7]] == [160, 320, 480, 640, 720, 720, 720]
    # gap 100 ms = 5 ticks, of which the two redundant end packets take 2; dash 3 more.
    layout = "".join("." if p is None else ("E" if p.end else "x") for p in packets)
    assert layout == "xxxxEEE...xxxxEEE......xxxxEEE"


def test_sender_trailing_dash_delays_completion() -> None:
    packets = sent(TelephoneEventSender("9--", tone_ms=40, dash_ms=40))
    layout = "".join("." if p is None else ("E" if p.end else "x") for p in packets)
    assert layout == "xEEE...."


def test_sender_stop_mid_event_sends_end_packets() -> None:
    sender = TelephoneEventSender("12")
    sender.tick()
    sender.tick()
    assert sender.in_event
    sender.stop()
    rest = sent(sender)
    assert rest == [TelephoneEvent(1, True, 10, 480)] * 3


def test_sender_stop_during_ends_or_gap() -> None:
    sender = TelephoneEventSender("12", tone_ms=40)
    for _ in range(3):
        sender.tick()  # x E E
    sender.stop()
    assert sent(sender) == [TelephoneEvent(1, True, 10, 320)]
    sender = TelephoneEventSender("12", tone_ms=40)
    for _ in range(6):
        sender.tick()  # x E E E . .
    assert not sender.in_event
    sender.stop()
    assert sender.done and sender.tick() is None


def test_empty_string_is_done_at_once() -> None:
    assert TelephoneEventSender(" ").done


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("123", ["1", "2", "3"]),
        ("1 2 3 - 4 -- 5", ["1", "2", "3", "-", "4", "-", "-", "5"]),
        ("*#abcdABCD", list("*#ABCDABCD")),
        ("", []),
    ],
)
def test_parse_dtmf_string(digits: str, expected: list[str]) -> None:
    assert parse_dtmf_string(digits) == expected


@pytest.mark.parametrize("digits", ["12x", "1,2", "E", "½", "1\t2", "w"])
def test_parse_dtmf_string_rejects(digits: str) -> None:
    with pytest.raises(ValueError, match="accepted are 0-9 \\* # A-D, '-' for a pause"):
        parse_dtmf_string(digits)


@pytest.mark.parametrize(
    "kwargs", [{"tone_ms": 0}, {"gap_ms": -1}, {"dash_ms": -5}, {"tone_ms": 9000}]
)
def test_sender_rejects_bad_timing(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="tone_ms"):
        TelephoneEventSender("1", **kwargs)
