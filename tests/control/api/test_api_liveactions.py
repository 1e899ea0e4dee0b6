"""LiveCalls Actions over HTTP: Collect, Stop, Tell, Inject and SessionData."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.api import ApiContext, build_api
from control.calls import Call, CallRegistry, CallStatus, HangupEnd

Client = TestClient[web.Request, web.Application]
Check = Callable[[dict[str, Any], int, int], None]
MakeCall = Callable[..., Call]

BASE = "/v1/LiveCalls/7@1/Actions"


@dataclass
class ActionRecorder:
    """A CallControl that records what the API asked of it."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def hangup(self, message: list[str] | None = None) -> None:
        self.calls.append(("hangup", message))

    async def end(self) -> None:
        self.calls.append(("end", None))

    async def collect(self, message: list[str] | None, options: dict[str, Any]) -> None:
        self.calls.append(("collect", (message, options)))

    async def stop(self, what: str) -> None:
        self.calls.append(("stop", what))

    async def tell(self, message: list[str]) -> None:
        self.calls.append(("tell", message))

    async def inject(self, actions: list[dict[str, Any]]) -> None:
        self.calls.append(("inject", actions))

    async def set_session_data(self, data: dict[str, Any]) -> None:
        self.calls.append(("set_session_data", data))


@pytest.fixture
def control(make_call: MakeCall) -> ActionRecorder:
    recorder = ActionRecorder()
    make_call("7@1", connected_s=3).control = recorder
    return recorder


async def post(client: Client, auth: dict[str, str], path: str, body: Any = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {}
    if raw is not None:
        kwargs["data"] = raw
    elif body is not None:
        kwargs["json"] = body
    resp = await client.post(BASE + path, headers=auth, **kwargs)
    text = await resp.text()
    return resp.status, (json.loads(text) if text else None)


# ---- Collect Digits ---------------------------------------------------------------------

SPEC_COLLECT = {
    "message": "https://s3.amazonaws.com/com.voxology.music/classical/BusyStrings.mp3",
    "callback": {"url": "https://s3.amazonaws.com/", "method": "POST"},
    "num_digits": 10,
    "finish_on_key": "#",
    "timeout": 10,
}


async def test_collect_spec_example(client: Client, auth: dict[str, str],
                                    control: ActionRecorder) -> None:
    status, body = await post(client, auth, "/Collect", SPEC_COLLECT)
    assert (status, body) == (204, None)
    assert control.calls == [("collect", (
        ["https://s3.amazonaws.com/com.voxology.music/classical/BusyStrings.mp3"],
        {"callback": {"url": "https://s3.amazonaws.com/", "method": "POST"},
         "num_digits": 10, "finish_on_key": "#", "timeout": 10},
    ))]


async def test_collect_defaults(client: Client, auth: dict[str, str],
                                control: ActionRecorder) -> None:
    body = {"callback": {"url": "https://app.test/digits", "method": "get"},
            "message": ["Enter your PIN.", "dtmf://1"]}
    status, _ = await post(client, auth, "/Collect", body)
    assert status == 204
    assert control.calls == [("collect", (
        ["Enter your PIN.", "dtmf://1"],
        {"callback": {"url": "https://app.test/digits", "method": "GET"},
         "num_digits": 1, "finish_on_key": "#", "timeout": None},
    ))]


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "callback"),
        ({"callback": "https://x.test"}, "callback"),
        ({"callback": {}}, "callback.url"),
        ({"callback": {"url": ""}}, "callback.url"),
        ({"callback": {"url": "https://x.test", "method": "PATCH"}}, "callback.method"),
        ({"callback": {"url": "https://x.test"}, "num_digits": 0}, "num_digits"),
        ({"callback": {"url": "https://x.test"}, "num_digits": "3"}, "num_digits"),
        ({"callback": {"url": "https://x.test"}, "num_digits": True}, "num_digits"),
        ({"callback": {"url": "https://x.test"}, "finish_on_key": "##"}, "finish_on_key"),
        ({"callback": {"url": "https://x.test"}, "finish_on_key": "a"}, "finish_on_key"),
        ({"callback": {"url": "https://x.test"}, "timeout": -1}, "timeout"),
        ({"callback": {"url": "https://x.test"}, "timeout": "10"}, "timeout"),
        ({"callback": {"url": "https://x.test"}, "message": 5}, "message"),
        ({"callback": {"url": "https://x.test"}, "message": ["ok", ""]}, "message"),
        ({"callback": {"url": "https://x.test"}, "message": "dtmf://12x"}, "message"),
        ([1], "body"),
    ],
)
async def test_collect_validation(client: Client, auth: dict[str, str], check_error: Check,
                                  control: ActionRecorder, body: Any, field: str) -> None:
    _, err = await post(client, auth, "/Collect", body)
    check_error(err, 400, 400001)
    assert err["message"].startswith(f"Validation Error: {field} ")
    assert control.calls == []


# ---- Stop -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,what",
    [(None, "AUDIO"), ({}, "AUDIO"), ({"actions": "AUDIO"}, "AUDIO"),
     ({"actions": "audio, AUDIO"}, "AUDIO"), ({"actions": None}, "AUDIO")],
)
async def test_stop(client: Client, auth: dict[str, str], control: ActionRecorder,
                    body: Any, what: str) -> None:
    status, _ = await post(client, auth, "/Stop", body)
    assert status == 204
    assert control.calls == [("stop", what)]


@pytest.mark.parametrize("body", [{"actions": "VIDEO"}, {"actions": ["AUDIO"]}, "AUDIO"])
async def test_stop_validation(client: Client, auth: dict[str, str], check_error: Check,
                               control: ActionRecorder, body: Any) -> None:
    _, err = await post(client, auth, "/Stop", body)
    check_error(err, 400, 400001)
    assert "actions" in err["message"] or "body" in err["message"]
    assert control.calls == []


# ---- Tell -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"messages": ["https://s3.amazonaws.com/a.mp3", "1234 dollars and 56 cents.",
                       "dtmf://123#"]},
         ["https://s3.amazonaws.com/a.mp3", "1234 dollars and 56 cents.", "dtmf://123#"]),
        ({"message": "Hello"}, ["Hello"]),
        ({"message": ["Hello", "dtmf://1w2"]}, ["Hello", "dtmf://1w2"]),
    ],
)
async def test_tell(client: Client, auth: dict[str, str], control: ActionRecorder,
                    body: Any, expected: list[str]) -> None:
    status, _ = await post(client, auth, "/Tell", body)
    assert status == 204
    assert control.calls == [("tell", expected)]


@pytest.mark.parametrize(
    "body,field",
    [({}, "message"), ({"message": []}, "message"), ({"message": [3]}, "message"),
     ({"messages": {"a": 1}}, "messages"), ({"message": "a", "messages": "b"}, "message"),
     ("Hello", "body")],
)
async def test_tell_validation(client: Client, auth: dict[str, str], check_error: Check,
                               control: ActionRecorder, body: Any, field: str) -> None:
    _, err = await post(client, auth, "/Tell", body)
    check_error(err, 400, 400001)
    assert err["message"].startswith(f"Validation Error: {field} ")
    assert control.calls == []


async def test_tell_needs_a_body(client: Client, auth: dict[str, str], check_error: Check,
                                 control: ActionRecorder) -> None:
    _, err = await post(client, auth, "/Tell")
    check_error(err, 400, 400010)


# ---- Inject Actions List ----------------------------------------------------------------

SPEC_INJECT = [
    {"type": "SAY", "params": {"text": "Welcome to our conference.", "loop": 1}},
    {"type": "CONFERENCE", "params": {"name": "test-conf"}},
]


@pytest.mark.parametrize("body", [SPEC_INJECT, {"actions": SPEC_INJECT}])
async def test_inject(client: Client, auth: dict[str, str], control: ActionRecorder,
                      body: Any) -> None:
    status, _ = await post(client, auth, "", body)
    assert status == 204
    assert control.calls == [("inject", SPEC_INJECT)]


async def test_inject_accepts_assignments(client: Client, auth: dict[str, str],
                                          control: ActionRecorder) -> None:
    actions = [{"$next": "'a.json'"}, {"type": "REDIRECT", "params": {"url": "${next}"}}]
    status, _ = await post(client, auth, "", actions)
    assert status == 204 and control.calls == [("inject", actions)]


@pytest.mark.parametrize(
    "body,field",
    [
        ([], "actions"),
        ({"actions": []}, "actions"),
        ({"actions": {"type": "SAY"}}, "actions"),
        ({}, "actions"),
        ("SAY", "body"),
        ([{"type": "SAY"}, "HANGUP"], "actions[1]"),
        ([{}], "actions[0]"),
        ([{"params": {}}], "actions[0].type"),
        ([{"type": 5}], "actions[0].type"),
        ([{"type": " "}], "actions[0].type"),
        ([{"$x": "1", "params": {}}], "actions[0].type"),
        ([{"type": "SAY", "params": {"text": "x" * 90_000}}], "actions"),
    ],
)
async def test_inject_validation(client: Client, auth: dict[str, str], check_error: Check,
                                 control: ActionRecorder, body: Any, field: str) -> None:
    _, err = await post(client, auth, "", body)
    check_error(err, 400, 400001)
    assert err["message"].startswith(f"Validation Error: {field} ")
    assert control.calls == []


# ---- Modify Session Data ----------------------------------------------------------------


async def test_session_data(client: Client, auth: dict[str, str],
                            control: ActionRecorder) -> None:
    status, _ = await post(client, auth, "/SessionData", {"name": "Bob", "age": 25})
    assert status == 204
    assert control.calls == [("set_session_data", {"name": "Bob", "age": 25})]


async def test_session_data_limit_is_16_kb_minimised(
    client: Client, auth: dict[str, str], check_error: Check, control: ActionRecorder
) -> None:
    # {"a":"xxx…"} is 8 bytes plus the string: exactly 16 KB passes, pretty-printed too
    exact = {"a": "x" * (16 * 1024 - 8)}
    raw = json.dumps(exact, indent=4).encode()
    status, _ = await post(client, auth, "/SessionData", raw=raw)
    assert status == 204 and control.calls == [("set_session_data", exact)]
    _, err = await post(client, auth, "/SessionData", {"a": "x" * (16 * 1024 - 7)})
    check_error(err, 400, 400001)
    assert err["message"].startswith("Validation Error: session_data exceeds 16 KB")
    assert len(control.calls) == 1


@pytest.mark.parametrize("body", [[{"a": 1}], "Bob", 5])
async def test_session_data_must_be_an_object(
    client: Client, auth: dict[str, str], check_error: Check, control: ActionRecorder,
    body: Any
) -> None:
    _, err = await post(client, auth, "/SessionData", body)
    check_error(err, 400, 400001)
    assert err["message"] == "Validation Error: session_data must be a JSON object"


async def test_session_data_bad_json(client: Client, auth: dict[str, str], check_error: Check,
                                     control: ActionRecorder) -> None:
    _, err = await post(client, auth, "/SessionData", raw=b'{"name": "Bob", "age": 25,}')
    check_error(err, 400, 400010)
    assert control.calls == []


# ---- common -----------------------------------------------------------------------------

ALL = [
    ("/Collect", {"callback": {"url": "https://x.test"}}),
    ("/Stop", {}),
    ("/Tell", {"message": "hi"}),
    ("", [{"type": "HANGUP"}]),
    ("/SessionData", {"a": 1}),
]


@pytest.mark.parametrize("path,body", ALL)
async def test_unknown_or_ended_call_is_404404(
    client: Client, auth: dict[str, str], check_error: Check, registry: CallRegistry,
    make_call: MakeCall, path: str, body: Any
) -> None:
    ended = make_call("8@1", connected_s=1)
    recorder = ActionRecorder()
    ended.control = recorder
    ended.mark_ended(CallStatus.COMPLETED, HangupEnd.CALLER)
    registry.ended(ended)
    for call_id in ("nope@1", "8@1"):
        resp = await client.post(f"/v1/LiveCalls/{call_id}/Actions{path}", json=body,
                                 headers=auth)
        assert resp.status == 404
        err = await resp.json()
        check_error(err, 404, 404404)
        assert call_id in err["help"]
    assert recorder.calls == []


@pytest.mark.parametrize("path,body", ALL)
async def test_api_key_required(client: Client, check_error: Check, control: ActionRecorder,
                                path: str, body: Any) -> None:
    resp = await client.post(BASE + path, json=body, headers={"X-API-Key": "wrong"})
    check_error(await resp.json(), 401, 401001)
    assert control.calls == []


async def test_routes_are_in_the_openapi_document(client: Client, auth: dict[str, str],
                                                  ctx: ApiContext) -> None:
    doc = await (await client.get("/v1/openapi.json", headers=auth)).json()
    for path, _ in ALL:
        op = doc["paths"][f"/LiveCalls/{{call_id}}/Actions{path}"]["post"]
        assert op["tags"] == ["LiveCalls"] and "204" in op["responses"]
        assert "requestBody" in op
    build_api(ctx)  # raises if a route were declared twice
