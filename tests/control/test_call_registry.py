"""Live calls, and ended ones for five minutes."""

from __future__ import annotations

from control.calls import Call, CallRegistry, CallStatus, Direction, HangupEnd


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ended_call(registry: CallRegistry, call_id: str) -> Call:
    call = Call(id=call_id, direction=Direction.INBOUND, caller_no="a", api_no="b",
                app_id="x")
    registry.add(call)
    call.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    registry.ended(call)
    return call


def test_ended_calls_are_kept_five_minutes_then_forgotten_oldest_first() -> None:
    clock = Clock()
    registry = CallRegistry(clock)
    for i in range(5):
        ended_call(registry, f"{i}@1")
        clock.now += 60
    # now 300 s after the first ended: it is the only one gone
    clock.now += 1
    assert registry.get("0@1") is None
    assert [registry.get(f"{i}@1") is not None for i in range(1, 5)] == [True] * 4
    clock.now += 3 * 60
    assert [registry.get(f"{i}@1") is not None for i in range(5)] == [False] * 4 + [True]
    assert len(registry) == 0


def test_a_call_ended_twice_is_kept_from_its_last_end() -> None:
    clock = Clock()
    registry = CallRegistry(clock)
    call = ended_call(registry, "1@1")
    ended_call(registry, "2@1")
    clock.now += 200
    registry.ended(call)  # e.g. ended again by a late path: its retention restarts
    clock.now += 150
    assert registry.get("2@1") is None and registry.get("1@1") is call
