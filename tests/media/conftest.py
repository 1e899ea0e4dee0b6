"""Fixtures shared by the media tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from media import jitter, rtcp, udpio
from media.dsp import dtmf
from tests.support.udp import UdpPeer


@pytest.fixture(params=["c", "numpy"])
def dtmf_kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once with the compiled DTMF kernel and once with the numpy reference
    (every `DtmfDetector()` made with the default ``kernel="auto"`` picks it)."""
    if request.param == "numpy":
        monkeypatch.setattr(dtmf, "_compiled", None)
    elif dtmf._compiled is None:
        pytest.fail(f"the compiled DTMF kernel is not built ({dtmf._compiled_error}): run make")
    yield request.param


@pytest.fixture(params=["c", "python"])
def rtp_kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the compiled receive path (`media._udpio`: receive set, its
    per-packet fast path, jitter buffer and reception statistics) and with the Python
    one; an engine or channel made while the fixture is active uses the chosen one."""
    if request.param == "c":
        if udpio.KERNEL != "c":
            pytest.fail(f"the compiled RTP I/O is not built ({udpio._compiled_error}): run make")
    else:
        monkeypatch.setattr(udpio, "KERNEL", "python")
        monkeypatch.setattr(udpio, "RtpSockets", udpio.PyRtpSockets)
        monkeypatch.setattr(udpio, "RtpStream", None)
        monkeypatch.setattr(udpio, "JitterBuffer", jitter.JitterBuffer)
        monkeypatch.setattr(udpio, "ReceptionStats", rtcp.ReceptionStats)
        monkeypatch.setattr(udpio, "gather", udpio.py_gather)
    yield request.param


@pytest.fixture
def peer() -> Iterator[UdpPeer]:
    """The far end's RTP port."""
    p = UdpPeer()
    yield p
    p.close()
