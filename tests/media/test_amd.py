"""Answering-machine detection: the kernel on espeak-ng speech and seeded synthetic tones,
and its command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media import g711
from media.dsp.amd import FRAME, AmdBank, AmdDecision, Kind, features, outcome
from tests.support.audio import concat, espeak_pcm, mix, noise, silence, sine, write_wav

Pcm = npt.NDArray[np.int16]
RATE = 8000
GREETING = ("Hi, you've reached Dana. I can't come to the phone right now. Please leave "
            "a message after the tone.")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pcm]:
    """espeak-ng utterances at 8 kHz, trimmed to their sound."""
    where = tmp_path_factory.mktemp("tts")
    texts = {"hello": ("Hello?", "en-us", 160), "dana": ("Hi, this is Dana.", "en-gb", 170),
             "greeting": (GREETING, "en-us+f3", 160),
             "carrier": ("The person you are calling is not available. Please leave a "
                         "message after the tone.", "en-gb+m3", 175)}
    out = {}
    for name, (text, voice, wpm) in texts.items():
        pcm = espeak_pcm(text, where / f"{name}.wav", voice, wpm, 50)
        loud = np.flatnonzero(np.abs(pcm) > 300)
        out[name] = pcm[loud[0] : loud[-1] + 1]
    return out


def line(pcm: Pcm, snr_db: float | None = 25.0, seed: int = 1) -> Pcm:
    """`pcm` over a line: white noise `snr_db` under its level, then µ-law and back."""
    if snr_db is not None:
        level = 20 * np.log10(max(float(np.sqrt(np.mean(pcm.astype(float) ** 2))), 1) / 32768)
        pcm = mix(pcm, noise(len(pcm) / RATE, level - snr_db, seed=seed))
    return g711.ulaw_decode(g711.ulaw_encode(pcm))


def decide(pcm: Pcm) -> list[AmdDecision]:
    return AmdBank(1).run_over(pcm)


def kinds(decisions: list[AmdDecision]) -> list[Kind]:
    return [d.kind for d in decisions]


def greeting_kinds(decisions: list[AmdDecision], *then: Kind) -> bool:
    """A greeting's decisions: VOICEMAIL and `then`, or first LIVE_PERSON (its opening
    phrase, "Hi, ...", and the pause after it) corrected to those."""
    return kinds(decisions) in ([Kind.VOICEMAIL, *then],
                                [Kind.LIVE_PERSON, Kind.VOICEMAIL, *then])


def beep(*tones: tuple[float, float], level: float = -12.0, gap_s: float = 0.03) -> Pcm:
    """Tones (Hz, seconds) one after the other, with 5 ms ramps and `gap_s` between."""
    parts = []
    for hz, seconds in tones:
        x = sine(hz, seconds, level).astype(np.float64)
        ramp = np.linspace(0, 1, 40)
        x[:40] *= ramp
        x[-40:] *= ramp[::-1]
        parts += [x.astype(np.int16), silence(gap_s)]
    return concat(*parts[:-1])


# --- features ---------------------------------------------------------------------------

@pytest.mark.parametrize("hz", [425.0, 612.5, 1000.0, 1387.0, 2100.0])
def test_a_tone_is_pure_and_its_frequency_measured(hz: float) -> None:
    f = features(sine(hz, 0.2, -10).reshape(-1, FRAME)[1:-1])
    assert (f.purity > 0.97).all() and (np.abs(f.freq - hz) < 3).all()
    assert (f.side_db < -30).all() and np.ptp(f.level) < 0.5


def test_speech_is_not_pure(speech: dict[str, Pcm]) -> None:
    x = speech["greeting"]
    f = features(x[: len(x) // FRAME * FRAME].reshape(-1, FRAME))
    loud = f.level > -40
    assert np.mean(f.purity[loud] > 0.5) < 0.25
    # single frames can look like a tone; the runs a beep needs (steady frequency) do not
    assert np.mean((f.purity[loud] > 0.5) & (f.side_db[loud] < -13)) < 0.15


# --- decisions ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, lead", [("hello", 0.3), ("hello", 0.8), ("hello", 0.0),
                                        ("dana", 0.5)])
def test_a_live_person_is_decided_within_2_s(speech: dict[str, Pcm], name: str,
                                             lead: float) -> None:
    """Within 2 s of the answer for "Hello?"; for longer words, 500 ms after them at the
    latest (or sooner, at a pause inside them), and never before they began."""
    got = decide(line(concat(silence(lead), speech[name], silence(4.0))))
    assert kinds(got) == [Kind.LIVE_PERSON]
    end_ms = 1000 * (lead + len(speech[name]) / RATE)
    if name == "hello":
        assert end_ms + 100 <= got[0].at_ms <= 2000
    else:
        assert 1000 * lead + 300 <= got[0].at_ms <= end_ms + 500


@pytest.mark.parametrize("lead", [0.0, 0.4, 0.8, 1.2])
def test_the_pause_for_a_reply_is_as_long_as_the_time_allows(speech: dict[str, Pcm],
                                                             lead: float) -> None:
    """A "Hello?" that ends early is given up to 400 ms of pause before it is a person;
    one that ends late, down to 140 ms: either way the decision is in by about 1.3 s
    after the answer, or soon after the word if it ends later than that."""
    got = decide(line(concat(silence(lead), speech["hello"], silence(3.0))))
    assert kinds(got) == [Kind.LIVE_PERSON]
    end_ms = 1000 * (lead + len(speech["hello"]) / RATE)
    wait = got[0].at_ms - end_ms
    assert 100 <= wait <= 480
    assert got[0].at_ms <= max(1300, end_ms + 220)
    if end_ms <= 700:
        assert wait >= 300


@pytest.mark.parametrize("tones", [
    ((1000.0, 0.5),),
    ((440.0, 0.25),),
    ((850.0, 0.15), (1400.0, 0.15)),
    ((600.0, 0.12), (900.0, 0.12), (1300.0, 0.12)),
])
@pytest.mark.parametrize("snr", [30.0, 12.0])
def test_a_greeting_and_its_beep(speech: dict[str, Pcm], tones: tuple[tuple[float, float], ...],
                                 snr: float) -> None:
    tone = beep(*tones)
    start = 0.4 + len(speech["greeting"]) / RATE + 0.3
    end_ms = 1000 * (start + len(tone) / RATE)
    got = decide(line(concat(silence(0.4), speech["greeting"], silence(0.3), tone,
                             silence(3.0)), snr))
    # "Hi, [pause]" can be a live person first; the greeting corrects it
    assert greeting_kinds(got, Kind.READY)
    assert got[-2].at_ms < 1000 * start  # decided during the greeting
    ready = got[-1]
    assert ready.beep_end_ms is not None
    assert end_ms <= ready.beep_end_ms <= ready.at_ms <= end_ms + 1000


def test_a_short_greeting_then_a_beep(speech: dict[str, Pcm]) -> None:
    """"Hello?" then a pause as long as a live person's: live first, the beep corrects it."""
    tone = beep((1000.0, 0.4))
    end_ms = 1000 * (0.2 + len(speech["hello"]) / RATE + 1.2 + 0.4)
    got = decide(line(concat(silence(0.2), speech["hello"], silence(1.2), tone, silence(2))))
    assert kinds(got) == [Kind.LIVE_PERSON, Kind.VOICEMAIL, Kind.READY]
    assert end_ms <= got[2].beep_end_ms <= got[2].at_ms <= end_ms + 1000  # type: ignore[operator]


@pytest.mark.parametrize("name", ["greeting", "carrier"])
def test_a_greeting_without_a_beep_is_ready_after_it(speech: dict[str, Pcm], name: str) -> None:
    end_ms = 1000 * (0.3 + len(speech[name]) / RATE)
    got = decide(line(concat(silence(0.3), speech[name], silence(5.0)), 20))
    assert greeting_kinds(got, Kind.READY)
    assert got[-2].at_ms < end_ms and got[-1].beep_end_ms is None
    assert end_ms + 1500 <= got[-1].at_ms <= end_ms + 3000


def test_a_greeting_taken_for_a_person_at_its_first_pause_is_corrected_as_it_goes_on(
        speech: dict[str, Pcm]) -> None:
    """"Hi, [pause] you've reached Dana...": a person first; the utterance going on past
    2.4 s with no pause for a reply makes it a voicemail then, before a 3 s monologue."""
    pcm = line(concat(silence(0.3), speech["greeting"], silence(3.0)))
    got = decide(pcm)
    assert kinds(got) == [Kind.LIVE_PERSON, Kind.VOICEMAIL, Kind.READY]
    assert got[0].at_ms <= 2000
    assert 300 + 2400 <= got[1].at_ms <= 300 + 2600
    without = AmdBank(1, relapse_frames=10**6).run_over(pcm)
    assert kinds(without) == kinds(got) and without[1].at_ms > got[1].at_ms


def test_a_monologue_after_a_short_hello_corrects_it(speech: dict[str, Pcm]) -> None:
    got = decide(line(concat(silence(0.3), speech["hello"], silence(0.8), speech["greeting"],
                             silence(4.0))))
    assert kinds(got)[:2] == [Kind.LIVE_PERSON, Kind.VOICEMAIL]


def ced(seconds: float, reversals: bool, level: float = -15.0) -> Pcm:
    t = np.arange(round(seconds * RATE)) / RATE
    flips = np.pi * (np.floor(t / 0.45) % 2) if reversals else 0.0
    return np.round(32767 * 10 ** (level / 20) * np.sin(2 * np.pi * 2100 * t + flips)).astype(
        np.int16)


def v21_flags(seconds: float, level: float = -15.0) -> Pcm:
    n = round(seconds * RATE)
    bit = np.array([0, 1, 1, 1, 1, 1, 1, 0])[(np.arange(n) * 300 // RATE) % 8]
    phase = 2 * np.pi * np.cumsum(np.where(bit == 1, 1650.0, 1850.0)) / RATE
    return np.round(32767 * 10 ** (level / 20) * np.sin(phase)).astype(np.int16)


def cng(bursts: int, level: float = -15.0) -> Pcm:
    return concat(*[concat(sine(1100, 0.5, level), silence(3.0)) for _ in range(bursts)])


@pytest.mark.parametrize("signal", [
    pytest.param(lambda: concat(silence(0.5), cng(2)), id="cng"),
    pytest.param(lambda: concat(silence(0.2), ced(3.0, False)), id="ced"),
    pytest.param(lambda: concat(silence(0.2), ced(3.0, True)), id="ced-reversals"),
    pytest.param(lambda: concat(silence(0.7), v21_flags(1.5)), id="v21"),
    pytest.param(lambda: concat(silence(0.1), ced(2.6, True, -28), silence(0.075),
                                v21_flags(1.0, -28)), id="ced-v21-quiet"),
])
def test_fax(signal: object) -> None:
    got = decide(line(signal(), 20))  # type: ignore[operator]
    assert kinds(got) == [Kind.FAX] and got[0].at_ms <= 1500


@pytest.mark.parametrize("signal", [
    pytest.param(lambda: silence(8.0), id="silence"),
    pytest.param(lambda: noise(8.0, -30, seed=4), id="white-noise"),
    pytest.param(lambda: noise(8.0, -55, seed=5), id="quiet-noise"),
    pytest.param(lambda: mix(sine(60, 8.0, -10), sine(180, 8.0, -20), sine(300, 8.0, -26),
                             sine(420, 8.0, -30)), id="hum-60"),
    pytest.param(lambda: mix(sine(50, 8.0, -12), sine(150, 8.0, -18), sine(250, 8.0, -24),
                             noise(8.0, -50, seed=6)), id="hum-50"),
])
def test_no_decision_on_what_is_not_a_call(signal: object) -> None:
    pcm = line(signal(), None)  # type: ignore[operator]
    assert decide(pcm) == []
    assert outcome([], 8000).result == "unknown"


def test_a_beep_is_not_read_in_speech_alone(speech: dict[str, Pcm]) -> None:
    got = decide(line(concat(silence(0.3), speech["greeting"], silence(0.5), speech["carrier"],
                             silence(0.3)), 30))
    assert greeting_kinds(got)


# --- the bank -----------------------------------------------------------------------------

def test_causal_a_prefix_decides_what_the_whole_did_up_to_then(speech: dict[str, Pcm]) -> None:
    pcm = line(concat(silence(0.3), speech["hello"], silence(1.0), speech["greeting"],
                      silence(0.2), beep((700.0, 0.3), (1100.0, 0.3)), silence(2.0)))
    whole = decide(pcm)
    assert len(whole) == 3
    rng = np.random.default_rng(7)
    for cut in [*rng.integers(10, len(pcm) // FRAME, 6), *(d.at_ms // 20 for d in whole)]:
        part = decide(pcm[: int(cut) * FRAME])
        assert part == [d for d in whole if d.at_ms <= cut * 20]


def test_streams_are_independent_and_rows_can_come_and_go(speech: dict[str, Pcm]) -> None:
    live = line(concat(silence(0.2), speech["hello"], silence(3.0)))
    fax = line(concat(silence(0.2), ced(3.0, True)), 20)
    n = min(len(live), len(fax)) // FRAME
    quiet = silence(n * FRAME / RATE)
    bank = AmdBank(3)
    got: dict[int, list[tuple[Kind, int]]] = {0: [], 1: [], 2: []}
    for k in range(n):
        if k == 5:
            bank.remove(0)  # row 0 (silence) goes; the others move down
            got = {0: got[1], 1: got[2]}
        rows = [live, fax] if k >= 5 else [quiet, live, fax]
        block = np.stack([r[k * FRAME : (k + 1) * FRAME] for r in rows])
        for d in bank.step(block):
            got[d.row].append((d.kind, d.at_ms))
    assert got == {0: [(d.kind, d.at_ms) for d in decide(live[: n * FRAME])],
                   1: [(d.kind, d.at_ms) for d in decide(fax[: n * FRAME])]}
    bank.reset(0)
    assert bank.add() == 2 and bank.streams == 3
    with pytest.raises(ValueError, match=r"need a \(3, 160\) frame"):
        bank.step(np.zeros((2, FRAME), np.int16))


# --- the command line ---------------------------------------------------------------------

def cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "media.dsp.amd", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_one_json_line(speech: dict[str, Pcm], tmp_path: Path) -> None:
    tone = beep((1000.0, 0.5))
    end_ms = round(1000 * (0.4 + len(speech["greeting"]) / RATE + 0.3 + len(tone) / RATE))
    wav = write_wav(tmp_path / "vm.wav", line(concat(silence(0.4), speech["greeting"],
                                                     silence(0.3), tone, silence(2.0))))
    done = cli(wav)
    assert done.returncode == 0 and done.stderr == ""
    [row] = done.stdout.splitlines()
    doc = json.loads(row)
    assert doc["result"] == "voicemail" and isinstance(doc["decision_ms"], int)
    assert end_ms <= doc["beep_end_ms"] <= end_ms + 1000
    assert json.loads(cli(write_wav(tmp_path / "s.wav", silence(2.0))).stdout) == {
        "result": "unknown", "decision_ms": 2000, "beep_end_ms": None}


def test_cli_rejects_other_formats(tmp_path: Path) -> None:
    wide = write_wav(tmp_path / "16k.wav", silence(1.0, 16000), rate=16000)
    done = cli(wide)
    assert done.returncode != 0 and done.stdout == ""
    assert "need 8000 Hz mono 16-bit PCM, got 16000 Hz, 1 channel(s), 16-bit" in done.stderr
    import wave
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(3200))
    done = cli(tmp_path / "stereo.wav")
    assert done.returncode != 0 and "got 8000 Hz, 2 channel(s)" in done.stderr
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    done = cli(tmp_path / "junk.wav")
    assert done.returncode != 0 and "not a WAV file" in done.stderr
