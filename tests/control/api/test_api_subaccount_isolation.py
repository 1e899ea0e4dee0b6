"""Sub-account isolation, route by route: what sub-account A owns, B (and the main
account) can neither read nor change.

`CASES` has one entry per route the API serves below `/SubAccounts/{id}` (the OpenAPI
route table); a route added without an entry fails `test_every_route_has_a_case`. Each
case is run twice: as B (`/v1/SubAccounts/{B}/...`) and as the main account (`/v1/...`),
with A's ids in the path. A's world: a live call in a conference, one in a queue, a call
log, a recording, a message, a number, an inbound trunk and call flow configurations.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.api.app import APPLICATION_LEVEL, RESOURCES, UNPREFIXED
from control.callerids import CallerIdService
from control.calls import Call, Direction
from control.conferences import ConferenceService, JoinOptions
from control.dialing import DialRequest
from control.inventory import InventoryService
from control.messagestore import MessageStore
from control.messaging import MessagingService
from control.queues import QueueService
from control.recordings import RecordingService
from control.settings import Settings
from control.softphones import Softphones
from control.storage import Storage
from control.taps import TapService
from control.timeline import TimelineStore
from media.recorder import wav_header
from tests.control.api.conftest import API_KEY, APP_ID, ERROR_FIELDS, MakeCall
from tests.control.api.test_api_conferences import Control, Member

Client = TestClient[web.Request, web.Application]
AUTH = {"X-API-Key": API_KEY}
POOL = ("+1949555XXXX",)
A_CALLER_ID = "+17145550042"
A_NUMBER = "+19495550100"
A_CONFIG = "https://a.example/flow"


@dataclass
class StubSwitchboard:
    """Dials/Connect: records the request, places nothing."""

    placed: list[DialRequest] = field(default_factory=list)

    async def connect(self, req: DialRequest) -> Call:
        self.placed.append(req)
        return Call(id=f"{len(self.placed)}@9", direction=Direction.OUTBOUND,
                    caller_no=req.no, api_no=req.caller_id_no,
                    app_id=APP_ID, subaccount_id=req.subaccount_id)


@dataclass
class World:
    client: Client
    a: int
    b: int
    ids: dict[str, str]
    switchboard: StubSwitchboard
    storage: Storage

    def base(self, who: str) -> str:
        sub = {"a": self.a, "b": self.b}.get(who)
        return "/v1" if sub is None else f"/v1/SubAccounts/{sub}"

    async def call(self, who: str, method: str, path: str, body: Any = None
                   ) -> tuple[int, Any]:
        kwargs = {} if body is None else {"json": body}
        resp = await self.client.request(method, self.base(who) + path.format(**self.ids),
                                         headers=AUTH, **kwargs)
        raw = await resp.read()
        is_json = resp.content_type == "application/json" and raw
        return resp.status, (json.loads(raw) if is_json else raw)


async def _sub(client: Client, name: str) -> int:
    resp = await client.post("/v1/SubAccounts", json={"name": name}, headers=AUTH)
    assert resp.status == 201
    return int((await resp.json())["id"])


def _messaging(storage: Storage, tmp_path: Path) -> MessagingService:
    async def send(*_: Any, **__: Any) -> tuple[int, str]:
        return 200, "OK"

    async def config_of(_: str) -> None:
        return None

    phones = Softphones(Settings(), storage)
    return MessagingService(Settings(), MessageStore(storage), phones, send, config_of,
                            lambda: None)  # type: ignore[arg-type,return-value]


@pytest.fixture
async def world(ctx: ApiContext, storage: Storage, make_call: MakeCall, tmp_path: Path
                ) -> AsyncIterator[World]:
    conferences, queues = ConferenceService(None), QueueService(None)
    switchboard = StubSwitchboard()
    ctx.conferences, ctx.queues = conferences, queues
    ctx.inventory = InventoryService(storage, POOL)
    ctx.recordings = RecordingService(None, storage, tmp_path / "recordings")
    ctx.messaging = _messaging(storage, tmp_path)
    ctx.switchboard = switchboard  # type: ignore[assignment]
    ctx.callerids = CallerIdService(storage, None)
    ctx.timelines, ctx.taps = TimelineStore(), TapService(None, tmp_path / "taps")
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as client:
        a, b = await _sub(client, "A"), await _sub(client, "B")
        w = World(client, a, b, {}, switchboard, storage)
        # live calls of A: one in a conference, one in a queue
        in_conf = make_call("1@1", caller_no="+17145550001", connected_s=2)
        queued = make_call("2@1", caller_no="+17145550002", connected_s=2)
        for call in (in_conf, queued):
            call.subaccount_id = a
            call.control = Control()  # type: ignore[assignment]
        joined = conferences.join((APP_ID, a), "conf-a", Member(in_conf), JoinOptions())
        joined.participant.conference.enter(joined.participant)
        queues.offer((APP_ID, a), "queue-a", Member(queued))  # type: ignore[arg-type]
        # the conference call's timeline and audio tap (a WAV of one stereo frame)
        ctx.timelines.open(in_conf.id, a).add("call", "a call of A")
        tap = ctx.taps.path_of(in_conf.id)
        tap.parent.mkdir(parents=True)
        tap.write_bytes(wav_header(2, 4) + bytes(4))
        # what A has stored
        await storage.save_call_log({"call_id": "5@1", "start_time": datetime.now(UTC),
                                     "subaccount_id": a, "app_id": APP_ID})
        await storage.add_recording({
            "id": "rec-a", "call_id": "1@1", "name": "", "grp": "g", "app_id": APP_ID,
            "subaccount_id": a, "caller_no": "+17145550001", "direction": "inbound",
            "start_time": datetime.now(UTC), "channels": 1, "path": "rec-a.ulaw"},
            status="completed")
        await MessageStore(storage).save({
            "message_id": "SMO:a", "direction": "outbound", "status": "sent",
            "api_no": A_NUMBER, "caller_no": "+17145550009", "subaccount_id": a,
            "text_message": "hi"}, datetime.now(UTC))
        status, trunk = await w.call("a", "POST", "/Trunks", {
            "direction": "inbound", "inbound": {"destination": "127.0.0.1:5099"}})
        assert status == 201, trunk
        for path, body in (
            ("/PhoneNumbers/CallFlows", {"phone_numbers": [{"no": A_NUMBER}]}),
            ("/CallFlows/Configurations/Default", {"callback": {"url": A_CONFIG}}),
            ("/CallFlows/Configurations/PhoneNumbers/1000", {"callback": {"url": A_CONFIG}}),
        ):
            status, out = await w.call("a", "PUT" if "CallFlows/Conf" in path else "POST",
                                       path, body)
            assert status == 200, out
        status, out = await w.call("a", "POST", "/CallerIDs/" + quote(A_CALLER_ID))
        assert status == 201, out
        conf_id = conferences.conferences((APP_ID, a))[0].id
        w.ids = {"call_id": "1@1", "conf_id": conf_id, "part_id": joined.participant.id,
                 "queue_name": "queue-a", "queued_call_id": "2@1", "log_id": "5@1",
                 "id": "rec-a", "format": "ulw", "message_id": "SMO:a",
                 "phone_number": quote(A_NUMBER), "trunk_id": trunk["trunk_id"],
                 "user": "alice", "assigned_to": "Elsewhere",
                 "caller_id": quote(A_CALLER_ID),
                 "webrtc_id": "0" * 32}  # the WebRTC gateway's routes: application-level
        yield w


# ---- what a case checks ----------------------------------------------------------------

Check = Callable[[World, str], Awaitable[None]]


def _error(status: int, body: Any, code: int) -> None:
    assert isinstance(body, dict) and set(body) == ERROR_FIELDS, body
    assert (status, body["code"]) == (code // 1000, code), body


def gone(code: int, body: Any = None, path: str | None = None, a_ok: bool = True
         ) -> Callable[[str, str], Check]:
    """The other account asking for A's id is answered 404 `code`; A itself is not."""
    def make(method: str, route: str) -> Check:
        async def check(w: World, who: str) -> None:
            status, out = await w.call(who, method, path or route, body)
            _error(status, out, code)
            if method == "GET" and a_ok:
                status, out = await w.call("a", method, path or route, body)
                assert status == 200, (route, out)
        return check
    return make


def hidden(marker: str, path: str | None = None) -> Callable[[str, str], Check]:
    """A's list shows `marker` (an id); the other account's list does not."""
    def make(method: str, route: str) -> Check:
        async def check(w: World, who: str) -> None:
            status, mine = await w.call("a", method, path or route)
            assert status == 200 and w.ids.get(marker, marker) in json.dumps(mine), mine
            status, theirs = await w.call(who, method, path or route)
            assert status == 200 and w.ids.get(marker, marker) not in json.dumps(theirs)
        return check
    return make


def application_level(method: str, route: str) -> Check:
    async def check(w: World, who: str) -> None:
        status, out = await w.call(who, method, route, {})
        if who == "b":
            _error(status, out, 404002)
        for sub in (w.a, w.b):  # under any prefix
            resp = await w.client.request(method, f"/v1/SubAccounts/{sub}" + route.format(
                **w.ids), headers=AUTH, json={})
            _error(resp.status, await resp.json(), 404002)
    return check


def refused(code: int, body: Any = None) -> Callable[[str, str], Check]:
    """No resource of A is involved: the route answers `code` for anyone."""
    def make(method: str, route: str) -> Check:
        async def check(w: World, who: str) -> None:
            status, out = await w.call(who, method, route, body)
            _error(status, out, code)
        return check
    return make


def custom(fn: Callable[[World, str, str, str], Awaitable[None]]
           ) -> Callable[[str, str], Check]:
    def make(method: str, route: str) -> Check:
        async def check(w: World, who: str) -> None:
            await fn(w, who, method, route)
        return check
    return make


async def a_config_unchanged(w: World, number: str = "1000") -> None:
    for path in ("/CallFlows/Configurations/Default",
                 f"/CallFlows/Configurations/PhoneNumbers/{number}"):
        status, out = await w.call("a", "GET", path)
        assert status == 200 and out["callback"]["url"] == A_CONFIG, out


async def put_config(w: World, who: str, method: str, route: str) -> None:
    status, out = await w.call(who, method, route, {"callback": {"url": "https://x.example"}})
    assert status == 200 and out["callback"]["url"] == "https://x.example", out
    await a_config_unchanged(w)


async def a_number_unchanged(w: World) -> None:
    status, out = await w.call("a", "GET", "/PhoneNumbers/{phone_number}")
    assert status == 200 and out["subaccount_id"] == w.a and out["assigned_to"] == "CallFlows"


def numbers_call(code: int | None, body: Any = None) -> Callable[[str, str], Check]:
    """Provision, release or move A's number as someone else: refused (or, for a move,
    reported as not in the application), and A still holds it, unchanged."""
    async def fn(w: World, who: str, method: str, route: str) -> None:
        payload = body if body is not None else {"phone_numbers": [{"no": A_NUMBER}]}
        status, out = await w.call(who, method, route, payload)
        if code is None:
            assert status == 200 and "does not exist" in out[0]["error"], out
        else:
            _error(status, out, code)
        await a_number_unchanged(w)
    return custom(fn)


async def available(w: World, who: str, method: str, route: str) -> None:
    status, out = await w.call(who, method, route + "?capabilities=voice&search_by=prefixes"
                               "&search_on=949555010&max_results=10")
    assert status == 200 and len(out["phone_numbers"]) == 9  # 0100 is taken: A's
    assert A_NUMBER not in json.dumps(out)


async def create_trunk(w: World, who: str, method: str, route: str) -> None:
    # B's trunk cannot fail over to A's, and B's new trunk is not A's
    status, out = await w.call(who, method, route, {
        "direction": "inbound", "inbound": {"destination": "127.0.0.1:5099", "failover": {
            "source": "trunk_id", "value": w.ids["trunk_id"]}}})
    _error(status, out, 400001)
    status, made = await w.call(who, method, route, {
        "direction": "inbound", "inbound": {"destination": "127.0.0.1:5098"}})
    assert status == 201, made
    status, listed = await w.call("a", "GET", "/Trunks")
    assert made["trunk_id"] not in json.dumps(listed)


async def send_message(w: World, who: str, method: str, route: str) -> None:
    body = ({"caller_no": "+17145550008", "api_no": "+19495550199", "text_message": "x"}
            if route == "/Messages" else
            {"call": {"no": "+17145550008", "caller_id_no": "+19495550199"}, "message": "x"})
    status, out = await w.call(who, method, route, body)
    assert status in (200, 201), out
    message_id = out.get("message_id") or out["call"]["id"]
    for viewer, seen in (("a", False), (who, True)):
        status, got = await w.call(viewer, "GET", f"/Messages/{message_id}")
        assert (status == 200) is seen, (viewer, got)


async def dial(w: World, who: str, method: str, route: str) -> None:
    status, out = await w.call(who, method, route, {"call": {
        "no": "+17145550007", "caller_id_no": "+19495550199"}})
    assert status == 201, out
    assert w.switchboard.placed[-1].subaccount_id == (w.b if who == "b" else 0)


CONF = {"conference_name": "conf-a"}
CASES: dict[tuple[str, str], Callable[[str, str], Check]] = {
    # CallFlows
    ("PUT", "/CallFlows/Configurations/Default"): custom(put_config),
    ("GET", "/CallFlows/Configurations/Default"): gone(404102),
    ("DELETE", "/CallFlows/Configurations/Default"): gone(404102),
    ("GET", "/CallFlows/Configurations/PhoneNumbers"): hidden(A_CONFIG),
    ("PUT", "/CallFlows/Configurations/PhoneNumbers/{phone_number}"): custom(put_config),
    ("GET", "/CallFlows/Configurations/PhoneNumbers/{phone_number}"):
        gone(404102, path="/CallFlows/Configurations/PhoneNumbers/1000"),
    ("DELETE", "/CallFlows/Configurations/PhoneNumbers/{phone_number}"):
        gone(404102, path="/CallFlows/Configurations/PhoneNumbers/1000"),
    # Conferences
    ("GET", "/LiveCalls/Conferences"): hidden("conf_id"),
    ("GET", "/LiveCalls/Conferences/{conf_id}"): gone(404701),
    ("GET", "/LiveCalls/Conferences/{conf_id}/Participants/{part_id}"): gone(404701),
    ("POST", "/LiveCalls/{call_id}/Actions/Conference/Join"): gone(404404, CONF),
    ("POST", "/LiveCalls/{call_id}/Actions/Conference/JoinToWhisper"):
        gone(404404, {**CONF, "target_call": {"id": "2@1"}}),
    **{("POST", f"/LiveCalls/{{call_id}}/Actions/Conference/{what}"): gone(404404, CONF)
       for what in ("Leave", "Mute", "Unmute", "Hold", "Resume")},
    # Queues
    ("GET", "/LiveCalls/Queues"): hidden("queue-a"),
    ("GET", "/LiveCalls/Queues/{queue_name}"): gone(404711),
    ("GET", "/LiveCalls/Queues/{queue_name}/Calls"): gone(404711),
    ("GET", "/LiveCalls/Queues/{queue_name}/Calls/{call_id}"):
        gone(404711, path="/LiveCalls/Queues/{queue_name}/Calls/{queued_call_id}"),
    ("GET", "/LiveCalls/Queues/{queue_name}/Peek"): gone(404711),
    ("GET", "/LiveCalls/Queues/{queue_name}/Poll"): gone(404711),
    ("DELETE", "/LiveCalls/Queues/{queue_name}/Calls/{call_id}"):
        gone(404711, path="/LiveCalls/Queues/{queue_name}/Calls/{queued_call_id}"),
    ("DELETE", "/LiveCalls/Queues/{queue_name}"): gone(404711),
    # LiveCalls and their actions
    ("GET", "/LiveCalls"): hidden("call_id"),
    ("GET", "/LiveCalls/{call_id}"): gone(404404),
    ("GET", "/LiveCalls/{call_id}/Timeline"): gone(404404),
    ("GET", "/LiveCalls/{call_id}/Audio"): gone(404404),
    ("DELETE", "/LiveCalls/{call_id}"): gone(404404),
    ("POST", "/LiveCalls/{call_id}/Actions/HangUp"): gone(404404, {}),
    ("POST", "/LiveCalls/{call_id}/Actions/Collect"): gone(404404, {"max_digits": 1}),
    ("POST", "/LiveCalls/{call_id}/Actions/Stop"): gone(404404, {}),
    ("POST", "/LiveCalls/{call_id}/Actions/Tell"): gone(404404, {"message": "hi"}),
    ("POST", "/LiveCalls/{call_id}/Actions"): gone(404404, [{"type": "HANGUP"}]),
    ("POST", "/LiveCalls/{call_id}/Actions/SessionData"): gone(404404, {"k": 1}),
    ("POST", "/LiveCalls/{call_id}/Actions/Transfer"): gone(404404, {"no": "+17145550003"}),
    ("POST", "/LiveCalls/{call_id}/Actions/LeaveVoiceMail"): gone(404404, {}),
    **{("POST", f"/LiveCalls/{{call_id}}/Actions/Recording/{what}"): gone(404404, {})
       for what in ("Start", "Pause", "Resume", "Stop")},
    # History
    ("GET", "/History/Recordings"): hidden("rec-a"),
    ("GET", "/History/Recordings/{call_id}"): gone(404002, path="/History/Recordings/{id}"),
    ("GET", "/History/Recordings/{id}/{format}"): gone(404002, a_ok=False),  # no file
    ("DELETE", "/History/Recordings/{id}"): gone(404002),
    ("GET", "/History/Logs/Calls"): hidden("log_id"),
    ("GET", "/History/Logs/Calls/{call_id}"): gone(404404, path="/History/Logs/Calls/{log_id}"),
    # Dials and Messages
    ("POST", "/Dials/Connect"): custom(dial),
    ("POST", "/Dials/SMS"): custom(send_message),
    ("POST", "/Messages"): custom(send_message),
    ("GET", "/Messages"): hidden("message_id"),
    ("GET", "/Messages/{message_id}"): gone(404002),
    # PhoneNumbers
    ("GET", "/PhoneNumbers/Available"): custom(available),
    ("GET", "/PhoneNumbers"): hidden(A_NUMBER),
    ("GET", "/PhoneNumbers/CallFlows"): hidden(A_NUMBER),
    ("POST", "/PhoneNumbers/CallFlows"): numbers_call(400200),  # numbers are global
    ("DELETE", "/PhoneNumbers/CallFlows"): numbers_call(400201),
    ("GET", "/PhoneNumbers/ParkingLot"): hidden(A_NUMBER, "/PhoneNumbers/CallFlows"),
    ("POST", "/PhoneNumbers/ParkingLot"): numbers_call(400200),
    ("DELETE", "/PhoneNumbers/ParkingLot"): numbers_call(400201),
    ("GET", "/PhoneNumbers/Trunks/{trunk_id}"): gone(404002),
    ("POST", "/PhoneNumbers/Trunks/{trunk_id}"): numbers_call(404002),
    ("DELETE", "/PhoneNumbers/Trunks/{trunk_id}"): numbers_call(404002),
    ("GET", "/PhoneNumbers/{phone_number}"): gone(404214),
    ("POST", "/PhoneNumbers/{assigned_to}"): refused(400202, {}),
    ("PUT", "/PhoneNumbers/Move"): numbers_call(None),
    ("PUT", "/PhoneNumbers/Move/CallFlows"): numbers_call(None),
    ("PUT", "/PhoneNumbers/Move/ParkingLot"): numbers_call(None),
    ("PUT", "/PhoneNumbers/Move/Trunks/{trunk_id}"): numbers_call(404002),
    ("PUT", "/PhoneNumbers/{phone_number}"): numbers_call(404214, {"description": "x"}),
    # Trunks
    ("GET", "/Trunks"): hidden("trunk_id"),
    ("POST", "/Trunks"): custom(create_trunk),
    ("GET", "/Trunks/{trunk_id}"): gone(404002),
    ("PUT", "/Trunks/{trunk_id}"): gone(404002, {"description": "x"}),
    ("DELETE", "/Trunks/{trunk_id}"): gone(404002),
    ("GET", "/Trunks/{trunk_id}/Logs/Calls"): gone(404002),
}


async def create_caller_id(w: World, who: str, method: str, route: str) -> None:
    # the other account's own Caller ID of the same number: A's is left as it was
    status, out = await w.call(who, method, route, {"description": "theirs"})
    assert status == 201 and out["description"] == "theirs", out
    status, out = await w.call("a", "GET", route)
    assert status == 200 and out["description"] != "theirs", out


async def live_events(w: World, who: str, method: str, route: str) -> None:
    """The first snapshot of the stream: A's calls, conference and queue, or none of them."""
    markers = [w.ids[k] for k in ("call_id", "queued_call_id", "conf_id", "queue_name")]
    for asker, shown in (("a", True), (who, False)):
        status, raw = await w.call(asker, method, route + "?max_events=1")
        text = raw.decode() if isinstance(raw, bytes) else json.dumps(raw)
        assert status == 200 and "event: live" in text, text
        assert all((m in text) is shown for m in markers), (asker, markers, text)


CASES.update({
    ("GET", "/LiveEvents"): custom(live_events),
})


CASES.update({
    ("POST", "/CallerIDs/{caller_id}"): custom(create_caller_id),
    ("GET", "/CallerIDs"): hidden(A_CALLER_ID),
    ("GET", "/CallerIDs/{caller_id}"): gone(404254),
    ("PUT", "/CallerIDs/{caller_id}"): gone(404254, {"description": "x"}),
    ("DELETE", "/CallerIDs/{caller_id}"): gone(404254),
    ("POST", "/CallerIDs/{caller_id}/Verify"): gone(404254, {}),
})


def served_routes() -> list[tuple[str, str, bool]]:
    """Every route below the prefix: (method, unprefixed path, application-level)."""
    return [(r.method, r.path, table in APPLICATION_LEVEL)
            for table in RESOURCES if table not in UNPREFIXED for r in table.routes]


def test_every_route_has_a_case() -> None:
    """A new route needs a sub-account case here (or to be application-level)."""
    scoped = {(m, p) for m, p, app_level in served_routes() if not app_level}
    assert scoped - set(CASES) == set(), "routes without a sub-account case"
    assert set(CASES) - scoped == set(), "cases for routes that no longer exist"


async def test_the_openapi_document_lists_the_prefixed_routes(world: World) -> None:
    status, doc = await world.call("main", "GET", "/openapi.json")
    assert status == 200
    for method, path, _ in served_routes():
        op = doc["paths"]["/SubAccounts/{subaccount_id}" + path][method.lower()]
        assert op["operationId"].endswith("_subaccount")
        assert "subaccount_id" in [p["name"] for p in op["parameters"]]
    assert "/SubAccounts/{subaccount_id}/SubAccounts" not in doc["paths"]


@pytest.mark.parametrize("who", ["b", "main"])
@pytest.mark.parametrize(("method", "route"),
                         [(m, p) for m, p, _ in served_routes()],
                         ids=[f"{m} {p}" for m, p, _ in served_routes()])
async def test_another_account_cannot_reach_a(world: World, who: str, method: str,
                                              route: str) -> None:
    case = CASES.get((method, route))
    check = application_level(method, route) if case is None else case(method, route)
    await check(world, who)


async def test_a_sees_its_own(world: World) -> None:
    for path, key in (("/LiveCalls/{call_id}", "subaccount_id"),
                      ("/History/Logs/Calls/{log_id}", "subaccount_id"),
                      ("/History/Recordings/{id}", "subaccount_id"),
                      ("/Messages/{message_id}", "subaccount_id"),
                      ("/Trunks/{trunk_id}", "subaccount_id")):
        status, out = await world.call("a", "GET", path)
        assert status == 200 and out[key] == world.a, (path, out)


async def test_the_main_account_lists_a_sub_accounts_recordings(world: World) -> None:
    status, out = await world.call("main", "GET", f"/History/Recordings?subaccount_id={world.a}")
    assert status == 200 and [r["id"] for r in out["recordings"]] == ["rec-a"]
    status, out = await world.call("b", "GET", f"/History/Recordings?subaccount_id={world.a}")
    assert status == 200 and out["recordings"] == []


async def test_numbers_move_between_accounts(world: World) -> None:
    body = {"phone_numbers": [{"no": A_NUMBER}], "subaccount_id": world.b}
    status, out = await world.call("a", "PUT", "/PhoneNumbers/Move", body)
    assert status == 200 and "error" not in out[0], out
    status, out = await world.call("b", "GET", "/PhoneNumbers/{phone_number}")
    assert status == 200 and out["subaccount_id"] == world.b
    status, _ = await world.call("a", "GET", "/PhoneNumbers/{phone_number}")
    assert status == 404
    status, out = await world.call("b", "PUT", "/PhoneNumbers/Move",
                                   {"phone_numbers": [{"no": A_NUMBER}], "app_id": APP_ID})
    assert status == 200 and "error" not in out[0], out
    status, out = await world.call("main", "GET", "/PhoneNumbers/{phone_number}")
    assert status == 200 and out["subaccount_id"] is None
    status, out = await world.call("main", "PUT", "/PhoneNumbers/Move",
                                   {"phone_numbers": [{"no": A_NUMBER}], "subaccount_id": 999})
    assert status == 404 and out["code"] == 404801


async def test_a_deleted_sub_account_answers_404802_below_its_prefix(world: World) -> None:
    made = await _sub(world.client, "C")
    resp = await world.client.delete(f"/v1/SubAccounts/{made}", headers=AUTH)
    assert resp.status == 204
    for path in ("/LiveCalls", "/Trunks", "/CallFlows/Configurations/Default"):
        resp = await world.client.get(f"/v1/SubAccounts/{made}{path}", headers=AUTH)
        _error(resp.status, await resp.json(), 404802)
    resp = await world.client.delete(f"/v1/SubAccounts/{world.a}", headers=AUTH)
    _error(resp.status, await resp.json(), 403803)  # A has numbers, logs, recordings
