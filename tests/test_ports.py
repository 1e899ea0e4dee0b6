"""Port slices keep xdist workers' explicitly chosen ports apart."""

from __future__ import annotations

import pytest

from tests.support.ports import worker_slice


def test_without_xdist_the_whole_range_is_used() -> None:
    assert worker_slice(None, None, 20000, 32000) == (20000, 32000)


def test_worker_slices_are_disjoint_and_inside_the_range() -> None:
    slices = [worker_slice(f"gw{i}", "3", 20000, 32000) for i in range(3)]
    assert slices == [(20000, 24000), (24000, 28000), (28000, 32000)]


def test_a_worker_outside_the_count_is_refused() -> None:
    with pytest.raises(ValueError, match="'gw3' is not one of 3"):
        worker_slice("gw3", "3")
