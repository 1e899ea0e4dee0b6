"""CallFlowConfig validation, the API shape, storage rows and number rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from control.api.errors import ApiError
from control.flowconfig import (
    CallbackTarget,
    CallFlowConfig,
    country_of,
    normalize_number,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
T1 = datetime(2024, 5, 2, 8, 30, 0, tzinfo=UTC)
URL = "https://example.test/ivr"


def full_body() -> dict[str, Any]:
    return {
        "callback": {
            "url": URL,
            "method": "GET",
            "content_type": "application/xml",
            "headers": {"X-Custom-Name": "value"},
            "timeout": 2.5,
        },
        "callback_failover": {"url": "http://backup.test/ivr"},
        "callback_sms": {"url": "https://example.test/sms", "method": "POST"},
        "callback_sms_failover": {"url": "https://example.test/sms2"},
        "answer_on_ring": 5,
        "custom_data": {"foo": "bar"},
    }


def test_minimal_body_takes_the_defaults() -> None:
    cfg = CallFlowConfig.from_request({"callback": {"url": URL}}, "+17145551212", None, now=T0)
    assert cfg.callback == CallbackTarget(URL, "POST", "application/json", {}, 5.0)
    assert cfg.callback_failover is None and cfg.callback_sms is None
    assert cfg.answer_on_ring == 1
    assert cfg.custom_data is None
    assert cfg.created_on == cfg.updated_on == T0


def test_full_body() -> None:
    cfg = CallFlowConfig.from_request(full_body(), None, None, now=T0)
    assert cfg.callback.method == "GET"
    assert cfg.callback.content_type == "application/xml"
    assert cfg.callback.headers == {"X-Custom-Name": "value"}
    assert cfg.callback.timeout == 2.5
    assert cfg.callback_failover is not None
    assert cfg.callback_failover.url == "http://backup.test/ivr"
    assert cfg.callback_sms_failover is not None
    assert cfg.answer_on_ring == 5
    assert cfg.custom_data == {"foo": "bar"}


def test_put_replaces_but_keeps_created_on() -> None:
    first = CallFlowConfig.from_request(full_body(), "1000", None, now=T0)
    second = CallFlowConfig.from_request({"callback": {"url": URL}}, "1000", first, now=T1)
    assert second.created_on == T0 and second.updated_on == T1
    assert second.callback_failover is None and second.answer_on_ring == 1


def test_api_shape_for_a_number() -> None:
    cfg = CallFlowConfig.from_request(full_body(), "+17145551212", None, now=T0)
    out = cfg.to_api()
    assert out["no"] == {"value": "+17145551212", "type": "US"}
    assert out["callback"] == {
        "url": URL,
        "method": "GET",
        "content_type": "application/xml",
        "headers": {"X-Custom-Name": "value"},
        "timeout": 2.5,
    }
    assert out["callback_failover"]["timeout"] == 5  # integral timeouts render as ints
    assert out["created_on"] == out["updated_on"] == out["last_set_on"]
    assert out["created_on"] == "2024-05-01T12:00:00.123Z"
    assert out["answer_on_ring"] == 5 and out["custom_data"] == {"foo": "bar"}


def test_api_shape_for_the_default_omits_unset_callbacks() -> None:
    out = CallFlowConfig.from_request({"callback": {"url": URL}}, None, None).to_api()
    assert out["no"] == {"value": "application", "type": "DEFAULT"}
    assert "callback_failover" not in out and "callback_sms" not in out
    assert out["custom_data"] is None


def test_a_get_response_can_be_put_back() -> None:
    cfg = CallFlowConfig.from_request(full_body(), "+442071234567", None, now=T0)
    again = CallFlowConfig.from_request(cfg.to_api(), "+442071234567", cfg, now=T1)
    assert again.to_api() | {"updated_on": None, "last_set_on": None} == cfg.to_api() | {
        "updated_on": None,
        "last_set_on": None,
    }


@pytest.mark.parametrize("number", [None, "+17145551212", "bob"])
def test_row_round_trip(number: str | None) -> None:
    cfg = CallFlowConfig.from_request(full_body(), number, None, now=T0)
    cfg.is_template = True
    row = cfg.to_row()
    assert row["number"] == (number or "")
    assert CallFlowConfig.from_row(row) == cfg


def _invalid(body: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        CallFlowConfig.from_request(body, "1000", None)
    err = info.value
    assert (err.status, err.code) == (400, 400001)
    return err


@pytest.mark.parametrize(
    "patch,field,allowed",
    [
        ({"callback": None}, "callback", "required"),
        ({"callback": "https://x.test"}, "callback", "object"),
        ({"callback": {}}, "callback.url", "required"),
        ({"callback": {"url": 7}}, "callback.url", "string"),
        ({"callback": {"url": "/relative"}}, "callback.url", "absolute http(s)"),
        ({"callback": {"url": "ftp://x.test/a"}}, "callback.url", "absolute http(s)"),
        ({"callback": {"url": "https://"}}, "callback.url", "absolute http(s)"),
        ({"callback": {"url": URL, "method": "PUT"}}, "callback.method", "POST, GET"),
        ({"callback": {"url": URL, "method": "post"}}, "callback.method", "POST, GET"),
        (
            {"callback": {"url": URL, "content_type": "text/plain"}},
            "callback.content_type",
            "application/json, application/xml, application/x-www-form-urlencoded",
        ),
        ({"callback": {"url": URL, "headers": ["a"]}}, "callback.headers", "object"),
        ({"callback": {"url": URL, "headers": {"X-A": 1}}}, "callback.headers.X-A", "string"),
        (
            {"callback": {"url": URL, "headers": {"X-A": "a\r\nX-B: b"}}},
            "callback.headers.X-A",
            "line breaks",
        ),
        ({"callback": {"url": URL, "headers": {"bad name": "v"}}}, "callback.headers", "header"),
        ({"callback": {"url": URL, "timeout": 0.5}}, "callback.timeout", "between 1 and 15"),
        ({"callback": {"url": URL, "timeout": 16}}, "callback.timeout", "between 1 and 15"),
        ({"callback": {"url": URL, "timeout": "5"}}, "callback.timeout", "number"),
        ({"callback": {"url": URL, "timeout": True}}, "callback.timeout", "number"),
        ({"callback_failover": {"url": "nope"}}, "callback_failover.url", "absolute"),
        ({"callback_sms": {"method": "GET"}}, "callback_sms.url", "required"),
        ({"callback_sms_failover": []}, "callback_sms_failover", "object"),
        ({"answer_on_ring": 0}, "answer_on_ring", "between 1 and 10"),
        ({"answer_on_ring": 11}, "answer_on_ring", "between 1 and 10"),
        ({"answer_on_ring": 2.5}, "answer_on_ring", "integer"),
        ({"answer_on_ring": "3"}, "answer_on_ring", "integer"),
        ({"custom_data": [1, 2]}, "custom_data", "object or null"),
        ({"custom_data": "x"}, "custom_data", "object or null"),
    ],
)
def test_validation_names_the_field_and_what_is_allowed(
    patch: dict[str, Any], field: str, allowed: str
) -> None:
    body = {"callback": {"url": URL}} | patch
    err = _invalid(body)
    assert field in err.message and allowed in err.message
    assert err.message.startswith("Validation Error")
    assert err.field is not None and err.field.startswith(field)


@pytest.mark.parametrize("body", [[], "x", None, 3])
def test_body_must_be_an_object(body: Any) -> None:
    assert "body" in _invalid(body).message


def test_unknown_fields_are_ignored() -> None:
    body = {"callback": {"url": URL}, "no": {"value": "x"}, "log_callbacks_until": "later"}
    CallFlowConfig.from_request(body, None, None)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("+17145551212", "+17145551212"),
        (" +1 714-555-1212 ", "+17145551212"),
        ("+1 (714) 555.1212", "+17145551212"),
        ("+442071234567", "+442071234567"),
        ("1000", "1000"),
        ("bob", "bob"),
        ("Alice.Smith-2", "Alice.Smith-2"),
        ("17145551212", "17145551212"),
    ],
)
def test_normalize_number(raw: str, expected: str) -> None:
    assert normalize_number(raw) == expected


@pytest.mark.parametrize("raw", ["", "+", "+0123", "+1714555121299999", "+1abc", "a b", "x@y"])
def test_bad_numbers(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        normalize_number(raw, "caller_no")
    assert info.value.code == 400001 and "caller_no" in info.value.message


@pytest.mark.parametrize(
    "number,country",
    [
        ("+17145551212", "US"),
        ("+442071234567", "GB"),
        ("+353861234567", "IE"),
        ("+33123456789", "FR"),
        ("+99912345", "UNKNOWN"),
        ("bob", "UNKNOWN"),
        ("1000", "UNKNOWN"),
    ],
)
def test_country_of(number: str, country: str) -> None:
    assert country_of(number) == country
