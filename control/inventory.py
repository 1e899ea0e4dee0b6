"""The inventory service: the number pool, provisioned numbers, trunks and their calls.

Shared by the REST API (PhoneNumbers, Trunks) and the switch (where an inbound INVITE
goes, which outbound trunk an INVITE uses, how many calls each trunk carries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from control import numbers
from control.calls import iso, utcnow
from control.inventorystore import InventoryStore
from control.storage import Storage
from control.trunks import lists_address

CALL_FLOWS = "CallFlows"
PARKING_LOT = "ParkingLot"
TRUNKS = "Trunks/"


@dataclass(frozen=True)
class Assignment:
    """Where a provisioned number routes: CallFlows, ParkingLot or a trunk."""

    no: str
    assigned_to: str

    @property
    def trunk_id(self) -> str | None:
        return self.assigned_to[len(TRUNKS):] if self.assigned_to.startswith(TRUNKS) else None


def number_json(row: dict[str, Any]) -> dict[str, Any]:
    """A provisioned number as the spec's phone number object."""
    no = row["no"]
    return {
        "no": no, "formatted": numbers.formatted(no), "assigned_to": row["assigned_to"],
        "error": row.get("error"), "capabilities": list(numbers.CAPABILITIES),
        "description": row.get("description") or "",
        "caller_id_name": row.get("caller_id_name"), "status": row["status"],
        "price": 0, "price_period": "day", "created_on": row["created_on"],
        "updated_on": row["updated_on"], "usage": row["usage"],
        "port_out_pin": row.get("port_out_pin"), "type": numbers.number_type(no),
        "location": numbers.location(no), "estimated_active_date": row["created_on"],
        "estimated_active_date_user_message": None,
        "subaccount_id": row.get("subaccount_id") or None,
    }


class Busy(Exception):
    """Another provisioning or release is under way (the spec's 423001)."""


class InventoryService:
    def __init__(self, storage: Storage, pool: Iterable[str] = numbers.DEFAULT_POOL) -> None:
        self.store = InventoryStore(storage)
        self.pool = numbers.parse_pool(pool)
        self._changing = asyncio.Lock()
        self._active: dict[str, set[str]] = {}  # trunk_id → call ids it carries now

    @staticmethod
    def now() -> str:
        return iso(utcnow()) or ""

    # ---- numbers -------------------------------------------------------------------------

    def exclusive(self) -> asyncio.Lock:
        """The lock provisioning, moves and releases hold; Busy when already held."""
        if self._changing.locked():
            raise Busy()
        return self._changing

    async def available(self, query: numbers.Search, max_results: int) -> list[str]:
        taken = await self.store.taken()
        return numbers.search(self.pool, taken, query, max_results)

    async def assignment(self, no: str) -> Assignment | None:
        """The number's routing, when it is provisioned (its E.164 twin tried too)."""
        for candidate in _variants(no):
            row = await self.store.get_number(candidate)
            if row is not None and row["status"] != "released" and row["assigned_to"]:
                return Assignment(candidate, row["assigned_to"])
        return None

    async def subaccount_of(self, no: str) -> int:
        """The Sub Account the number is provisioned in (0: the main account's, or none)."""
        for candidate in _variants(no):
            row = await self.store.get_number(candidate)
            if row is not None and row["status"] != "released":
                return int(row["subaccount_id"] or 0)
        return 0

    # ---- trunk calls ---------------------------------------------------------------------

    def acquire(self, trunk: dict[str, Any], call_id: str) -> bool:
        """Count a call on the trunk; False when it is at its simultaneous_call_limit."""
        active = self._active.setdefault(trunk["trunk_id"], set())
        limit = trunk.get("simultaneous_call_limit")
        if limit is not None and len(active) >= limit:
            return False
        active.add(call_id)
        return True

    def release_call(self, trunk_id: str, call_id: str) -> None:
        self._active.get(trunk_id, set()).discard(call_id)

    def active_calls(self, trunk_id: str) -> int:
        return len(self._active.get(trunk_id, ()))

    async def outbound_trunk(self, domain: str, source_ip: str) -> dict[str, Any] | None:
        """The outbound trunk an INVITE to `domain` from `source_ip` is for: the one whose
        domain it is, else a domain-less one listing the address."""
        trunk = await self.store.trunk_for_domain(domain) if domain else None
        if trunk is not None and trunk["direction"] == "outbound":
            return trunk
        for candidate in await self.store.list_trunks("outbound"):
            if (candidate.get("outbound") or {}).get("domain") is None \
                    and lists_address(candidate, source_ip):
                return candidate
        return None


def _variants(no: str) -> list[str]:
    if no.startswith("+"):
        return [no]
    return [no, "+" + no] if no.isdigit() else [no]
