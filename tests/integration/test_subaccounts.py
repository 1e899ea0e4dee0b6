"""Sub-accounts end to end, with SIPp calling the real switch on 127.0.0.1.

An inbound call to a number provisioned in sub-account A runs A's call flow
configuration and is A's: its callbacks carry A's subaccount_id, the live call, its
recording and its call log are found below A's prefix and answer 404 below B's and
without a prefix. An outbound call placed below A's prefix (Dials/Connect) is A's too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.test_sms import raw_message
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

NUMBER = "+19495550100"
CALLER_ID = "+17145550100"


async def api(sw: RunningSwitch, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with rest(sw) as http, http.request(method, path, json=body) as resp:
        return resp.status, (None if resp.status == 204 else await resp.json())


async def sub_account(sw: RunningSwitch, name: str) -> str:
    status, body = await api(sw, "POST", "/v1/SubAccounts", {"name": name})
    assert status == 201, body
    return f"/v1/SubAccounts/{body['id']}"


def flow(actions: list[dict[str, Any]]) -> Any:
    def script(req: CallbackRequest) -> Reply:
        return Reply.actions(actions) if req.type == "init_call" else Reply(json={})
    return script


async def assert_only_a_sees(sw: RunningSwitch, a: str, b: str, path: str) -> dict[str, Any]:
    status, mine = await api(sw, "GET", a + path)
    assert status == 200, mine
    for other in (b, "/v1"):
        status, theirs = await api(sw, "GET", other + path)
        assert status == 404, (other, theirs)
    return dict(mine)


async def test_an_inbound_call_to_a_sub_accounts_number_is_that_sub_accounts(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([
        {"type": "RECORD", "name": "whole_call", "params": {"group": "sub"}},
        {"type": "PAUSE", "params": {"seconds": 2}}, {"type": "HANGUP"}]))
    sw = await switch()  # the main account has no configuration: the demo would answer
    a, b = await sub_account(sw, "A"), await sub_account(sw, "B")
    status, out = await api(sw, "POST", a + "/PhoneNumbers/CallFlows",
                            {"phone_numbers": [{"no": NUMBER}]})
    assert status == 200, out
    status, out = await api(sw, "PUT", a + "/CallFlows/Configurations/Default",
                            {"callback": {"url": callback_app.url}})
    assert status == 200, out
    sub_id = int(a.rsplit("/", 1)[1])
    caller = asyncio.create_task(sipp_runner.run("uac_wait_bye.xml", sw.sip_udp,
                                                 service=NUMBER, timeout=30))
    init = await callback_app.wait_for(type="init_call", timeout=15)
    call_id = init.fields["call_id"]
    assert init.fields["subaccount_id"] == sub_id
    live = await assert_only_a_sees(sw, a, b, f"/LiveCalls/{call_id}")
    assert live["subaccount_id"] == sub_id
    _, listed = await api(sw, "GET", b + "/LiveCalls")
    assert listed["calls"] == []
    status, out = await api(sw, "POST", b + f"/LiveCalls/{call_id}/Actions/HangUp", {})
    assert status == 404 and out["code"] == 404404
    end = (await callback_app.wait_for(type="end_call", timeout=20)).fields
    (await caller).assert_ok()
    assert end["error_code"] is None and len(end["recordings"]) == 1, end
    log = await assert_only_a_sees(sw, a, b, f"/History/Logs/Calls/{call_id}")
    assert log["subaccount_id"] == sub_id
    _, mine = await api(sw, "GET", a + f"/History/Recordings/{call_id}")
    assert [r["subaccount_id"] for r in mine["recordings"]] == [sub_id]
    for other in (b, "/v1"):
        _, theirs = await api(sw, "GET", other + f"/History/Recordings/{call_id}")
        assert theirs["recordings"] == []
    await assert_only_a_sees(sw, a, b, f"/History/Recordings/{mine['recordings'][0]['id']}")
    status, out = await api(sw, "DELETE", a)
    assert status == 403 and out["code"] == 403803  # A has had a call


async def test_a_call_placed_below_a_prefix_is_that_sub_accounts(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(flow([{"type": "PAUSE", "params": {"seconds": 1}},
                                  {"type": "HANGUP"}]))
    sw = await switch(default_callback=callback_app.url)
    a, b = await sub_account(sw, "A"), await sub_account(sw, "B")
    async with sipp_runner.uas("uas_answer.xml", rtp_echo=False, calls=1) as uas:
        status, body = await api(sw, "POST", a + "/Dials/Connect", {
            "call": {"no": uas.uri("bob"), "caller_id_no": CALLER_ID}})
        assert status == 201, body
        call_id = body["call"]["id"]
        live = await assert_only_a_sees(sw, a, b, f"/LiveCalls/{call_id}")
        assert live["subaccount_id"] == int(a.rsplit("/", 1)[1])
        await callback_app.wait_for(type="end_call", timeout=20)
        (await uas.finish()).assert_ok()
    await assert_only_a_sees(sw, a, b, f"/History/Logs/Calls/{call_id}")


async def test_a_call_a_sub_accounts_trunk_carries_is_that_sub_accounts(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 1500}) as uas:
        sw = await switch(default_callback=callback_app.url)
        a, b = await sub_account(sw, "A"), await sub_account(sw, "B")
        status, trunk = await api(sw, "POST", a + "/Trunks", {
            "direction": "inbound", "inbound": {"destination": f"127.0.0.1:{uas.port}"}})
        assert status == 201, trunk
        status, out = await api(sw, "POST", b + f"/PhoneNumbers/Trunks/{trunk['trunk_id']}",
                                {"phone_numbers": [{"no": NUMBER}]})
        assert status == 404, out  # B cannot give its numbers to A's trunk
        status, out = await api(sw, "POST", a + f"/PhoneNumbers/Trunks/{trunk['trunk_id']}",
                                {"phone_numbers": [{"no": NUMBER}]})
        assert status == 200, out
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service=NUMBER,
                                       params={"BYE_TIMEOUT_MS": 20000}, timeout=40)
        (await uas.finish()).assert_ok()
    result.assert_ok()
    # the log is written as the switch finishes the call, which may be just after SIPp
    # saw the BYE: poll for it (bounded)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        status, logs = await api(sw, "GET", a + f"/Trunks/{trunk['trunk_id']}/Logs/Calls")
        if status != 200 or logs["logs"] or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and len(logs["logs"]) == 1, logs
    call_id = logs["logs"][0]["call_id"]
    log = await assert_only_a_sees(sw, a, b, f"/History/Logs/Calls/{call_id}")
    assert log["subaccount_id"] == int(a.rsplit("/", 1)[1])
    await assert_only_a_sees(sw, a, b, f"/Trunks/{trunk['trunk_id']}/Logs/Calls")


async def test_an_inbound_message_to_a_sub_accounts_number_is_that_sub_accounts(
    switch: SwitchFactory, callback_app: CallbackApp,
) -> None:
    callback_app.set_script(lambda req: Reply.actions([]))
    sw = await switch()
    a, b = await sub_account(sw, "A"), await sub_account(sw, "B")
    status, out = await api(sw, "POST", a + "/PhoneNumbers/CallFlows",
                            {"phone_numbers": [{"no": NUMBER}]})
    assert status == 200, out
    status, out = await api(sw, "PUT", a + "/CallFlows/Configurations/Default", {
        "callback": {"url": callback_app.url}, "callback_sms": {"url": callback_app.url}})
    assert status == 200, out
    assert await asyncio.to_thread(raw_message, sw, b"Hello A", user=NUMBER) == (200, "OK")
    got = await callback_app.wait_for(type="sms", timeout=10)
    assert got.fields["subaccount_id"] == int(a.rsplit("/", 1)[1])
    await assert_only_a_sees(sw, a, b, f"/Messages/{got.fields['message_id']}")
    _, listed = await api(sw, "GET", b + "/Messages")
    assert listed["messages"] == []
