"""Voice activity: the kernel on seeded synthetic signals, and the silence monitor on an
engine driven by `tick(now)` with a real UDP peer."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.engine import MediaEngine
from media.vad import (
    CLOSED,
    MAX_TIME,
    SILENCE,
    WINDOW,
    SilenceMonitor,
    VoiceActivity,
    band_level_db,
)
from tests.media.test_recorder import call, run
from tests.support.audio import concat, mix, noise, silence, sine
from tests.support.udp import UdpPeer

FRAME_S = 0.02


def activity(pcm: npt.NDArray[np.int16], **kw: float) -> npt.NDArray[np.bool_]:
    return VoiceActivity(1, **kw).run_over(pcm)  # type: ignore[arg-type]


def spans(active: npt.NDArray[np.bool_]) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of active frames."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], active.astype(int), [0]))))
    return [(a * FRAME_S, b * FRAME_S) for a, b in edges.reshape(-1, 2)]


def syllables(seconds: float, seed: int = 3, level: float = -18.0) -> npt.NDArray[np.int16]:
    """Speech-like: 150–250 ms bursts of band noise with 60–120 ms gaps between."""
    rng = np.random.default_rng(seed)
    parts: list[npt.NDArray[np.int16]] = []
    total = 0.0
    while total < seconds:
        burst, gap = rng.uniform(0.15, 0.25), rng.uniform(0.06, 0.12)
        parts += [mix(noise(burst, level, seed=int(rng.integers(1 << 30))),
                      sine(rng.uniform(300, 900), burst, level)), silence(gap)]
        total += burst + gap
    return concat(*parts)[: int(seconds * 8000)]


@pytest.mark.parametrize("signal, low, high", [
    (sine(1000, 0.04, level=-12), -15.5, -14.5),   # a -12 dBFS sine: -15 dB RMS
    (sine(60, 0.04, level=-10), -200, -65),         # mains hum is out of band
    (sine(50, 0.04, level=-3), -200, -65),
    (sine(3900, 0.04, level=-6), -200, -50),        # so is the top of the band
    (silence(0.04), -90, -90),
])
def test_band_level(signal: npt.NDArray[np.int16], low: float, high: float) -> None:
    [level] = band_level_db(signal.reshape(1, WINDOW))
    assert low <= level <= high


def test_a_tone_is_active_from_its_third_frame_until_the_hangover_ends() -> None:
    active = activity(concat(silence(0.5), sine(800, 1.0, level=-20), silence(1.0)))
    # heard in the window after it too (40 ms windows), then 300 ms of hangover
    assert spans(active) == [(pytest.approx(0.54), pytest.approx(1.82))]


def test_speech_stays_active_across_the_gaps_between_syllables() -> None:
    active = activity(concat(silence(0.4), syllables(2.0), silence(1.0)))
    [(start, end)] = spans(active)
    assert start == pytest.approx(0.44, abs=0.03)
    assert 2.4 <= end <= 2.75


@pytest.mark.parametrize("signal", [
    sine(50, 3.0, level=-3),                         # hum
    sine(60, 3.0, level=-10),
    noise(3.0, level=-55),                           # a quiet line
    concat(silence(0.5), sine(1000, 0.02, -10), silence(0.5)),  # one click
])
def test_hum_a_quiet_line_and_clicks_are_not_voice(signal: npt.NDArray[np.int16]) -> None:
    assert not activity(signal).any()


def test_steady_noise_becomes_the_floor_and_speech_over_it_is_heard() -> None:
    background = noise(12.0, level=-35, seed=9)
    talk = np.zeros_like(background)
    talk[int(9.0 * 8000): int(11.0 * 8000)] = syllables(2.0, level=-15)
    active = activity(mix(background, talk))
    assert active[2:10].all()         # loud against the initial floor at first ...
    assert not active[270:440].any()  # ... until the floor has risen to it (5.4 s – 8.8 s)
    assert active[455:550].mean() > 0.9  # the speech from 9 s


def test_the_bank_keeps_each_stream_s_state() -> None:
    vad = VoiceActivity(0)
    for _ in range(3):
        vad.add()
    tone, quiet = sine(800, FRAME_S, -20), silence(FRAME_S)
    frames = np.stack([tone, quiet, tone])
    for _ in range(2):
        assert vad.step(frames).tolist() == [False, False, False]
    assert vad.step(frames).tolist() == [True, False, True]
    vad.remove(1)
    assert vad.step(np.stack([quiet, tone])).tolist() == [True, True]  # hangover, still on


async def test_the_monitor_fires_timeout_after_the_last_voice(engine: MediaEngine,
                                                              peer: UdpPeer) -> None:
    ch, caller = await call(engine, peer)
    other, _ = await call(engine, peer)
    monitor = SilenceMonitor(engine)
    fired: list[tuple[str, int]] = []
    clock = [0]
    w = monitor.watch(ch, 1.0, lambda why: fired.append((why, clock[0])))
    quiet = monitor.watch(other, 0.5, lambda why: fired.append((why, clock[0])))
    end = run(engine, caller, concat(sine(800, 1.0, level=-20), silence(0.2)), 0)
    assert [why for why, _ in fired] == [SILENCE] and monitor.watching == 1 and not quiet.voiced
    assert w.voiced
    for clock[0] in range(end, end + 200):
        caller.send(silence(FRAME_S))
        engine.tick(clock[0] * FRAME_S)
        if fired[1:]:
            break
    # the tone is heard from tick 2 (jitter buffer) to 52; hangover 300 ms, then 1 s
    assert fired[1][0] == SILENCE and 52 + 15 + 50 - 3 <= fired[1][1] <= 52 + 15 + 50 + 3
    assert monitor.watching == 0 and engine.detect_hooks == []


async def test_max_time_cancel_and_a_closed_channel(engine: MediaEngine,
                                                    peer: UdpPeer) -> None:
    ch, caller = await call(engine, peer)
    other, _ = await call(engine, peer)
    third, _ = await call(engine, peer)
    monitor = SilenceMonitor(engine)
    fired: list[tuple[str, str]] = []
    monitor.watch(ch, 5.0, lambda why: fired.append(("ch", why)), max_s=0.6)
    monitor.watch(other, 0.1, lambda why: fired.append(("other", why))).cancel()
    monitor.watch(third, 5.0, lambda why: fired.append(("third", why)))
    end = run(engine, caller, sine(800, 0.58, level=-20), 0)
    assert fired == [] and end == 29
    third.close()
    run(engine, caller, sine(800, 0.02, level=-20), end)
    assert fired == [("third", CLOSED), ("ch", MAX_TIME)] and monitor.watching == 0
