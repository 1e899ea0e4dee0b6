"""Fixtures shared by the media tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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


@pytest.fixture
def peer() -> Iterator[UdpPeer]:
    """The far end's RTP port."""
    p = UdpPeer()
    yield p
    p.close()
