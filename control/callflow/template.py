"""Template Mapping: `{{property}}` and `{{property|default}}` in a callback response.

`property` names a field of the callback request data, flattened: nested objects join
with dots and array items with their index (`session_data.firstName`,
`key_presses.0.digits`). As in the spec's query-string form, `key_presses.<name>` is
also the digits of the COLLECT called <name> and `recordings.<name>` the recording id,
unless an index already has that path.

Choices where the spec is silent:
- a property that is missing or null uses the default, and '' when there is none;
- whitespace around the property and the default is trimmed; the default is everything
  after the first `|`;
- strings are inserted as is, other scalars as JSON (`true`, `12`, `1.5`), an object or
  array (`{{session_data}}`) as compact JSON;
- `{{` without a later `}}` is literal text; only string values are rewritten, keys and
  non-string values are left alone, and the result is always a string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_OPEN = "{{"
_CLOSE = "}}"
# spec: query strings convert key_presses to key_presses.{name}={digits} and
# recordings to recordings.{name}={id}
_NAMED_LISTS = {"key_presses": "digits", "recordings": "id"}


def flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Callback data flattened to dotted paths; containers keep their own path too."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        _walk(str(key), value, flat)
    for list_key, field in _NAMED_LISTS.items():
        items = data.get(list_key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                flat.setdefault(f"{list_key}.{item['name']}", item.get(field))
    return flat


def _walk(path: str, value: Any, flat: dict[str, Any]) -> None:
    flat.setdefault(path, value)
    if isinstance(value, Mapping):
        for key, child in value.items():
            _walk(f"{path}.{key}", child, flat)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _walk(f"{path}.{i}", child, flat)


def apply_template(obj: Any, data: Mapping[str, Any]) -> Any:
    """A copy of `obj` with every `{{...}}` in its strings replaced from `data` (the
    callback request fields, nested or already flattened)."""
    return _apply(obj, flatten(data))


def _apply(obj: Any, flat: Mapping[str, Any]) -> Any:
    if isinstance(obj, str):
        return render(obj, flat)
    if isinstance(obj, Mapping):
        return {key: _apply(value, flat) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_apply(value, flat) for value in obj]
    return obj


def render(text: str, flat: Mapping[str, Any]) -> str:
    """Replace the `{{...}}` mappings of one string from flattened data."""
    if _OPEN not in text:
        return text
    out = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        end = text.find(_CLOSE, start + len(_OPEN)) if start >= 0 else -1
        if end < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        out.append(_lookup(text[start + len(_OPEN) : end], flat))
        pos = end + len(_CLOSE)


def _lookup(inner: str, flat: Mapping[str, Any]) -> str:
    prop, _, default = inner.partition("|")
    value = flat.get(prop.strip())
    if value is None:
        return default.strip()
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
