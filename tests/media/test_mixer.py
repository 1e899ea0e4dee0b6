"""The conference mixing kernel (`media.dsp.mixer`) on seeded synthetic signals."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.dsp.mixer import Mixer, mix

S = 160
AMP = 3000
# One 20 ms frame has 50 Hz bins: each channel's sine sits exactly on its own bin.
FREQS = (400, 650, 900, 1150, 1400, 1650, 1900, 2150)


def sines(count: int, amp: int = AMP) -> npt.NDArray[np.int16]:
    t = np.arange(S) / 8000
    rows = [amp * np.sin(2 * np.pi * FREQS[i] * t + 0.3 * i) for i in range(count)]
    return np.rint(rows).astype(np.int16)


def heard(row: npt.NDArray[np.int16], count: int) -> set[int]:
    """Which of the first `count` channels' sines are in `row` (by FFT bin)."""
    spectrum = np.abs(np.fft.rfft(row.astype(np.float64))) / (S / 2)
    levels = [spectrum[f // 50] for f in FREQS[:count]]
    assert all(level > 0.9 * AMP or level < 1.0 for level in levels), levels
    return {i for i, level in enumerate(levels) if level > 0.9 * AMP}


def flags(
    n: int,
    group: list[int] | None = None,
    talks: list[bool] | None = None,
    listens: list[bool] | None = None,
    whisper: list[int] | None = None,
) -> tuple[
    npt.NDArray[np.int32], npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.int32]
]:
    return (
        np.array(group if group is not None else [0] * n, np.int32),
        np.array(talks if talks is not None else [True] * n, np.bool_),
        np.array(listens if listens is not None else [True] * n, np.bool_),
        np.array(whisper if whisper is not None else [-1] * n, np.int32),
    )


def brute(
    pcm: npt.NDArray[np.int16],
    group: npt.NDArray[np.int32],
    talks: npt.NDArray[np.bool_],
    listens: npt.NDArray[np.bool_],
    whisper: npt.NDArray[np.int32],
) -> npt.NDArray[np.int64]:
    """The definition, one pair at a time, in int64; rows that do not listen are zero."""
    n = len(group)
    out = np.zeros(pcm.shape, np.int64)
    for i in range(n):
        if group[i] < 0 or not listens[i]:
            continue
        for j in range(n):
            if j == i:
                continue
            if group[j] == group[i] and talks[j] and whisper[j] < 0:
                out[i] += pcm[j]
            if whisper[j] == i:
                out[i] += pcm[j]
    return out


def test_each_member_hears_exactly_the_others() -> None:
    pcm = sines(6)
    out = mix(pcm, *flags(6))
    for i in range(6):
        assert heard(out[i], 6) == set(range(6)) - {i}


def test_total_minus_self_is_exact_in_int32_before_saturation() -> None:
    rng = np.random.default_rng(7)
    n = 64
    pcm = rng.integers(-32768, 32768, (n, S), dtype=np.int16)
    group, talks, listens, whisper = flags(n, group=(np.arange(n) % 3).tolist())
    mixer = Mixer()
    mixer.plan(group, talks, listens, whisper)
    acc = mixer.accumulate(pcm)
    assert acc.dtype == np.int32
    expected = brute(pcm, group, talks, listens, whisper)
    assert np.abs(expected).max() > 32767  # the sums do leave the int16 range
    np.testing.assert_array_equal(acc, expected[mixer.rows])
    assert sorted(mixer.rows.tolist()) == list(range(n))


def test_loud_inputs_saturate() -> None:
    pcm = np.full((4, S), 20000, np.int16)
    pcm[3] = -20000
    out = mix(pcm, *flags(4))
    assert (out[0] == 20000).all()  # 20000 + 20000 - 20000
    assert (out[3] == 32767).all()  # 60000 clipped
    pcm[:3] = -30000
    out = mix(pcm, *flags(4))
    assert (out[3] == -32768).all()  # -90000 clipped
    assert (out[0] == -32768).all()  # -30000 - 30000 - 20000 clipped


def test_saturation_where_listeners_are_not_consecutive_slots() -> None:
    pcm = np.full((5, S), 20000, np.int16)
    group, talks, listens, whisper = flags(5, group=[0, -1, 0, 0, 0], talks=[False] + [True] * 4)
    mixer = Mixer()
    mixer.plan(group, talks, listens, whisper)
    assert mixer.rows.tolist() == [2, 3, 4, 0]  # gathered and scattered, not a slice
    out = np.full((5, S), 7, np.int16)
    mixer.mix_into(pcm, out)
    assert (out[[0, 2, 3, 4]] == 32767).all() and (out[1] == 7).all()
    out[:] = -30000
    mixer.mix_into(-pcm, out)
    assert (out[[0, 2, 3, 4]] == -32768).all() and (out[1] == -30000).all()


def test_muted_member_is_heard_by_nobody_but_hears_everyone() -> None:
    pcm = sines(5)
    out = mix(pcm, *flags(5, talks=[True, False, True, True, True]))
    assert heard(out[1], 5) == {0, 2, 3, 4}
    for i in (0, 2, 3, 4):
        assert heard(out[i], 5) == {0, 2, 3, 4} - {i}


def test_member_on_hold_keeps_its_own_output() -> None:
    pcm = sines(4)
    player = np.zeros((4, S), np.int16)
    player[2] = sines(8)[7]  # its hold music
    mixer = Mixer()
    mixer.plan(*flags(4, talks=[True, True, False, True], listens=[True, True, False, True]))
    out = player.copy()
    mixer.mix_into(pcm, out)
    np.testing.assert_array_equal(out[2], player[2])
    for i in (0, 1, 3):
        assert heard(out[i], 8) == {0, 1, 3} - {i}


def test_player_audio_is_added_to_the_mix_and_saturated() -> None:
    pcm = sines(3)
    beep = sines(8)[6]
    out = np.zeros((3, S), np.int16)
    out[1] = beep
    mixer = Mixer()
    mixer.plan(*flags(3))
    mixer.mix_into(pcm, out)
    assert heard(out[1], 8) == {0, 2, 6}
    assert heard(out[0], 8) == {1, 2}
    loud = np.full((3, S), 30000, np.int16)
    out = np.full((3, S), 30000, np.int16)
    mixer.mix_into(loud, out)
    assert (out == 32767).all()
    out = np.full((3, S), 5, np.int16)
    mixer.mix_into(pcm, out, add_out=False)  # replaces instead of adding
    np.testing.assert_array_equal(out[0], pcm[1].astype(np.int32) + pcm[2])


def test_whisper_is_heard_by_its_target_only() -> None:
    pcm = sines(5)
    # Slot 4 whispers to slot 1: not a group talker, heard by 1 alone; it hears everyone.
    group, talks, listens, whisper = flags(
        5, talks=[True, True, True, True, False], whisper=[-1, -1, -1, -1, 1]
    )
    out = mix(pcm, group, talks, listens, whisper)
    assert heard(out[1], 5) == {0, 2, 3, 4}
    for i in (0, 2, 3):
        assert heard(out[i], 5) == {0, 1, 2, 3} - {i}
    assert heard(out[4], 5) == {0, 1, 2, 3}


def test_two_whisperers_to_one_target_add_up() -> None:
    pcm = sines(4)
    group, talks, listens, whisper = flags(
        4, talks=[True, True, False, False], whisper=[-1, -1, 0, 0]
    )
    out = mix(pcm, group, talks, listens, whisper)
    assert heard(out[0], 4) == {1, 2, 3}
    assert heard(out[1], 4) == {0}
    assert heard(out[2], 4) == {0, 1} and heard(out[3], 4) == {0, 1}


def test_whisper_to_a_member_not_listening_is_dropped() -> None:
    pcm = sines(3)
    group, talks, listens, whisper = flags(
        3, talks=[True, False, False], listens=[True, True, False], whisper=[-1, 2, -1]
    )
    out = mix(pcm, group, talks, listens, whisper)
    assert not out[2].any()
    assert heard(out[0], 3) == set()
    assert heard(out[1], 3) == {0}


def test_groups_are_independent_and_non_members_untouched() -> None:
    pcm = sines(8)
    group = [0, 0, 5, 5, 5, -1, 0, -1]
    mixer = Mixer()
    mixer.plan(*flags(8, group=group))
    out = np.full((8, S), 123, np.int16)
    mixer.mix_into(pcm, out, add_out=False)
    assert heard(out[0], 8) == {1, 6}
    assert heard(out[6], 8) == {0, 1}
    assert heard(out[3], 8) == {2, 4}
    assert (out[5] == 123).all() and (out[7] == 123).all()
    assert sorted(mixer.group_ids.tolist()) == [0, 5]


def test_group_audio_is_heard_by_its_listeners_only() -> None:
    pcm = sines(5)
    beep = sines(8)[7]
    group, talks, listens, whisper = flags(
        5, group=[0, 0, 0, 1, 1], talks=[True, True, False, True, True],
        listens=[True, True, False, True, True],
    )  # fmt: skip
    out = mix(pcm, group, talks, listens, whisper, group_pcm={0: beep, 9: beep})
    assert heard(out[0], 8) == {1, 7} and heard(out[1], 8) == {0, 7}
    assert not out[2].any()
    assert heard(out[3], 8) == {4} and heard(out[4], 8) == {3}


def test_group_without_talkers_hears_silence_then_group_audio() -> None:
    pcm = sines(3)
    mixer = Mixer()
    mixer.plan(*flags(3, group=[0, 1, 1], talks=[True, False, False]))
    out = np.zeros((3, S), np.int16)
    beep = sines(8)[5]
    mixer.mix_into(pcm, out, group_pcm={1: beep}, add_out=False)
    assert heard(out[1], 8) == {5} and heard(out[2], 8) == {5}
    mixer.mix_into(pcm, out, add_out=False)  # the group's total starts from zero again
    assert not out[1].any() and not out[2].any() and not out[0].any()


@pytest.mark.parametrize("seed", range(12))
def test_random_memberships_match_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    pcm = rng.integers(-12000, 12000, (n, S), dtype=np.int16)
    group = rng.integers(-1, 7, n).astype(np.int32) * 3  # sparse ids, uneven sizes
    talks = rng.random(n) < 0.7
    listens = rng.random(n) < 0.85
    whisper = np.where(rng.random(n) < 0.1, rng.integers(0, n, n), -1).astype(np.int32)
    expected = np.clip(brute(pcm, group, talks, listens, whisper), -32768, 32767)
    np.testing.assert_array_equal(mix(pcm, group, talks, listens, whisper), expected)


def test_replanning_reuses_the_mixer() -> None:
    pcm = sines(6)
    mixer = Mixer()
    mixer.plan(*flags(6))
    out = np.zeros((6, S), np.int16)
    mixer.mix_into(pcm, out, add_out=False)
    assert heard(out[0], 6) == {1, 2, 3, 4, 5}
    mixer.plan(*flags(3))  # fewer slots: rows 3-5 are no longer touched
    out[:] = 0
    mixer.mix_into(pcm, out, add_out=False)
    assert heard(out[0], 6) == {1, 2} and not out[3:].any()
    mixer.plan(*flags(6, group=[-1] * 6))
    assert len(mixer.accumulate(pcm)) == 0


def test_bad_arguments() -> None:
    mixer = Mixer()
    with pytest.raises(ValueError, match="same length"):
        mixer.plan([0, 0], [True], [True, True], [-1, -1])
    mixer.plan(*flags(4))
    with pytest.raises(ValueError, match="plan needs 4"):
        mixer.accumulate(sines(3))
