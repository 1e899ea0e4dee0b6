"""The number pool: entries, prefix and vanity searches, what a number is."""

from __future__ import annotations

import pytest

from control.numbers import (
    PoolError,
    Search,
    SearchError,
    formatted,
    in_pool,
    number_type,
    parse_pool,
    parse_pool_entry,
    search,
    vanity_regex,
)


@pytest.mark.parametrize("entry,first,last,count", [
    ("+1949555XXXX", "+19495550000", "+19495559999", 10000),
    ("+1949555", "+19495550000", "+19495559999", 10000),
    ("+19495551212", "+19495551212", "+19495551212", 1),
    ("+19495550100-+19495550199", "+19495550100", "+19495550199", 100),
    ("+4420794600XX", "+442079460000", "+442079460099", 100),
])
def test_pool_entries(entry: str, first: str, last: str, count: int) -> None:
    block = parse_pool_entry(entry)
    nos = list(block.numbers())
    assert (nos[0], nos[-1], len(nos)) == (first, last, count)
    assert first in block and last in block


@pytest.mark.parametrize("entry", ["949555", "+1949-+1950", "+19495550199-+19495550100",
                                   "+1949555XXXXX", "+44", "+0123XX", "+1949X55"])
def test_bad_pool_entries(entry: str) -> None:
    with pytest.raises(PoolError):
        parse_pool_entry(entry)


POOL = parse_pool(["+1949555XXXX", "+1714555000X", "+1800123XXXX", "+1888555XXXX"])


def test_prefix_search_national_and_e164() -> None:
    assert search(POOL, set(), Search(search_by="prefixes", search_on="714"), 3) == [
        "+17145550000", "+17145550001", "+17145550002"]
    assert search(POOL, {"+17145550000"}, Search(search_by="prefixes",
                                                 search_on="+1714,+1949"), 2) == [
        "+17145550001", "+17145550002"]
    assert search(POOL, set(), Search(search_by="prefixes", search_on="949555123"), 2) == [
        "+19495551230", "+19495551231"]
    with pytest.raises(SearchError):
        Search(search_by="prefixes", search_on="714,+1949").matcher()


def test_vanity_search_letters_wildcards_and_repeats() -> None:
    # the spec's example: 8&&***CATS may return +18001232287
    assert vanity_regex("8&&***CATS").fullmatch("8001232287")
    assert not vanity_regex("8&&***CATS").fullmatch("8011232287")  # && must repeat
    found = search(POOL, set(), Search(search_by="vanity", search_on="8&&***CATS"), 5)
    assert found == ["+18001232287", "+18885552287"]
    # shorter patterns match anywhere in the national number
    assert search(POOL, set(), Search(search_by="vanity", search_on="cats"), 5) == [
        "+18001232287", "+18885552287"]
    # vanity searches toll-free numbers only
    assert all(number_type(no) == "toll_free" for no in
               search(POOL, set(), Search(search_by="vanity", search_on="555"), 50))
    with pytest.raises(SearchError):
        Search(type="local", search_by="vanity", search_on="CATS").matcher()
    with pytest.raises(SearchError):
        vanity_regex("8?")


def test_type_and_country_filters() -> None:
    assert search(POOL, set(), Search(type="toll_free"), 1) == ["+18001230000"]
    assert search(POOL, set(), Search(type="local"), 1) == ["+17145550000"]
    assert search(POOL, set(), Search(country="GB"), 1) == []
    with pytest.raises(SearchError):
        Search(search_by="region", search_on="CA").matcher()


def test_number_facts() -> None:
    assert formatted("+19495551212") == "(949) 555-1212"
    assert formatted("+442079460000") == "+442079460000"
    assert number_type("+18885551212") == "toll_free"
    assert in_pool(POOL, "+19495551212") and not in_pool(POOL, "+19495551212000")


def test_a_pool_too_large_to_search_is_refused() -> None:
    with pytest.raises(PoolError, match="more than"):
        parse_pool(["+1949XXXXXXX"])
