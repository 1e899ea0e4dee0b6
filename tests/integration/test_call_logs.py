"""Call logs of real calls: a TRANSFER and a trunk call, each with its leg, in
History/Logs/Calls (parent_call_id links, services, the spec's fields, filters)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.control.api.test_api_history_logs import SPEC_FIELDS
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

NUMBER = "+19495550100"


async def api(sw: RunningSwitch, method: str, path: str, body: Any = None,
              params: dict[str, str] | None = None) -> Any:
    async with rest(sw) as http, http.request(method, path, json=body, params=params) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def logs(sw: RunningSwitch, count: int, **params: str) -> list[dict[str, Any]]:
    for _ in range(100):  # each leg's log is saved as it finishes
        got: list[dict[str, Any]] = (await api(sw, "GET", "/v1/History/Logs/Calls",
                                               params=params))["logs"]
        if len(got) >= count:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(got)


async def test_a_transfer_and_a_trunk_call_log_their_legs(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_bye.xml", calls=1, params={"HOLD_MS": 1000}) as bob, \
            sipp_runner.uas("uas_bye.xml", calls=1, params={"HOLD_MS": 1000}) as pbx:
        def script(req: CallbackRequest) -> Reply:
            if req.type == "init_call":
                return Reply.actions([{"type": "TRANSFER", "params": {
                    "no": bob.uri("bob"), "caller_id_no": "+17145550100"}},
                    {"type": "HANGUP"}])
            return Reply(json={})

        callback_app.set_script(script)
        sw = await switch(default_callback=callback_app.url)
        trunk = await api(sw, "POST", "/v1/Trunks", {
            "direction": "inbound", "inbound": {"destination": f"127.0.0.1:{pbx.port}"}})
        await api(sw, "POST", f"/v1/PhoneNumbers/Trunks/{trunk['trunk_id']}",
                  {"phone_numbers": [{"no": NUMBER}]})
        transferred = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                            timeout=30)
        trunked = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service=NUMBER,
                                        timeout=30)
        (await bob.finish()).assert_ok()
        (await pbx.finish()).assert_ok()
    transferred.assert_ok()
    trunked.assert_ok()
    every = await logs(sw, 4)
    by_kind = {(g["direction"], g["service"], g["api_no"]): g for g in every}
    assert set(by_kind) == {
        ("inbound", "programmable_voice", "1000"),
        ("outbound", "programmable_voice", "+17145550100"),
        ("inbound", "sip_trunking", NUMBER),
        ("outbound", "sip_trunking", "sipp")}, list(by_kind)
    parent = by_kind["inbound", "programmable_voice", "1000"]
    leg = by_kind["outbound", "programmable_voice", "+17145550100"]
    trunk_in = by_kind["inbound", "sip_trunking", NUMBER]
    trunk_leg = by_kind["outbound", "sip_trunking", "sipp"]
    assert parent["call_id"] == callback_app.of_type("init_call")[0].fields["call_id"]
    assert (leg["parent_call_id"], trunk_leg["parent_call_id"]) == (
        parent["call_id"], trunk_in["call_id"])
    assert parent["parent_call_id"] is None and trunk_in["parent_call_id"] is None
    for g in every:
        assert set(g) >= SPEC_FIELDS, (g["call_id"], SPEC_FIELDS - set(g))
        assert g["status"] == "completed" and g["type"] == "voice", g
        assert g["connect_time_sec"] >= 0 and g["end_time"] and g["sip"]["call_id"]
    trunked_only = await logs(sw, 2, service="sip_trunking")
    assert sorted(g["call_id"] for g in trunked_only) == sorted(
        [trunk_in["call_id"], trunk_leg["call_id"]])
    legs = await logs(sw, 2, direction="outbound")
    assert {g["parent_call_id"] for g in legs} == {parent["call_id"], trunk_in["call_id"]}
    one = await api(sw, "GET", f"/v1/History/Logs/Calls/{trunk_leg['call_id']}")
    assert one == trunk_leg
    per_trunk = await api(sw, "GET", f"/v1/Trunks/{trunk['trunk_id']}/Logs/Calls")
    assert [g["call_id"] for g in per_trunk["logs"]] == [trunk_in["call_id"]]
