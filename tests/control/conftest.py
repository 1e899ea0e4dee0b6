"""Fixtures shared by the control tests (the API tests add theirs in api/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control.storage import Storage


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    """A real SQLite storage, open, in the test's tmp_path."""
    store = Storage(tmp_path / "voxswitch.db")
    await store.open()
    yield store
    await store.close()
