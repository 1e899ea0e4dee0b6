"""The PSTN simulator's numbering (which digits choose what), its settings, and its route:
route_for sends a simulator number to the running simulator (its `simulate` hook), before
any outbound proxy, and stops once it has stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.dialing import NoRoute, Route, route_for
from control.numbers import PoolError
from control.pstnsim import (
    BEHAVIOURS,
    NO_ANSWER_CAP_S,
    RING_S,
    PstnSimulator,
    example,
    parse_numbers,
    plan_for,
    table,
)
from control.settings import Settings, SettingsError, load
from media.engine import MediaEngine
from media.tts import TtsEngine

DEFAULT = parse_numbers("+1555010XXXX")


@pytest.mark.parametrize(("no", "name", "seconds"), [
    ("+15550100000", "answer_hangup", 2), ("+15550101000", "live_person", 30),
    ("+15550101059", "live_person", 5), ("+15550102000", "voicemail", 60),
    ("+15550103000", "fax", 60), ("+15550104000", "busy", 0),
    ("+15550105000", "no_answer", 0), ("+15550105120", "no_answer", 12),
    ("+15550106000", "slow_answer", 10), ("+15550106150", "slow_answer", 15),
    ("+15550107000", "not_found", 0), ("+15550108000", "unavailable", 0),
    ("+15550109000", "decline", 0), ("15550102003", "voicemail", 60),
])
def test_the_last_four_digits_choose_the_behaviour_and_its_seconds(
        no: str, name: str, seconds: float) -> None:
    plan = plan_for(no, DEFAULT)
    assert plan is not None and (plan.behaviour.name, plan.seconds) == (name, seconds)
    assert plan.number.startswith("+")


def test_slow_answer_rings_its_seconds_then_stays_as_a_person() -> None:
    slow, live = plan_for("+15550106150", DEFAULT), plan_for("+15550101000", DEFAULT)
    assert slow is not None and live is not None
    assert (slow.ring_s, slow.hold_s) == (15, BEHAVIOURS["1"].default_s)
    assert (live.ring_s, live.hold_s) == (RING_S, 30)


@pytest.mark.parametrize("no", ["+15550110000", "+19495550100", "+1555010100", "alice",
                                "sip:+15550101000@example.com", ""])
def test_other_destinations_are_not_the_simulators(no: str) -> None:
    assert plan_for(no, DEFAULT) is None


def test_the_table_has_every_digit_with_an_example_of_its_own() -> None:
    rows = table(DEFAULT)
    assert [r["digit"] for r in rows] == list("0123456789")
    for row in rows:
        plan = plan_for(row["example"], DEFAULT)
        assert plan is not None and plan.behaviour.name == row["behaviour"]
    assert {r["behaviour"]: r["sip_status"] for r in rows if r["sip_status"]} == {
        "busy": 486, "not_found": 404, "unavailable": 503, "decline": 603}
    assert str(int(NO_ANSWER_CAP_S)) in next(r for r in rows
                                             if r["behaviour"] == "no_answer")["seconds"]
    assert all(r["example"] is None for r in table(None))


def test_examples_of_a_narrow_range_stay_inside_it() -> None:
    narrow = parse_numbers("+15550105050-+15550106009")
    assert example(narrow, "6") == "+15550106000"
    assert example(narrow, "5") is None  # 5000-5009 are below its first number
    assert example(narrow, "1") is None
    assert example(parse_numbers("+4930123XXXXX"), "2", "15") == "+493012302150"


def test_a_bad_range_is_a_pool_error() -> None:
    with pytest.raises(PoolError):
        parse_numbers("+1555010XXX")


# ---- settings ----------------------------------------------------------------------------


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voxswitch.toml"
    path.write_text(text)
    return path


def test_the_default_range_is_on_and_apart_from_the_default_pool() -> None:
    s = load(None, {}, {})
    assert (s.simulator_enabled, s.simulator_numbers) == (True, "+1555010XXXX")


def test_the_file_and_the_environment_set_it(tmp_path: Path) -> None:
    s = load(settings_file(tmp_path, '[simulator]\nnumbers = "+15550200000-+15550209999"\n'),
             {}, {})
    assert s.simulator_numbers == "+15550200000-+15550209999"
    s = load(None, {"VOXSWITCH_SIMULATOR_ENABLED": "0",
                    "VOXSWITCH_SIMULATOR_NUMBERS": "+1555030"}, {})
    assert (s.simulator_enabled, s.simulator_numbers) == (False, "+1555030")


@pytest.mark.parametrize(("text", "says"), [
    ('numbers = "+1555010XXX"', "simulator numbers: '+1555010XXX': numbers of 10 digits"),
    ('numbers = "555010XXXX"', "expected an E.164 pattern"),
    ("numbers = 15550100000", "expected a string"),
    ('numbers = "+4412X"', "at least 8 digits"),
    ('enabled = "maybe"', "simulator enabled: expected true or false"),
    ('numbers = "+1949555XXXX"', "overlap the numbers pool's '+1949555XXXX'"),
    ('numbers = "+19495550000-+19495550099"', "[simulator] enabled = false"),
])
def test_a_bad_simulator_setting_says_what_fits(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(settings_file(tmp_path, f"[simulator]\n{text}\n"), {}, {})
    assert says in str(err.value)


def test_switched_off_it_may_overlap_the_pool(tmp_path: Path) -> None:
    s = load(settings_file(tmp_path, '[simulator]\nenabled = false\nnumbers = "+1949555XXXX"\n'),
             {}, {})
    assert s.simulator_enabled is False


# ---- the route ---------------------------------------------------------------------------


async def test_route_for_reaches_the_running_simulator_before_the_proxy(
        tmp_path: Path) -> None:
    settings = Settings(outbound_proxy="sip:127.0.0.1:5099")
    engine = MediaEngine(port_range=(0, 0))
    sim = PstnSimulator(settings, engine, TtsEngine(tmp_path / "tts"))
    assert sim.locate("+15550102000") is None  # not started: no route to it
    await engine.start()
    await sim.start()
    try:
        host, port = sim.address
        route = route_for("+15550102000", settings, simulate=sim.locate)
        assert route == Route(f"sip:+15550102000@{host}:{port}", None, None)
        assert route_for("15550102000", settings, simulate=sim.locate).target == route.target
        # not a simulator number: the outbound proxy, as before
        assert route_for("+19495551212", settings,
                         simulate=sim.locate).proxy == "sip:127.0.0.1:5099"
        # without the hook (a switch with the simulator off) the number is like any other
        assert route_for("+15550102000", settings).proxy == "sip:127.0.0.1:5099"
        # a registered destination (the locate hook) still comes first
        mine = Route("sip:x@1.2.3.4", None, None)
        assert route_for("+15550102000", settings, lambda no: mine, sim.locate) is mine
    finally:
        await sim.stop()
        await engine.stop()
    with pytest.raises(NoRoute):
        route_for("+15550102000", Settings(), simulate=sim.locate)  # stopped, no proxy
    assert route_for("+15550102000", settings,
                     simulate=sim.locate).proxy == "sip:127.0.0.1:5099"
