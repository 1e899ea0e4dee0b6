"""Dial parameters and where a dial goes."""

from __future__ import annotations

import pytest

from control.calls import CallStatus
from control.dialing import DialError, NoRoute, parse_dial, route_for
from control.outbound import status_for_failure
from control.settings import Settings

PROXY = Settings(outbound_proxy="sip:127.0.0.1:5070", outbound_username="u",
                 outbound_password="p")


@pytest.mark.parametrize(("no", "target"), [
    ("sip:bob@127.0.0.1:5090", "sip:bob@127.0.0.1:5090"),
    ("bob@127.0.0.1:5090", "sip:bob@127.0.0.1:5090"),
    ("abc123@sip.mypbx.com", "sip:abc123@sip.mypbx.com"),
    ("sip:bob@127.0.0.1:5090;transport=tcp", "sip:bob@127.0.0.1:5090;transport=tcp"),
])
def test_sip_destinations_are_dialled_directly(no: str, target: str) -> None:
    route = route_for(no, Settings())
    assert (route.target, route.proxy, route.credentials) == (target, None, None)


@pytest.mark.parametrize("no", ["+19495551212", "19495551212", "911"])
def test_numbers_go_to_the_outbound_proxy_with_its_credentials(no: str) -> None:
    route = route_for(no, PROXY)
    assert route.target == f"sip:{no}@127.0.0.1:5070"
    assert route.proxy == "sip:127.0.0.1:5070"
    assert route.credentials is not None and route.credentials.username == "u"


def test_a_number_without_a_proxy_has_no_route_and_says_what_to_set() -> None:
    with pytest.raises(NoRoute, match=r"\[outbound\] proxy"):
        route_for("+19495551212", Settings())


@pytest.mark.parametrize("no", ["not a number", "sips:bob@host", "bob@", "@host",
                                "sip:bob@host name", "+1-949-555"])
def test_malformed_destinations_are_refused(no: str) -> None:
    with pytest.raises(DialError) as info:
        route_for(no, PROXY)
    assert info.value.field == "no"


def test_dial_defaults_follow_the_spec() -> None:
    req = parse_dial({"no": "+1949"}, default_caller_id="+1714")
    assert (req.caller_id_no, req.timeout, req.max_call_time, req.inbound_api,
            req.detection) == ("+1714", 50, 86400, "CallFlows", "none")


@pytest.mark.parametrize(("raw", "field"), [
    ({}, "no"),
    ({"no": 5}, "no"),
    ({"no": "+1", "timeout": 19}, "timeout"),
    ({"no": "+1", "timeout": 241}, "timeout"),
    ({"no": "+1", "timeout": True}, "timeout"),
    ({"no": "+1", "max_call_time": 59}, "max_call_time"),
    ({"no": "+1", "max_call_time": 172801}, "max_call_time"),
    ({"no": "+1", "inbound_api": "Trunks"}, "inbound_api"),
    ({"no": "+1", "detection": "maybe"}, "detection"),
    ({"no": "+1", "session_data": [1]}, "session_data"),
])
def test_bad_dial_parameters_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(DialError) as info:
        parse_dial(raw, default_caller_id="+1714")
    assert info.value.field == field


def test_caller_id_is_required_without_a_default_and_prefixed() -> None:
    with pytest.raises(DialError) as info:
        parse_dial({"no": "+1949"}, default_caller_id=None, prefix="call.")
    assert info.value.field == "call.caller_id_no"


@pytest.mark.parametrize(("sip", "cancelled", "timed_out", "status"), [
    (486, False, False, CallStatus.BUSY),
    (600, False, False, CallStatus.BUSY),
    (480, False, False, CallStatus.NO_ANSWER),
    (408, False, False, CallStatus.NO_ANSWER),
    (487, True, True, CallStatus.NO_ANSWER),
    (487, True, False, CallStatus.CANCELED),
    (487, False, False, CallStatus.FAILED),
    (404, False, False, CallStatus.FAILED),
    (503, False, False, CallStatus.FAILED),
    (302, False, False, CallStatus.FAILED),
])
def test_sip_failures_map_to_the_call_status_table(
    sip: int, cancelled: bool, timed_out: bool, status: CallStatus,
) -> None:
    assert status_for_failure(sip, cancelled_by_us=cancelled, timed_out=timed_out) is status


@pytest.mark.parametrize(("reason", "status"), [
    ("Request Timeout (no response: Timer B)", CallStatus.NO_ANSWER),
    ("Request Timeout (transport error: connection refused)", CallStatus.FAILED),
    ("Request Timeout (DNS lookup of pbx.example failed: ...)", CallStatus.FAILED),
])
def test_a_local_408_is_a_failure_when_the_destination_was_unreachable(
    reason: str, status: CallStatus,
) -> None:
    assert status_for_failure(408, cancelled_by_us=False, timed_out=False,
                              reason=reason) is status
