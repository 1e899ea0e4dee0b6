"""CCML: callback responses in XML, mapped one to one onto the JSON actions.

The spec lets a callback answer in JSON or "CCML" (application/xml) without defining
CCML. This module defines it so that every JSON action has exactly one XML spelling
and back (README, "Call flows in XML (CCML)"):

    <Response name="MainMenu">
      <Set var="$tries" value="0"/>
      <Collect name="menu" num_digits="1">
        <Say voice="Kevin">Press 1 for sales.</Say>
      </Collect>
      <If condition="$keyPresses == '1'">
        <Then><Redirect>sales.json</Redirect></Then>
        <OrElse><Hangup/></OrElse>
      </If>
    </Response>

Theory of operation: `parse_ccml` reads the bytes with expat (DOCTYPE, entity
declarations and external entities refused, so no entity expansion can happen) into
small `_Node`s that remember their line, then `_action` turns each action element into
the dict the interpreter consumes. Attribute strings are typed by `SHAPES`, a table of
each action's known params (data, not code); unknown params stay strings. `to_ccml`
walks the other way and, for every value, picks a spelling that reads back identically,
falling back to `<Param name="…" type="json">` when no attribute or text form would.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from control.callflow.errors import NoActions

# Value kinds of the type table
STR, INT, NUM, BOOL, ANY = "string", "integer", "number", "boolean", "any"


@dataclass(frozen=True)
class Shape:
    """How one action type is spelled in CCML."""

    params: dict[str, str] = field(default_factory=dict)  # known param → kind
    text: str | None = None  # the key the element's text sets
    text_top: bool = False  # ... beside `type` rather than inside `params`
    bare: str | None = None  # top-level list that action children written bare fill
    top_attrs: frozenset[str] = frozenset()  # attributes that are top-level keys
    top_kind: str = STR  # the kind of a text_top key

    def text_kind(self) -> str:
        return self.top_kind if self.text_top else self.params.get(self.text or "", STR)


_COLLECT = {"finish_on_key": STR, "num_digits": INT, "timeout": INT}
_KEY = STR
SHAPES: dict[str, Shape] = {
    "COLLECT": Shape(_COLLECT, bare="actions"),
    "CONFERENCE": Shape(
        {"name": STR, "hold_audio": STR, "auto_hold": BOOL, "join_muted": BOOL,
         "max_participants": NUM, "announce_on_join": STR, "mute_on_key": _KEY,
         "unmute_on_key": _KEY, "exit_on_key": _KEY, "hold_on_join": BOOL,
         "start_on_join": BOOL, "end_on_exit": BOOL, "hold_on_exit": BOOL,
         "send_dtmf": BOOL, "receive_dtmf": BOOL},
        text="name",
    ),
    "DETECT": Shape({"trigger_live_in_ms": INT}),
    "DIAL": Shape(
        {"no": STR, "caller_id_no": STR, "detection": STR, "override_callback_config": STR,
         "inbound_api": STR, "max_call_time": NUM, "timeout": NUM, "session_data": ANY},
        text="no",
    ),
    "FOREACH": Shape({"iterator": STR, "valueVar": STR, "keyVar": STR, "indexVar": STR},
                     bare="then"),
    "GOTO": Shape({"label": STR}, text="label"),
    "HANGUP": Shape(),
    "IF": Shape(bare="then", top_attrs=frozenset({"condition"})),
    "LABEL": Shape(text="name", text_top=True),
    "PAUSE": Shape({"seconds": INT}, text="seconds"),
    "PLAY": Shape(
        {"url": STR, "stop_on_key": BOOL, "dtmf": STR, "dtmf_delay": NUM,
         "dtmf_dash_delay": NUM, "repeat": NUM},
        text="url",
    ),
    "QUEUE": Shape({"name": STR, "event": STR, "async": BOOL, "max_calls": NUM}, text="name"),
    "RECORD": Shape({"action": STR, "group": STR}),
    "RECORDMESSAGE": Shape({"action": STR, "finish_on_key": _KEY, "group": STR,
                            "max_recording_time": NUM, "timeout": NUM}),
    "REDIRECT": Shape({"url": STR, "method": STR, "headers": ANY, "content_type": STR},
                      text="url"),
    "REJECT": Shape({"reason": STR}, text="reason"),
    "SAY": Shape(
        {"text": STR, "stop_on_key": BOOL, "repeat": NUM, "voice": STR, "language": STR,
         "gender": STR},
        text="text",
    ),
    "SESSIONDATA": Shape(text="session_data", text_top=True, top_kind=ANY),
    "SMS": Shape({"message": STR, "no": STR, "caller_id_no": STR}, text="message"),
    "STOP": Shape({"actions": STR}, text="actions"),
    "TRANSFER": Shape({"no": STR, "caller_id_no": STR, "event": STR, "async": BOOL},
                      text="no"),
    "WEBHOOK": Shape(
        {"event_name": STR, "webhook_data": ANY, "url": STR, "method": STR,
         "content_type": STR, "headers": ANY, "await_response": BOOL, "timeout": INT},
        text="event_name",
    ),
}
_UNKNOWN = Shape()

EVENTS = (
    "on_enter", "on_enter_started", "on_enter_waiting", "on_enter_alone", "on_enter_error",
    "on_enter_error_ended", "on_enter_error_max_participants", "on_enter_error_max_calls",
    "on_error", "on_live_person", "on_voicemail", "on_voicemail_early", "on_save",
)
# action-level keys: element name (normalised) → JSON key; each holds an action list
_LISTS = {"then": "then", "orelse": "orElse", "actions": "actions"}
ASSIGN = "SET"  # <Set var="$x" value="expr"/> is the assignment {"$x": "expr"}
MAX_DEPTH = 64  # nesting of elements; deeper documents are refused, not recursed into

_INT = re.compile(r"-?(0|[1-9]\d*)\Z")
_NUM = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?\Z")
_XML_NAME = re.compile(r"[A-Za-z_][\w.-]*\Z")
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


_EVENT_NAMES = {_norm(e): e for e in EVENTS}


# ---- values -------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def convert(kind: str, text: str) -> Any:
    """The value an attribute or element text stands for, given the param's kind."""
    if kind == INT and _INT.match(text):
        return int(text)
    if kind == NUM and _NUM.match(text):
        return int(text) if _INT.match(text) else float(text)
    if kind == BOOL and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind in (ANY, "json"):
        try:
            return json.loads(text, parse_constant=_refuse_constant)
        except ValueError:
            if kind == "json":
                raise
    return text


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and json.dumps(a) == json.dumps(b)


def render(kind: str, value: Any) -> str | None:
    """Text that `convert(kind, …)` reads back as exactly `value`, or None."""
    if isinstance(value, str):
        candidates = [value, json.dumps(value)] if kind == ANY else [value]
    elif isinstance(value, bool | int | float) or kind == ANY:
        candidates = [json.dumps(value, separators=(",", ":"), ensure_ascii=False)]
    else:
        return None
    for text in candidates:
        if not _XML_BAD.search(text) and _same(convert(kind, text), value):
            return text
    return None


# ---- parsing ------------------------------------------------------------------------


@dataclass
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    text: str = ""
    children: list[_Node] = field(default_factory=list)

    def where(self) -> str:
        return f"CCML line {self.line}: <{self.tag}>"

    def fail(self, problem: str) -> NoActions:
        return NoActions(f"{self.where()} {problem}")


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def _read(raw: bytes) -> _Node:
    parser = expat.ParserCreate()
    stack: list[_Node] = []
    root: list[_Node] = []

    def refuse(*_: Any) -> Any:
        raise NoActions(f"CCML line {parser.CurrentLineNumber}: DTDs and entity "
                        "declarations are not allowed")

    def start(tag: str, attrib: dict[str, str]) -> None:
        attrs = {_local(k): v for k, v in attrib.items()
                 if k != "xmlns" and not k.startswith("xmlns:")}
        node = _Node(_local(tag), attrs, parser.CurrentLineNumber)
        if len(stack) >= MAX_DEPTH:
            raise node.fail(f"is nested more than {MAX_DEPTH} elements deep")
        (stack[-1].children if stack else root).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.buffer_text = True
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as exc:
        raise NoActions(f"callback response is not well-formed XML (CCML): "
                        f"{expat.ErrorString(exc.code)} at line {exc.lineno}, "
                        f"column {exc.offset}") from None
    return root[0]


def parse_ccml(raw: bytes) -> list[dict[str, Any]]:
    """The JSON actions a CCML document stands for; NoActions (400902) when it is bad."""
    root = _read(raw)
    if root.tag.lower() != "response":
        raise root.fail("is not a CCML document: the root element must be <Response>")
    actions = _action_list(root)
    if not actions:
        raise root.fail("holds no actions")
    return actions


def _action_list(node: _Node) -> list[dict[str, Any]]:
    if node.text.strip():
        raise node.fail(f"holds text {node.text.strip()[:40]!r} where only actions belong")
    return [_action(child) for child in node.children]


def _assignment(node: _Node) -> dict[str, Any]:
    if "var" in node.attrib:
        return {_var(node, node.attrib["var"]): _value(node, STR, attr="value")}
    if node.text.strip() or not node.children:
        raise node.fail("needs var=\"$name\" value=\"…\", or <Var name=… value=…/> children")
    out: dict[str, Any] = {}
    for child in node.children:
        if child.tag.lower() != "var":
            raise child.fail(f"is not allowed in <{node.tag}>; use <Var name=… value=…/>")
        key = _var(child, child.attrib.get("name", ""))
        _put(child, out, key, _value(child, STR, attr="value"), "variable")
    return out


def _var(node: _Node, name: str) -> str:
    if not name.strip("$"):
        raise node.fail("needs a variable name")
    return name if name.startswith("$") else "$" + name


def _value(node: _Node, kind: str, attr: str | None = None) -> Any:
    """The value an element holds, in `attr` or as text; `type=` overrides the kind."""
    kind = node.attrib.get("type", kind)
    if kind not in (STR, INT, NUM, BOOL, ANY, "json"):
        raise node.fail(f"has type={kind!r}; accepted: string, json")
    if node.children:
        raise node.children[0].fail(f"is not allowed inside <{node.tag}>; write JSON text")
    if attr is not None and attr in node.attrib:
        if node.text.strip():
            raise node.fail(f"has both {attr}= and text")
        text = node.attrib[attr]
    else:
        # type="string" keeps the text exactly; otherwise indentation is not content
        text = node.text if "type" in node.attrib and kind == STR else node.text.strip()
    try:
        return convert(kind, text)
    except ValueError as exc:
        raise node.fail(f"does not hold valid JSON: {exc}") from None


def _put(node: _Node, target: dict[str, Any], key: str, value: Any, what: str) -> None:
    if key in target:
        raise node.fail(f"gives {what} {key!r} twice")
    target[key] = value


def _param_name(shape: Shape, name: str) -> str:
    known = {_norm(p): p for p in shape.params}
    return known.get(_norm(name), name)


def _action(node: _Node) -> dict[str, Any]:
    kind = node.tag.upper()
    if kind == ASSIGN:
        return _assignment(node)
    shape = SHAPES.get(kind, _UNKNOWN)
    out: dict[str, Any] = {"type": kind}
    params: dict[str, Any] = {}
    for attr, text in node.attrib.items():
        if attr in ("name", "comments") or attr in shape.top_attrs:
            out[attr] = text
        else:
            pname = _param_name(shape, attr)
            _put(node, params, pname, convert(shape.params.get(pname, STR), text), "param")
    text = node.text.strip()
    if text:
        if shape.text is None:
            raise node.fail(f"holds text {text[:40]!r}, which has no place in this action")
        _put(node, out if shape.text_top else params, shape.text,
             convert(shape.text_kind(), text), "key" if shape.text_top else "param")
    for child in node.children:
        _child(node, child, shape, out, params)
    if params:
        _put(node, out, "params", params, "key")
    return out


def _child(parent: _Node, node: _Node, shape: Shape, out: dict[str, Any],
           params: dict[str, Any]) -> None:
    name = _norm(node.tag)
    if name in _LISTS:
        _put(node, out, _LISTS[name], _action_list(node), "list")
    elif name == "events":
        events = out.setdefault("events", {})
        for child in node.children:
            key = (child.attrib.get("name", "") if child.tag.lower() == "event"
                   else _event_key(child.tag))
            if not key:
                raise child.fail("needs name=\"on_…\"")
            _put(child, events, key, _action_list(child), "event")
    elif name.startswith("on") and len(name) > 2:
        _put(node, out.setdefault("events", {}), _event_key(node.tag), _action_list(node),
             "event")
    elif name == "sessiondata":
        _put(node, out, "session_data", _value(node, ANY), "key")
    elif name == "param":
        pname = node.attrib.get("name", "")
        if not pname:
            raise node.fail("needs name=\"…\"")
        _put(node, params, pname, _value(node, shape.params.get(pname, STR)), "param")
    elif name == "field":
        fname = node.attrib.get("name", "")
        if not fname or fname == "type":
            raise node.fail("needs a name=\"…\" other than type")
        _put(node, out, fname, _value(node, ANY), "key")
    elif shape.bare is not None and (node.tag.upper() in SHAPES or node.tag.upper() == ASSIGN):
        if any(_norm(c.tag) == _norm(shape.bare) for c in parent.children):
            raise node.fail(f"mixes bare actions with <{_pascal(shape.bare)}> "
                            f"in <{parent.tag}>")
        out.setdefault(shape.bare, []).append(_action(node))
    else:
        pname = _param_name(shape, node.tag)
        _put(node, params, pname, _value(node, shape.params.get(pname, STR)), "param")


def _event_key(tag: str) -> str:
    known = _EVENT_NAMES.get(_norm(tag))
    if known is not None:
        return known
    if "_" in tag or tag.islower() or tag.isupper():
        return tag.lower()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", tag).lower()


# ---- writing ------------------------------------------------------------------------


def _pascal(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in key.split("_"))


def to_ccml(actions: list[dict[str, Any]], name: str | None = None) -> str:
    """The CCML document for `actions`; `parse_ccml` reads it back as equal actions."""
    root = ET.Element("Response", {"name": name} if name else {})
    for action in actions:
        root.append(_element(action))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # ASCII: safe for any XML


def _typed(tag: str, attrib: dict[str, str], kind: str, value: Any) -> ET.Element:
    """An element holding `value` as text, typed so that it reads back exactly."""
    elem = ET.Element(tag, attrib)
    text = render(kind, value)
    if text is not None and text == text.strip() and "\r" not in text:
        elem.text = text
    elif isinstance(value, str) and not _XML_BAD.search(value) and "\r" not in value:
        elem.set("type", STR)
        elem.text = value
    else:
        elem.set("type", "json")
        elem.text = _json(value)
    return elem


# element names of the known types (parsing takes any case)
_TAGS = {k: k.capitalize() for k in SHAPES} | {
    "RECORDMESSAGE": "RecordMessage", "SESSIONDATA": "SessionData", "FOREACH": "ForEach",
}


def _element(action: dict[str, Any]) -> ET.Element:
    if not isinstance(action, dict):
        raise ValueError(f"an action must be an object, not {type(action).__name__}")
    if "type" not in action:
        return _set_element(action)
    kind = action["type"]
    if not isinstance(kind, str) or not _XML_NAME.match(kind) or kind.upper() == ASSIGN:
        raise ValueError(f"action type {kind!r} has no CCML element")
    kind = kind.upper()  # types are case-insensitive (the interpreter upper-cases them)
    shape = SHAPES.get(kind, _UNKNOWN)
    elem = ET.Element(_TAGS.get(kind, kind))
    rest = {k: v for k, v in action.items() if k != "type"}
    if shape.text_top and shape.text in rest:
        _main(elem, shape, shape.text, rest.pop(shape.text))
    for key in ("name", "comments", *sorted(shape.top_attrs)):
        if isinstance(rest.get(key), str) and not _XML_BAD.search(rest[key]):
            elem.set(key, rest.pop(key))
    params = rest.pop("params", None)
    if isinstance(params, dict):
        _params(elem, shape, params)
    elif "params" in action:
        elem.append(_typed("Field", {"name": "params"}, ANY, params))
    for key, value in rest.items():
        _extra(elem, shape, key, value)
    if len(elem) and elem.text is not None:
        _text_to_child(elem, shape)
    return elem


def _main(elem: ET.Element, shape: Shape, key: str, value: Any) -> None:
    """The main param (or LABEL's name, SESSIONDATA's data) as the element's text."""
    text = render(shape.text_kind(), value)
    if text and text == text.strip() and "\r" not in text:
        elem.text = text
    elif not shape.text_top:
        elem.append(_typed("Param", {"name": key}, shape.text_kind(), value))
    elif key == "name" and isinstance(value, str) and not _XML_BAD.search(value):
        elem.set("name", value)
    else:
        elem.append(_typed("Field", {"name": key}, shape.text_kind(), value))


def _text_to_child(elem: ET.Element, shape: Shape) -> None:
    # text is only read in elements without children: move it to an attribute or child
    assert shape.text is not None and elem.text is not None
    text, elem.text = elem.text, None
    if shape.text_top and shape.text == "name":
        elem.set("name", text)
    elif shape.text_top:
        elem.insert(0, ET.Element("Field", {"name": shape.text}))
        elem[0].text = text
    elif shape.text in ("name", "comments"):
        elem.insert(0, ET.Element("Param", {"name": shape.text}))
        elem[0].text = text
    else:
        elem.set(shape.text, text)


def _params(elem: ET.Element, shape: Shape, params: dict[str, Any]) -> None:
    for key, value in params.items():
        kind = shape.params.get(key, STR)
        if key == shape.text and not shape.text_top and elem.text is None:
            _main(elem, shape, key, value)
            continue
        text = render(kind, value)
        attr_ok = (
            text is not None and _XML_NAME.match(key) and ":" not in key
            and key not in ("name", "comments", "type", *shape.top_attrs)
            and _param_name(shape, key) == key and not isinstance(value, dict | list)
        )
        if attr_ok and text is not None:
            elem.set(key, text)
        elif key in shape.params and _child_tag_ok(shape, _pascal(key)):
            elem.append(_typed(_pascal(key), {}, kind, value))  # <WebhookData>{…}</…>
        else:
            elem.append(_typed("Param", {"name": key}, kind, value))


def _child_tag_ok(shape: Shape, tag: str) -> bool:
    """Whether <tag> inside this action reads back as the param it is named after."""
    name = _norm(tag)
    structural = name in (*_LISTS, "events", "param", "field", "sessiondata") or (
        name.startswith("on") and len(name) > 2
    )
    action = shape.bare is not None and tag.upper() in (*SHAPES, ASSIGN)
    return not structural and not action and _XML_NAME.match(tag) is not None


def _extra(elem: ET.Element, shape: Shape, key: str, value: Any) -> None:
    """Top-level keys beside type/name/comments/params: lists, events, session_data."""
    lists = {v: k for k, v in _LISTS.items()}
    if key in lists and _is_action_list(value):
        if key == shape.bare == "actions" and value and all(_bare_ok(a) for a in value):
            elem.extend(_element(a) for a in value)
        else:
            wrapper = ET.SubElement(elem, _pascal(key) if key != "orElse" else "OrElse")
            wrapper.extend(_element(a) for a in value)
    elif key == "events" and isinstance(value, dict) and value and all(
        _is_action_list(v) for v in value.values()
    ):
        for event, acts in value.items():
            tag = _pascal(event)
            if event.startswith("on_") and _XML_NAME.match(tag) and _event_key(tag) == event:
                wrapper = ET.SubElement(elem, tag)
            else:
                wrapper = ET.SubElement(ET.SubElement(elem, "Events"), "Event", {"name": event})
            wrapper.extend(_element(a) for a in acts)
    elif key == "session_data":
        elem.append(_typed("SessionData", {}, ANY, value))
    else:
        elem.append(_typed("Field", {"name": key}, ANY, value))


def _bare_ok(action: dict[str, Any]) -> bool:
    kind = action.get("type")
    return "type" not in action or (isinstance(kind, str) and kind.upper() in SHAPES)


def _is_action_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(a, dict) for a in value)


def _set_element(action: dict[str, Any]) -> ET.Element:
    if not action or not all(isinstance(k, str) and k.startswith("$") for k in action):
        raise ValueError("an action without 'type' must be an assignment {\"$var\": …}")
    elem = ET.Element("Set")
    for key, value in action.items():
        target = elem if len(action) == 1 else ET.SubElement(elem, "Var", {"name": key})
        if len(action) == 1:
            elem.set("var", key)
        if isinstance(value, str) and not _XML_BAD.search(value):
            target.set("value", value)
        else:
            target.set("type", "json")
            target.set("value", _json(value))
    return elem


__all__ = ["SHAPES", "Shape", "convert", "parse_ccml", "render", "to_ccml"]
