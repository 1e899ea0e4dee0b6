"""Trunks end to end, with SIPp on both sides of the switch on 127.0.0.1.

Inbound: a caller (SIPp UAC) dials a number assigned to `Trunks/{id}`; the switch forwards
it to the trunk's destination (a SIPp UAS) and bridges the two, with failover when the
destination answers 503, and busy once the trunk carries its simultaneous_call_limit.
Outbound: SIPp sends INVITEs for a trunk's outbound.domain; the trunk's address list
decides (127.0.0.1 is not in 10.0.0.0/8: 403), its limit gives 503 over it, and an
accepted call goes out through the outbound proxy (another SIPp UAS).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sms import THEM, raw_message
from tests.support import audio
from tests.support.callback_app import CallbackApp, CallbackRequest, Reply
from tests.support.capture import Capture, rtp_packets, rtp_pcm
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

A_HZ, B_HZ = 697.0, 1209.0
NUMBER = "+19495550100"
DOMAIN = "acme.trunk.voxolo.gy"


def tone_file(tmp_path: Path, freq: float, name: str) -> Path:
    return audio.to_ulaw_file(audio.sine(freq, 20.0, level=-12.0), tmp_path / f"{name}.ulaw")


async def api(sw: RunningSwitch, method: str, path: str,
              body: Any = None, status: int = 200) -> Any:
    async with rest(sw) as http, http.request(method, path, json=body) as resp:
        assert resp.status == status, await resp.text()
        return None if resp.status == 204 else await resp.json()


async def trunk_logs(sw: RunningSwitch, trunk_id: str, count: int,
                     timeout: float = 10.0) -> list[dict[str, Any]]:
    """The trunk's call logs once there are `count` (or what there is at `timeout`): a
    call's log is written as the switch finishes it, which may be just after SIPp saw
    the BYE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        logs: list[dict[str, Any]] = (await api(sw, "GET", f"/v1/Trunks/{trunk_id}/Logs/Calls"))[
            "logs"]
        if len(logs) >= count or loop.time() > deadline:
            return logs
        await asyncio.sleep(0.1)


async def inbound_trunk(sw: RunningSwitch, destination: str, **fields: Any) -> str:
    body = {"direction": "inbound", "inbound": {"destination": destination}, **fields}
    if "failover" in fields:
        body["inbound"]["failover"] = body.pop("failover")
    trunk = await api(sw, "POST", "/v1/Trunks", body, status=201)
    return str(trunk["trunk_id"])


async def assign(sw: RunningSwitch, to: str, no: str = NUMBER) -> None:
    await api(sw, "POST", f"/v1/PhoneNumbers/{to}", {"phone_numbers": [{"no": no}]})


async def outbound_trunk(sw: RunningSwitch, cidr: str, **fields: Any) -> str:
    trunk = await api(sw, "POST", "/v1/Trunks", {
        "direction": "outbound", **fields,
        "outbound": {"domain": DOMAIN, "authentication": [{"source": "other", "value": cidr}]}},
        status=201)
    return str(trunk["trunk_id"])


def heard(pcap: Path, port: int) -> Any:
    return rtp_pcm(rtp_packets(pcap, dst_port=port))


async def test_a_call_to_a_trunk_number_reaches_the_destination_both_ways(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    a_port = free_rtp_port()
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 4000},
                               audio_file=tone_file(tmp_path, B_HZ, "b")) as uas:
        sw = await switch(default_callback=callback_app.url)
        trunk_id = await inbound_trunk(sw, f"127.0.0.1:{uas.port}",
                                       recording={"setting": "pre_connect"})
        await assign(sw, f"Trunks/{trunk_id}")
        async with Capture(tmp_path, "both") as cap:
            await cap.start([a_port, uas.media_port], duration=60)
            result = await sipp_runner.run(
                "uac_wait_bye_pcmu_only.xml", sw.sip_udp, service=NUMBER, media_port=a_port,
                audio_file=tone_file(tmp_path, A_HZ, "a"), audio_loops=-1,
                params={"BYE_TIMEOUT_MS": 20000}, timeout=40)
            b = await uas.finish()
            pcap = await cap.stop()
    result.assert_ok()
    b.assert_ok()
    a_heard, b_heard = heard(pcap, a_port), heard(pcap, uas.media_port)
    assert audio.tone_duration(a_heard, B_HZ) > 2.5, "the caller did not hear the trunk"
    assert audio.tone_duration(a_heard, A_HZ) == 0.0, "the caller heard itself"
    assert audio.tone_duration(b_heard, A_HZ) > 2.5, "the trunk did not hear the caller"
    assert audio.tone_duration(b_heard, B_HZ) == 0.0, "the trunk heard itself"
    assert f"INVITE sip:{NUMBER}@127.0.0.1:{uas.port}" in b.messages
    assert not callback_app.requests  # no call flow: CallFlows settings play no part
    logs = await trunk_logs(sw, trunk_id, 1)
    assert [(log["direction"], log["status"], log["api_no"]) for log in logs] == [
        ("inbound", "completed", NUMBER)]
    assert len(logs[0]["recordings"]) == 1  # recording pre_connect
    number = await api(sw, "GET", "/v1/PhoneNumbers/%2B19495550100")
    assert number["usage"] == 1


@pytest.mark.parametrize("source", ["trunk_id", "sip_uri", "phone_number"])
async def test_failover_when_the_destination_answers_503(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
    source: str,
) -> None:
    async with sipp_runner.uas("uas_reject.xml", calls=1, params={
            "STATUS": 503, "REASON": "Service Unavailable"}) as down, \
            sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                            params={"HOLD_MS": 1500},
                            audio_file=tone_file(tmp_path, B_HZ, "b")) as backup:
        sw = await switch(default_callback=callback_app.url)
        backup_id = await inbound_trunk(sw, f"sip:127.0.0.1:{backup.port}")
        value = {"trunk_id": backup_id, "sip_uri": f"sip:{NUMBER}@127.0.0.1:{backup.port}",
                 "phone_number": "+19495550199"}[source]
        if source == "phone_number":  # a number of ours, on the backup trunk
            await assign(sw, f"Trunks/{backup_id}", "+19495550199")
        trunk_id = await inbound_trunk(sw, f"127.0.0.1:{down.port}", failover={
            "source": source, "value": value})
        await assign(sw, f"Trunks/{trunk_id}")
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service=NUMBER,
                                       timeout=30)
        (await down.finish()).assert_ok()
        b = await backup.finish()
    result.assert_ok()
    b.assert_ok()
    assert sw.logged("trunk.failover")
    user = "+19495550199" if source == "phone_number" else NUMBER
    assert f"INVITE sip:{user}@127.0.0.1:{backup.port}" in b.messages
    legs = (await api(sw, "GET", "/v1/History/Logs/Calls"))["logs"]
    assert sorted(log["status"] for log in legs if log["direction"] == "outbound") == [
        "completed", "failed"]


async def test_failover_to_the_api_runs_the_numbers_call_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    def script(req: CallbackRequest) -> Reply:
        if req.type == "init_call":
            return Reply.actions([{"type": "ANSWER"}, {"type": "PAUSE", "params": {"seconds": 1}},
                                  {"type": "HANGUP"}])
        return Reply(json={})
    callback_app.set_script(script)
    async with sipp_runner.uas("uas_reject.xml", calls=1, params={
            "STATUS": 503, "REASON": "Service Unavailable"}) as down:
        sw = await switch(default_callback=callback_app.url)
        trunk_id = await inbound_trunk(sw, f"127.0.0.1:{down.port}", failover={
            "source": "api", "value": "CallFlows"})
        await assign(sw, f"Trunks/{trunk_id}")
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service=NUMBER,
                                       timeout=30)
        (await down.finish()).assert_ok()
    result.assert_ok()
    init = await callback_app.wait_for(type="init_call")
    assert init.fields["api_no"] == NUMBER


async def test_the_inbound_call_limit_makes_the_next_caller_busy(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 6000}) as uas:
        sw = await switch(default_callback=callback_app.url)
        trunk_id = await inbound_trunk(sw, f"127.0.0.1:{uas.port}", simultaneous_call_limit=1)
        await assign(sw, f"Trunks/{trunk_id}")
        first = asyncio.create_task(sipp_runner.run(
            "uac_wait_bye.xml", sw.sip_udp, service=NUMBER, timeout=30))
        for _ in range(100):
            if sw.logged("trunk.bridged"):
                break
            await asyncio.sleep(0.1)
        second = await sipp_runner.run("uac_expect_status.xml", sw.sip_udp, service=NUMBER,
                                       params={"STATUS": 486}, timeout=15)
        (await first).assert_ok()
        (await uas.finish()).assert_ok()
    second.assert_ok()
    assert sw.logged("trunk.call_limit")


async def test_parked_numbers_are_not_answered_and_run_no_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    sw = await switch(default_callback=callback_app.url)
    await assign(sw, "ParkingLot")
    result = await sipp_runner.run("uac_expect_status.xml", sw.sip_udp, service=NUMBER,
                                   params={"STATUS": 480}, timeout=15)
    result.assert_ok()
    await asyncio.sleep(0.3)
    assert not callback_app.requests


async def test_an_invite_from_an_address_off_the_list_is_refused_403(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    sw = await switch(default_callback=callback_app.url)
    await outbound_trunk(sw, "10.0.0.0/8")
    result = await sipp_runner.run("uac_trunk_status.xml", sw.sip_udp, service="+17145550100",
                                   params={"STATUS": 403, "RURI_HOST": DOMAIN}, timeout=15)
    result.assert_ok()
    assert sw.logged("trunk.refused")
    assert not callback_app.requests


async def test_an_outbound_trunk_call_goes_out_through_the_proxy_up_to_its_limit(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 5000}) as carrier:
        sw = await switch(default_callback=callback_app.url,
                          extra_args=["--outbound-proxy", f"sip:127.0.0.1:{carrier.port}"])
        trunk_id = await outbound_trunk(sw, "127.0.0.0/8", simultaneous_call_limit=1)
        first = asyncio.create_task(sipp_runner.run(
            "uac_trunk_wait_bye.xml", sw.sip_udp, service="+17145550100",
            params={"RURI_HOST": DOMAIN}, timeout=30))
        for _ in range(100):
            if sw.logged("trunk.bridged"):
                break
            await asyncio.sleep(0.1)
        second = await sipp_runner.run("uac_trunk_status.xml", sw.sip_udp,
                                       service="+17145550101",
                                       params={"STATUS": 503, "RURI_HOST": DOMAIN}, timeout=15)
        (await first).assert_ok()
        out = await carrier.finish()
    out.assert_ok()
    second.assert_ok()
    assert f"INVITE sip:+17145550100@127.0.0.1:{carrier.port}" in out.messages
    assert not callback_app.requests
    logs = await trunk_logs(sw, trunk_id, 2)
    assert [log["status"] for log in logs] == ["completed", "failed"]


async def test_max_post_dial_delay_cancels_a_far_end_that_never_rings(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_trying_cancel.xml", calls=1) as carrier:
        sw = await switch(default_callback=callback_app.url,
                          extra_args=["--outbound-proxy", f"sip:127.0.0.1:{carrier.port}"])
        await api(sw, "POST", "/v1/Trunks", {"direction": "outbound", "outbound": {
            "domain": DOMAIN, "max_post_dial_delay": 7,
            "authentication": [{"source": "other", "value": "127.0.0.1"}]}}, status=201)
        started = asyncio.get_running_loop().time()
        result = await sipp_runner.run("uac_trunk_status.xml", sw.sip_udp,
                                       service="+17145550100",
                                       params={"STATUS": 503, "RURI_HOST": DOMAIN}, timeout=20)
        waited = asyncio.get_running_loop().time() - started
        out = await carrier.finish()
    result.assert_ok()
    out.assert_ok()  # it got our CANCEL
    assert 6.5 < waited < 12, waited
    assert sw.logged("trunk.post_dial_delay")


async def test_an_outbound_trunk_call_to_one_of_our_numbers_runs_its_call_flow(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(lambda req: Reply.actions([{"type": "HANGUP"}])
                            if req.type == "init_call" else Reply(json={}))
    sw = await switch(default_callback=callback_app.url)
    await outbound_trunk(sw, "127.0.0.0/8")
    await assign(sw, "CallFlows")
    result = await sipp_runner.run("uac_trunk_wait_bye.xml", sw.sip_udp, service=NUMBER,
                                   params={"RURI_HOST": DOMAIN}, timeout=15)
    result.assert_ok()  # answered (answer_on_ring), then the flow's HANGUP: our BYE
    init = await callback_app.wait_for(type="init_call")
    assert init.fields["api_no"] == NUMBER


async def test_a_trunk_without_a_domain_takes_its_addresses_but_leaves_our_numbers_alone(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(lambda req: Reply.actions([{"type": "HANGUP"}])
                            if req.type == "init_call" else Reply(json={}))
    async with sipp_runner.uas("uas_stream_bye.xml", rtp_echo=False, calls=1,
                               params={"HOLD_MS": 1000}) as carrier:
        sw = await switch(default_callback=callback_app.url,
                          extra_args=["--outbound-proxy", f"sip:127.0.0.1:{carrier.port}"])
        trunk = await api(sw, "POST", "/v1/Trunks", {"direction": "outbound", "outbound": {
            "authentication": [{"source": "other", "value": "127.0.0.0/8"}]}}, status=201)
        await api(sw, "PUT", "/v1/CallFlows/Configurations/PhoneNumbers/1000",
                  {"callback": {"url": callback_app.url}})
        own = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                    timeout=15)
        out = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="+17145550100",
                                    timeout=15)
        (await carrier.finish()).assert_ok()
    own.assert_ok()
    out.assert_ok()
    init = await callback_app.wait_for(type="init_call")
    assert init.fields["api_no"] == "1000"
    assert len(callback_app.of_type("init_call")) == 1  # the other call went out
    logs = await trunk_logs(sw, trunk["trunk_id"], 2)
    assert sorted(log["api_no"] for log in logs) == ["+17145550100", "1000"]


async def test_messages_to_a_trunk_number_reach_the_trunks_destination(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    """POST /Messages, and the SMS action of a flow a trunk call runs (its ctx.messaging),
    send their MESSAGE to the inbound trunk the number is assigned to."""
    ours = "+19495550101"
    callback_app.set_script(lambda req: Reply.actions([
        {"type": "SMS", "params": {"message": "from the flow", "no": NUMBER}},
        {"type": "HANGUP"}]) if req.type == "init_call" else Reply(json={}))
    async with sipp_runner.uas("uas_message.xml", calls=2) as pbx:
        sw = await switch(default_callback=callback_app.url)
        trunk_id = await inbound_trunk(sw, f"127.0.0.1:{pbx.port}")
        await assign(sw, f"Trunks/{trunk_id}")
        async with rest(sw) as http, http.post("/v1/Messages", json={
                "api_no": ours, "caller_no": NUMBER, "text_message": "over REST"}) as resp:
            assert resp.status == 200, await resp.text()
            sent = await resp.json()
        await outbound_trunk(sw, "127.0.0.0/8")
        await assign(sw, "CallFlows", ours)
        call = await sipp_runner.run("uac_trunk_wait_bye.xml", sw.sip_udp, service=ours,
                                     params={"RURI_HOST": DOMAIN}, timeout=15)
        uas = await pbx.finish(timeout=10)
    call.assert_ok()
    assert uas.logged("ruri") == [f"sip:{NUMBER}@127.0.0.1:{pbx.port}"] * 2, uas.describe()
    assert sorted(b.rstrip() for b in uas.logged("body")) == ["from the flow", "over REST"]
    for _ in range(50):  # its status follows the 200 at once
        async with rest(sw) as http, http.get(f"/v1/Messages/{sent['message_id']}") as resp:
            if (status := (await resp.json())["status"]) == "delivered":
                break
        await asyncio.sleep(0.1)
    assert status == "delivered"
    assert not sw.logged("this switch sends no messages")


async def test_an_inbound_message_for_a_trunk_number_goes_on_to_the_trunk(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    """A MESSAGE to a number assigned to Trunks/{id} is answered 200 and passed on to the
    trunk's destination from its sender; no sms callback (CallFlows plays no part)."""
    callback_app.set_script(None, default=Reply(json={}))
    async with sipp_runner.uas("uas_message.xml", calls=1) as pbx:
        sw = await switch(default_callback=callback_app.url)
        trunk_id = await inbound_trunk(sw, f"127.0.0.1:{pbx.port}")
        await assign(sw, f"Trunks/{trunk_id}")
        status, _ = await asyncio.to_thread(raw_message, sw, b"for the PBX", user=NUMBER)
        uas = await pbx.finish(timeout=10)
    assert status == 200
    assert uas.logged("ruri") == [f"sip:{NUMBER}@127.0.0.1:{pbx.port}"], uas.describe()
    [sender] = uas.logged("from")
    assert f"sip:{THEM}@" in sender, sender
    assert [b.rstrip() for b in uas.logged("body")] == ["for the PBX"]
    for _ in range(50):
        async with rest(sw) as http, http.get("/v1/Messages",
                                              params={"direction": "inbound"}) as resp:
            [got] = (await resp.json())["messages"]
        if (got.get("forwarded") or {}).get("status_code") == 200:
            break
        await asyncio.sleep(0.1)
    assert got["forwarded"]["target"] == f"sip:{NUMBER}@127.0.0.1:{pbx.port}", got
    assert got["forwarded"]["status_code"] == 200 and got["status"] == "received"
    assert not callback_app.requests
