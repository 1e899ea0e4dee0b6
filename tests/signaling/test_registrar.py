"""The registrar core (RFC 3261 §10.3) with a fake clock: bindings, expiry, refresh,
several contacts, Expires/expires, `Contact: *`, 423, stale CSeqs and bad input."""

from __future__ import annotations

import pytest

from signaling.events import Destination
from signaling.headers import NameAddr
from signaling.message import Request, Response, parse_message
from signaling.registrar import Registrar, RegistrarConfig

SOURCE = Destination("udp", "127.0.0.1", 5080)
CONFIG = RegistrarConfig(min_expires=60, max_expires=3600, default_expires=600)


def register(contacts: list[str] | None = None, *, expires: str | None = None,
             call_id: str = "c1@test", cseq: int = 1, extra: str = "") -> Request:
    lines = "".join(f"Contact: {c}\r\n" for c in contacts or [])
    if expires is not None:
        lines += f"Expires: {expires}\r\n"
    data = (
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKreg1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:alice@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"{lines}{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def contacts_of(response: Response) -> dict[str, int]:
    out = {}
    for value in response.headers.getall("Contact"):
        na = NameAddr.parse(value)
        out[str(na.uri)] = int(na.params["expires"] or -1)
    return out


@pytest.fixture
def registrar() -> Registrar:
    return Registrar(CONFIG)


def test_register_binds_and_lists_contacts(registrar: Registrar) -> None:
    response = registrar.register(register(["<sip:alice@127.0.0.1:5080>"]), "alice", 0.0,
                                  SOURCE)
    assert response.status == 200
    assert contacts_of(response) == {"sip:alice@127.0.0.1:5080": 600}
    [binding] = registrar.lookup("alice", 1.0)
    assert binding.uri.port == 5080 and binding.source == SOURCE


def test_the_200_echoes_the_granted_interval_whatever_the_clock_reads() -> None:
    # loop.time() values where (now + 120) - now lands a hair above (or below) 120
    clocks = [t for t in (i * 0.7310587 + 0.123 for i in range(1, 20000))
              if (t + 120) - t != 120][:50]
    assert any((t + 120) - t > 120 for t in clocks)  # the case that once said 121
    for now in clocks:
        fresh = Registrar(CONFIG)
        response = fresh.register(register(["<sip:alice@127.0.0.1:5080>"], expires="120"),
                                  "alice", now, SOURCE)
        assert contacts_of(response) == {"sip:alice@127.0.0.1:5080": 120}, now
    [binding] = fresh.lookup("alice", clocks[-1])
    assert binding.remaining(clocks[-1] + 119.5) == 1
    assert binding.remaining(clocks[-1] + 120) == 0
    assert binding.remaining(clocks[-1] + 500) == 0


def test_expires_header_and_param_and_cap(registrar: Registrar) -> None:
    response = registrar.register(register(
        ["<sip:alice@127.0.0.1:5080>;expires=120", "<sip:alice@127.0.0.1:5081>",
         "<sip:alice@127.0.0.1:5082>;expires=99999"], expires="300"), "alice", 0.0, SOURCE)
    assert contacts_of(response) == {"sip:alice@127.0.0.1:5080": 120,
                                     "sip:alice@127.0.0.1:5081": 300,
                                     "sip:alice@127.0.0.1:5082": 3600}


def test_binding_expires_and_timer(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>"], expires="60"), "alice", 0.0,
                       SOURCE)
    assert registrar.get_timer() == 60.0
    assert registrar.lookup("alice", 59.9)
    assert registrar.handle_timer(59.0) == []
    [gone] = registrar.handle_timer(60.0)
    assert gone.aor == "alice"
    assert registrar.lookup("alice", 60.0) == [] and registrar.get_timer() is None
    assert registrar.bindings(61.0) == []


def test_refresh_moves_the_expiry(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>"], expires="60"), "alice", 0.0,
                       SOURCE)
    registrar.register(register(["<sip:alice@127.0.0.1:5080>"], expires="60", cseq=2),
                       "alice", 50.0, SOURCE)
    assert registrar.handle_timer(60.0) == []  # the old deadline is stale
    assert registrar.get_timer() == 110.0
    assert len(registrar.lookup("alice", 100.0)) == 1


def test_several_contacts_best_first(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>;q=0.5",
                                 "<sip:alice@127.0.0.1:5081>;q=0.9"]), "alice", 0.0, SOURCE)
    registrar.register(register(["<sip:alice@127.0.0.1:5082>"], call_id="other"), "alice",
                       1.0, SOURCE)
    ports = [b.uri.port for b in registrar.lookup("alice", 2.0)]
    assert ports == [5082, 5081, 5080]


def test_query_without_contact_changes_nothing(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>"]), "alice", 0.0, SOURCE)
    response = registrar.register(register(cseq=2), "alice", 10.0, SOURCE)
    assert response.status == 200 and contacts_of(response) == {
        "sip:alice@127.0.0.1:5080": 590}


def test_expires_zero_removes_one_contact(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>", "<sip:alice@127.0.0.1:5081>"]),
                       "alice", 0.0, SOURCE)
    response = registrar.register(register(["<sip:alice@127.0.0.1:5080>;expires=0"], cseq=2),
                                  "alice", 1.0, SOURCE)
    assert contacts_of(response) == {"sip:alice@127.0.0.1:5081": 599}


def test_wildcard_unregisters_everything(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>", "<sip:alice@127.0.0.1:5081>"]),
                       "alice", 0.0, SOURCE)
    response = registrar.register(register(["*"], expires="0", cseq=2), "alice", 1.0, SOURCE)
    assert response.status == 200 and contacts_of(response) == {}
    assert registrar.lookup("alice", 1.0) == [] and registrar.get_timer() is None


@pytest.mark.parametrize(("contacts", "expires", "reason"), [
    (["*"], None, "Contact: * needs Expires: 0"),
    (["*"], "60", "Contact: * needs Expires: 0"),
    (["*", "<sip:alice@127.0.0.1:5080>"], "0", "Contact: * must be the only Contact"),
])
def test_wildcard_misuse_is_400(registrar: Registrar, contacts: list[str],
                                expires: str | None, reason: str) -> None:
    response = registrar.register(register(contacts, expires=expires), "alice", 0.0, SOURCE)
    assert (response.status, response.reason) == (400, reason)


def test_interval_too_brief_is_423_with_min_expires(registrar: Registrar) -> None:
    response = registrar.register(register(["<sip:alice@127.0.0.1:5080>;expires=30",
                                            "<sip:alice@127.0.0.1:5081>"]), "alice", 0.0,
                                  SOURCE)
    assert (response.status, response.reason) == (423, "Interval Too Brief")
    assert response.headers.get("Min-Expires") == "60"
    assert registrar.lookup("alice", 0.0) == []  # all or nothing


def test_stale_cseq_for_the_same_call_id_is_refused(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>"], cseq=5), "alice", 0.0, SOURCE)
    response = registrar.register(register(["<sip:alice@127.0.0.1:5080>;expires=0"], cseq=5),
                                  "alice", 1.0, SOURCE)
    assert response.status == 400 and "CSeq" in response.reason
    assert len(registrar.lookup("alice", 1.0)) == 1


def test_too_many_contacts_is_403() -> None:
    registrar = Registrar(RegistrarConfig(max_contacts=2))
    contacts = [f"<sip:alice@127.0.0.1:{5080 + i}>" for i in range(3)]
    response = registrar.register(register(contacts), "alice", 0.0, SOURCE)
    assert response.status == 403 and registrar.lookup("alice", 0.0) == []


@pytest.mark.parametrize(("contacts", "expires", "fault"), [
    (["<sip:alice@127.0.0.1:5080>"], "soon", "Malformed Expires header"),
    (["<sip:alice@127.0.0.1:5080>;expires=-1"], None, "Malformed expires parameter"),
    (["<sip:alice@127.0.0.1:5080>;q=2"], None, "is not between 0 and 1"),
    (["<sip:alice@127.0.0.1:5080>;q=high"], None, "Malformed q parameter"),
    (["<tel:+15551234>"], None, "Unsupported Contact URI"),
    (["<sip:alice@127.0.0.1:5080"], None, "Malformed Contact header"),
])
def test_bad_input_is_400(registrar: Registrar, contacts: list[str], expires: str | None,
                          fault: str) -> None:
    response = registrar.register(register(contacts, expires=expires), "alice", 0.0, SOURCE)
    assert response.status == 400 and fault in response.reason
    assert registrar.lookup("alice", 0.0) == []


def test_remove_drops_a_users_bindings(registrar: Registrar) -> None:
    registrar.register(register(["<sip:alice@127.0.0.1:5080>"]), "alice", 0.0, SOURCE)
    assert len(registrar.remove("alice")) == 1
    assert registrar.lookup("alice", 0.0) == [] and registrar.get_timer() is None


def test_config_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        RegistrarConfig(min_expires=600, default_expires=60)
