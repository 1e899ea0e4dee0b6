"""DTMF in SIP INFO bodies: application/dtmf-relay and application/dtmf."""

from __future__ import annotations

import pytest

from signaling.dtmf_info import (
    BadDtmfInfo,
    DtmfInfo,
    UnsupportedDtmfInfo,
    parse_dtmf_info,
)

RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (RELAY, b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        (RELAY, "Signal=5\r\nDuration=160", ("5", 160)),
        (RELAY, b"Signal=#\nDuration=250\n", ("#", 250)),
        (RELAY, b"signal= *\r\nduration= 100\r\n", ("*", 100)),
        (RELAY, b"Signal=10\r\nDuration=100\r\n", ("*", 100)),
        (RELAY, b"Signal=11\r\n", ("#", None)),
        (RELAY, b"Signal=a\r\nDuration=0\r\n", ("A", 0)),
        (RELAY, b"Signal=15\r\n", ("D", None)),
        (RELAY, b"\r\nSignal=0\r\nDuration=80\r\nVolume=10\r\n\r\n", ("0", 80)),
        ("Application/DTMF-Relay; charset=utf-8", b"Signal=9", ("9", None)),
        (DTMF, b"5", ("5", None)),
        (DTMF, b"#\r\n", ("#", None)),
        (DTMF, b" * ", ("*", None)),
        (DTMF, b"10", ("*", None)),
        (DTMF, b"11", ("#", None)),
        (DTMF, b"12", ("A", None)),
        (DTMF, "d", ("D", None)),
    ],
)
def test_parses(content_type: str, body: bytes | str, expected: tuple[str, int | None]) -> None:
    info = parse_dtmf_info(content_type, body)
    assert info == DtmfInfo(*expected) and info == expected


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (RELAY, b"", "has no Signal= line"),
        (RELAY, b"Duration=160\r\n", "has no Signal= line"),
        (RELAY, b"Signal 5\r\n", "line 'Signal 5' is not key=value"),
        (RELAY, b"Signal=\r\n", "signal empty is not a DTMF digit"),
        (RELAY, b"Signal=16\r\n", "signal '16' is not a DTMF digit"),
        (RELAY, b"Signal=55\r\n", "signal '55' is not a DTMF digit"),
        (RELAY, b"Signal=E\r\n", "signal 'E' is not a DTMF digit"),
        (RELAY, b"Signal=5\r\nSignal=6\r\n", "has Signal twice"),
        (RELAY, b"Signal=5\r\nDuration=abc\r\n", "Duration must be a whole number"),
        (RELAY, b"Signal=5\r\nDuration=-5\r\n", "Duration must be a whole number"),
        (RELAY, b"Signal=5\r\nDuration=\r\n", "Duration must be a whole number"),
        (RELAY, b"Signal=\xff\r\n", "not UTF-8"),
        (RELAY, b"Signal=5\r\n" + b"x=y\r\n" * 300, "longer than 1024 bytes"),
        (DTMF, b"", "signal empty is not a DTMF digit"),
        (DTMF, b"55", "signal '55' is not a DTMF digit"),
        (DTMF, b"Signal=5", "is not a DTMF digit"),
    ],
)
def test_bad_bodies_are_400(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(BadDtmfInfo, match=message) as info:
        parse_dtmf_info(content_type, body)
    assert info.value.status_code == 400
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("content_type", ["text/plain", "application/sdp", "", "application/x"])
def test_other_content_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedDtmfInfo, match="unsupported INFO content type") as info:
        parse_dtmf_info(content_type, b"Signal=5")
    assert info.value.status_code == 415
