"""The AMD monitor: a fake engine whose detect hook the test calls tick by tick, and a real
engine driven by `tick(now)` with a UDP caller."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from media.detection import AmdEvent, AmdEventKind, DetectionMonitor, DetectionWatch
from media.engine import MediaEngine
from tests.media.test_amd import ced, line
from tests.media.test_recorder import call, run
from tests.support.audio import concat, espeak_pcm, silence, sine
from tests.support.udp import UdpPeer

Pcm = npt.NDArray[np.int16]
K = AmdEventKind
GREETING = ("You have reached the voice mailbox of Mark Lee. I am not available. Please "
            "leave a message after the tone.")


class FakeChannel:
    def __init__(self, slot: int) -> None:
        self._slot = slot


class FakeEngine:
    def __init__(self) -> None:
        self.detect_hooks: list[Callable[[list[FakeChannel], Pcm], None]] = []

    def add_detect_hook(self, hook: Callable[[list[FakeChannel], Pcm], None]) -> None:
        self.detect_hooks.append(hook)

    def remove_detect_hook(self, hook: Callable[[list[FakeChannel], Pcm], None]) -> None:
        self.detect_hooks.remove(hook)


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pcm]:
    where = tmp_path_factory.mktemp("tts")
    out = {}
    for name, text, v in (("hello", "Hello?", "en-us"), ("greeting", GREETING, "en-gb+f2")):
        pcm = espeak_pcm(text, where / f"{name}.wav", v, 165, 50)
        loud = np.flatnonzero(np.abs(pcm) > 300)
        out[name] = line(pcm[loud[0] : loud[-1] + 1], None)
    return out


def feed(engine: FakeEngine, channels: list[FakeChannel], signals: list[Pcm],
         ticks: int | None = None) -> int:
    """Tick the engine's hooks with one frame of each signal (by slot) per tick; ticks run."""
    n = ticks if ticks is not None else max(len(s) for s in signals) // 160
    rows = np.zeros((len(signals), n * 160), np.int16)
    for i, s in enumerate(signals):
        rows[i, : min(len(s), n * 160)] = s[: n * 160]
    for k in range(n):
        for hook in list(engine.detect_hooks):
            hook(channels, rows[:, k * 160 : (k + 1) * 160])
    return n


def recorder() -> tuple[list[AmdEvent], Callable[[AmdEvent], None]]:
    events: list[AmdEvent] = []
    return events, events.append


def test_voicemail_then_ready_at_the_beep_end(voice: dict[str, Pcm]) -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    channels = [FakeChannel(1), FakeChannel(0)]  # slots in another order than the watches
    events, on = recorder()
    other, on_other = recorder()
    w = monitor.watch(channels[0], on)
    w2 = monitor.watch(channels[1], on_other, max_s=2.0)
    start = 0.3 + len(voice["greeting"]) / 8000 + 0.4
    vm = concat(silence(0.3), voice["greeting"], silence(0.4), sine(1000, 0.5, -10),
                silence(3.0))
    feed(engine, channels, [silence(len(vm) / 8000), vm])
    end_ms = round(1000 * (start + 0.5))
    assert [e.kind for e in events] == [K.VOICEMAIL, K.READY]
    assert events[0].at_ms < 1000 * start and w.result == "voicemail"
    assert events[1].beep_end_ms is not None
    assert end_ms <= events[1].beep_end_ms <= events[1].at_ms <= end_ms + 1000
    assert other == [AmdEvent(K.UNKNOWN, 2000)] and w2.result == "unknown"
    assert monitor.watching == 0 and engine.detect_hooks == []


def test_live_person_keeps_listening_until_max_s(voice: dict[str, Pcm]) -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    events, on = recorder()
    ch = FakeChannel(0)
    w = monitor.watch(ch, on, max_s=5.0)
    feed(engine, [ch], [concat(silence(0.3), voice["hello"])], ticks=100)
    assert [e.kind for e in events] == [K.LIVE_PERSON] and events[0].at_ms <= 2000
    assert monitor.watching == 1 and w.result == "live_person"
    feed(engine, [ch], [silence(3.0)])
    assert len(events) == 1 and monitor.watching == 0  # ended at 5 s, silently


def test_live_person_corrected_by_a_monologue(voice: dict[str, Pcm]) -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    events, on = recorder()
    ch = FakeChannel(0)
    w = monitor.watch(ch, on, max_s=30.0)
    feed(engine, [ch], [concat(silence(0.3), voice["hello"], silence(1.0), voice["greeting"],
                               silence(4.0))])
    assert [e.kind for e in events] == [K.LIVE_PERSON, K.VOICEMAIL, K.READY]
    assert events[2].beep_end_ms is None and w.result == "voicemail"


def test_no_ready_by_max_s_sends_one_without_a_beep(voice: dict[str, Pcm]) -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    events, on = recorder()
    ch = FakeChannel(0)
    monitor.watch(ch, on, max_s=4.0)
    feed(engine, [ch], [concat(silence(0.2), voice["greeting"])], ticks=250)
    assert [e.kind for e in events] == [K.VOICEMAIL, K.READY]
    assert events[1] == AmdEvent(K.READY, 4000, None)


def test_fax_ends_the_watch() -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    events, on = recorder()
    ch = FakeChannel(0)
    w = monitor.watch(ch, on)
    feed(engine, [ch], [concat(silence(0.2), ced(3.0, True))])
    assert [e.kind for e in events] == [K.FAX] and w.result == "fax"
    assert monitor.watching == 0


def test_closed_cancelled_and_a_failing_handler(voice: dict[str, Pcm]) -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    a, b, c = FakeChannel(0), FakeChannel(1), FakeChannel(2)
    events: list[tuple[str, AmdEvent]] = []
    monitor.watch(a, lambda e: events.append(("a", e)))
    cancelled: DetectionWatch = monitor.watch(b, lambda e: events.append(("b", e)))

    def boom(e: AmdEvent) -> None:
        events.append(("c", e))
        raise RuntimeError("the owner's bug")

    monitor.watch(c, boom)
    cancelled.cancel()
    cancelled.cancel()
    assert monitor.watching == 2
    ticks = feed(engine, [a, b, c], [silence(1.0)] * 2 + [concat(silence(0.2), ced(2.0, False))])
    assert events == [("c", AmdEvent(K.FAX, events[0][1].at_ms))]  # raised, logged, ended
    a._slot = -1
    feed(engine, [a, b, c], [silence(0.04)] * 3)
    assert events[1:] == [("a", AmdEvent(K.CLOSED, ticks * 20))]
    assert monitor.watching == 0 and engine.detect_hooks == []


def test_cancel_from_a_handler_stops_the_rest_of_the_tick(voice: dict[str, Pcm]) -> None:
    engine = FakeEngine()
    monitor = DetectionMonitor(engine)
    events: list[AmdEvent] = []
    ch = FakeChannel(0)

    def on(e: AmdEvent) -> None:
        events.append(e)
        w.cancel()

    w = monitor.watch(ch, on)
    feed(engine, [ch], [concat(silence(0.2), voice["greeting"], silence(0.2),
                               sine(900, 0.4, -10), silence(2.0))])
    assert [e.kind for e in events] == [K.VOICEMAIL] and monitor.watching == 0


async def test_on_a_ticked_engine(engine: MediaEngine, peer: UdpPeer,
                                  voice: dict[str, Pcm]) -> None:
    ch, caller = await call(engine, peer)
    other, _ = await call(engine, peer)
    monitor = DetectionMonitor(engine)
    events: list[tuple[str, AmdEvent]] = []
    monitor.watch(ch, lambda e: events.append(("ch", e)))
    monitor.watch(other, lambda e: events.append(("other", e)))
    end = run(engine, caller, concat(silence(0.3), voice["hello"], silence(2.5)), 0)
    assert [(who, e.kind) for who, e in events] == [("ch", K.LIVE_PERSON)]
    assert events[0][1].at_ms <= 2000
    other.close()
    run(engine, caller, silence(0.04), end)
    assert events[1] == ("other", AmdEvent(K.CLOSED, end * 20))
    assert monitor.watching == 1


def test_config_reaches_the_kernel(voice: dict[str, Pcm]) -> None:
    """A shorter no-beep wait gives READY sooner; an unknown setting is refused."""
    got = {}
    for frames in (100, 50):
        engine = FakeEngine()
        events, on = recorder()
        ch = FakeChannel(0)
        DetectionMonitor(engine, no_beep_frames=frames).watch(ch, on)
        feed(engine, [ch], [concat(silence(0.2), voice["greeting"], silence(3.0))])
        assert [e.kind for e in events] == [K.VOICEMAIL, K.READY]
        got[frames] = events[1].at_ms
    assert got[100] - got[50] == 50 * 20
    with pytest.raises(TypeError):
        DetectionMonitor(FakeEngine(), no_such_threshold=1)
