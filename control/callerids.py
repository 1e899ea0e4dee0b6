"""Caller IDs (spec: Caller IDs): numbers of the user's own that outbound calls may show,
stored per application or Sub Account, and verified by a call.

Statuses: `unverified` when created, `verified` once a verification call took the PIN,
`blocked` after BLOCK_AFTER verification calls in a row ended with a wrong PIN (delete the
caller ID and create it again to start over).

Theory of operation. `CallerIdService.verify` draws a PIN (the spec's `verify_pin`,
PIN_DIGITS digits), stores the attempt as the caller ID's `verification` (a voxswitch
extension: id, status, call_id, error, updated_on) and returns at once; a task then dials
the number as Dials/Connect would (`Dialer.route`: a SIP URI directly, a number through
`[outbound] proxy`) as a bare leg, with `VERIFY_FROM` as its caller ID. When the far end
answers, the leg speaks PROMPT (TTS) and collects the PIN from DTMF (RFC 4733, SIP INFO
or in-band, as COLLECT does): up to PIN_DIGITS digits, `#` ends an entry early, `*`
starts it again, DIGIT_TIMEOUT_S between keys. A right PIN verifies the caller ID; a wrong
one is told so and asked again, MAX_ENTRIES times per call. The verification's status
then ends as one of VERIFICATION_FINAL:

    calling → answered → verified    the PIN was entered
                       → wrong_pin   entries, none right (counts towards blocked)
                       → no_pin      answered, nothing entered
            → no_answer | busy | failed (no route, refused: error says why)

The PIN is not spoken: it is in the REST response only, so whoever answers proves they
hold both the phone and the API key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from control import numbers
from control.calls import CallStatus, iso, utcnow
from control.dialing import DialError, DialRequest
from control.storage import Storage

if TYPE_CHECKING:
    from control.dialer import Dialer
    from control.outbound import OutboundSession

log = logging.getLogger("voxswitch.callerids")

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
STATUSES = ("verified", "unverified", "blocked")
CAPABILITIES = ("voice_outbound",)
PIN_DIGITS = 4
MAX_ENTRIES = 3  # PIN entries per verification call
BLOCK_AFTER = 3  # verification calls in a row with a wrong PIN
DIGIT_TIMEOUT_S = 10.0
RING_TIMEOUT_S = (5, 120, 30)  # min, max, default: the verification call's ring time
MAX_CALL_S = 120.0
VERIFY_FROM = "voxswitch"
PROMPT = ("This is a caller I D verification call. "
          "Please enter your verification code now.")
WRONG = "That code is not correct."
VERIFIED = "Thank you. Your caller I D is verified. Goodbye."
GOODBYE = "Goodbye."
VERIFICATION_FINAL = frozenset({"verified", "wrong_pin", "no_pin", "no_answer", "busy",
                                "failed"})


class CallerIdExists(Exception):
    """Create for a caller ID the account already has."""


class VerifyRefused(ValueError):
    """A verification that cannot start now (blocked, or one under way)."""


@dataclass(frozen=True)
class Verification:
    id: int
    verify_pin: str


def caller_id_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored caller ID as the spec's Caller ID object (plus `verification`)."""
    return {
        "no": row["no"], "formatted": numbers.formatted(row["no"]),
        "capabilities": list(CAPABILITIES), "description": row.get("description") or "",
        "created_on": row["created_on"], "updated_on": row["updated_on"],
        "status": row["status"], "usage": row["usage"],
        "subaccount_id": row.get("subaccount_id") or None,
        "verification": row.get("verification"),
    }


def _row(r: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    no, subaccount_id, status, usage, created_on, updated_on, data = tuple(r)
    return {"no": no, "subaccount_id": subaccount_id, "status": status, "usage": usage,
            "created_on": created_on, "updated_on": updated_on, **json.loads(data)}


_COLUMNS = "no, subaccount_id, status, usage, created_on, updated_on, data"
_DATA_KEYS = ("description", "verification", "failed_calls")


def _data(row: dict[str, Any]) -> str:
    return json.dumps({k: row.get(k) for k in _DATA_KEYS})


class CallerIdStore:
    """The caller_ids table (migration 7 of control.storage)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def get(self, subaccount_id: int, no: str) -> dict[str, Any] | None:
        def q(db: sqlite3.Connection) -> dict[str, Any] | None:
            r = db.execute(f"SELECT {_COLUMNS} FROM caller_ids WHERE subaccount_id = ? "
                           "AND no = ?", (subaccount_id, no)).fetchone()
            return _row(r) if r else None
        return await self.storage.run(q)

    async def list(self, subaccount_id: int, offset: int, limit: int
                   ) -> tuple[list[dict[str, Any]], int]:
        def q(db: sqlite3.Connection) -> tuple[list[dict[str, Any]], int]:
            total = db.execute("SELECT count(*) FROM caller_ids WHERE subaccount_id = ?",
                               (subaccount_id,)).fetchone()[0]
            rows = db.execute(f"SELECT {_COLUMNS} FROM caller_ids WHERE subaccount_id = ? "
                              "ORDER BY created_on, no LIMIT ? OFFSET ?",
                              (subaccount_id, limit, offset)).fetchall()
            return [_row(r) for r in rows], int(total)
        return await self.storage.run(q)

    async def create(self, row: dict[str, Any]) -> None:
        """Insert; CallerIdExists when the account has it already."""
        def q(db: sqlite3.Connection) -> None:
            try:
                db.execute(f"INSERT INTO caller_ids ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (row["no"], row["subaccount_id"], row["status"], row["usage"],
                            row["created_on"], row["updated_on"], _data(row)))
            except sqlite3.IntegrityError:
                raise CallerIdExists(row["no"]) from None
        await self.storage.run(q, transaction=True)

    async def save(self, row: dict[str, Any]) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute("UPDATE caller_ids SET status = ?, usage = ?, updated_on = ?, data = ? "
                       "WHERE subaccount_id = ? AND no = ?",
                       (row["status"], row["usage"], row["updated_on"], _data(row),
                        row["subaccount_id"], row["no"]))
        await self.storage.run(q, transaction=True)

    async def count_usage(self, subaccount_id: int, no: str) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute("UPDATE caller_ids SET usage = usage + 1 WHERE subaccount_id = ? "
                       "AND no = ?", (subaccount_id, no))
        await self.storage.run(q)

    async def delete(self, subaccount_id: int, no: str) -> bool:
        def q(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM caller_ids WHERE subaccount_id = ? AND no = ?",
                              (subaccount_id, no)).rowcount > 0
        return await self.storage.run(q, transaction=True)


def now_iso() -> str:
    return iso(utcnow()) or ""


def new_row(no: str, subaccount_id: int, description: str | None) -> dict[str, Any]:
    now = now_iso()
    return {"no": no, "subaccount_id": subaccount_id, "status": "unverified", "usage": 0,
            "created_on": now, "updated_on": now, "description": description,
            "verification": None, "failed_calls": 0}


class CallerIdService:
    """Caller IDs and their verification calls; one per switch."""

    def __init__(self, storage: Storage, dialer: Dialer | None) -> None:
        self.store = CallerIdStore(storage)
        self._dialer = dialer
        self._tasks: set[asyncio.Task[None]] = set()
        self._under_way: set[tuple[int, str]] = set()

    async def verify(self, row: dict[str, Any], ring_timeout: float) -> Verification:
        """Start a verification call to `row`'s number; its id and PIN."""
        key = (row["subaccount_id"], row["no"])
        if row["status"] == "blocked":
            raise VerifyRefused(f"is blocked: {BLOCK_AFTER} verification calls in a row took "
                                "a wrong PIN; delete it and create it again")
        if key in self._under_way:
            raise VerifyRefused("has a verification call under way; wait for it to end")
        if self._dialer is None:
            raise VerifyRefused("cannot be verified: this switch places no calls")
        try:
            self._dialer.route(row["no"])
        except DialError as exc:
            raise VerifyRefused(f"cannot be called: {exc.message}") from None
        attempt = Verification(secrets.randbelow(9 * 10**8) + 10**8,
                               "".join(secrets.choice("0123456789")
                                       for _ in range(PIN_DIGITS)))
        await self._set(row, attempt.id, "calling")
        self._under_way.add(key)
        task = asyncio.create_task(self._call(row, attempt, ring_timeout),
                                   name=f"verify-{row['no']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("callerid.verify", extra={"caller_id": row["no"], "verification": attempt.id,
                                           "subaccount_id": row["subaccount_id"]})
        return attempt

    def count_call(self, subaccount_id: int, caller_id_no: str) -> None:
        """A call placed from `caller_id_no` (the Dialer's): its caller ID's `usage`, if it
        is one, counts it (in the background: dialling does not wait for the disk)."""
        if not E164.match(caller_id_no):
            return
        task = asyncio.create_task(self._count(subaccount_id, caller_id_no))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count(self, subaccount_id: int, no: str) -> None:
        try:
            await self.store.count_usage(subaccount_id, no)
        except Exception:
            log.exception("callerid.usage_failed", extra={"caller_id": no})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _set(self, row: dict[str, Any], vid: int, status: str, *,
                   call_id: str | None = None, error: str | None = None) -> None:
        current = await self.store.get(row["subaccount_id"], row["no"])
        if current is None:  # deleted meanwhile
            return
        previous = current.get("verification") or {}
        if previous.get("id") not in (None, vid) and status != "calling":
            return  # a newer verification took over
        current["verification"] = {
            "id": vid, "status": status,
            "call_id": call_id or (previous.get("call_id") if previous.get("id") == vid
                                   else None),
            "error": error, "updated_on": now_iso()}
        current["updated_on"] = now_iso()
        if status == "verified":
            current["status"], current["failed_calls"] = "verified", 0
        elif status == "wrong_pin":
            current["failed_calls"] = int(current.get("failed_calls") or 0) + 1
            if current["failed_calls"] >= BLOCK_AFTER:
                current["status"] = "blocked"
        await self.store.save(current)
        row.update(current)
        log.info("callerid.verification", extra={"caller_id": row["no"], "verification": vid,
                                                 "status": status, "error": error})

    async def _call(self, row: dict[str, Any], attempt: Verification,
                    ring_timeout: float) -> None:
        try:
            await self._run_call(row, attempt, ring_timeout)
        except Exception:
            log.exception("callerid.verify_crashed", extra={"caller_id": row["no"]})
            await self._set(row, attempt.id, "failed", error="internal error")
        finally:
            self._under_way.discard((row["subaccount_id"], row["no"]))

    async def _run_call(self, row: dict[str, Any], attempt: Verification,
                        ring_timeout: float) -> None:
        assert self._dialer is not None
        req = DialRequest(no=row["no"], caller_id_no=VERIFY_FROM, timeout=ring_timeout,
                          max_call_time=MAX_CALL_S, subaccount_id=row["subaccount_id"])
        try:
            leg = await self._dialer.dial(req, flow=False)
        except DialError as exc:
            await self._set(row, attempt.id, "failed", error=exc.message)
            return
        await self._set(row, attempt.id, "calling", call_id=leg.call.id)
        answered = asyncio.Event()
        leg.on_answered.append(lambda _: answered.set())
        if leg.answered:  # before the hook was in place
            answered.set()
        await _first(answered.wait(), leg.wait_ended())
        if not answered.is_set() or leg.ended:
            await leg.wait_finished()
            status = {CallStatus.NO_ANSWER: "no_answer",
                      CallStatus.BUSY: "busy"}.get(leg.call.status, "failed")
            error = leg.call.error or (f"SIP {leg.call.sip_response_code}"
                                       if leg.call.sip_response_code else None)
            await self._set(row, attempt.id, status, error=error)
            return
        await self._set(row, attempt.id, "answered")
        outcome = await self._ask(leg, attempt.verify_pin)
        if not leg.ended:
            await leg.hangup()
        await leg.wait_finished()
        await self._set(row, attempt.id, outcome)

    async def _ask(self, leg: OutboundSession, pin: str) -> str:
        """Prompt and collect until the PIN is right; the outcome."""
        entered_any = False
        for _ in range(MAX_ENTRIES):
            await self._say(leg, PROMPT, stop_on_key=True)
            entry = await collect_pin(leg, len(pin))
            entered_any = entered_any or bool(entry)
            if entry == pin:
                await self._say(leg, VERIFIED)
                return "verified"
            if leg.ended:
                break
            if entry:
                await self._say(leg, WRONG)
        if not leg.ended:
            await self._say(leg, GOODBYE)
        return "wrong_pin" if entered_any else "no_pin"

    @staticmethod
    async def _say(leg: OutboundSession, text: str, stop_on_key: bool = False) -> None:
        if leg.ended:
            return
        pcm = await leg.speech(text, voice=None, language=None, gender=None)
        await leg.play(pcm, stop_on_key=stop_on_key)


async def collect_pin(leg: Any, digits: int, timeout: float = DIGIT_TIMEOUT_S) -> str:
    """Up to `digits` keys from `leg` (next_digit): `#` ends early, `*` starts over, a
    silence of `timeout` ends the entry."""
    entry = ""
    while len(entry) < digits:
        key = await leg.next_digit(timeout)
        if key is None or key == "#":
            break
        entry = "" if key == "*" else entry + key
    return entry


async def _first(*aws: Any) -> None:
    waiting = {asyncio.ensure_future(a) for a in aws}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiting:
            w.cancel()
