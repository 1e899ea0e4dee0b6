"""SMS over SIP end to end: SIPp sends MESSAGEs to a number and its `sms` callback gets
them; SMS actions (from an sms callback's answer and from a call flow), POST /Messages and
POST /Dials/SMS reach a SIPp UAS as MESSAGE with the right body; status webhooks; the
STOP/START opt-out; bad MESSAGEs and bad REST bodies get the protocol's and the spec's
errors."""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

US = "+17145551212"  # the switch's number
THEM = "+19495551212"  # the far end


async def put_config(sw: RunningSwitch, number: str, body: dict[str, Any]) -> None:
    path = f"/v1/CallFlows/Configurations/PhoneNumbers/{number.replace('+', '%2B')}"
    async with rest(sw) as http, http.put(path, json=body) as resp:
        assert resp.status in (200, 201), await resp.text()


async def message(sw: RunningSwitch, message_id: str) -> dict[str, Any]:
    async with rest(sw) as http, http.get(f"/v1/Messages/{message_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def wait_final(sw: RunningSwitch, message_id: str, timeout: float = 10.0
                     ) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    final = {"sent", "failed", "delivered", "undelivered", "opt-out"}
    while (record := await message(sw, message_id))["status"] not in final:
        assert loop.time() < deadline, record
        await asyncio.sleep(0.1)
    return record


async def send(sw: RunningSwitch, body: dict[str, Any], path: str = "/v1/Messages"
               ) -> tuple[int, dict[str, Any]]:
    async with rest(sw) as http, http.post(path, json=body) as resp:
        got: dict[str, Any] = await resp.json()
        return resp.status, got


def raw_message(sw: RunningSwitch, body: bytes, content_type: str = "text/plain",
                user: str = US) -> tuple[int, str]:
    """Send one MESSAGE written by hand; (status, reason) of the final response."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    head = (f"MESSAGE sip:{user}@{sw.sip_uri_host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"From: <sip:{THEM}@127.0.0.1:{port}>;tag=raw1\r\n"
            f"To: <sip:{user}@{sw.sip_uri_host}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@test\r\nCSeq: 1 MESSAGE\r\n"
            f"Max-Forwards: 70\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    try:
        sock.sendto(head + body, sw.sip_udp)
        while True:
            data = sock.recv(65536).decode("utf-8", "replace")
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                return status, data.split("\r\n", 1)[0].split(" ", 2)[2]
    finally:
        sock.close()


async def test_inbound_message_runs_the_sms_callback_and_its_sms_reply_reaches_sipp(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(lambda req: Reply.actions([
        {"type": "SMS", "params": {"message": f"Thanks, got: {req.fields['text_message']}"}},
        {"type": "PLAY", "params": {"url": "http://x/ignored.wav"}},
    ]) if req.path == "/sms" else Reply(json={}))
    async with sipp_runner.uas("uas_message.xml", calls=1) as far_end:
        sw = await switch(extra_args=["--outbound-proxy", f"sip:{far_end.host}:{far_end.port}"])
        await put_config(sw, US, {"callback": {"url": callback_app.url.rstrip("/") + "/voice"},
                                  "callback_sms": {"url": callback_app.url.rstrip("/") + "/sms"},
                                  "custom_data": {"k": "v"}})
        result = await sipp_runner.run("uac_message.xml", sw.sip_udp, service=US,
                                       params={"FROM_USER": THEM, "TEXT": "Hello switch"})
        result.assert_ok()
        assert result.logged("status") == ["SIP/2.0 200 OK"]
        got = await callback_app.wait_for(type="sms", timeout=10)
        uas = await far_end.finish(timeout=10)
    fields = got.fields
    assert got.path == "/sms"
    assert fields["service"] == "programmable_messaging" and fields["direction"] == "inbound"
    assert (fields["api_no"], fields["caller_no"]) == (US, THEM)
    assert fields["text_message"].rstrip("\r\n") == "Hello switch"
    assert fields["status"] == "received" and fields["message_id"].startswith("SMI:")
    assert fields["custom_data"] == {"k": "v"} and fields["uri"].endswith(fields["message_id"])
    # the reply: from our number to the sender, text/plain, the right body
    assert uas.logged("ruri") == [f"sip:{THEM}@{far_end.host}:{far_end.port}"], uas.describe()
    assert uas.logged("from")[0].startswith(f"<sip:{US}@127.0.0.1>")
    assert uas.logged("content-type") == ["text/plain;charset=UTF-8"]
    assert uas.logged("body")[0].startswith("Thanks, got: Hello switch")
    assert sw.logged("sms.action_ignored")  # PLAY has no call to run on
    inbound = await message(sw, fields["message_id"])
    assert inbound["direction"] == "inbound" and inbound["config"]["no"]["value"] == US
    async with rest(sw) as http, http.get("/v1/Messages", params={"direction": "outbound"}
                                          ) as resp:
        [reply] = (await resp.json())["messages"]
    assert (await wait_final(sw, reply["message_id"]))["status"] == "delivered"


async def test_call_flow_sms_action_reaches_sipp_uas(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_message.xml", calls=1) as far_end:
        target = f"sip:{THEM}@{far_end.host}:{far_end.port}"
        callback_app.set_script({"init_call": Reply.actions([
            {"type": "SMS", "params": {"message": "Your code is ${callerNo}", "no": target}},
            {"type": "HANGUP"}])}, default=Reply(json={}))
        sw = await switch(default_callback=callback_app.url)
        call = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
        uas = await far_end.finish(timeout=10)
    assert call.rc == 0, call.describe()
    assert uas.logged("ruri") == [target], uas.describe()
    [body] = uas.logged("body")
    assert body.startswith("Your code is sipp"), body  # interpolated: the caller's number


async def test_rest_send_status_webhooks_and_dials_sms(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(None, default=Reply(json={}))
    async with sipp_runner.uas("uas_message.xml", calls=2) as far_end:
        sw = await switch(extra_args=["--outbound-proxy", f"sip:{far_end.host}:{far_end.port}"])
        status, sent = await send(sw, {
            "api_no": US, "caller_no": THEM, "text_message": "sample message",
            "external_id": "ext-1", "external_group_id": "grp-1", "time_to_live": "5000",
            "status_webhook": {"url": callback_app.url.rstrip("/") + "/status"}})
        assert status == 200, sent
        assert sent["status"] == "accepted" and sent["time_to_live"] == 5000
        assert sent["uri"] == f"/v1/Messages/{sent['message_id']}"
        record = await wait_final(sw, sent["message_id"])
        status, dialed = await send(sw, {"call": {"no": THEM, "caller_id_no": US},
                                         "message": "Hello World"}, "/v1/Dials/SMS")
        assert status == 201, dialed
        assert (dialed["call"]["no"], dialed["call"]["caller_id_no"]) == (THEM, US)
        second = await wait_final(sw, dialed["call"]["id"])
        uas = await far_end.finish(timeout=10)
    assert record["status"] == "delivered" and record["num_parts"] == 1, record
    assert (record["external_id"], record["external_group_id"]) == ("ext-1", "grp-1")
    assert second["status"] == "delivered" and second["text_message"] == "Hello World"
    assert [b.rstrip() for b in uas.logged("body")] == ["sample message", "Hello World"]
    hooks = [r.fields for r in callback_app.requests if r.path == "/status"]
    assert [h["status"] for h in hooks] == ["queued", "sending", "delivered"], hooks
    assert all(h["message_id"] == sent["message_id"] for h in hooks)
    async with rest(sw) as http:
        async with http.get("/v1/Messages", params={"external_id": "ext-1"}) as resp:
            listed = await resp.json()
        assert [m["message_id"] for m in listed["messages"]] == [sent["message_id"]]
        assert listed["is_truncated"] is False and "begin_date" in listed
        async with http.get("/v1/Messages", params={"status": "delivered",
                                                     "caller_no": THEM}) as resp:
            assert len((await resp.json())["messages"]) == 2
        async with http.get("/v1/Messages", params={
                "end_date": "2019-03-04T18:43:24.341Z"}) as resp:
            assert (await resp.json())["messages"] == []
        # the call logs of type sms are the messages
        async with http.get("/v1/History/Logs/Calls", params={"type": "sms"}) as resp:
            logs = (await resp.json())["logs"]
        assert [(g["type"], g["text_message"], g["status"], g["service"]) for g in logs] == [
            ("sms", "sample message", "delivered", "programmable_messaging"),
            ("sms", "Hello World", "delivered", "programmable_messaging")]
        assert logs[0]["call_id"] == sent["message_id"] and logs[0]["end_time"]
        async with http.get("/v1/History/Logs/Calls", params={
                "type": "sms", "direction": "inbound"}) as resp:
            assert (await resp.json())["logs"] == []
        async with http.get("/v1/History/Logs/Calls") as resp:
            assert (await resp.json())["logs"] == []  # voice by default: no calls here


async def test_far_end_refusal_and_no_answer(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    async with sipp_runner.uas("uas_message.xml", calls=1,
                               params={"STATUS": 404, "REASON": "Not Found"}) as far_end:
        sw = await switch()
        _, sent = await send(sw, {"api_no": US, "caller_no": far_end.uri(THEM),
                                  "text_message": "hi"})
        refused = await wait_final(sw, sent["message_id"])
        await far_end.finish(timeout=10)
    assert (refused["status"], refused["error_code"]) == ("undelivered", 404), refused
    # 202: an intermediary took it, no delivery confirmation: sent is final
    async with sipp_runner.uas("uas_message.xml", calls=1,
                               params={"STATUS": 202, "REASON": "Accepted"}) as relay:
        _, sent = await send(sw, {"api_no": US, "caller_no": relay.uri(THEM),
                                  "text_message": "hi"})
        accepted = await wait_final(sw, sent["message_id"])
        await relay.finish(timeout=10)
    assert (accepted["status"], accepted["error_code"]) == ("sent", None), accepted
    # nobody listens there: time_to_live runs out, and the message failed
    _, sent = await send(sw, {"api_no": US, "caller_no": f"sip:{THEM}@127.0.0.1:9",
                              "text_message": "hi", "time_to_live": 1000})
    failed = await wait_final(sw, sent["message_id"])
    assert (failed["status"], failed["error_code"]) == ("failed", 408), failed
    # no route at all for a number: accepted, then failed saying what to set
    _, sent = await send(sw, {"api_no": US, "caller_no": THEM, "text_message": "hi"})
    failed = await wait_final(sw, sent["message_id"])
    assert failed["status"] == "failed" and "outbound" in failed["error"], failed


async def test_stop_opts_out_until_start(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    callback_app.set_script(None, default=Reply(status=204))
    async with sipp_runner.uas("uas_message.xml", calls=1) as far_end:
        sw = await switch(default_callback=callback_app.url,
                          extra_args=["--outbound-proxy", f"sip:{far_end.host}:{far_end.port}"])
        stop = await sipp_runner.run("uac_message.xml", sw.sip_udp, service=US,
                                     params={"FROM_USER": THEM, "TEXT": "STOP"})
        stop.assert_ok()
        await callback_app.wait_for(type="sms", timeout=10)
        await asyncio.sleep(0.3)  # the opt-out is stored after the 200
        _, sent = await send(sw, {"api_no": US, "caller_no": THEM, "text_message": "promo"})
        blocked = await wait_final(sw, sent["message_id"])
        assert blocked["status"] == "opt-out", blocked
        start = await sipp_runner.run("uac_message.xml", sw.sip_udp, service=US,
                                      params={"FROM_USER": THEM, "TEXT": "start"})
        start.assert_ok()
        await callback_app.wait_for(type="sms", timeout=10, count=2)
        await asyncio.sleep(0.3)
        _, sent = await send(sw, {"api_no": US, "caller_no": THEM, "text_message": "welcome"})
        again = await wait_final(sw, sent["message_id"])
        uas = await far_end.finish(timeout=10)
    assert again["status"] == "delivered", again
    assert [b.rstrip() for b in uas.logged("body")] == ["welcome"]


async def test_bad_messages_get_sip_errors(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw = await switch()
    loop = asyncio.get_running_loop()
    cases = [
        (b"", "text/plain", 400),
        (b"  \r\n", "text/plain", 400),
        (b"\xff\xfe\xfa not utf-8", "text/plain", 400),
        (b"ok", "text/plain;charset=no-such-charset", 400),
        (b"bell\x07", "text/plain", 400),
        (b'{"a": 1}', "application/json", 415),
        (("x" * 1601).encode(), "text/plain", 413),
        ("h\u00e9llo \u263a".encode(), "text/plain;charset=UTF-8", 200),
    ]
    for body, ctype, expected in cases:
        status, reason = await loop.run_in_executor(None, raw_message, sw, body, ctype)
        assert status == expected, (body[:20], ctype, status, reason)
    # the switch still takes a good one from SIPp
    ok = await sipp_runner.run("uac_message.xml", sw.sip_udp, service=US,
                               params={"FROM_USER": THEM})
    ok.assert_ok()
    refused = await sipp_runner.run("uac_message.xml", sw.sip_udp, service=US,
                                    params={"CONTENT_TYPE": "image/png", "STATUS": 415})
    refused.assert_ok()
    assert sw.logged("sms.inbound_refused")


async def test_bad_rest_bodies_get_the_spec_errors(switch: SwitchFactory) -> None:
    sw = await switch()
    cases: list[tuple[str, Any, int, str]] = [
        ("/v1/Messages", {"caller_no": THEM, "text_message": "x"}, 400001, "api_no"),
        ("/v1/Messages", {"api_no": US, "text_message": "x"}, 400001, "caller_no"),
        ("/v1/Messages", {"api_no": US, "caller_no": THEM}, 400001, "text_message"),
        ("/v1/Messages", {"api_no": US, "caller_no": THEM, "text_message": "x" * 1601},
         400001, "text_message"),
        ("/v1/Messages", {"api_no": US, "caller_no": "not a number!", "text_message": "x"},
         400001, "caller_no"),
        ("/v1/Messages", {"api_no": US, "caller_no": THEM, "text_message": "x",
                          "time_to_live": 10}, 400001, "time_to_live"),
        ("/v1/Messages", {"api_no": US, "caller_no": THEM, "text_message": "x",
                          "status_webhook": {"url": "ftp://x"}}, 400001, "status_webhook"),
        ("/v1/Messages", [1, 2], 400001, "body"),
        ("/v1/Dials/SMS", {"message": "x"}, 400001, "call"),
        ("/v1/Dials/SMS", {"call": {"no": THEM, "caller_id_no": US}}, 400001, "message"),
        ("/v1/Dials/SMS", {"call": {"caller_id_no": US}, "message": "x"}, 400001, "call.no"),
    ]
    async with rest(sw) as http:
        for path, body, code, field in cases:
            async with http.post(path, json=body) as resp:
                got = await resp.json()
            assert (resp.status, got["code"]) == (400, code), (path, body, got)
            assert field in got["help"], (field, got)
            assert set(got) == {"ref_id", "status", "code", "message", "help", "user_message"}
        async with http.post("/v1/Messages", data=b"{not json") as resp:
            assert (resp.status, (await resp.json())["code"]) == (400, 400010)
        async with http.get("/v1/Messages/SMO:nope") as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 404002)
        async with http.get("/v1/Messages", params={"status": "lost"}) as resp:
            assert (await resp.json())["code"] == 400001
        async with http.get("/v1/Messages", params={"begin_date": "yesterday"}) as resp:
            assert (await resp.json())["code"] == 400001
