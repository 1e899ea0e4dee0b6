"""Caller IDs over HTTP against a real Storage, and the verification call against a
stand-in dialer and leg: right PIN, wrong PINs (and blocked after three such calls), `*`
and `#`, nothing entered, no answer, busy, no route; bad bodies and unknown ids."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control import callerids
from control.api import ApiContext
from control.callerids import CallerIdService, collect_pin
from control.calls import Call, CallRegistry, CallStatus, Direction
from control.dialing import DialError, DialRequest, NoRoute, Route
from control.storage import Storage
from tests.control.api.conftest import API_KEY, APP_ID

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]
NO = "+17145551212"
PATH = "/v1/CallerIDs/%2B17145551212"


class Leg:
    """Stands in for the OutboundSession of a verification call."""

    def __init__(self, answer: bool, keys: str, status: CallStatus) -> None:
        self.call = Call(id="9@1", direction=Direction.OUTBOUND, caller_no=NO,
                         api_no="voxswitch", app_id=APP_ID)
        self.on_answered: list[Any] = []
        self._answer, self._status = answer, status
        self._keys = deque(keys)
        self._ended = asyncio.Event()
        self.said: list[str] = []
        self._answered = False

    @property
    def answered(self) -> bool:
        return self._answered

    def start(self) -> None:
        self._answered = self._answer
        if self._answer:
            for hook in self.on_answered:
                hook(self)
        else:
            self.call.status = self._status
            self._ended.set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def wait_finished(self) -> None:
        await self._ended.wait()

    async def hangup(self) -> None:
        self._ended.set()

    async def speech(self, text: str, **_: Any) -> np.ndarray:
        self.said.append(text)
        return np.zeros(160, np.int16)

    async def play(self, pcm: np.ndarray, *, stop_on_key: bool = False) -> bool:
        return True

    async def next_digit(self, timeout: float) -> str | None:
        await asyncio.sleep(0)
        if not self._keys:
            return None
        key = self._keys.popleft()
        if key == "~":  # the far end hangs up
            self._ended.set()
            return None
        return key


class Dialer:
    def __init__(self) -> None:
        self.legs: list[Leg] = []
        self.requests: list[DialRequest] = []
        self.next: tuple[bool, str, CallStatus] = (True, "", CallStatus.COMPLETED)
        self.refuse: DialError | None = None

    def route(self, no: str) -> Route:
        if self.refuse is not None:
            raise self.refuse
        return Route(f"sip:{no}@proxy", "sip:proxy", None)

    async def dial(self, req: DialRequest, *, flow: bool = True) -> Leg:
        assert flow is False
        self.requests.append(req)
        leg = Leg(*self.next)
        self.legs.append(leg)
        asyncio.get_running_loop().call_soon(leg.start)
        return leg


@pytest.fixture
def dialer() -> Dialer:
    return Dialer()


@pytest.fixture
def ctx(registry: CallRegistry, storage: Storage, dialer: Dialer) -> ApiContext:
    ctx = ApiContext(api_key=API_KEY, registry=registry, storage=storage, app_id=APP_ID)
    ctx.callerids = CallerIdService(storage, dialer)  # type: ignore[arg-type]
    return ctx


async def call(client: Client, method: str, path: str = PATH, body: Any = None,
               status: int = 200, raw: bytes | None = None) -> Any:
    kwargs: dict[str, Any] = {"json": body} if raw is None else {"data": raw}
    resp = await client.request(method, path, headers={"X-API-Key": API_KEY}, **kwargs)
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


async def verified(client: Client, wanted: str = "verified") -> dict[str, Any]:
    for _ in range(200):
        got: dict[str, Any] = await call(client, "GET")
        if (got["verification"] or {}).get("status") in callerids.VERIFICATION_FINAL:
            assert got["verification"]["status"] == wanted, got
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(got)


async def test_create_view_list_update_delete(client: Client) -> None:
    made = await call(client, "POST", body={"description": "Desk Phone"}, status=201)
    assert made | {"created_on": "", "updated_on": ""} == {
        "no": NO, "formatted": "(714) 555-1212", "capabilities": ["voice_outbound"],
        "description": "Desk Phone", "created_on": "", "updated_on": "",
        "status": "unverified", "usage": 0, "subaccount_id": None, "verification": None}
    assert await call(client, "GET") == made
    await call(client, "POST", "/v1/CallerIDs/+19495551212", status=201)  # unencoded +
    listed = await call(client, "GET", "/v1/CallerIDs?page_size=1&page=1")
    assert [c["no"] for c in listed["caller_ids"]] == ["+19495551212"]
    assert listed["pagination"] == {"current_page": 1, "total_pages": 2, "total_items": 2,
                                    "items_per_page": 1}
    updated = await call(client, "PUT", body={"description": "Desk phone at work."})
    assert updated["description"] == "Desk phone at work." and updated["status"] == "unverified"
    assert (await call(client, "GET"))["description"] == "Desk phone at work."
    await call(client, "DELETE", status=204)
    await call(client, "GET", status=404)


async def test_errors(client: Client, check_error: Check) -> None:
    await call(client, "POST", status=201)
    err = await call(client, "POST", status=400)
    check_error(err, 400, 404254)
    assert err["message"] == "1001: failed to insert caller-id: this caller-id already exists"
    for method in ("GET", "PUT", "DELETE", "POST"):
        path = "/v1/CallerIDs/%2B15550001111" + ("/Verify" if method == "POST" else "")
        check_error(await call(client, method, path, body={}, status=404), 404, 404254)
    for bad in ("12", "%2B0123", "abc", "%2B1234567890123456"):
        err = await call(client, "POST", f"/v1/CallerIDs/{bad}", status=400)
        check_error(err, 400, 400001)
        assert err["message"].startswith("Validation Error: caller_id ")
    for body, field in (([1], "body"), ({"description": 5}, "description"),
                        ({"description": "x" * 256}, "description")):
        err = await call(client, "PUT", body=body, status=400)
        assert err["message"].startswith(f"Validation Error: {field} "), err
    check_error(await call(client, "PUT", raw=b"{nope", status=400), 400, 400010)
    bodies: list[Any] = [{"timeout": 1}, {"timeout": "30"}, {"timeout": True}, [30]]
    for body in bodies:
        err = await call(client, "POST", PATH + "/Verify", body=body, status=400)
        check_error(err, 400, 400001)


async def test_a_right_pin_verifies(client: Client, dialer: Dialer) -> None:
    await call(client, "POST", status=201)
    dialer.next = (True, "", CallStatus.COMPLETED)
    started = await call(client, "POST", PATH + "/Verify", body={"timeout": 20})
    assert set(started) == {"id", "verify_pin"} and len(started["verify_pin"]) == 4
    assert started["verify_pin"].isdigit() and isinstance(started["id"], int)
    # the stand-in leg is made at dial time: give it the keys through the dialer's last
    leg = dialer.legs[-1]
    leg._keys.extend("9*" + started["verify_pin"])  # a slip, * starts over
    got = await verified(client)
    assert got["status"] == "verified" and got["verification"]["id"] == started["id"]
    assert got["verification"]["call_id"] == "9@1"
    req = dialer.requests[-1]
    assert (req.no, req.caller_id_no, req.timeout) == (NO, "voxswitch", 20.0)
    assert leg.said == [callerids.PROMPT, callerids.VERIFIED]
    assert str(started["verify_pin"]) not in " ".join(leg.said)  # never spoken
    assert leg.ended


async def test_wrong_pins_three_calls_in_a_row_block(client: Client, dialer: Dialer) -> None:
    await call(client, "POST", status=201)
    for n in range(callerids.BLOCK_AFTER):
        started = await call(client, "POST", PATH + "/Verify")
        wrong = "0000" if started["verify_pin"] != "0000" else "1111"
        dialer.legs[-1]._keys.extend(wrong + "12#" + wrong)  # 3 entries, one cut short
        got = await verified(client, "wrong_pin")
        said = dialer.legs[-1].said
        assert said.count(callerids.PROMPT) == 3 and said[-1] == callerids.GOODBYE
        assert got["status"] == ("blocked" if n == callerids.BLOCK_AFTER - 1 else "unverified")
    err = await call(client, "POST", PATH + "/Verify", status=400)
    assert "blocked" in err["message"]


@pytest.mark.parametrize("answer,keys,status,outcome", [
    (True, "", CallStatus.COMPLETED, "no_pin"),
    (True, "12~", CallStatus.COMPLETED, "wrong_pin"),  # hung up mid-entry
    (False, "", CallStatus.NO_ANSWER, "no_answer"),
    (False, "", CallStatus.BUSY, "busy"),
    (False, "", CallStatus.FAILED, "failed"),
])
async def test_calls_that_verify_nothing(client: Client, dialer: Dialer, answer: bool,
                                         keys: str, status: CallStatus, outcome: str) -> None:
    await call(client, "POST", status=201)
    dialer.next = (answer, keys, status)
    await call(client, "POST", PATH + "/Verify")
    got = await verified(client, outcome)
    assert got["status"] == "unverified"


async def test_no_route_and_a_verification_under_way(client: Client, dialer: Dialer) -> None:
    await call(client, "POST", status=201)
    dialer.refuse = NoRoute("no", "no outbound route for the number")
    err = await call(client, "POST", PATH + "/Verify", status=400)
    assert "no outbound route" in err["message"]
    dialer.refuse = None
    dialer.next = (True, "", CallStatus.COMPLETED)
    callerids_digit_wait = callerids.DIGIT_TIMEOUT_S
    await call(client, "POST", PATH + "/Verify")
    err = await call(client, "POST", PATH + "/Verify", status=400)  # the first still runs
    assert "under way" in err["message"], callerids_digit_wait
    await verified(client, "no_pin")
    await call(client, "POST", PATH + "/Verify")  # over: another may start


async def test_collect_pin_keys() -> None:
    for keys, want in (("1234", "1234"), ("12#34", "12"), ("1*234", "234"),
                       ("12", "12"), ("123456", "1234")):
        leg = Leg(True, keys, CallStatus.COMPLETED)
        assert await collect_pin(leg, 4) == want


async def test_usage_counts_the_calls_placed_from_it(client: Client, ctx: ApiContext) -> None:
    await call(client, "POST", status=201)
    service = ctx.callerids
    assert service is not None
    for caller_id_no in (NO, NO, "+19495551212", "alice"):  # not ours: nothing counted
        service.count_call(0, caller_id_no)
    service.count_call(3, NO)  # another account's
    for _ in range(100):
        if (got := await call(client, "GET"))["usage"] == 2:
            break
        await asyncio.sleep(0.01)
    assert got["usage"] == 2
