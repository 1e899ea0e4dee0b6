"""Registered softphones end to end: baresip REGISTERs with digest, is listed over REST,
receives a call (Dials/Connect to its user name) and a MESSAGE (POST /Messages); a wrong
password is refused; a registration that is not refreshed expires; the REST users API."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from tests.support.baresip import Baresip, BaresipRunner, registered_account
from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner
from tests.support.switch import RunningSwitch, rest

# baresip 1.0.0's libre (1.1) gives up at a SHA-256 challenge: MD5 for it
CONFIG = """
[registrar]
users = {{alice = "secret", bob = "hunter2"}}
algorithms = ["MD5"]
min_expires = {min_expires}
"""


def config_file(tmp_path: Path, min_expires: int = 60) -> list[str]:
    path = tmp_path / "voxswitch.toml"
    path.write_text(CONFIG.format(min_expires=min_expires))
    return ["--config", str(path)]


async def registered(phone: Baresip) -> None:
    """baresip registers before ctrl_tcp is up, so its REGISTER_OK event is missed: its
    console line says it."""
    seen = await phone.process.stdout.wait_for(r": \{0/UDP/v4\} 200 OK", 10)
    assert seen is not None, phone.log


async def registrations(sw: RunningSwitch, user: str | None = None) -> list[dict[str, Any]]:
    query = f"?user={user}" if user else ""
    async with rest(sw) as http, http.get(f"/v1/Registrar/Registrations{query}") as resp:
        assert resp.status == 200, await resp.text()
        found: list[dict[str, Any]] = (await resp.json())["registrations"]
        return found


async def wait_registered(sw: RunningSwitch, user: str, timeout: float = 10.0
                          ) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := await registrations(sw, user)):
        assert loop.time() < deadline, f"{user} never registered\n{sw.logs()}"
        await asyncio.sleep(0.1)
    return found


async def message(sw: RunningSwitch, message_id: str) -> dict[str, Any]:
    async with rest(sw) as http, http.get(f"/v1/Messages/{message_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def wait_status(sw: RunningSwitch, message_id: str, statuses: set[str],
                      timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (record := await message(sw, message_id))["status"] not in statuses:
        assert loop.time() < deadline, record
        await asyncio.sleep(0.1)
    return record


async def test_baresip_registers_then_gets_a_call_and_a_message(
    switch: SwitchFactory, callback_app: CallbackApp, baresip_runner: BaresipRunner,
    tmp_path: Path,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([{"type": "PAUSE", "params": {"length": 1}},
                                    {"type": "HANGUP"}]),
        "end_call": Reply(json={}),
    }, default=Reply(json={}))
    sw = await switch(default_callback=callback_app.url, extra_args=config_file(tmp_path))
    account = registered_account("alice", "secret", sw.sip_uri_host, regint=600)
    async with baresip_runner.start(seconds=30, lifetime=40, user="alice",
                                    account=account) as phone:
        await registered(phone)
        [reg] = await wait_registered(sw, "alice")
        assert reg["contact"].startswith("sip:") and reg["expires"] > 500
        assert reg["source"].startswith("udp:127.0.0.1:")
        async with rest(sw) as http, http.get("/v1/Registrar/Users/alice") as resp:
            user = await resp.json()
            assert user["registered"] and user["source"] == "settings", user
            assert "password" not in user

        # a call to the user name reaches the softphone
        async with rest(sw) as http, http.post("/v1/Dials/Connect", json={
                "call": {"no": "alice", "caller_id_no": "+17145551212"}}) as resp:
            assert resp.status == 201, await resp.text()
        await phone.wait_event("CALL_ESTABLISHED", timeout=15)
        await phone.wait_event("CALL_CLOSED", timeout=15)

        # and so does a message: baresip prints it and answers 200 (delivered)
        console = await phone.console()
        async with rest(sw) as http, http.post("/v1/Messages", json={
                "caller_no": "alice", "api_no": "+17145551212",
                "text_message": "Hello alice, from voxswitch"}) as resp:
            assert resp.status == 200, await resp.text()
            sent = await resp.json()
        assert sent["status"] == "accepted" and sent["message_id"].startswith("SMO:")
        try:
            assert await console.wait_for('+17145551212@127.0.0.1: "Hello alice, from '
                                          'voxswitch"'), console.text
        finally:
            console.close()
        record = await wait_status(sw, sent["message_id"], {"delivered", "failed",
                                                           "undelivered"})
        assert record["status"] == "delivered", record
    # baresip unregisters as it quits (Contact ...;expires=0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while await registrations(sw, "alice"):
        assert loop.time() < deadline, "alice is still registered after quitting"
        await asyncio.sleep(0.1)


async def test_wrong_password_is_refused(
    switch: SwitchFactory, baresip_runner: BaresipRunner, tmp_path: Path,
) -> None:
    sw = await switch(extra_args=config_file(tmp_path))
    for user, password in (("alice", "not-the-password"), ("mallory", "secret")):
        account = registered_account(user, password, sw.sip_uri_host)
        async with baresip_runner.start(seconds=10, lifetime=20, user=user,
                                        account=account) as phone:
            failed = await phone.process.stdout.wait_for(r"403 Forbidden", 10)
            assert failed is not None, phone.log
            assert " 200 OK" not in phone.log
    assert await registrations(sw) == []
    # a call to a user that is not registered is a clear error, at once
    async with rest(sw) as http, http.post("/v1/Dials/Connect", json={
            "call": {"no": "alice", "caller_id_no": "+17145551212"}}) as resp:
        body = await resp.json()
    assert resp.status == 400 and "not registered" in body["message"], body


async def test_registration_expires_when_not_refreshed(
    switch: SwitchFactory, baresip_runner: BaresipRunner, tmp_path: Path,
) -> None:
    sw = await switch(extra_args=config_file(tmp_path, min_expires=2))
    account = registered_account("bob", "hunter2", sw.sip_uri_host, regint=3)
    async with baresip_runner.start(seconds=10, lifetime=20, user="bob",
                                    account=account) as phone:
        await registered(phone)
        [reg] = await wait_registered(sw, "bob")
        assert reg["expires"] <= 3
        phone.process.send_signal(signal.SIGKILL)  # gone without unregistering
        await phone.process.wait(5)
        await asyncio.sleep(4.0)
        assert await registrations(sw, "bob") == []
    assert sw.logged("registration expired: bob")
    async with rest(sw) as http, http.post("/v1/Messages", json={
            "caller_no": "bob", "api_no": "+17145551212", "text_message": "anyone?"}) as resp:
        sent = await resp.json()
    record = await wait_status(sw, sent["message_id"], {"failed"})
    assert record["error_code"] == 480 and "not registered" in record["error"], record


async def test_rest_users_register_and_are_deleted(
    switch: SwitchFactory, baresip_runner: BaresipRunner, tmp_path: Path,
) -> None:
    sw = await switch(extra_args=config_file(tmp_path))
    async with rest(sw) as http:
        async with http.put("/v1/Registrar/Users/carol", json={"password": "pa55"}) as resp:
            assert resp.status == 201, await resp.text()
        async with http.put("/v1/Registrar/Users/carol", json={"password": "pa55"}) as resp:
            assert resp.status == 200
        async with http.put("/v1/Registrar/Users/carol", json={}) as resp:
            body = await resp.json()
            assert (resp.status, body["code"]) == (400, 400001) and "password" in body["help"]
        async with http.put("/v1/Registrar/Users/bad;user", json={"password": "x"}) as resp:
            assert resp.status == 400
        async with http.put("/v1/Registrar/Users/carol", data=b"{nope") as resp:
            assert (await resp.json())["code"] == 400010
        async with http.delete("/v1/Registrar/Users/alice") as resp:
            assert resp.status == 400  # the settings file's
        async with http.get("/v1/Registrar/Users/nobody") as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 404002)
        async with http.get("/v1/Registrar/Users") as resp:
            users = {u["user"]: u["source"] for u in (await resp.json())["users"]}
            assert users == {"alice": "settings", "bob": "settings", "carol": "api"}
    account = registered_account("carol", "pa55", sw.sip_uri_host)
    async with baresip_runner.start(seconds=10, lifetime=20, user="carol",
                                    account=account) as phone:
        await registered(phone)
        await wait_registered(sw, "carol")
        async with rest(sw) as http, http.delete("/v1/Registrar/Users/carol") as resp:
            assert resp.status == 200
        assert await registrations(sw, "carol") == []
    async with rest(sw) as http, http.get("/v1/Registrar/Users/carol") as resp:
        assert resp.status == 404


async def test_transfer_to_a_registered_user_rings_its_softphone(
    switch: SwitchFactory, callback_app: CallbackApp, baresip_runner: BaresipRunner,
    sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    callback_app.set_script({
        "init_call": Reply.actions([
            {"type": "TRANSFER", "params": {"no": "sip:alice@127.0.0.1"}},
            {"type": "HANGUP"}]),
    }, default=Reply(json={}))
    sw = await switch(default_callback=callback_app.url, extra_args=config_file(tmp_path))
    account = registered_account("alice", "secret", sw.sip_uri_host)
    # baresip hangs up when its 3 s source ends: the transfer ends, the flow hangs up
    async with baresip_runner.start(seconds=3, lifetime=30, user="alice",
                                    account=account) as phone:
        await registered(phone)
        call = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000",
                                     timeout=25)
        await phone.wait_event("CALL_CLOSED", timeout=10)
    call.assert_ok()
    assert "CALL_ESTABLISHED" in phone.event_types(), phone.event_types()
    assert "answering call" in phone.log and "from sip:sipp@" in phone.log


async def test_baresip_texts_a_number_and_the_callbacks_reply_comes_back(
    switch: SwitchFactory, callback_app: CallbackApp, baresip_runner: BaresipRunner,
    tmp_path: Path,
) -> None:
    callback_app.set_script(lambda req: Reply.actions([{"type": "SMS", "params": {
        "message": f"You said: {req.fields['text_message']}"}}]) if req.type == "sms"
        else Reply(json={}))
    sw = await switch(default_callback=callback_app.url, extra_args=config_file(tmp_path))
    account = registered_account("alice", "secret", sw.sip_uri_host)
    line = f'"Line" <sip:+17145551212@{sw.sip_uri_host}>\n'  # baresip's current contact
    async with baresip_runner.start(seconds=10, lifetime=20, user="alice", account=account,
                                    contacts=line) as phone:
        await registered(phone)
        console = await phone.console()
        try:
            response = await phone.command("message", "Hello from baresip")
            assert response.get("ok"), response
            got = await callback_app.wait_for(type="sms", timeout=10)
            assert await console.wait_for('"You said: Hello from baresip"'), console.text
        finally:
            console.close()
    fields = got.fields
    assert (fields["caller_no"], fields["api_no"]) == ("alice", "+17145551212")
    assert fields["text_message"] == "Hello from baresip"
