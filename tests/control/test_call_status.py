"""A call's status moves one way: queued → ringing → in progress → one final status."""

from __future__ import annotations

import pytest

from control.calls import Call, CallStatus, Direction, HangupEnd


def new_call() -> Call:
    return Call(id="1@2", direction=Direction.INBOUND, caller_no="a", api_no="b", app_id="x")


def test_a_call_rings_connects_and_ends() -> None:
    call = new_call()
    assert call.status is CallStatus.QUEUED
    call.mark_ringing()
    assert call.status is CallStatus.RINGING
    call.mark_connected()
    assert call.status is CallStatus.IN_PROGRESS and call.connect_time is not None
    call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    assert call.status is CallStatus.COMPLETED and not call.is_live


@pytest.mark.parametrize("late", ["ring", "connect", "end"])
def test_nothing_after_the_end_changes_the_final_status(late: str) -> None:
    call = new_call()
    call.mark_ringing()
    call.mark_ended(CallStatus.CANCELED, HangupEnd.CALLER)
    end_time = call.end_time
    if late == "ring":
        call.mark_ringing()
    elif late == "connect":
        call.mark_connected()
    else:
        call.mark_ended(CallStatus.COMPLETED, HangupEnd.API)
    assert call.status is CallStatus.CANCELED
    assert call.end_time == end_time and call.hangup_end is HangupEnd.CALLER
    assert call.connect_time is None


def test_a_ring_after_the_answer_does_not_go_back_to_ringing() -> None:
    call = new_call()
    call.mark_connected()
    call.mark_ringing()
    assert call.status is CallStatus.IN_PROGRESS


@pytest.mark.parametrize("status", [CallStatus.QUEUED, CallStatus.RINGING,
                                    CallStatus.IN_PROGRESS])
def test_a_call_cannot_end_with_a_live_status(status: CallStatus) -> None:
    call = new_call()
    with pytest.raises(ValueError, match="not final"):
        call.mark_ended(status, None)
    assert call.is_live
