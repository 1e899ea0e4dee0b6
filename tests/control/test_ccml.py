"""CCML: XML call flows compile to exactly the JSON actions, and back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from control.callflow.ccml import parse_ccml, to_ccml
from control.callflow.client import HARD_LIMIT, parse_actions
from control.callflow.errors import NoActions, ResponseTooLarge

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "voxology-api.txt"


def spec_examples() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every "Example Response" of the spec's Actions section, as an action list."""
    text = SPEC.read_text()
    section = text[text.index("\nActions\n\nCOLLECT\n") : text.index("\nMethods\n\nAccount\n")]
    out = []
    for title, block in re.findall(r"(Example Responses?[^\n]*)\n\n(\{.*?\n\})\n", section, re.S):
        doc = json.loads(block)
        out.append((title, doc["actions"] if "actions" in doc and "type" not in doc else [doc]))
    return out


EXAMPLES = spec_examples() if SPEC.exists() else []


def ids(examples: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    return [f"{i}-{acts[0].get('type', 'SET')}-{title}" for i, (title, acts) in enumerate(examples)]


def test_the_spec_has_examples_for_every_action_type() -> None:
    assert SPEC.exists(), f"the spec is expected beside the checkout at {SPEC}"
    seen = {a.get("type") for _, acts in EXAMPLES for a in acts}
    assert len(EXAMPLES) == 30
    assert {"COLLECT", "CONFERENCE", "DETECT", "DIAL", "FOREACH", "GOTO", "HANGUP", "IF",
            "LABEL", "PAUSE", "PLAY", "QUEUE", "RECORD", "RECORDMESSAGE", "REDIRECT",
            "REJECT", "SAY", "SESSIONDATA", "SMS", "STOP", "TRANSFER", "WEBHOOK"} <= seen


@pytest.mark.parametrize("actions", [a for _, a in EXAMPLES], ids=ids(EXAMPLES))
def test_every_spec_example_round_trips(actions: list[dict[str, Any]]) -> None:
    xml = to_ccml(actions)
    assert parse_ccml(xml.encode()) == actions
    # and through the callback client, as either XML media type
    assert parse_actions(xml.encode(), "application/xml; charset=utf-8") == actions
    assert parse_actions(xml.encode(), "text/xml") == actions


ADVANCED_JSON = """{"actions": [
  {"$nextUrl": "'operator.json'"},
  {"type": "LABEL", "name": "PROMPT_MENU_CHOICE"},
  {"type": "COLLECT",
   "actions": [{"type": "SAY", "params": {"text": "Press1forsales.Press2forservice."}}],
   "params": {"num_digits": 1}},
  {"type": "IF", "condition": "! $keyPresses && $collectAttempt < 3",
   "then": [{"type": "GOTO", "params": {"label": "PROMPT_MENU_CHOICE"}}]},
  {"type": "IF", "condition": "$keyPresses=='1'", "then": [{"$nextUrl": "'sales.json'"}]},
  {"type": "IF", "condition": "$keyPresses=='2'", "then": [{"$nextUrl": "'service.json'"}]},
  {"type": "REDIRECT", "params": {"url": "${nextUrl}"}}
]}"""

ADVANCED_XML = """<?xml version="1.0"?>
<!-- COLLECT, Example Response // Advanced -->
<response name="MainMenu">
  <Set var="$nextUrl" value="'operator.json'"/>
  <label name="PROMPT_MENU_CHOICE"/>
  <COLLECT numDigits="1">
    <Say><![CDATA[Press1forsales.Press2forservice.]]></Say>
  </COLLECT>
  <If condition="! $keyPresses &amp;&amp; $collectAttempt &lt; 3">
    <GoTo label="PROMPT_MENU_CHOICE"/>
  </If>
  <If condition="$keyPresses=='1'">
    <Then><Set var="nextUrl">'sales.json'</Set></Then>
  </If>
  <If condition="$keyPresses=='2'">
    <Then><Set><Var name="$nextUrl" value="'service.json'"/></Set></Then>
  </If>
  <Redirect>${nextUrl}</Redirect>
</response>
"""


def test_handwritten_advanced_example_compiles_to_the_json() -> None:
    assert parse_ccml(ADVANCED_XML.encode()) == json.loads(ADVANCED_JSON)["actions"]


FLOWS = [
    (
        """<Response><Say voice="Kevin" repeat="2" stop_on_key="true">Hello</Say>
           <PLAY dtmf="12-3" dtmf_delay="100"/><Play>https://x.test/a.wav</Play>
           <Pause>3</Pause><Hangup/></Response>""",
        [
            {"type": "SAY",
             "params": {"voice": "Kevin", "repeat": 2, "stop_on_key": True, "text": "Hello"}},
            {"type": "PLAY", "params": {"dtmf": "12-3", "dtmf_delay": 100}},
            {"type": "PLAY", "params": {"url": "https://x.test/a.wav"}},
            {"type": "PAUSE", "params": {"seconds": 3}},
            {"type": "HANGUP"},
        ],
    ),
    (
        """<Response>
             <Collect name="rating" comments="Rating." finish_on_key="#" num_digits="1"
                      timeout="5000">
               <Say>Press 1 for yes.</Say><Pause seconds="1"/>
             </Collect>
           </Response>""",
        [{"name": "rating", "comments": "Rating.", "type": "COLLECT",
          "params": {"finish_on_key": "#", "num_digits": 1, "timeout": 5000},
          "actions": [{"type": "SAY", "params": {"text": "Press 1 for yes."}},
                      {"type": "PAUSE", "params": {"seconds": 1}}]}],
    ),
    (
        """<Response>
             <Conference max_participants="10" mute_on_key="1" exit_on_key="#0">my-conf
             </Conference>
           </Response>""",
        [{"type": "CONFERENCE", "params": {"max_participants": 10, "mute_on_key": "1",
                                            "exit_on_key": "#0", "name": "my-conf"}}],
    ),
    (
        """<Response>
             <Conference>
               <Param name="name">my-conference</Param>
               <OnEnter><Say>Joining.</Say><Webhook event_name="onEnterConference"/></OnEnter>
               <on_enter_error_max_participants><Say>Full.</Say></on_enter_error_max_participants>
             </Conference>
           </Response>""",
        [{"type": "CONFERENCE", "params": {"name": "my-conference"},
          "events": {"on_enter": [{"type": "SAY", "params": {"text": "Joining."}},
                                  {"type": "WEBHOOK",
                                   "params": {"event_name": "onEnterConference"}}],
                     "on_enter_error_max_participants": [
                         {"type": "SAY", "params": {"text": "Full."}}]}}],
    ),
    (
        """<Response>
             <Webhook url="https://my.test/hook" method="POST" await_response="false"
                      timeout="10" event_name="onEnter">
               <WebhookData>{"conferenceName": "my-conf", "n": [1, null]}</WebhookData>
               <headers>{"X-Token": "abc"}</headers>
               <OnError><Set var="$webhookData" value="{ foo: 'no foo' }"/></OnError>
             </Webhook>
             <Webhook><webhook_data>$dataMap.webhookData</webhook_data>
               <event_name>onLeave</event_name></Webhook>
           </Response>""",
        [{"type": "WEBHOOK",
          "params": {"url": "https://my.test/hook", "method": "POST", "await_response": False,
                     "timeout": 10, "event_name": "onEnter",
                     "webhook_data": {"conferenceName": "my-conf", "n": [1, None]},
                     "headers": {"X-Token": "abc"}},
          "events": {"on_error": [{"$webhookData": "{ foo: 'no foo' }"}]}},
         {"type": "WEBHOOK",
          "params": {"webhook_data": "$dataMap.webhookData", "event_name": "onLeave"}}],
    ),
    (
        """<Response>
             <SessionData>{"name": "Bob", "age": 21}</SessionData>
             <Dial caller_id_no="+17145552222" detection="preconnect" timeout="30">
               abc123@sip.mypbx.com
               <SessionData>$sessionData</SessionData>
             </Dial>
           </Response>""",
        [{"type": "SESSIONDATA", "session_data": {"name": "Bob", "age": 21}},
         {"type": "DIAL", "params": {"caller_id_no": "+17145552222", "detection": "preconnect",
                                     "timeout": 30, "no": "abc123@sip.mypbx.com"},
          "session_data": "$sessionData"}],
    ),
    (
        """<Response>
             <SessionData>{"name": "Bob", "age": 21}</SessionData>
             <Dial no="abc123@sip.mypbx.com" timeout="30">
               <SessionData>$sessionData</SessionData>
               <OnError><Say>This call could not be dialed.</Say></OnError>
             </Dial>
           </Response>""",
        [{"type": "SESSIONDATA", "session_data": {"name": "Bob", "age": 21}},
         {"type": "DIAL", "params": {"no": "abc123@sip.mypbx.com", "timeout": 30},
          "session_data": "$sessionData",
          "events": {"on_error": [{"type": "SAY",
                                   "params": {"text": "This call could not be dialed."}}]}}],
    ),
    (
        """<Response>
             <Set var="$pets" value="['Whiskers', 'Spot']"/>
             <ForEach iterator="$pets" valueVar="$v" KeyVar="$k">
               <Say>The key ${k} has a value of ${v}.</Say>
             </ForEach>
             <If condition="$sessionData.age &gt; 21">
               <Then><Say>Over 21.</Say></Then>
               <OrElse><Reject reason="disconnected"/></OrElse>
             </If>
           </Response>""",
        [{"$pets": "['Whiskers', 'Spot']"},
         {"type": "FOREACH", "params": {"iterator": "$pets", "valueVar": "$v", "keyVar": "$k"},
          "then": [{"type": "SAY", "params": {"text": "The key ${k} has a value of ${v}."}}]},
         {"type": "IF", "condition": "$sessionData.age > 21",
          "then": [{"type": "SAY", "params": {"text": "Over 21."}}],
          "orElse": [{"type": "REJECT", "params": {"reason": "disconnected"}}]}],
    ),
    (
        """<Response xmlns="urn:example:ccml">
             <Queue event="offer" max_calls="10" async="true">low-priority</Queue>
             <Transfer caller_id_no="+17145552222">+19495551111</Transfer>
             <Stop>AUDIO</Stop><Sms no="+19495551111">Hello, world!</Sms>
             <RecordMessage action="start" max_recording_time="60.5"/>
             <Redirect method="GET" content_type="application/xml">next.xml</Redirect>
             <Detect trigger_live_in_ms="2500">
               <OnLivePerson><Say>Hi.</Say></OnLivePerson>
               <Events><Event name="on_voicemail"><Hangup/></Event></Events>
             </Detect>
             <Goto>menu</Goto><Label>menu</Label>
           </Response>""",
        [{"type": "QUEUE", "params": {"event": "offer", "max_calls": 10, "async": True,
                                       "name": "low-priority"}},
         {"type": "TRANSFER", "params": {"caller_id_no": "+17145552222", "no": "+19495551111"}},
         {"type": "STOP", "params": {"actions": "AUDIO"}},
         {"type": "SMS", "params": {"no": "+19495551111", "message": "Hello, world!"}},
         {"type": "RECORDMESSAGE", "params": {"action": "start", "max_recording_time": 60.5}},
         {"type": "REDIRECT", "params": {"method": "GET", "content_type": "application/xml",
                                          "url": "next.xml"}},
         {"type": "DETECT", "params": {"trigger_live_in_ms": 2500},
          "events": {"on_live_person": [{"type": "SAY", "params": {"text": "Hi."}}],
                     "on_voicemail": [{"type": "HANGUP"}]}},
         {"type": "GOTO", "params": {"label": "menu"}},
         {"type": "LABEL", "name": "menu"}],
    ),
]


@pytest.mark.parametrize("xml,expected", FLOWS)
def test_handwritten_flows(xml: str, expected: list[dict[str, Any]]) -> None:
    actions = parse_ccml(xml.encode())
    assert actions == expected
    assert parse_ccml(to_ccml(actions).encode()) == expected


@pytest.mark.parametrize(
    "xml,expected",
    [
        # attribute strings become the param's type only where the table knows it
        ('<Say repeat="2.5" mood="3">x</Say>', {"repeat": 2.5, "mood": "3", "text": "x"}),
        ('<Say repeat="${n}" stop_on_key="maybe">x</Say>',
         {"repeat": "${n}", "stop_on_key": "maybe", "text": "x"}),
        ('<Say stop_on_key="TRUE">x</Say>', {"stop_on_key": True, "text": "x"}),
        ('<Collect num_digits="007"/>', {"num_digits": "007"}),
        ('<Say><Param name="repeat" type="string">2</Param>x</Say>', {"repeat": "2", "text": "x"}),
        ('<Say><Param name="repeat" type="string">2</Param><text> x </text></Say>',
         {"repeat": "2", "text": "x"}),
        ('<Say><Param name="text" type="string"> x </Param></Say>', {"text": " x "}),
        ('<Say><Param name="volume" type="json">{"db": -3}</Param></Say>',
         {"volume": {"db": -3}}),
        ('<Webhook><WebhookData type="string">{"a":1}</WebhookData></Webhook>',
         {"webhook_data": '{"a":1}'}),
        ('<Webhook><WebhookData>"42"</WebhookData></Webhook>', {"webhook_data": "42"}),
        ('<Pause>${wait}</Pause>', {"seconds": "${wait}"}),
    ],
)
def test_param_types(xml: str, expected: dict[str, Any]) -> None:
    doc = f"<Response>{xml}</Response>".encode()
    assert parse_ccml(doc)[0]["params"] == expected


ODD_ACTIONS: list[dict[str, Any]] = [
    {"type": "SAY", "params": {"text": "  padded  ", "repeat": "2"}},
    {"type": "SAY", "params": {"text": "line\r\nbreak\ttab", "voice": "a\nb"}},
    {"type": "SAY", "params": {"text": "bell \x07 and nul \x00", "stop_on_key": "true"}},
    {"type": "SAY", "params": {"text": "", "repeat": None, "language": 7}},
    {"type": "SAY", "params": {"text": "12", "timeout": 1.0, "x-y": "z", "a b": 1}},
    {"type": "PAUSE", "params": {"seconds": 2.5}},
    {"type": "PAUSE", "params": {"seconds": True}},
    {"type": "CONFERENCE", "params": {"name": "  spaced  ", "auto_hold": "yes"}},
    {"type": "CONFERENCE", "params": {"name": "room"},
     "events": {"on_enter": [], "on_2": [{"type": "HANGUP"}], "custom": [{"type": "HANGUP"}]}},
    {"type": "QUEUE", "params": {"name": "q"}, "events": {"on_enter": [{"type": "SAY"}]}},
    {"type": "LABEL", "name": " odd "},
    {"type": "LABEL", "name": "L", "events": {"on_error": [{"type": "HANGUP"}]}},
    {"type": "LABEL", "name": 5},
    {"type": "SESSIONDATA", "session_data": "true"},
    {"type": "SESSIONDATA", "session_data": None},
    {"type": "SESSIONDATA", "session_data": [1, "two", {"3": None}]},
    {"type": "SESSIONDATA", "session_data": ""},
    {"type": "SESSIONDATA", "session_data": {"x": 1}, "events": {"on_error": []}},
    {"type": "COLLECT", "actions": []},
    {"type": "COLLECT", "actions": [{"type": "BEEP"}, {"$a": "1"}]},
    {"type": "COLLECT", "actions": "not a list", "params": "not an object"},
    {"type": "IF", "condition": 1, "then": [], "orElse": [{"$x": 2, "$y": None}]},
    {"type": "FUTURE_THING", "params": {"name": "n"}, "extra": {"k": [1]}, "events": {}},
    {"type": "WEBHOOK", "params": {"event_name": "e", "webhook_data": "$d", "headers": None},
     "events": {"on_error": [{"type": "SAY", "params": {"text": "x"}}]}},
    {"$multi": "1", "$line": "a\r\nb"},
    {"$ctrl": "\x01"},
]


@pytest.mark.parametrize("action", ODD_ACTIONS, ids=[str(i) for i in range(len(ODD_ACTIONS))])
def test_odd_actions_round_trip(action: dict[str, Any]) -> None:
    assert parse_ccml(to_ccml([action]).encode()) == [action]


def test_to_ccml_reads_well() -> None:
    xml = to_ccml(
        [{"type": "SAY", "name": "hi", "params": {"text": "Hello", "voice": "Kevin", "repeat": 2}},
         {"type": "COLLECT", "params": {"num_digits": 4},
          "actions": [{"type": "PLAY", "params": {"url": "https://x.test/a.mp3"}}]},
         {"type": "SESSIONDATA", "session_data": {"a": 1}}],
        name="Main",
    )
    assert xml == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Response name="Main">\n'
        '  <Say name="hi" voice="Kevin" repeat="2">Hello</Say>\n'
        '  <Collect num_digits="4">\n'
        "    <Play>https://x.test/a.mp3</Play>\n"
        "  </Collect>\n"
        '  <SessionData>{"a":1}</SessionData>\n'
        "</Response>\n"
    )


@pytest.mark.parametrize(
    "bad",
    [[{"type": "SET"}], [{"type": 5}], [{"type": "a b"}], [{}], [{"x": 1}], ["SAY"]],
)
def test_to_ccml_refuses_what_is_not_an_action(bad: list[Any]) -> None:
    with pytest.raises(ValueError):
        to_ccml(bad)


@pytest.mark.parametrize(
    "xml,message",
    [
        (b"<Response><Say>x</Say>", "not well-formed XML (CCML): no element found at line 1"),
        (b"", "not well-formed"),
        (b'{"actions": []}', "not well-formed"),
        (b"<Actions><Say>x</Say></Actions>", "line 1: <Actions> is not a CCML document"),
        (b"<Response>\n</Response>", "<Response> holds no actions"),
        (b"<Response>hello<Say>x</Say></Response>", "holds text 'hello' where only actions"),
        (b"<Response>\n<Collect>\n<Say>a</Say> stray</Collect></Response>",
         "line 2: <Collect> holds text 'stray'"),
        (b"<Response><Hangup>now</Hangup></Response>", "<Hangup> holds text 'now'"),
        (b"<Response>\n<If><Then/>\nyes</If></Response>", "line 2: <If> holds text 'yes'"),
        (b'<Response><Say text="a">b</Say></Response>', "gives param 'text' twice"),
        (b'<Response><Say repeat="1"><repeat>2</repeat>x</Say></Response>',
         "line 1: <repeat> gives param 'repeat' twice"),
        (b"<Response><If><Then/><Then/></If></Response>", "<Then> gives list 'then' twice"),
        (b"<Response><If><Then/><Say>x</Say></If></Response>", "mixes bare actions"),
        (b'<Response><Say><Param name="volume" type="json">{</Param></Say></Response>',
         "<Param> does not hold valid JSON"),
        (b'<Response><Say><Param type="json">1</Param></Say></Response>', "needs name="),
        (b'<Response><Say><Param name="v" type="float">1</Param></Say></Response>',
         "type='float'"),
        (b"<Response><Say><voice><b>x</b></voice></Say></Response>",
         "<b> is not allowed inside <voice>"),
        (b"<Response><Set/></Response>", "<Set> needs var="),
        (b'<Response><Set var="$"/></Response>', "needs a variable name"),
        (b'<Response><Set><Value name="$a"/></Set></Response>', "<Value> is not allowed"),
        (b'<Response><Set><Var name="$a"/><Var name="a"/></Set></Response>',
         "gives variable '$a' twice"),
        (b"<Response><Dial><Events><Event/></Events></Dial></Response>", "<Event> needs name="),
        (b"<Response>" + b"<If>" * 70 + b"</If>" * 70 + b"</Response>", "nested more than 64"),
    ],
)
def test_errors_are_400902_naming_line_and_element(xml: bytes, message: str) -> None:
    with pytest.raises(NoActions) as info:
        parse_ccml(xml)
    assert info.value.code == 400902
    assert message in info.value.message


def test_session_data_that_is_not_json_is_a_string() -> None:
    # it may be an expression such as $sessionData
    xml = b"<Response><SessionData>{bad json</SessionData></Response>"
    assert parse_ccml(b"<Response><SessionData>$s</SessionData></Response>") == [
        {"type": "SESSIONDATA", "session_data": "$s"}
    ]
    assert parse_ccml(xml) == [{"type": "SESSIONDATA", "session_data": "{bad json"}]


@pytest.mark.parametrize(
    "xml",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
        b"<Response><Say>&b;</Say></Response>",
        b'<!DOCTYPE Response SYSTEM "http://evil.test/x.dtd"><Response><Hangup/></Response>',
        b'<!DOCTYPE Response [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Response><Say>&x;</Say></Response>",
        b"<!DOCTYPE Response><Response><Hangup/></Response>",
    ],
)
def test_dtds_and_entities_are_refused(xml: bytes) -> None:
    with pytest.raises(NoActions, match="line 1: DTDs and entity declarations are not allowed"):
        parse_ccml(xml)


def test_undeclared_entity_is_not_well_formed() -> None:
    with pytest.raises(NoActions, match="undefined entity"):
        parse_ccml(b"<Response><Say>&x;</Say></Response>")


def test_encodings_and_character_references() -> None:
    xml = ('<?xml version="1.0" encoding="UTF-16"?>'
           "<Response><Say>caf\u00e9 &#x263A;</Say></Response>")
    assert parse_ccml(xml.encode("utf-16")) == [
        {"type": "SAY", "params": {"text": "caf\u00e9 \u263a"}}
    ]


# ---- the callback client's dispatch ------------------------------------------------------


@pytest.mark.parametrize(
    "ctype,body",
    [
        ("application/xml", b"<Response><Hangup/></Response>"),
        ("text/xml; charset=utf-8", b"<Response><Hangup/></Response>"),
        ("application/ccml+xml", b"<Response><Hangup/></Response>"),
        ("text/plain", b"\n  <Response><Hangup/></Response>"),
        ("", b"<Response><Hangup/></Response>"),
        ("application/json", b'{"actions": [{"type": "HANGUP"}]}'),
        ("text/plain", b'{"actions": [{"type": "HANGUP"}]}'),
    ],
)
def test_parse_actions_routes_by_content_type(ctype: str, body: bytes) -> None:
    assert parse_actions(body, ctype) == [{"type": "HANGUP"}]


def test_json_content_type_is_not_sniffed() -> None:
    with pytest.raises(NoActions, match="not valid JSON"):
        parse_actions(b"<Response><Hangup/></Response>", "application/json")


def test_xml_is_measured_minimised_like_json() -> None:
    say = b"<Say>" + b"x" * 1000 + b"</Say>"
    n = HARD_LIMIT // len(say)
    body = b"<Response>" + say * n + b"</Response>"
    assert len(body) <= HARD_LIMIT
    pretty = body.replace(b"<Say>", b"\n        <Say>")  # whitespace does not count
    assert len(parse_actions(pretty, "application/xml")) == n
    with pytest.raises(ResponseTooLarge):
        parse_actions(body.replace(b"</Response>", say + b"</Response>"), "application/xml")
