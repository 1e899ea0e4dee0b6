"""Registered softphones (control.softphones) over a real SQLite storage, and the
messaging pieces that need no SIP: the [registrar] settings, users from the file and
from REST, where `no` goes (locate and route_for), message texts and their parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.dialing import DialError, NoRoute, route_for
from control.messagestore import MessageFilter, MessageStore
from control.messaging import MessageRefused, _text_of, num_parts
from control.settings import Settings, SettingsError, load
from control.softphones import Softphones, UserError
from control.storage import Storage
from signaling.events import Destination
from signaling.message import Request, parse_message

SETTINGS = Settings(registrar_users={"alice": "secret", "1000": "pw"}, sip_domain="lab.test")


def register_request(user: str, port: int) -> Request:
    data = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
            f"branch=z9hG4bK{port}\r\nFrom: <sip:{user}@lab.test>;tag=1\r\n"
            f"To: <sip:{user}@lab.test>\r\nCall-ID: c{port}@t\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n").encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def phones_for(storage: Storage) -> Softphones:
    phones = Softphones(SETTINGS, storage)
    phones.attach(lambda: ("127.0.0.1", 5070, 5070), lambda: 10.0)
    return phones


def bind(phones: Softphones, user: str, port: int) -> None:
    response = phones.registrar.register(register_request(user, port), user, 10.0,
                                         Destination("udp", "127.0.0.1", port))
    assert response.status == 200


async def test_users_from_the_file_and_rest(storage: Storage) -> None:
    phones = phones_for(storage)
    await phones.load()
    assert phones.password("alice") == "secret" and phones.password("nobody") is None
    assert await phones.put_user("carol", "pa55") is True
    assert await phones.put_user("carol", "pa55") is False
    assert await phones.put_user("alice", "override") is False  # replaces the file's
    assert phones.password("alice") == "override"
    again = phones_for(storage)
    await again.load()  # REST users are kept
    assert again.password("carol") == "pa55" and again.password("alice") == "override"
    assert await again.delete_user("alice") is not None
    assert again.password("alice") == "secret"  # the file's applies again
    with pytest.raises(UserError):
        await again.delete_user("alice")
    assert await again.delete_user("nobody") is None
    for bad in ("", None, "x\r\ny"):
        with pytest.raises(UserError):
            await again.put_user("dave", bad)
    with pytest.raises(UserError):
        await again.put_user("bad;name", "pw")


async def test_a_new_password_drops_registrations(storage: Storage) -> None:
    phones = phones_for(storage)
    await phones.put_user("carol", "one")
    bind(phones, "carol", 6000)
    await phones.put_user("carol", "one")
    assert phones.bindings("carol")
    await phones.put_user("carol", "two")
    assert phones.bindings("carol") == []


@pytest.mark.parametrize("no", ["alice", "sip:alice", "sip:alice@lab.test",
                                "alice@127.0.0.1:5070", "sip:alice@127.0.0.1"])
def test_locate_a_registered_user(storage: Storage, no: str) -> None:
    phones = phones_for(storage)
    bind(phones, "alice", 6001)
    route = phones.locate(no)
    assert route is not None and route.target == "sip:alice@127.0.0.1:6001"
    assert route_for(no, SETTINGS, phones.locate).target == route.target


def test_locate_refuses_unregistered_and_strangers(storage: Storage) -> None:
    phones = phones_for(storage)
    with pytest.raises(NoRoute, match="not registered"):
        phones.locate("1000")  # a user, even though it looks like a number
    with pytest.raises(NoRoute, match="no user"):
        phones.locate("sip:zed@lab.test")
    assert phones.locate("sip:alice@127.0.0.1:5999") is None  # another UA on our host
    assert phones.locate("sip:alice@example.com") is None
    assert phones.locate("+19495551212") is None
    with pytest.raises(DialError):
        route_for("zed", SETTINGS, phones.locate)  # neither a user nor a number


def test_registrar_settings() -> None:
    env = {"VOXSWITCH_REGISTRAR_USERS": "bob:pw1,carol:pw2",
           "VOXSWITCH_REGISTRAR_ALGORITHMS": "md5",
           "VOXSWITCH_REGISTRAR_MIN_EXPIRES": "5"}
    s = load(None, env, {})
    assert s.registrar_users == {"bob": "pw1", "carol": "pw2"}
    assert s.registrar_algorithms == ("MD5",) and s.registrar_min_expires == 5
    assert "pw1" not in repr(s)
    for bad in ({"VOXSWITCH_REGISTRAR_USERS": "nopassword"},
                {"VOXSWITCH_REGISTRAR_ALGORITHMS": "SHA-1"},
                {"VOXSWITCH_REGISTRAR_MIN_EXPIRES": "-3"},
                {"VOXSWITCH_REGISTRAR_MIN_EXPIRES": "7200"}):
        with pytest.raises(SettingsError):
            load(None, bad, {})


def test_registrar_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text('[registrar]\nusers = {alice = "secret"}\nrealm = "lab"\n')
    s = load(path, {}, {})
    assert s.registrar_users == {"alice": "secret"} and s.registrar_realm == "lab"
    path.write_text('[registrar]\nusers = {alice = 5}\n')
    with pytest.raises(SettingsError, match="password"):
        load(path, {}, {})


def _message(body: bytes, ctype: str = "text/plain") -> Request:
    data = (f"MESSAGE sip:+1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            f"From: <sip:a@h>;tag=1\r\nTo: <sip:+1@h>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    message = parse_message(data + body)
    assert isinstance(message, Request)
    return message


def test_message_texts() -> None:
    assert _text_of(_message("caf\u00e9".encode())) == "caf\u00e9"
    assert _text_of(_message("caf\u00e9".encode("latin-1"),
                             'text/plain; charset="ISO-8859-1"')) == "caf\u00e9"
    for body, ctype in ((b"", "text/plain"), (b"\xff\xfe", "text/plain"),
                        (b"x", "text/plain;charset=nope"), (b"\x00x", "text/plain")):
        with pytest.raises(MessageRefused):
            _text_of(_message(body, ctype))
    with pytest.raises(MessageRefused) as too_long:
        _text_of(_message(b"x" * 1601))
    assert too_long.value.field == "length"


@pytest.mark.parametrize(("text", "parts"), [
    ("hi", 1), ("x" * 152, 1), ("x" * 153, 2), ("\u263a" * 66, 1), ("\u263a" * 67, 2),
    ("{[~]}\u20ac" * 30, 2),
])
def test_num_parts(text: str, parts: int) -> None:
    assert num_parts(text) == parts


async def test_message_store_filters(storage: Storage) -> None:
    from datetime import UTC, datetime, timedelta
    store = MessageStore(storage)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        await store.save({"message_id": f"SMO:{i}", "direction": "outbound",
                          "status": "delivered" if i else "failed", "api_no": "+1",
                          "caller_no": "+2", "external_id": f"e{i}"},
                         t0 + timedelta(seconds=i))
    span = (t0, t0 + timedelta(hours=1))
    records, more = await store.list(MessageFilter(*span), 2)
    assert [r["message_id"] for r in records] == ["SMO:0", "SMO:1"] and more
    records, _ = await store.list(MessageFilter(*span, status="delivered",
                                                external_id="e2"), 10)
    assert [r["message_id"] for r in records] == ["SMO:2"]
    assert await store.get("SMO:9") is None
    await store.opt_out(0, "+2", t0)
    assert await store.opted_out(0, "+2") and not await store.opted_out(1, "+2")
    assert await store.opt_in(0, "+2") and not await store.opt_in(0, "+2")


async def test_message_store_pages_after_a_cursor(storage: Storage) -> None:
    from datetime import UTC, datetime, timedelta
    store = MessageStore(storage)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        await store.save({"message_id": f"SMI:{i}", "direction": "inbound",
                          "status": "received"}, t0 + timedelta(seconds=i // 2))
    span = MessageFilter(t0, t0 + timedelta(hours=1))
    first, more = await store.list(span, 2)
    assert more and [r["message_id"] for r in first] == ["SMI:0", "SMI:1"]
    rest, more = await store.list(span, 2, (int(t0.timestamp() * 1000), "SMI:1"))
    assert not more and [r["message_id"] for r in rest] == ["SMI:2"]
