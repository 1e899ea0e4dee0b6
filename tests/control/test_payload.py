"""Callback request bodies: the spec's fields, and their JSON, XML, form and query forms."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl

import pytest

from control.callflow.payload import (
    callback_fields,
    encode,
    flatten_for_query,
    webhook_fields,
)
from control.calls import Call, Direction, KeyPress


def make_call() -> Call:
    call = Call(id="123456@7890", direction=Direction.INBOUND, caller_no="+19495551212",
                api_no="+17145551212", app_id="app-1")
    call.key_presses = [KeyPress("collectName", "78", ["12", "23", "78"]),
                        KeyPress("pin", "1234#")]
    call.recordings = [{"name": "recordingName", "id": "ABC123"}]
    call.session_data = {"name": "Bob", "tags": ["a", "b"]}
    return call


@pytest.fixture
def body() -> dict[str, Any]:
    return callback_fields(make_call(), "live_call")


def test_fields_by_kind() -> None:
    call = make_call()
    init = callback_fields(call, "init_call")
    assert init["type"] == "init_call" and init["is_webhook"] is False
    assert "key_presses" not in init and "end_time" not in init
    live = callback_fields(call, "live_call")
    assert live["key_presses"][0] == {"name": "collectName", "digits": "78",
                                      "history": ["12", "23", "78"]}
    assert live["recordings"] == [{"name": "recordingName", "id": "ABC123"}]
    assert "end_time" in callback_fields(call, "end_call")
    assert "event_name" not in live and "webhook_data" not in live


def test_webhook_fields() -> None:
    body = webhook_fields(make_call(), "onEnterConference", {"conferenceName": "my-conf"})
    assert body["is_webhook"] is True
    assert body["event_name"] == "onEnterConference"
    assert body["webhook_data"] == {"conferenceName": "my-conf"}
    assert body["type"] == "live_call" and body["call_id"] == "123456@7890"


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", ""])
def test_json(body: dict[str, Any], ctype: str) -> None:
    raw = encode(body, ctype)
    assert json.loads(raw) == body
    assert b" " not in raw.replace(b"Bob", b"")  # minimised


@pytest.mark.parametrize("ctype", ["application/xml", "text/xml", "Application/XML; charset=UTF-8"])
def test_xml_layout(body: dict[str, Any], ctype: str) -> None:
    raw = encode(body, ctype)
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Request>')
    root = ET.fromstring(raw)
    assert root.tag == "Request"
    assert [child.tag for child in root] == list(body)  # one element per field, in order
    assert root.findtext("service") == "programmable_voice"
    assert root.findtext("is_webhook") == "false"
    assert root.findtext("call_id") == "123456@7890"
    assert root.findtext("subaccount_id") == "0"
    kp = root.findall("key_presses/item")
    assert [k.findtext("name") for k in kp] == ["collectName", "pin"]
    assert [k.findtext("digits") for k in kp] == ["78", "1234#"]
    assert [h.text for h in kp[0].findall("history/item")] == ["12", "23", "78"]
    history = kp[1].find("history")
    assert history is not None and len(history) == 0
    assert root.findtext("recordings/item/id") == "ABC123"
    assert [i.text for i in root.findall("session_data/tags/item")] == ["a", "b"]


def test_xml_nulls_and_odd_values() -> None:
    raw = encode({"error": None, "custom_data": {"first name": "<Bob & Co>", "ok": True,
                                                 "n": 1.5, "xmlish": 1},
                  "text": "a\rb\x01c", "empty": {}, "none": []}, "application/xml")
    root = ET.fromstring(raw)
    error = root.find("error")
    assert error is not None and error.get("nil") == "true" and not error.text
    entries = root.findall("custom_data/entry")
    assert [(e.get("key"), e.text) for e in entries] == [("first name", "<Bob & Co>"),
                                                        ("xmlish", "1")]
    assert root.findtext("custom_data/ok") == "true"
    assert root.findtext("custom_data/n") == "1.5"
    assert root.findtext("text") == "a\rb\ufffdc"
    assert root.find("empty") is not None and root.find("none") is not None


def test_xml_webhook_request() -> None:
    body = webhook_fields(make_call(), "onLeave", "$dataMap.webhookData")
    root = ET.fromstring(encode(body, "application/xml"))
    assert root.findtext("is_webhook") == "true"
    assert root.findtext("event_name") == "onLeave"
    assert root.findtext("webhook_data") == "$dataMap.webhookData"


def test_query_fields(body: dict[str, Any]) -> None:
    fields = flatten_for_query(body)
    keys = [k for k, _ in fields]
    assert ("key_presses.collectName", "78") in fields
    assert ("key_presses.pin", "1234#") in fields
    assert ("recordings.recordingName", "ABC123") in fields
    assert not any("history" in k or "history" in v for k, v in fields)  # spec: not in GET
    assert "key_presses" not in keys and "recordings" not in keys
    assert ("is_webhook", "false") in fields
    assert ("caller_no_city", "") in fields  # null → empty
    assert dict(fields)["session_data"] == '{"name":"Bob","tags":["a","b"]}'
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    "ctype", ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; a=b"]
)
def test_form(body: dict[str, Any], ctype: str) -> None:
    decoded = parse_qsl(encode(body, ctype).decode(), keep_blank_values=True)
    assert decoded == flatten_for_query(body)
    assert ("key_presses.pin", "1234#") in decoded  # '#' survives encoding


def test_form_webhook() -> None:
    body = webhook_fields(make_call(), "onEnter", {"a": 1})
    fields = dict(parse_qsl(encode(body, "application/x-www-form-urlencoded").decode(),
                            keep_blank_values=True))
    assert fields["is_webhook"] == "true"
    assert fields["event_name"] == "onEnter"
    assert fields["webhook_data"] == '{"a":1}'
