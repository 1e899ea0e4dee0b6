from pathlib import Path

import pytest

from control.settings import HostPort, SettingsError, ensure_api_key, load, parse_port_range


def test_defaults_match_the_cli_contract() -> None:
    s = load(None, {}, {})
    assert s.sip_listen == HostPort("127.0.0.1", 5060)
    assert s.http_listen == HostPort("127.0.0.1", 8080)
    assert s.rtp_ports == (20000, 29999)
    assert s.data_dir == Path("voxswitch-data")


def test_cli_beats_environment_beats_file(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text(
        'sip_listen = "127.0.0.1:5070"\nhttp_listen = "127.0.0.1:9000"\nrtp_ports = "30000-30100"\n'
    )
    env = {"VOXSWITCH_HTTP_LISTEN": "127.0.0.1:9100", "VOXSWITCH_RTP_PORTS": "31000-31100"}
    s = load(cfg, env, {"rtp_ports": "32000-32100"})
    assert s.sip_listen.port == 5070
    assert s.http_listen.port == 9100
    assert s.rtp_ports == (32000, 32100)


def test_toml_may_use_a_voxswitch_table(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text('[voxswitch]\ndefault_callback = "http://127.0.0.1:1/cb"\n')
    assert load(cfg, {}, {}).default_callback == "http://127.0.0.1:1/cb"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5060", "expected HOST:PORT"),
        ("127.0.0.1:x", "port 'x' is not a number"),
        ("127.0.0.1:70000", "out of range"),
    ],
)
def test_bad_listen_address_names_the_fault(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(None, {}, {"sip_listen": text})


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text("sip_port = 5060\n")
    with pytest.raises(SettingsError, match="unknown setting 'sip_port'"):
        load(cfg, {}, {})


def test_port_ranges() -> None:
    assert parse_port_range("0-0") == (0, 0)
    assert parse_port_range("20000-20010") == (20000, 20010)
    for bad in ("20000", "x-y", "30000-20000", "0-100"):
        with pytest.raises(SettingsError):
            parse_port_range(bad)


def test_api_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    s = load(None, {}, {"data_dir": str(tmp_path)})
    first = ensure_api_key(s).api_key
    assert first and len(first) >= 24
    assert ensure_api_key(s).api_key == first
    assert (tmp_path / "api_key").read_text().strip() == first
    assert (
        ensure_api_key(load(None, {}, {"data_dir": str(tmp_path), "api_key": "k"})).api_key == "k"
    )


def test_an_outbound_table_sets_the_proxy_and_its_credentials(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text('[outbound]\nproxy = "sip:127.0.0.1:5070"\nusername = "lab"\n'
                   'password = "secret"\n')
    s = load(cfg, {"VOXSWITCH_OUTBOUND_PASSWORD": "from-env"}, {})
    assert (s.outbound_proxy, s.outbound_username, s.outbound_password) == (
        "sip:127.0.0.1:5070", "lab", "from-env")


@pytest.mark.parametrize("proxy", ["127.0.0.1:5070", "sip:host", "sip:u@host:5060",
                                   "sip:host:99999", "http://host:80"])
def test_a_bad_outbound_proxy_says_what_fits(proxy: str) -> None:
    with pytest.raises(SettingsError, match="sip:HOST:PORT"):
        load(None, {}, {"outbound_proxy": proxy})
