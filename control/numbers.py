"""The phone number pool: which numbers this switch may hand out, and how they are searched.

voxswitch buys nothing from a carrier: its numbers are a local routing inventory. The
settings name the pool (`[numbers] pool = [...]`), each entry one of
- an E.164 pattern with X for any digit: `+1949555XXXX` (10,000 numbers);
- a NANP prefix, filled up to the 10-digit national number: `+1949555` (the same);
- a range, both ends E.164 and of one length: `+19495550100-+19495550199`.

`search` answers `GET /PhoneNumbers/Available` (spec: List Available Inbound Numbers) over
the pool minus the numbers already provisioned: `prefixes` (national "949" or E.164
"+1949", not mixed) and `vanity` (digits, letters as on a keypad, `*` any digit, `&` one
digit repeated wherever it appears; toll-free numbers only, as the spec says). The pool
has no location data, so region, postal_code, rate_center and latas searches are refused
with 400203. Pure functions: no storage here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_POOL = ("+1949555XXXX", "+1833555XXXX")
TOLL_FREE_AREA_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})
CAPABILITIES = ["sms_inbound", "sms_outbound", "voice_inbound", "voice_outbound"]
TYPES = ("local", "toll_free", "all")
SEARCH_BY = ("region", "prefixes", "postal_code", "rate_center", "latas", "vanity")
LOCATION_SEARCHES = ("region", "postal_code", "rate_center", "latas")
MAX_RESULTS = 100
_COUNTRY_CODES = {"1": "US", "44": "GB", "49": "DE", "33": "FR", "61": "AU", "34": "ES",
                  "39": "IT", "31": "NL", "52": "MX"}
_KEYPAD = {c: d for d, letters in (("2", "ABC"), ("3", "DEF"), ("4", "GHI"), ("5", "JKL"),
                                   ("6", "MNO"), ("7", "PQRS"), ("8", "TUV"), ("9", "WXYZ"))
           for c in letters}
_PATTERN = re.compile(r"^\+[0-9]{1,15}[Xx]*$")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


class PoolError(ValueError):
    """A pool entry we cannot use; the message says what fits."""


class SearchError(ValueError):
    """An invalid combination of search criteria (the spec's 400203)."""


@dataclass(frozen=True)
class PoolBlock:
    """One pool entry: the numbers `first`..`last` (E.164 digits of one length)."""

    first: int
    last: int
    digits: int  # how many digits after the '+'

    def numbers(self) -> Iterator[str]:
        for n in range(self.first, self.last + 1):
            yield "+" + str(n).zfill(self.digits)

    def __contains__(self, no: object) -> bool:
        if not isinstance(no, str) or not _E164.match(no) or len(no) - 1 != self.digits:
            return False
        return self.first <= int(no[1:]) <= self.last


def parse_pool_entry(text: str) -> PoolBlock:
    entry = text.strip()
    if "-" in entry[1:]:
        low, _, high = (part.strip() for part in entry.partition("-"))
        if not (_E164.match(low) and _E164.match(high)) or len(low) != len(high) \
                or int(low[1:]) > int(high[1:]):
            raise PoolError(f"numbers pool: {text!r}: a range is +FIRST-+LAST, two E.164 "
                            "numbers of one length, the first not above the last")
        digits = len(low) - 1
        if (low[1] == "1" and digits != 11) or digits < 7:
            raise PoolError(f"numbers pool: {text!r}: numbers of {digits} digits are not "
                            "whole numbers (NANP numbers have 11: +1 and ten)")
        return PoolBlock(int(low[1:]), int(high[1:]), digits)
    if not _PATTERN.match(entry):
        raise PoolError(f"numbers pool: {text!r}: expected an E.164 pattern such as "
                        "+1949555XXXX, a NANP prefix such as +1949555, or a range "
                        "+19495550100-+19495550199")
    fixed = entry[1:].rstrip("Xx")
    wild = len(entry) - 1 - len(fixed)
    if wild == 0 and fixed.startswith("1") and len(fixed) < 11:
        wild = 11 - len(fixed)  # a NANP prefix: fill to the 10-digit national number
    digits = len(fixed) + wild
    if digits > 15 or (fixed[:1] == "1" and digits != 11) or digits < 3:
        raise PoolError(f"numbers pool: {text!r}: numbers of {digits} digits are not "
                        "E.164 (NANP numbers have 11: +1 and ten)")
    if not fixed or fixed[0] == "0":
        raise PoolError(f"numbers pool: {text!r}: a country code does not start with 0")
    return PoolBlock(int(fixed) * 10 ** wild, (int(fixed) + 1) * 10 ** wild - 1, digits)


MAX_POOL = 1_000_000  # numbers a search may walk through


def parse_pool(entries: Iterable[str]) -> tuple[PoolBlock, ...]:
    blocks = tuple(parse_pool_entry(e) for e in entries)
    if sum(b.last - b.first + 1 for b in blocks) > MAX_POOL:
        raise PoolError(f"numbers pool: more than {MAX_POOL:,} numbers; a lab needs fewer "
                        "(use longer prefixes or ranges)")
    return blocks


# ---- what a number is --------------------------------------------------------------------


def is_nanp(no: str) -> bool:
    return no.startswith("+1") and len(no) == 12


def national(no: str) -> str:
    """The national number: the 10 digits after +1 for NANP, else the digits after +."""
    return no[2:] if is_nanp(no) else no[1:]


def number_type(no: str) -> str:
    return "toll_free" if is_nanp(no) and no[2:5] in TOLL_FREE_AREA_CODES else "local"


def country_of(no: str) -> str | None:
    for length in (1, 2, 3):
        code = _COUNTRY_CODES.get(no[1:1 + length])
        if code is not None:
            return code
    return None


def formatted(no: str) -> str:
    """The spec's human-friendly form: (949) 555-1212 for NANP, else the number itself."""
    if is_nanp(no):
        n = no[2:]
        return f"({n[:3]}) {n[3:6]}-{n[6:]}"
    return no


def location(no: str) -> dict[str, Any]:
    """The pool holds no location data: the country only."""
    return {"country": country_of(no), "region": None, "city": None, "postal_code": None,
            "rate_center": None, "lata": None, "latitude": None, "longitude": None,
            "timezone": None}


# ---- searches ----------------------------------------------------------------------------


def vanity_regex(pattern: str) -> re.Pattern[str]:
    """The spec's vanity pattern as a regex over national numbers: digits, letters
    (keypad), `*` any digit, `&` one digit that every `&` repeats."""
    parts: list[str] = []
    seen_amp = False
    for ch in pattern.upper():
        if ch.isdigit():
            parts.append(ch)
        elif ch in _KEYPAD:
            parts.append(_KEYPAD[ch])
        elif ch == "*":
            parts.append("[0-9]")
        elif ch == "&":
            parts.append("(?P=rep)" if seen_amp else "(?P<rep>[0-9])")
            seen_amp = True
        else:
            raise SearchError(f"search_on: vanity patterns hold digits, letters, * and &, "
                              f"not {ch!r}")
    if not parts:
        raise SearchError("search_on: a vanity search needs a pattern")
    if len(parts) > 10:
        raise SearchError("search_on: a vanity pattern has at most 10 characters")
    body = "".join(parts)
    return re.compile(f"^{body}$" if len(parts) == 10 else body)


def prefix_matcher(values: list[str]) -> tuple[bool, list[str]]:
    """(E.164?, prefixes) for a `prefixes` search; SearchError when mixed or malformed."""
    cleaned = [v.strip() for v in values if v.strip()]
    if not cleaned:
        raise SearchError("search_on: a prefixes search needs at least one prefix")
    e164 = [v.startswith("+") for v in cleaned]
    if any(e164) and not all(e164):
        raise SearchError("search_on: prefixes must all be in one format, national (949) "
                          "or E.164 (+1949)")
    for v in cleaned:
        if not v.lstrip("+").isdigit():
            raise SearchError(f"search_on: {v!r} is not a prefix of digits")
    return all(e164), cleaned


@dataclass(frozen=True)
class Search:
    """A validated search of the pool (or of provisioned numbers)."""

    type: str = "all"
    country: str | None = "US"
    search_by: str = "region"
    search_on: str | None = None

    def matcher(self) -> Any:
        """A predicate over E.164 numbers; SearchError for a search we cannot run."""
        if self.search_by in LOCATION_SEARCHES:
            if self.search_on:
                raise SearchError(f"search_by={self.search_by}: the local number pool has "
                                  "no location data; search by prefixes or vanity")
            return self._base
        if self.search_by == "prefixes":
            e164, prefixes = prefix_matcher((self.search_on or "").split(","))

            def by_prefix(no: str) -> bool:
                text = no if e164 else national(no)
                return self._base(no) and any(text.startswith(p) for p in prefixes)
            return by_prefix
        if self.search_by == "vanity":
            if self.type == "local":
                raise SearchError("search_by=vanity searches toll_free numbers only")
            rx = vanity_regex(self.search_on or "")

            def by_vanity(no: str) -> bool:
                return (self._base(no) and number_type(no) == "toll_free"
                        and rx.search(national(no)) is not None)
            return by_vanity
        raise SearchError(f"search_by must be one of {', '.join(SEARCH_BY)}")

    def _base(self, no: str) -> bool:
        if self.type != "all" and number_type(no) != self.type:
            return False
        return self.country is None or country_of(no) == self.country


def search(pool: Iterable[PoolBlock], taken: set[str], query: Search,
           max_results: int) -> list[str]:
    """Up to `max_results` pool numbers, lowest first, that are free and match `query`."""
    match = query.matcher()
    found: list[str] = []
    for block in sorted(pool, key=lambda b: (b.digits, b.first)):
        for no in block.numbers():
            if no not in taken and match(no):
                found.append(no)
                if len(found) >= max_results:
                    return found
    return found


def in_pool(pool: Iterable[PoolBlock], no: str) -> bool:
    return any(no in block for block in pool)


def available_json(no: str, now_iso: str | None) -> dict[str, Any]:
    """One `phone_numbers[i]` of GET /PhoneNumbers/Available."""
    return {"no": no, "formatted": formatted(no), "type": number_type(no),
            "capabilities": list(CAPABILITIES), "location": location(no), "price": 0,
            "price_period": "day", "estimated_active_date": now_iso,
            "estimated_active_date_user_message": "immediately"}
