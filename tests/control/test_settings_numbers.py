"""The number pool setting: `[numbers] pool`, VOXSWITCH_NUMBERS_POOL, and bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.numbers import DEFAULT_POOL
from control.settings import SettingsError, load


def test_default_pool() -> None:
    assert load(None, {}, {}).numbers_pool == DEFAULT_POOL


def test_pool_from_the_file_and_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "voxswitch.toml"
    cfg.write_text('[numbers]\npool = ["+1714555XXXX", "+18005550100-+18005550199"]\n')
    assert load(cfg, {}, {}).numbers_pool == ("+1714555XXXX", "+18005550100-+18005550199")
    env = {"VOXSWITCH_NUMBERS_POOL": "+1310555, +1949555XXXX"}
    assert load(cfg, env, {}).numbers_pool == ("+1310555", "+1949555XXXX")


@pytest.mark.parametrize("pool", ['["949555"]', '"+1949555XXXXX"', "[1]"])
def test_bad_pools_say_what_fits(tmp_path: Path, pool: str) -> None:
    cfg = tmp_path / "voxswitch.toml"
    cfg.write_text(f"[numbers]\npool = {pool}\n")
    with pytest.raises(SettingsError, match="numbers pool"):
        load(cfg, {}, {})
