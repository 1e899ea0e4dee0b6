"""G.711 µ-law and A-law for the harness (ITU-T G.711), independent of the switch's codec.

Decoding is a 256-entry lookup table; encoding is the classic segment search, vectorised.
Both match `audioop` bit for bit (checked in test_harness_audio.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PT_PCMU = 0
PT_PCMA = 8

_BIAS = 0x84


def _ulaw_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.uint8)
    exp = (u >> 4) & 7
    mant = u & 15
    mag = (((mant.astype(np.int32) << 3) + _BIAS) << exp) - _BIAS
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exp = (a >> 4) & 7
    mant = a & 15
    mag = np.where(exp == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(exp - 1, 0))
    return np.where(a & 0x80, mag, -mag).astype(np.int16)


ULAW_TO_PCM = _ulaw_table()
ALAW_TO_PCM = _alaw_table()


def ulaw_decode(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Raw µ-law bytes to int16 PCM."""
    return ULAW_TO_PCM[np.frombuffer(bytes(data), dtype=np.uint8)]


def alaw_decode(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Raw A-law bytes to int16 PCM."""
    return ALAW_TO_PCM[np.frombuffer(bytes(data), dtype=np.uint8)]


def decode(data: bytes, payload_type: int) -> npt.NDArray[np.int16]:
    """Decode one payload by its static RTP payload type (0 PCMU, 8 PCMA)."""
    if payload_type == PT_PCMU:
        return ulaw_decode(data)
    if payload_type == PT_PCMA:
        return alaw_decode(data)
    raise ValueError(f"not a G.711 payload type: {payload_type}")


def _segment(mag: npt.NDArray[np.int32], shift: int) -> npt.NDArray[np.int32]:
    """Index of the highest set bit above `shift`, clamped to 0..7 (the G.711 segment)."""
    seg = np.zeros(mag.shape, dtype=np.int32)
    for s in range(1, 8):
        seg = np.where(mag >= (1 << (s + shift)), s, seg)
    return seg


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """int16 PCM to raw µ-law bytes."""
    x = np.asarray(pcm, dtype=np.int32) >> 2  # 14-bit, as audioop/G.191 do
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.minimum(np.abs(x), 8159) + (_BIAS >> 2), 0x1FFF)
    seg = _segment(mag, 5)
    code = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    return bytes(((code ^ mask) & 0xFF).astype(np.uint8).tobytes())


def alaw_encode(pcm: npt.ArrayLike) -> bytes:
    """int16 PCM to raw A-law bytes."""
    x = np.asarray(pcm, dtype=np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1) >> 3  # 13-bit magnitude, as audioop/G.191 do
    mag = np.minimum(mag, 0xFFF)
    seg = _segment(mag, 4)
    mant = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    return bytes(((sign | (seg << 4) | mant) ^ 0x55).astype(np.uint8).tobytes())
