"""String Interpolation: `${expr}` and `${...expr}` in the parameters the spec marks `*`.

The expression inside `${...}` is JavaScript over the call's variables. The spec's
examples drop the `$` (`${sessionData.firstName}`, `${callTime}`, `${nextUrl}`), so a
bare identifier that is not a JS global resolves to the `$` variable of that name;
`${$sessionData.firstName}` works too.

Rendering (the spec is silent; these are our choices):
- strings as is; null and undefined as ''; objects and arrays as compact JSON; numbers
  and booleans as JavaScript's String() writes them.
- `${...expr}` (spread) spells the value out for speech: every character that is not
  whitespace, joined by one space ("1234" → "1 2 3 4", "+1 714" → "+ 1 7 1 4"), which
  TTS reads one character at a time. Outside speech (`spread_for_speech=False`, e.g. a
  DIAL number) the spread is the plain value.
- The text between `${` and its `}` is found by a small scanner that skips '...', "..."
  and `...` literals (with nested `${}`), so `${a == '}' ? 1 : 2}` works. JS comments and
  regex literals are not understood by the scanner.
- There is no escape for a literal `${`; `$` not followed by `{` is literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from control.callflow.expressions import ExpressionError

SPREAD = "..."
SPELL_SEPARATOR = " "


class TextEvaluator(Protocol):
    """What interpolation needs of the call's variables (FlowVariables implements it)."""

    def text(self, expr: str) -> str: ...


@dataclass(frozen=True)
class _Expr:
    source: str
    spread: bool


def interpolate(text: str, vars: TextEvaluator, *, spread_for_speech: bool = False) -> str:
    """Replace every `${expr}` in `text` with the expression's value."""
    if "${" not in text:
        return text
    out = []
    for part in _parse(text):
        if isinstance(part, str):
            out.append(part)
            continue
        value = vars.text(part.source)
        out.append(spell(value) if part.spread and spread_for_speech else value)
    return "".join(out)


def spell(value: str) -> str:
    """Each non-whitespace character of `value`, separated by SPELL_SEPARATOR."""
    return SPELL_SEPARATOR.join(ch for ch in value if not ch.isspace())


@lru_cache(maxsize=512)
def _parse(text: str) -> tuple[str | _Expr, ...]:
    parts: list[str | _Expr] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            parts.append(text[pos:])
            return tuple(p for p in parts if p != "")
        parts.append(text[pos:start])
        end = _closing_brace(text, start + 2)
        if end is None:
            raise ExpressionError(
                text, f"unterminated '${{' at offset {start} (no matching '}}')")
        source = text[start + 2 : end].strip()
        spread = source.startswith(SPREAD)
        parts.append(_Expr(source[len(SPREAD):].strip() if spread else source, spread))
        pos = end + 1


def _closing_brace(text: str, pos: int) -> int | None:
    """Index of the `}` closing a `${` or `{` opened just before `pos`, or None."""
    depth = 0
    while pos < len(text):
        ch = text[pos]
        if ch in "'\"":
            end = _string_end(text, pos)
            if end is None:
                return None
            pos = end
            continue
        if ch == "`":
            end = _template_end(text, pos)
            if end is None:
                return None
            pos = end
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    return None


def _string_end(text: str, pos: int) -> int | None:
    """Index just past the quoted string starting at `pos`."""
    quote = text[pos]
    pos += 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
            continue
        if text[pos] == quote:
            return pos + 1
        pos += 1
    return None


def _template_end(text: str, pos: int) -> int | None:
    """Index just past the template literal starting at `pos`."""
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            pos += 2
            continue
        if ch == "`":
            return pos + 1
        if text.startswith("${", pos):
            end = _closing_brace(text, pos + 2)
            if end is None:
                return None
            pos = end
        pos += 1
    return None
