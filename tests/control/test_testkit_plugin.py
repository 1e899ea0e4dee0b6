"""The pytest plugin's own contract: registered under pytest11, light to import, and a
clear error for a marker it cannot take."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "av", "aiortc", "aiohttp", "media.dsp.dtmf", "signaling.stack")


def test_the_plugin_is_an_entry_point() -> None:
    found = [e for e in importlib.metadata.entry_points(group="pytest11")
             if e.name == "voxswitch"]
    assert [e.value for e in found] == ["control.testkit.plugin"], found


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, control.testkit.plugin; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "", out.stdout


def test_an_unknown_marker_option_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.asyncio\n"
        "@pytest.mark.voxswitch(argz=['--x'])\n"
        "async def test_x(voxswitch):\n"
        "    pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_bad.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0, out.stdout
    assert "@pytest.mark.voxswitch (or voxswitch_options) does not take ['argz']; it takes " \
           "api_key, args, default_callback" in out.stdout, out.stdout
