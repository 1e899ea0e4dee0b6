"""G.711 µ-law (PCMU) and A-law (PCMA) with numpy lookup tables.

The tables are built once, vectorised, from the ITU-T G.191 reference algorithm
(`g711.c`: `ulaw_compress`, `ulaw_expand`, `alaw_compress`, `alaw_expand`), so every
code and every 16-bit sample is bit-exact with it. Note that G.191 takes the magnitude of
a negative sample as its one's complement (``~x``), which differs from the Sun/`audioop`
code for a few small negative values; we follow G.191.

Decoding is one `np.take` on a 256-entry int16 table; encoding is one `np.take` on a
65536-entry uint8 table indexed by the int16 sample viewed as uint16. Both work on any
shape, typically a whole tick of frames, (N, 160).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PCMU = 0
"""RTP static payload type of G.711 µ-law (RFC 3551)."""
PCMA = 8
"""RTP static payload type of G.711 A-law (RFC 3551)."""

ULAW_SILENCE = 0xFF
"""µ-law code that decodes to 0."""
ALAW_SILENCE = 0xD5
"""A-law code of the smallest positive step (decodes to +8; A-law has no zero)."""

U8Array = npt.NDArray[np.uint8]
I16Array = npt.NDArray[np.int16]


def _bit_length(v: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    # Exact integer bit length for 0 <= v < 2**12 (searchsorted avoids float log2 edges).
    powers = 1 << np.arange(12, dtype=np.int32)
    return np.searchsorted(powers, v, side="right").astype(np.int32)


def _all_int16() -> npt.NDArray[np.int32]:
    # Index i of an encode table is the int16 sample whose uint16 view is i.
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> U8Array:
    x = _all_int16()
    # G.191 ulaw_compress: 14-bit magnitude, one's complement for negatives, bias 33.
    absno = np.where(x < 0, (~x) >> 2, x >> 2) + 33
    absno = np.minimum(absno, 0x1FFF)
    segno = _bit_length(absno >> 6) + 1
    high = 8 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    return code.astype(np.uint8)


def _build_ulaw_decode() -> I16Array:
    codes = np.arange(256, dtype=np.int32)
    sign = np.where(codes < 0x80, -1, 1)
    mantissa = ~codes
    exponent = (mantissa >> 4) & 0x07
    step = 4 << (exponent + 1)
    mantissa = mantissa & 0x0F
    mag = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    return (sign * mag).astype(np.int16)


def _build_alaw_encode() -> U8Array:
    x = _all_int16()
    ix = np.where(x < 0, (~x) >> 4, x >> 4)
    # G.191 alaw_compress normalises ix > 15 into [16, 31] counting shifts in iexp; the
    # shift count is the bit length minus 5, and the segment is one more than that.
    iexp = np.maximum(_bit_length(ix) - 4, 1)
    seg = ((ix >> (iexp - 1)) - 16) + (iexp << 4)
    code = np.where(ix > 15, seg, ix)
    code = np.where(x >= 0, code | 0x80, code)
    return (code ^ 0x55).astype(np.uint8)


def _build_alaw_decode() -> I16Array:
    codes = np.arange(256, dtype=np.int32)
    ix = (codes ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    mant = np.where(iexp > 0, mant + 16, mant)
    mant = (mant << 4) + 0x08
    mant = np.where(iexp > 1, mant << np.maximum(iexp - 1, 0), mant)
    return np.where(codes > 127, mant, -mant).astype(np.int16)


ULAW_ENCODE: U8Array = _build_ulaw_encode()
ULAW_DECODE: I16Array = _build_ulaw_decode()
ALAW_ENCODE: U8Array = _build_alaw_encode()
ALAW_DECODE: I16Array = _build_alaw_decode()
for _table in (ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _table.flags.writeable = False

ENCODE_TABLES: dict[int, U8Array] = {PCMU: ULAW_ENCODE, PCMA: ALAW_ENCODE}
"""Encode table by static payload type."""
DECODE_TABLES: dict[int, I16Array] = {PCMU: ULAW_DECODE, PCMA: ALAW_DECODE}
"""Decode table by static payload type."""
SILENCE_CODES: dict[int, int] = {PCMU: ULAW_SILENCE, PCMA: ALAW_SILENCE}
"""Silence code by static payload type."""


def _encode(table: U8Array, pcm: npt.ArrayLike, out: U8Array | None) -> U8Array:
    samples = np.ascontiguousarray(pcm, dtype=np.int16)
    if out is None:
        return np.take(table, samples.view(np.uint16))
    return np.take(table, samples.view(np.uint16), out=out)


def _decode(table: I16Array, codes: npt.ArrayLike, out: I16Array | None) -> I16Array:
    data = np.asarray(codes, dtype=np.uint8)
    if out is None:
        return np.take(table, data)
    return np.take(table, data, out=out)


def ulaw_encode(pcm: npt.ArrayLike, out: U8Array | None = None) -> U8Array:
    """Encode int16 samples (any shape) to µ-law codes."""
    return _encode(ULAW_ENCODE, pcm, out)


def ulaw_decode(codes: npt.ArrayLike, out: I16Array | None = None) -> I16Array:
    """Decode µ-law codes (any shape, uint8) to int16 samples."""
    return _decode(ULAW_DECODE, codes, out)


def alaw_encode(pcm: npt.ArrayLike, out: U8Array | None = None) -> U8Array:
    """Encode int16 samples (any shape) to A-law codes."""
    return _encode(ALAW_ENCODE, pcm, out)


def alaw_decode(codes: npt.ArrayLike, out: I16Array | None = None) -> I16Array:
    """Decode A-law codes (any shape, uint8) to int16 samples."""
    return _decode(ALAW_DECODE, codes, out)


def encode(payload_type: int, pcm: npt.ArrayLike) -> bytes:
    """Encode int16 samples with the codec of a static payload type (0 or 8) to bytes."""
    return _encode(ENCODE_TABLES[payload_type], pcm, None).tobytes()


def decode(payload_type: int, payload: bytes) -> I16Array:
    """Decode a G.711 payload of a static payload type (0 or 8) to int16 samples."""
    return np.take(DECODE_TABLES[payload_type], np.frombuffer(payload, dtype=np.uint8))
