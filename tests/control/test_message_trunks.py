"""Messages to a number assigned to a trunk: `TrunkCalls.message_route` finds the trunk's
inbound destination, and `MessagingService.route` consults it after registered phones and
before the outbound proxy."""

from __future__ import annotations

from typing import Any

from control.dialing import Route
from control.inventory import InventoryService
from control.messagestore import MessageStore
from control.messaging import MessagingService
from control.settings import Settings
from control.storage import Storage
from control.trunkcalls import TrunkCalls
from control.trunks import build_trunk
from tests.control.test_softphones import bind, phones_for

NOW = "2026-01-01T00:00:00.000Z"


async def trunk_calls(storage: Storage, status: str = "active") -> TrunkCalls:
    inventory = InventoryService(storage, ["+19495550100", "+19495550101", "+19495550102"])
    trunk = build_trunk({"direction": "inbound", "status": status,
                         "inbound": {"destination": "sip:pbx.example:5080"}},
                        None, trunk_id="TK1", now=NOW, app_id="app")
    await inventory.store.put_trunk(trunk)
    await inventory.store.provision(["+19495550100"], "Trunks/TK1", NOW, 0, {})
    await inventory.store.provision(["+19495550101"], "CallFlows", NOW, 0, {})
    await inventory.store.provision(["+19495550102"], "Trunks/GONE", NOW, 0, {})
    return TrunkCalls(None, None, inventory)  # type: ignore[arg-type]


async def test_a_trunk_number_goes_to_the_trunks_destination(storage: Storage) -> None:
    calls = await trunk_calls(storage)
    assert await calls.message_route("+1714", "+19495550100") == Route(
        "sip:+19495550100@pbx.example:5080", None, None)
    assert await calls.message_route("+1714", "19495550100") == Route(  # its E.164 twin
        "sip:+19495550100@pbx.example:5080", None, None)
    assert await calls.message_route("+1714", "+19495550101") is None  # CallFlows
    assert await calls.message_route("+1714", "+19495550102") is None  # no such trunk
    assert await calls.message_route("+1714", "+15550000000") is None  # not ours


async def test_an_inactive_trunk_takes_no_messages(storage: Storage) -> None:
    calls = await trunk_calls(storage, status="inactive")
    assert await calls.message_route("+1714", "+19495550100") is None


def service(storage: Storage, **settings: Any) -> MessagingService:
    async def send(*_: Any, **__: Any) -> tuple[int, str]:
        return 200, "OK"

    async def config_of(_: str) -> None:
        return None

    return MessagingService(Settings(**settings), MessageStore(storage), phones_for(storage),
                            send, config_of, lambda: None)  # type: ignore[arg-type,return-value]


async def test_route_asks_the_trunks_after_phones_before_the_proxy(storage: Storage) -> None:
    messaging = service(storage, outbound_proxy="sip:proxy.example:5060")
    asked: list[tuple[str, str]] = []

    async def hook(api_no: str, destination: str) -> Route | None:
        asked.append((api_no, destination))
        return Route("sip:t@trunk", None, None) if destination == "+1949" else None

    messaging.trunk_route = hook
    assert (await messaging.route("+1714", "+1949")).target == "sip:t@trunk"
    assert (await messaging.route("+1714", "+1555")).target == "sip:+1555@proxy.example:5060"
    await messaging.softphones.load()
    bind(messaging.softphones, "alice", 5099)
    assert (await messaging.route("+1714", "alice")).target.startswith("sip:alice@127.0.0.1")
    assert asked == [("+1714", "+1949"), ("+1714", "+1555")]  # a phone: not asked
