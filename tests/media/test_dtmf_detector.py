"""In-band DTMF detector: every ITU-T Q.24 limit from both sides, on seeded synthetic tones.

Tones come from `media.tones` (5 ms raised-cosine ramps at both ends), so a "10 ms break"
is two tones with 10 ms of silence between their ramps. Each limit is checked at several
alignments of the tone against the 20 ms frame and the 5 ms hop.
"""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from media.dsp.dtmf import KEYS, DtmfDetector, detect_digits, resample
from media.tones import DTMF_FREQS, dbm0_to_peak, dtmf_digits, dtmf_tone, silence, tone

ROOT = Path(__file__).resolve().parents[2]
RATE = 8000
pytestmark = pytest.mark.usefixtures("dtmf_kernel")  # each test with both implementations
LEADS = (0, 13, 40, 97)  # samples of silence before the signal: frame and hop alignments
ROW_KEYS = "147*"  # one key per low-group frequency
COLUMN_KEYS = "123A"  # one key per high-group frequency


def pair(
    low: float, high: float, duration_s: float = 0.1, *, low_db: float = -10, high_db: float = -10
) -> np.ndarray:
    """Two sines at their own levels (dBm0), saturated to int16."""
    wave_ = tone(low, duration_s, level_dbm0=low_db).astype(np.int32)
    wave_ += tone(high, duration_s, level_dbm0=high_db)
    return np.clip(wave_, -32768, 32767).astype(np.int16)


def keys(signal: np.ndarray, lead: int = 0) -> str:
    """The detector's keys for `signal` preceded by `lead` samples and followed by silence."""
    return detect_digits(np.concatenate([np.zeros(lead, np.int16), signal, silence(0.06)]))


def frames(signal: np.ndarray, frame: int = 160) -> np.ndarray:
    """`signal` padded and cut into (F, frame) frames."""
    padded = np.concatenate([signal, np.zeros(-signal.size % frame, np.int16)])
    return padded.reshape(-1, frame)


@pytest.mark.parametrize("lead", LEADS)
def test_all_sixteen_keys(lead: int) -> None:
    assert keys(dtmf_digits(KEYS), lead) == KEYS


@pytest.mark.parametrize("offset", [-0.015, 0.015])
@pytest.mark.parametrize("group", ["low", "high"])
@pytest.mark.parametrize("lead", LEADS)
def test_frequency_within_1_5_percent_is_accepted(group: str, offset: float, lead: int) -> None:
    for key in ROW_KEYS if group == "low" else COLUMN_KEYS:
        low, high = DTMF_FREQS[key]
        shifted = (low * (1 + offset), high) if group == "low" else (low, high * (1 + offset))
        assert keys(pair(*shifted), lead) == key, (key, shifted)


@pytest.mark.parametrize("offset", [-0.035, 0.035, -0.05, 0.05])
@pytest.mark.parametrize("group", ["low", "high"])
@pytest.mark.parametrize("lead", LEADS)
def test_frequency_beyond_3_5_percent_is_rejected(group: str, offset: float, lead: int) -> None:
    for key in ROW_KEYS if group == "low" else COLUMN_KEYS:
        low, high = DTMF_FREQS[key]
        shifted = (low * (1 + offset), high) if group == "low" else (low, high * (1 + offset))
        assert keys(pair(*shifted), lead) == "", (key, shifted)


def test_frequency_between_two_rows_is_rejected() -> None:
    assert keys(pair((697 + 770) / 2, 1209)) == ""
    assert keys(pair(852, (1336 + 1477) / 2)) == ""


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("key", "15#D")
def test_40_ms_tone_is_accepted(key: str, lead: int) -> None:
    assert keys(dtmf_tone(key, 0.040), lead) == key


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("key", "15#D")
@pytest.mark.parametrize("duration_s", [0.010, 0.020, 0.022])
def test_tone_under_23_ms_is_rejected(key: str, duration_s: float, lead: int) -> None:
    assert keys(dtmf_tone(key, duration_s), lead) == ""


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("key", "15#D")
@pytest.mark.parametrize("break_s", [0.0, 0.005, 0.010])
def test_break_up_to_10_ms_is_ridden_over(key: str, break_s: float, lead: int) -> None:
    press = np.concatenate([dtmf_tone(key, 0.06), silence(break_s), dtmf_tone(key, 0.06)])
    assert keys(press, lead) == key


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("key", "15#D")
@pytest.mark.parametrize("gap_s", [0.020, 0.025, 0.040])
def test_gap_of_20_ms_or_more_makes_two_presses(key: str, gap_s: float, lead: int) -> None:
    presses = np.concatenate([dtmf_tone(key, 0.06), silence(gap_s), dtmf_tone(key, 0.06)])
    assert keys(presses, lead) == key * 2


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("first,second", [("1", "2"), ("5", "8"), ("#", "D"), ("9", "9")])
def test_key_change_without_gap_is_two_presses(first: str, second: str, lead: int) -> None:
    """A different key straight after another (ramps only between them) is a new press;
    the same key again is not."""
    both = np.concatenate([dtmf_tone(first, 0.08), dtmf_tone(second, 0.08)])
    assert keys(both, lead) == (first if first == second else first + second)


@pytest.mark.parametrize("seed", range(3))
def test_40_ms_keys_at_15_db_snr(seed: int) -> None:
    clean = np.concatenate([silence(0.05), dtmf_digits(KEYS, tone_s=0.04, gap_s=0.05)])
    clean = np.concatenate([clean, silence(0.05)])
    noisy = np.clip(clean + noise_for(clean, 15.0, seed), -32768, 32767).astype(np.int16)
    assert detect_digits(noisy) == KEYS


@pytest.mark.parametrize("twist_db", [-8.0, -4.0, 0.0, 2.0, 4.0])
@pytest.mark.parametrize("lead", LEADS[:2])
def test_twist_within_limits_is_accepted(twist_db: float, lead: int) -> None:
    """`twist_db` is the high group's level minus the low group's (normal twist < 0)."""
    for key, (low, high) in DTMF_FREQS.items():
        assert keys(pair(low, high, high_db=-10 + twist_db), lead) == key, key


@pytest.mark.parametrize("twist_db", [-10.0, -12.0, 6.0, 8.0])
@pytest.mark.parametrize("lead", LEADS[:2])
def test_twist_beyond_limits_is_rejected(twist_db: float, lead: int) -> None:
    for low, high in DTMF_FREQS.values():
        assert keys(pair(low, high, high_db=-10 + twist_db), lead) == ""


@pytest.mark.parametrize("level_dbm0", [-3.0, -10.0, -20.0, -29.0, -33.0])
@pytest.mark.parametrize("lead", LEADS[:2])
def test_level_from_minus_3_to_minus_33_dbm0_is_accepted(level_dbm0: float, lead: int) -> None:
    signal = dtmf_digits(KEYS, tone_s=0.05, gap_s=0.05, level_dbm0=level_dbm0)
    assert keys(signal, lead) == KEYS


@pytest.mark.parametrize("level_dbm0", [-38.0, -45.0])
def test_level_below_minus_36_dbm0_is_rejected(level_dbm0: float) -> None:
    assert keys(dtmf_digits(KEYS, level_dbm0=level_dbm0)) == ""


def noise_for(signal: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White Gaussian noise (0-4 kHz) `snr_db` below the mean power of `signal`'s tones."""
    power = np.mean(signal[signal != 0].astype(np.float64) ** 2)
    rng = np.random.default_rng(seed)
    return rng.standard_normal(signal.size) * np.sqrt(power / 10 ** (snr_db / 10))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("level_dbm0", [-10.0, -20.0])
def test_signal_to_noise_15_db_is_accepted(level_dbm0: float, seed: int) -> None:
    """S/N: both tones' power against the white noise power over the whole 0-4 kHz band."""
    clean = dtmf_digits(KEYS, tone_s=0.05, gap_s=0.05, level_dbm0=level_dbm0)
    clean = np.concatenate([silence(0.05), clean, silence(0.05)])
    noisy = np.clip(clean + noise_for(clean, 15.0, seed), -32768, 32767).astype(np.int16)
    assert detect_digits(noisy) == KEYS


@pytest.mark.parametrize("seed", range(3))
def test_noise_alone_gives_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(8000 * 5) * dbm0_to_peak(-10)).astype(np.int16)
    assert detect_digits(noise) == ""


def test_third_tone_of_equal_level_fails_the_energy_check() -> None:
    low, high = DTMF_FREQS["5"]
    three = pair(low, high).astype(np.int32) + tone(400, 0.1, level_dbm0=-10)
    assert keys(three.astype(np.int16)) == ""
    weak = pair(low, high).astype(np.int32) + tone(400, 0.1, level_dbm0=-25)
    assert keys(weak.astype(np.int16)) == "5"


@pytest.mark.parametrize("key", "159*")
def test_strong_second_harmonic_fails_the_harmonic_check(key: str) -> None:
    low, high = DTMF_FREQS[key]
    harmonic = pair(low, high).astype(np.int32) + tone(2 * low, 0.1, level_dbm0=-15)
    assert keys(harmonic.astype(np.int16)) == ""
    faint = pair(low, high).astype(np.int32) + tone(2 * low, 0.1, level_dbm0=-30)
    assert keys(faint.astype(np.int16)) == key


# Talk-off: what speech and music do that a key does not. Each signal below gave a key
# before the onset checks (rise, purity over two windows, drift, near misses) came in.


def shaped(x: np.ndarray, attack_s: float = 0.02, release_s: float = 0.03) -> np.ndarray:
    """`x` with a linear attack and release."""
    env = np.ones(x.size)
    attack, release = round(attack_s * RATE), round(release_s * RATE)
    env[:attack], env[x.size - release :] = np.linspace(0, 1, attack), np.linspace(1, 0, release)
    return x * env


def note(freq: float, seconds: float, level_dbm0: float = -12.0) -> np.ndarray:
    """A flute-like note: the fundamental, its 2nd and 3rd harmonics at -16 and -24 dB."""
    t = np.arange(round(seconds * RATE)) / RATE
    parts = ((1, 0.0), (2, -16.0), (3, -24.0))
    x = sum(10 ** (db / 20) * np.sin(2 * np.pi * k * freq * t) for k, db in parts)
    return shaped(dbm0_to_peak(level_dbm0) * x)


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("first,second", [(1336.0, 852.0), (697.0, 1209.0), (1320.0, 860.0)])
def test_a_note_joined_by_another_is_no_key(first: float, second: float, lead: int) -> None:
    """Music: a note, and 300 ms later a second one that makes a DTMF pair with it for
    200 ms. A key's tones start together; the first note had long been there, and each
    tone of a new key must stand `RISE_DB` over its bin's floor from before the key."""
    both = note(first, 0.5)
    both[-1600:] += note(second, 0.2)
    assert keys(pcm(both), lead) == ""


@pytest.mark.parametrize("lead", LEADS)
def test_a_vowel_with_two_strong_harmonics_is_no_key(lead: int) -> None:
    """Speech: a vowel on f0 = 941/7 Hz whose 7th and 9th harmonics are a "*" (941 and
    1209.9 Hz) while the others carry 12 % of its power: the pair's share, about 0.89,
    passes `ENERGY_RATIO` but not `PURE_RATIO` over two windows in a row."""
    f0, t = 941 / 7, np.arange(2400) / RATE
    rest = [k for k in range(1, 29) if k not in (7, 9)]
    weights = np.array([1 / k for k in rest])
    weights *= np.sqrt(2 * 0.12 / np.sum(weights**2))
    x = np.sin(2 * np.pi * 7 * f0 * t) + np.sin(2 * np.pi * 9 * f0 * t + 1.0)
    for w, k in zip(weights, rest, strict=True):
        x += w * np.sin(2 * np.pi * k * f0 * t + 1.3 * k)
    assert keys(pcm(shaped(dbm0_to_peak(-10) * x)), lead) == ""


@pytest.mark.parametrize("lead", LEADS)
def test_two_neighbouring_harmonics_with_the_next_one_are_no_key(lead: int) -> None:
    """Speech: harmonics 4, 5 and 6 of f0 = 240 Hz: 960 and 1200 Hz are a "*" (+2.0 %,
    -0.7 %), pure enough (0.96) with the 6th 10 dB down; but that one sits at
    2·high - low, where a key has nothing."""
    t = np.arange(2400) / RATE
    x = sum(a * np.sin(2 * np.pi * k * 240 * t + k) for k, a in ((4, 1.0), (5, 1.0), (6, 0.316)))
    assert keys(pcm(shaped(dbm0_to_peak(-10) * x)), lead) == ""


@pytest.mark.parametrize("key", "159*#D")
def test_key_with_intermodulation_20_db_down_is_accepted(key: str) -> None:
    """Q.23 lets a key's unwanted components be 20 dB down: such ones at 2·low - high and
    2·high - low pass `INTERMOD_DB`."""
    low, high = DTMF_FREQS[key]
    x = pair(low, high).astype(np.int32)
    x += tone(abs(2 * low - high), 0.1, level_dbm0=-30) + tone(2 * high - low, 0.1, level_dbm0=-30)
    assert keys(pcm(x)) == key


def voice(f0: float, harmonics: tuple[tuple[int, float], ...], seconds: float = 0.3) -> np.ndarray:
    """A steady vowel on `f0`: (harmonic number, level in dB) pairs, the loudest at -10 dBm0."""
    t = np.arange(round(seconds * RATE)) / RATE
    x = sum(10 ** (db / 20) * np.sin(2 * np.pi * k * f0 * t + k) for k, db in harmonics)
    return pcm(shaped(dbm0_to_peak(-10) * x))


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("f0", [238.0, 240.0])
def test_a_high_voice_whose_harmonics_are_a_key_off_nominal_is_no_key(lead: int, f0: float) -> None:
    """Speech: harmonics 4 and 5 of a high voice near 238 Hz are a "*" 1.2-2 % off nominal,
    pure enough (0.96) and with its 3rd and 6th harmonics (at 2·low - high and 2·high -
    low) and its fundamental (at high - low) each under `INTERMOD_DB`; but a key that far
    off must keep those three `SERIES_DB` down in all, and they are at -10 dB. The same
    two harmonics alone are a key."""
    vowel = voice(f0, ((1, -16.0), (3, -14.0), (4, 0.0), (5, 0.0), (6, -18.0)))
    assert keys(vowel, lead) == ""
    assert keys(voice(f0, ((4, 0.0), (5, 0.0))), lead) == "*"


@pytest.mark.parametrize("key", "159*#D")
def test_nominal_key_with_a_voice_series_under_intermod_db_is_accepted(key: str) -> None:
    """`SERIES_DB` holds only off nominal: a key at its own frequencies keeps `INTERMOD_DB`,
    so the same components 14-18 dB down at 2·low - high, 2·high - low and high - low (a
    voice or music under it) do not cost it."""
    low, high = DTMF_FREQS[key]
    x = pair(low, high).astype(np.int32)
    for freq, db in ((abs(2 * low - high), -24.0), (2 * high - low, -28.0), (high - low, -26.0)):
        x += tone(freq, 0.1, level_dbm0=db)
    assert keys(pcm(x)) == key


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("key,start,end", [("*", 0.04, 0.0), ("5", 0.045, 0.01)])
def test_a_pair_that_glides_into_tolerance_is_no_key(
    key: str, start: float, end: float, lead: int
) -> None:
    """Speech harmonics drift: both tones glide over 150 ms from `start` off nominal (the
    low one above, the high one below) to `end`. The windows just outside `FREQ_TOL` are
    near misses of the key, and the run that follows them may not make an onset."""
    low, high = DTMF_FREQS[key]
    offset = np.linspace(start, end, 1200)
    x = np.sin(2 * np.pi * np.cumsum(low * (1 + offset)) / RATE)
    x += np.sin(2 * np.pi * np.cumsum(high * (1 - offset)) / RATE)
    assert keys(pcm(shaped(dbm0_to_peak(-10) * x, 0.005, 0.005)), lead) == ""


@pytest.mark.parametrize("lead", LEADS[:2])
@pytest.mark.parametrize("key", "159#")
@pytest.mark.parametrize("group", [0, 1])
def test_key_over_a_steady_tone_at_its_own_frequency(key: str, group: int, lead: int) -> None:
    """A key over a tone 12 dB under it at one of its own frequencies, there from 300 ms
    before: the tone's bin rises 12 dB, past `RISE_DB`."""
    bed = tone(DTMF_FREQS[key][group], 0.5, level_dbm0=-22).astype(np.int32)
    bed[2400:3200] += dtmf_tone(key, 0.1)
    assert keys(pcm(bed), lead) == key


def test_a_near_miss_of_one_key_does_not_block_another() -> None:
    """The near-miss memory is per key: a "5" 3 % off, then at once a "9"."""
    low, high = DTMF_FREQS["5"]
    both = np.concatenate([pair(low * 1.03, high), dtmf_tone("9", 0.1)])
    assert keys(both) == "9"


def test_long_press_is_reported_once_at_onset() -> None:
    detector = DtmfDetector(1)
    signal = np.concatenate([silence(0.1), dtmf_tone("7", 1.0), silence(0.1)])
    reported = [
        (i, events) for i, f in enumerate(frames(signal)) if (events := detector.process(f[None]))
    ]
    assert len(reported) == 1
    frame_index, events = reported[0]
    assert events == [(0, "7")]
    assert frame_index * 0.02 <= 0.1 + 0.04  # accepted within 40 ms of the tone's start


def test_channels_are_independent() -> None:
    n = 16
    detector = DtmfDetector(4)  # grows to 16 rows on the first call
    signals = [np.concatenate([silence(0.01 * i), dtmf_tone(KEYS[i], 0.08)]) for i in range(n)]
    length = max(s.size for s in signals) + 800
    pcm = np.zeros((n, length), np.int16)
    for i, s in enumerate(signals):
        pcm[i, : s.size] = s
    found: dict[int, str] = {}
    for start in range(0, length - 159, 160):
        for row, key in detector.process(pcm[:, start : start + 160]):
            found[row] = found.get(row, "") + key
    assert found == {i: KEYS[i] for i in range(n)}


def test_rows_subset_leaves_other_slots_untouched() -> None:
    detector = DtmfDetector(4)
    press = frames(np.concatenate([dtmf_tone("3", 0.5), silence(0.1)]))
    reported: list[tuple[int, str]] = []
    for i, f in enumerate(press):
        pcm = np.tile(f, (4, 1))
        # slot 0 is analysed for 100 ms, skipped for 200 ms, analysed again while still held
        rows = np.array([0, 2]) if i < 5 or i >= 15 else np.array([2])
        reported += detector.process(pcm, rows)
    assert sorted(reported) == [(0, "3"), (2, "3")]


def test_empty_rows_is_a_no_op() -> None:
    detector = DtmfDetector(2)
    assert detector.process(np.zeros((2, 160), np.int16), np.array([], np.intp)) == []


def test_reset_forgets_the_held_key() -> None:
    detector = DtmfDetector(2)
    press = frames(dtmf_tone("9", 0.4))
    got = [e for f in press[:10] for e in detector.process(np.tile(f, (2, 1)))]
    assert sorted(got) == [(0, "9"), (1, "9")]
    detector.reset(1)  # slot 1 now carries a new call that is mid-tone
    got = [e for f in press[10:] for e in detector.process(np.tile(f, (2, 1)))]
    assert got == [(1, "9")]


def test_move_carries_a_slot_over() -> None:
    detector = DtmfDetector(4)
    press = frames(dtmf_tone("8", 0.4))
    got = [e for f in press[:8] for e in detector.process(np.tile(f, (4, 1)), np.array([3]))]
    detector.move(3, 1)  # the engine compacted its slots: slot 3's channel is now in 1
    got += [e for f in press[8:] for e in detector.process(np.tile(f, (4, 1)), np.array([1]))]
    assert got == [(3, "8")]  # still the same press: no second report


def test_ensure_capacity_keeps_state() -> None:
    detector = DtmfDetector(1)
    press = frames(dtmf_tone("0", 0.3))
    got = [e for f in press[:6] for e in detector.process(f[None])]
    detector.ensure_capacity(1000)
    got += [
        e
        for f in press[6:]
        for e in detector.process(np.vstack([f, np.zeros((999, 160))]).astype(np.int16))
    ]
    assert got == [(0, "0")]


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 80), np.int16), np.zeros(160, np.int16), np.zeros((1, 160))]
)
def test_bad_frame_shape_or_type_raises(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="int16"):
        DtmfDetector(2).process(bad)


@pytest.mark.parametrize("rate,frame", [(8000, 80), (8000, 240), (16000, 320)])
def test_other_frame_sizes_and_rates(rate: int, frame: int) -> None:
    signal = dtmf_digits("258#", tone_s=0.05, gap_s=0.05)
    if rate != 8000:
        signal = resample(signal, 8000, rate)
    detector = DtmfDetector(1, rate=rate, frame=frame)
    got = "".join(k for f in frames(signal, frame) for _, k in detector.process(f[None]))
    assert got == "258#"


def test_bad_rate_raises() -> None:
    with pytest.raises(ValueError, match="rate"):
        DtmfDetector(rate=11025)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_detect_digits_resamples(rate: int) -> None:
    signal = resample(dtmf_digits("0123456789", tone_s=0.05, gap_s=0.05), 8000, rate)
    assert detect_digits(signal, rate) == "0123456789"


def write_wav(path: Path, pcm: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "media.dsp.dtmf", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_cli_prints_digits(tmp_path: Path, rate: int) -> None:
    signal = dtmf_digits("*2024#", tone_s=0.06, gap_s=0.06)
    if rate != 8000:
        signal = resample(signal, 8000, rate)
    write_wav(tmp_path / "x.wav", signal, rate)
    done = run_cli(str(tmp_path / "x.wav"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "*2024#\n", "")


def test_cli_uses_the_first_channel(tmp_path: Path) -> None:
    left, right = dtmf_digits("159"), dtmf_digits("357")
    write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1).reshape(-1), 8000, 2)
    done = run_cli(str(tmp_path / "st.wav"))
    assert (done.returncode, done.stdout) == (0, "159\n")


def test_cli_missing_file(tmp_path: Path) -> None:
    done = run_cli(str(tmp_path / "nope.wav"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"dtmf: cannot decode {tmp_path / 'nope.wav'}: ")
    assert done.stdout == ""


def test_cli_undecodable_file(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all\n" * 10)
    done = run_cli(str(tmp_path / "junk.wav"))
    assert done.returncode == 2
    assert done.stderr.startswith("dtmf: cannot decode ")
