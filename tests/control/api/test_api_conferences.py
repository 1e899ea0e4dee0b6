"""Conferences over HTTP: the views, Join/JoinToWhisper (injected CONFERENCE actions) and
the participant methods, on a real ConferenceService (members without media)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.api import ApiContext, build_api
from control.callflow.interpreter import compile_actions
from control.calls import Call, CallRegistry
from control.conferences import ConferenceService, JoinOptions, Participant

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]
MakeCall = Callable[..., Call]
SCOPE_APP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"  # conftest's APP_ID


@dataclass
class Control:
    """The call's CallControl: records injected actions."""

    injected: list[list[dict[str, Any]]] = field(default_factory=list)

    async def hangup(self, message: list[str] | None = None) -> None:
        pass

    async def end(self) -> None:
        pass

    async def inject(self, actions: list[dict[str, Any]]) -> None:
        self.injected.append(actions)


class Member:
    def __init__(self, call: Call) -> None:
        self.call = call
        self.told: list[list[str]] = []

    def media_channel(self) -> None:
        return None

    async def audio(self, url: str) -> np.ndarray:
        return np.zeros(8, dtype=np.int16)

    async def play_message(self, message: list[str]) -> None:
        self.told.append(message)


@pytest.fixture
def service() -> ConferenceService:
    return ConferenceService(None)


@pytest.fixture
async def client(registry: CallRegistry, ctx: ApiContext,
                 service: ConferenceService) -> AsyncIterator[Client]:
    ctx.conferences = service
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))
    async with TestClient(TestServer(root, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
def caller(make_call: MakeCall) -> Callable[..., tuple[Call, Control]]:
    def make(call_id: str, no: str = "+17145551212") -> tuple[Call, Control]:
        call = make_call(call_id, caller_no=no, connected_s=1)
        control = Control()
        call.control = control  # type: ignore[assignment]
        return call, control

    return make


def join(service: ConferenceService, call: Call, name: str = "my conference",
         **options: Any) -> tuple[Participant, Member]:
    m = Member(call)
    p = service.join((SCOPE_APP, 0), name, m, JoinOptions(**options)).participant
    p.conference.enter(p)
    return p, m


async def get(client: Client, auth: dict[str, str], path: str) -> tuple[int, Any]:
    resp = await client.get("/v1" + path, headers=auth)
    return resp.status, await resp.json()


async def post(client: Client, auth: dict[str, str], path: str,
               body: Any = None) -> tuple[int, Any]:
    resp = await client.post("/v1" + path, headers=auth, json=body)
    text = await resp.text()
    return resp.status, (json.loads(text) if text else None)


# ---- views ------------------------------------------------------------------------------


async def test_list_is_empty_not_a_live_call(client: Client, auth: dict[str, str]) -> None:
    assert await get(client, auth, "/LiveCalls/Conferences") == (200, {"conferences": []})


async def test_list_and_view_have_the_spec_fields(
        client: Client, auth: dict[str, str], service: ConferenceService,
        caller: Callable[..., tuple[Call, Control]]) -> None:
    a, _ = join(service, caller("123@456", "+17145551212")[0])
    join(service, caller("123@459", "+17145551214")[0], end_on_exit=True)
    join(service, caller("9@9")[0], name="other")
    status, body = await get(client, auth, "/LiveCalls/Conferences")
    assert status == 200 and [c["name"] for c in body["conferences"]] == [
        "my conference", "other"]
    conf = body["conferences"][0]
    assert conf == {
        "id": a.conference.id, "name": "my conference", "status": "in-progress",
        "num_participants": 2, "participants": conf["participants"],
    }
    assert conf["participants"][0] == {
        "id": a.id, "call": {"id": "123@456", "no": "+17145551212"}, "muted": False,
        "on_hold": False, "start_on_join": True, "hold_on_join": False, "end_on_exit": False,
        "hold_on_exit": False,
    }
    assert conf["participants"][1]["end_on_exit"] is True
    assert await get(client, auth, f"/LiveCalls/Conferences/{a.conference.id}") == (200, conf)


async def test_waiting_conference_is_on_hold(
        client: Client, auth: dict[str, str], service: ConferenceService,
        caller: Callable[..., tuple[Call, Control]]) -> None:
    p, _ = join(service, caller("1@1")[0], hold_on_join=True)
    _, body = await get(client, auth, f"/LiveCalls/Conferences/{p.conference.id}")
    assert body["status"] == "on-hold" and body["participants"][0]["on_hold"] is True
    assert body["participants"][0]["hold_on_join"] is True


async def test_participant_detail(client: Client, auth: dict[str, str],
                                  service: ConferenceService,
                                  caller: Callable[..., tuple[Call, Control]]) -> None:
    p, _ = join(service, caller("123@456")[0], join_muted=True)
    status, body = await get(client, auth,
                             f"/LiveCalls/Conferences/{p.conference.id}/Participants/{p.id}")
    assert status == 200
    assert body["participants"] == [p.view()]  # the spec's example
    assert {k: v for k, v in body.items() if k != "participants"} == p.view()  # its table
    assert body["muted"] is True


async def test_unknown_conference_and_participant(
        client: Client, auth: dict[str, str], service: ConferenceService, check_error: Check,
        caller: Callable[..., tuple[Call, Control]]) -> None:
    status, body = await get(client, auth, "/LiveCalls/Conferences/nope")
    assert status == 404
    check_error(body, 404, 404701)
    status, body = await get(client, auth, "/LiveCalls/Conferences/nope/Participants/x")
    check_error(body, 404, 404701)
    p, _ = join(service, caller("1@1")[0])
    status, body = await get(client, auth,
                             f"/LiveCalls/Conferences/{p.conference.id}/Participants/x")
    assert status == 404
    check_error(body, 404, 404702)


async def test_conferences_of_other_applications_are_invisible(
        client: Client, auth: dict[str, str], service: ConferenceService,
        caller: Callable[..., tuple[Call, Control]]) -> None:
    call = caller("1@1")[0]
    p = service.join(("another-app", 0), "x", Member(call), JoinOptions()).participant
    assert (await get(client, auth, "/LiveCalls/Conferences"))[1] == {"conferences": []}
    status, _ = await get(client, auth, f"/LiveCalls/Conferences/{p.conference.id}")
    assert status == 404


# ---- Join -------------------------------------------------------------------------------

BASE = "/LiveCalls/123456@7890/Actions/Conference"


async def test_join_injects_a_conference_action(
        client: Client, auth: dict[str, str],
        caller: Callable[..., tuple[Call, Control]]) -> None:
    _, control = caller("123456@7890")
    status, body = await post(client, auth, BASE + "/Join", {
        "conference_name": "my conference",
        "message": "https://s3.amazonaws.com/com.voxology.music/classical/BusyStrings.mp3",
        "mute_on_key": "1", "unmute_on_key": "2", "exit_on_key": "3",
        "max_participants": 50,
        "hold_audio": "https://myserver.com/conference-app/holdAudio.wav",
    })
    assert (status, body) == (204, None)
    assert control.injected == [[{"type": "CONFERENCE", "params": {
        "name": "my conference", "mute_on_key": "1", "unmute_on_key": "2",
        "exit_on_key": "3", "max_participants": 50,
        "hold_audio": "https://myserver.com/conference-app/holdAudio.wav",
        "message": ["https://s3.amazonaws.com/com.voxology.music/classical/BusyStrings.mp3"],
    }}]]
    compile_actions(control.injected[0])  # a runnable action


async def test_join_has_the_rest_default_keys(
        client: Client, auth: dict[str, str],
        caller: Callable[..., tuple[Call, Control]]) -> None:
    _, control = caller("123456@7890")
    assert (await post(client, auth, BASE + "/Join", {"conference_name": "c1"}))[0] == 204
    assert control.injected[0][0]["params"] == {
        "name": "c1", "mute_on_key": "1", "unmute_on_key": "2", "exit_on_key": "#"}


@pytest.mark.parametrize("body, field", [
    ({}, "conference_name"),
    ({"conference_name": "a/b"}, "conference_name"),
    ({"conference_name": "c", "exit_on_key": "x"}, "exit_on_key"),
    ({"conference_name": "c", "max_participants": 0}, "max_participants"),
    ({"conference_name": "c", "hold_audio": 5}, "hold_audio"),
    ({"conference_name": "c", "message": [1]}, "message"),
])
async def test_join_validation(client: Client, auth: dict[str, str], check_error: Check,
                               caller: Callable[..., tuple[Call, Control]],
                               body: dict[str, Any], field: str) -> None:
    _, control = caller("123456@7890")
    status, err = await post(client, auth, BASE + "/Join", body)
    assert status == 400
    check_error(err, 400, 400001)
    assert field in err["message"] and control.injected == []


async def test_join_unknown_call(client: Client, auth: dict[str, str],
                                 check_error: Check) -> None:
    status, body = await post(client, auth, BASE + "/Join", {"conference_name": "c"})
    assert status == 404
    check_error(body, 404, 404404)


# ---- JoinToWhisper ----------------------------------------------------------------------


async def test_join_to_whisper(client: Client, auth: dict[str, str],
                               service: ConferenceService,
                               caller: Callable[..., tuple[Call, Control]]) -> None:
    _, control = caller("123456@7890")
    target, target_member = join(service, caller("55@1")[0], name="CONFERENCE_NAME")
    status, _ = await post(client, auth, BASE + "/JoinToWhisper", {
        "conference_name": "CONFERENCE_NAME",
        "message": "You are joining a conference as a listener.",
        "target_call": {"id": "55@1", "message": "A supervisor is now listening."},
        "mute_on_key": "1", "unmute_on_key": "2", "exit_on_key": "#",
    })
    assert status == 204
    assert control.injected == [[{"type": "CONFERENCE", "params": {
        "name": "CONFERENCE_NAME", "mute_on_key": "1", "unmute_on_key": "2",
        "exit_on_key": "#", "message": ["You are joining a conference as a listener."],
        "whisper_to": "55@1"}}]]
    await target.quiet()
    assert target_member.told == [["A supervisor is now listening."]]


async def test_join_to_whisper_errors(client: Client, auth: dict[str, str],
                                      service: ConferenceService, check_error: Check,
                                      caller: Callable[..., tuple[Call, Control]]) -> None:
    caller("123456@7890")
    body = {"conference_name": "room", "target_call": {"id": "55@1"}}
    status, err = await post(client, auth, BASE + "/JoinToWhisper", body)
    assert status == 404
    check_error(err, 404, 404701)
    join(service, caller("66@1")[0], name="room")
    check_error((await post(client, auth, BASE + "/JoinToWhisper", body))[1], 404, 404702)
    _, err = await post(client, auth, BASE + "/JoinToWhisper", {"conference_name": "room"})
    check_error(err, 400, 400001)
    assert "target_call" in err["message"]
    _, err = await post(client, auth, BASE + "/JoinToWhisper",
                        {"conference_name": "room", "target_call": {"id": "123456@7890"}})
    check_error(err, 400, 400001)


# ---- Leave, Mute, Unmute, Hold, Resume --------------------------------------------------


async def test_mute_unmute_hold_resume(client: Client, auth: dict[str, str],
                                       service: ConferenceService,
                                       caller: Callable[..., tuple[Call, Control]]) -> None:
    p, m = join(service, caller("123456@7890")[0], name="my conference")
    for what, field_, value in (("Mute", "muted", True), ("Unmute", "muted", False),
                                ("Hold", "on_hold", True), ("Resume", "on_hold", False)):
        status, _ = await post(client, auth, f"{BASE}/{what}", {
            "conference_name": "my conference", "message": f"{what} done"})
        assert status == 204
        assert p.view()[field_] is value
        await p.quiet()
        assert m.told[-1] == [f"{what} done"]


async def test_leave_with_a_message(client: Client, auth: dict[str, str],
                                    service: ConferenceService,
                                    caller: Callable[..., tuple[Call, Control]]) -> None:
    p, _ = join(service, caller("123456@7890")[0], name="my conference")
    status, _ = await post(client, auth, f"{BASE}/Leave", {
        "conference_name": "my conference", "message": ["Goodbye.", "dtmf://1234"]})
    assert status == 204 and p.left
    assert p.exit_message == ["Goodbye.", "dtmf://1234"]  # the action plays it, then goes on
    assert service.find((SCOPE_APP, 0), "my conference") is None


@pytest.mark.parametrize("what", ["Leave", "Mute", "Unmute", "Hold", "Resume"])
async def test_participant_method_errors(client: Client, auth: dict[str, str],
                                         service: ConferenceService, check_error: Check,
                                         caller: Callable[..., tuple[Call, Control]],
                                         what: str) -> None:
    body = {"conference_name": "room"}
    check_error((await post(client, auth, f"{BASE}/{what}", body))[1], 404, 404404)
    caller("123456@7890")
    check_error((await post(client, auth, f"{BASE}/{what}", body))[1], 404, 404701)
    join(service, caller("1@1")[0], name="room")
    check_error((await post(client, auth, f"{BASE}/{what}", body))[1], 404, 404702)
    check_error((await post(client, auth, f"{BASE}/{what}", {"message": "x"}))[1], 400, 400001)
    check_error((await post(client, auth, f"{BASE}/{what}", [1]))[1], 400, 400001)


async def test_without_a_service_there_are_no_conferences(
        ctx: ApiContext, auth: dict[str, str], check_error: Check,
        caller: Callable[..., tuple[Call, Control]]) -> None:
    caller("123456@7890")
    root = web.Application()
    root.add_subapp("/v1", build_api(ctx))  # ctx.conferences is None
    async with TestClient(TestServer(root, host="127.0.0.1")) as c:
        assert (await get(c, auth, "/LiveCalls/Conferences"))[1] == {"conferences": []}
        check_error((await get(c, auth, "/LiveCalls/Conferences/x"))[1], 404, 404701)
        check_error((await post(c, auth, f"{BASE}/Mute", {"conference_name": "r"}))[1],
                    404, 404701)


async def test_routes_are_in_the_openapi_document(client: Client,
                                                  auth: dict[str, str]) -> None:
    _, doc = await get(client, auth, "/openapi.json")
    paths = doc["paths"]
    assert set(paths["/LiveCalls/Conferences"]) == {"get"}
    assert "get" in paths["/LiveCalls/Conferences/{conf_id}/Participants/{part_id}"]
    for what in ("Join", "JoinToWhisper", "Leave", "Mute", "Unmute", "Hold", "Resume"):
        op = paths[f"/LiveCalls/{{call_id}}/Actions/Conference/{what}"]["post"]
        assert op["tags"] == ["Conferences"] and "204" in op["responses"]
    await asyncio.sleep(0)
