"""The settings' `[recording_storage]`: the S3 bucket recordings go to by default."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from control.objectstore import S3Config
from control.settings import SettingsError, load

TABLE = """
[recording_storage]
access_key = "AKIAFILE"
security_key = "file/secret"
bucket = "vox-recordings"
endpoint_url = "http://127.0.0.1:9000"
"""


def test_the_table_gives_the_default_storage(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text(TABLE)
    s = load(cfg, {}, {})
    # the region defaults to us-east-1 when an endpoint_url names the store
    assert s.recording_storage == S3Config("AKIAFILE", "file/secret", "us-east-1",
                                           "vox-recordings", "http://127.0.0.1:9000")
    assert "file/secret" not in repr(s)
    nested = tmp_path / "n.toml"
    nested.write_text(TABLE.replace("[recording_storage]", "[voxswitch.recording_storage]"))
    assert load(nested, {}, {}).recording_storage == s.recording_storage


def test_the_environment_sets_it_too() -> None:
    env = {"VOXSWITCH_RECORDING_STORAGE_ACCESS_KEY": "AK",
           "VOXSWITCH_RECORDING_STORAGE_SECURITY_KEY": "SK",
           "VOXSWITCH_RECORDING_STORAGE_REGION": "eu-west-1",
           "VOXSWITCH_RECORDING_STORAGE_BUCKET": "vox-eu"}
    assert load(None, env, {}).recording_storage == S3Config("AK", "SK", "eu-west-1", "vox-eu")


def test_none_by_default() -> None:
    assert load(None, {}, {}).recording_storage is None


@pytest.mark.parametrize("drop, message", [
    ("bucket", "recording_storage: bucket must be an S3 bucket name"),
    ("security_key", "recording_storage: security_key must be a non-empty string"),
    ("endpoint_url", "recording_storage: region must be a region name"),  # AWS: say which
])
def test_an_incomplete_table_is_a_settings_error(tmp_path: Path, drop: str,
                                                 message: str) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text("\n".join(line for line in TABLE.splitlines()
                             if not line.startswith(drop)))
    with pytest.raises(SettingsError, match=message):
        load(cfg, {}, {})


def test_the_switch_hands_it_to_the_recording_store(tmp_path: Path) -> None:
    from control.switch import Switch

    cfg = tmp_path / "v.toml"
    cfg.write_text(TABLE)
    settings = replace(load(cfg, {}, {}), api_key="k", data_dir=tmp_path / "data")
    store = Switch(settings).recordings.store
    assert store.default == settings.recording_storage and store.source == "settings"
    assert store.directory == tmp_path / "data" / "recordings"
