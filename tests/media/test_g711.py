"""G.711 tables against a straightforward transcription of the ITU-T G.191 reference."""

from __future__ import annotations

import numpy as np
import pytest

from media import g711

# --- ITU-T G.191 STL g711.c, transcribed one sample at a time (the independent oracle) ---


def ref_ulaw_compress(lin: int) -> int:
    absno = ((~lin) >> 2) + 33 if lin < 0 else (lin >> 2) + 33
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    log = (high_nibble << 4) | low_nibble
    if lin >= 0:
        log |= 0x0080
    return log


def ref_ulaw_expand(log: int) -> int:
    sign = -1 if log < 0x0080 else 1
    mantissa = ~log
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_alaw_compress(lin: int) -> int:
    ix = (~lin) >> 4 if lin < 0 else lin >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if lin >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_alaw_expand(log: int) -> int:
    ix = (log ^ 0x0055) & 0x007F
    iexp = ix >> 4
    mant = ix & 0x000F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if log > 127 else -mant


ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32)
ALL_CODES = np.arange(256, dtype=np.int32)


@pytest.mark.parametrize(
    ("fn", "ref"),
    [(g711.ulaw_encode, ref_ulaw_compress), (g711.alaw_encode, ref_alaw_compress)],
)
def test_encode_matches_g191_for_every_sample(fn: object, ref: object) -> None:
    expected = np.array([ref(int(x)) for x in ALL_SAMPLES], dtype=np.uint8)  # type: ignore[operator]
    got = fn(ALL_SAMPLES.astype(np.int16))  # type: ignore[operator]
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("fn", "ref"),
    [(g711.ulaw_decode, ref_ulaw_expand), (g711.alaw_decode, ref_alaw_expand)],
)
def test_decode_matches_g191_for_every_code(fn: object, ref: object) -> None:
    expected = np.array([ref(int(c)) for c in ALL_CODES], dtype=np.int16)
    got = fn(ALL_CODES.astype(np.uint8))  # type: ignore[operator]
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, expected)


def test_encode_table_is_indexed_by_uint16_view() -> None:
    for x in (-32768, -1, 0, 1, 32767):
        idx = int(np.array([x], dtype=np.int16).view(np.uint16)[0])
        assert g711.ULAW_ENCODE[idx] == ref_ulaw_compress(x)
        assert g711.ALAW_ENCODE[idx] == ref_alaw_compress(x)


def test_silence_codes() -> None:
    assert g711.ulaw_encode(np.zeros(1, np.int16))[0] == g711.ULAW_SILENCE
    assert g711.ulaw_decode(np.array([g711.ULAW_SILENCE], np.uint8))[0] == 0
    assert g711.alaw_encode(np.zeros(1, np.int16))[0] == g711.ALAW_SILENCE
    assert g711.alaw_decode(np.array([g711.ALAW_SILENCE], np.uint8))[0] == 8


@pytest.mark.parametrize(
    ("enc", "dec"), [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)]
)
def test_decode_encode_is_identity_on_codes(enc: object, dec: object) -> None:
    codes = np.arange(256, dtype=np.uint8)
    back = enc(dec(codes))  # type: ignore[operator]
    # µ-law has two codes for zero (0x7F and 0xFF); G.191 encodes 0 as 0xFF.
    expected = codes.copy()
    if enc is g711.ulaw_encode:
        expected[0x7F] = 0xFF
    np.testing.assert_array_equal(back, expected)


def test_vectorised_over_frames_with_out() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, size=(50, 160)).astype(np.int16)
    out = np.empty((50, 160), np.uint8)
    res = g711.ulaw_encode(pcm, out=out)
    assert res is out
    assert out.shape == (50, 160)
    dec = np.empty((50, 160), np.int16)
    g711.ulaw_decode(out, out=dec)
    # Re-encoding a decoded value gives the same code: quantisation is idempotent.
    np.testing.assert_array_equal(g711.ulaw_encode(dec), out)


def test_bytes_helpers_round_trip() -> None:
    pcm = g711.ulaw_decode(np.arange(256, dtype=np.uint8))
    payload = g711.encode(g711.PCMU, pcm)
    assert isinstance(payload, bytes) and len(payload) == 256
    np.testing.assert_array_equal(g711.decode(g711.PCMU, payload), pcm)
    a = g711.decode(g711.PCMA, g711.encode(g711.PCMA, pcm))
    np.testing.assert_array_equal(g711.decode(g711.PCMA, g711.encode(g711.PCMA, a)), a)


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE[0] = 1
