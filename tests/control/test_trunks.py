"""Trunk addresses: destinations, and which senders an outbound trunk accepts (CIDR)."""

from __future__ import annotations

from typing import Any

import pytest

from control.trunks import address_allowed, destination_uri, lists_address, split_destination


def trunk(*entries: tuple[str, str]) -> dict[str, Any]:
    return {"outbound": {"authentication": [{"source": s, "value": v} for s, v in entries]}}


@pytest.mark.parametrize("source_ip,allowed", [
    ("203.0.113.7", True), ("203.0.113.255", True), ("203.0.114.1", False),
    ("127.0.0.1", False), ("10.200.3.4", True), ("198.51.100.10", True),
    ("198.51.100.11", False), ("2001:db8::1", True), ("2001:db9::1", False),
    ("not an address", False),
])
def test_cidr_and_single_addresses(source_ip: str, allowed: bool) -> None:
    t = trunk(("other", "203.0.113.0/24"), ("other", "10.0.0.0/8"),
              ("other", "198.51.100.10"), ("other", "2001:db8::/32"))
    assert address_allowed(t, source_ip) is allowed


def test_loopback_against_a_cidr_that_excludes_it() -> None:
    assert not address_allowed(trunk(("other", "10.0.0.0/8")), "127.0.0.1")
    assert address_allowed(trunk(("other", "127.0.0.0/8")), "127.0.0.1")
    assert address_allowed(trunk(("other", "10.0.0.1/8")), "10.9.9.9")  # host bits ignored


def test_twilio_account_sid_header() -> None:
    t = trunk(("twilio", "AC123"))
    assert address_allowed(t, "192.0.2.1", {"X-Twilio-AccountSid": "AC123"})
    assert address_allowed(t, "192.0.2.1", {"x-twilio-accountsid": "AC123"})
    assert not address_allowed(t, "192.0.2.1", {"X-Twilio-AccountSid": "AC999"})
    assert not address_allowed(t, "192.0.2.1")
    assert not lists_address(t, "192.0.2.1")  # a SID is no address


@pytest.mark.parametrize("dest,uri", [
    ("10.0.0.5", "sip:+19495551212@10.0.0.5"),
    ("pbx.example.com:5080", "sip:+19495551212@pbx.example.com:5080"),
    ("sip:127.0.0.1:5099", "sip:+19495551212@127.0.0.1:5099"),
    ("sip:bob@127.0.0.1:5099", "sip:bob@127.0.0.1:5099"),
    ("[2001:db8::1]:5060", "sip:+19495551212@[2001:db8::1]:5060"),
])
def test_destination_uri(dest: str, uri: str) -> None:
    assert destination_uri(dest, "+19495551212") == uri


@pytest.mark.parametrize("dest", ["bad host", "h:0", "h:x", "-h", "a@b@c d"])
def test_bad_destinations(dest: str) -> None:
    with pytest.raises(ValueError):
        split_destination(dest)
