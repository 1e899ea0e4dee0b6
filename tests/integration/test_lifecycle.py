"""The CLI contract: the ready line, settings from flags/file/environment, the API key kept
in the data dir, exit 2 on a bad setting, and a clean exit 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support.callback_app import CallbackApp, Reply
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_port_range
from tests.support.procs import ManagedProcess, run_process, start_process
from tests.support.sipp import SippRunner
from tests.support.switch import (
    READY_RE,
    RunningSwitch,
    parse_ready_line,
    rest,
    running_switch,
    voxswitch_argv,
)

EXIT_BOUND_S = 6.0  # the contract says 5 s; one more for process teardown on a slow box
EXACT_READY_RE = (
    r"^voxswitch ready sip=udp:127\.0\.0\.1:\d+,tcp:127\.0\.0\.1:\d+ "
    r"http=http://127\.0\.0\.1:\d+ api_key=\S+$"
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXSWITCH_")}
    env.update(extra)
    return env


def _ephemeral_args(data_dir: Path) -> list[str]:
    low, high = free_port_range(40)
    return ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
            "--rtp-ports", f"{low}-{high}", "--data-dir", str(data_dir)]


@asynccontextmanager
async def cli_switch(tmp_path: Path, args: Sequence[str], env: Mapping[str, str],
                     name: str = "cli") -> AsyncIterator[tuple[RunningSwitch, ManagedProcess]]:
    """`voxswitch serve ARGS` with exactly `env`; stopped with SIGTERM, must exit 0."""
    argv = [*voxswitch_argv(), "serve", *args]
    proc = await start_process(name, argv, tmp_path / "logs", cwd=tmp_path, env=env)
    try:
        match = await proc.stdout.wait_for(r"^voxswitch ready ", 20.0)
        assert match is not None, f"no ready line\n{proc.describe()}"
        udp, tcp, http_url, key = parse_ready_line(match.string)
        sw = RunningSwitch(udp, tcp, http_url, key, tmp_path, (0, 0), proc)
        yield sw, proc
    finally:
        rc = await proc.stop(term_timeout=8.0)
    assert rc == 0, proc.describe()


async def _status(sw: RunningSwitch, path: str, key: str | None) -> int:
    headers = {"X-API-Key": key} if key is not None else {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(base_url=sw.http_url, timeout=timeout) as http, \
            http.get(path, headers=headers) as resp:
        return resp.status


async def _default_callback_url(sw: RunningSwitch) -> str | None:
    async with rest(sw) as http, http.get("/v1/CallFlows/Configurations/Default") as resp:
        if resp.status == 404:
            return None
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    callback = body.get("callback") or {}
    return callback.get("url")


async def _live_calls(sw: RunningSwitch) -> int:
    async with rest(sw) as http, http.get("/v1/LiveCalls") as resp:
        assert resp.status == 200, await resp.text()
        return int((await resp.json())["total_calls"])


async def _wait_live(sw: RunningSwitch, count: int, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (live := await _live_calls(sw)) != count:
        assert loop.time() < deadline, f"{live} live calls, expected {count}\n{sw.logs()}"
        await asyncio.sleep(0.1)


# ---- the ready line ------------------------------------------------------------------------

async def test_ready_line_has_the_documented_form_and_real_ports(
    switch: SwitchFactory, sipp_runner: SippRunner,
) -> None:
    sw = await switch()
    out = sw.process.stdout.lines
    assert len(out) == 1, out  # exactly one line on stdout; logs go to stderr
    assert READY_RE.match(out[0]), out[0]
    assert re.match(EXACT_READY_RE, out[0]), out[0]
    assert sw.sip_udp[1] > 0 and sw.sip_tcp[1] > 0
    assert sw.http_url.startswith("http://127.0.0.1:") and not sw.http_url.endswith(":0")
    assert sw.api_key == "test-key"

    for transport, target in (("udp", sw.sip_udp), ("tcp", sw.sip_tcp)):
        result = await sipp_runner.run("uac_options.xml", target, transport=transport)
        result.assert_ok()
    assert await _status(sw, "/v1/LiveCalls", sw.api_key) == 200
    assert await _status(sw, "/v1/LiveCalls", None) == 401
    assert await _status(sw, "/v1/LiveCalls", "wrong-key") == 401


async def test_api_key_is_generated_once_and_kept_in_the_data_dir(tmp_path: Path) -> None:
    keys = []
    for _ in range(2):
        async with running_switch(tmp_path, api_key=None, name="keyed") as sw:
            keys.append(sw.api_key)
            assert await _status(sw, "/v1/LiveCalls", sw.api_key) == 200
            key_file = sw.data_dir / "api_key"
            assert key_file.read_text().strip() == sw.api_key
    assert keys[0] == keys[1]
    assert len(keys[0]) >= 16
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


# ---- settings from a file and the environment ------------------------------------------------

async def test_settings_from_a_toml_file(tmp_path: Path, callback_app: CallbackApp) -> None:
    low, high = free_port_range(40)
    config = tmp_path / "voxswitch.toml"
    config.write_text(
        "[voxswitch]\n"
        'sip_listen = "127.0.0.1:0"\n'
        'http_listen = "127.0.0.1:0"\n'
        f'rtp_ports = "{low}-{high}"\n'
        f'data_dir = "{tmp_path / "toml-data"}"\n'
        'api_key = "key-from-toml"\n'
        f'default_callback = "{callback_app.url}toml"\n')
    async with cli_switch(tmp_path, ["--config", str(config)], _clean_env()) as (sw, _):
        assert sw.api_key == "key-from-toml"
        assert await _default_callback_url(sw) == f"{callback_app.url}toml"
    assert (tmp_path / "toml-data").is_dir()


async def test_top_level_toml_keys_work_too(tmp_path: Path) -> None:
    config = tmp_path / "flat.toml"
    config.write_text('api_key = "flat-key"\n')
    args = ["--config", str(config), *_ephemeral_args(tmp_path / "flat-data")]
    async with cli_switch(tmp_path, args, _clean_env()) as (sw, _):
        assert sw.api_key == "flat-key"


async def test_settings_from_the_environment(tmp_path: Path, callback_app: CallbackApp,
                                             sipp_runner: SippRunner) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "HANGUP"}]),
                             "end_call": Reply(json={})})
    low, high = free_port_range(40)
    env = _clean_env(VOXSWITCH_API_KEY="key-from-env",
                     VOXSWITCH_DEFAULT_CALLBACK=callback_app.url,
                     VOXSWITCH_SIP_LISTEN="127.0.0.1:0", VOXSWITCH_HTTP_LISTEN="127.0.0.1:0",
                     VOXSWITCH_RTP_PORTS=f"{low}-{high}",
                     VOXSWITCH_DATA_DIR=str(tmp_path / "env-data"))
    async with cli_switch(tmp_path, [], env) as (sw, _):
        assert sw.api_key == "key-from-env"
        assert await _default_callback_url(sw) == callback_app.url
        result = await sipp_runner.run("uac_wait_bye.xml", sw.sip_udp, service="1000")
        result.assert_ok()
        await callback_app.wait_for(type="end_call")
    assert (tmp_path / "env-data" / "voxswitch.db").exists()


async def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = tmp_path / "voxswitch.toml"
    config.write_text('api_key = "file-key"\ndefault_callback = "http://127.0.0.1:9/file"\n')
    env = _clean_env(VOXSWITCH_API_KEY="env-key",
                     VOXSWITCH_DEFAULT_CALLBACK="http://127.0.0.1:9/env")
    args = ["--config", str(config), *_ephemeral_args(tmp_path / "p-data")]
    async with cli_switch(tmp_path, args, env, name="env-over-file") as (sw, _):
        assert sw.api_key == "env-key"
        assert await _default_callback_url(sw) == "http://127.0.0.1:9/env"
    args += ["--api-key", "flag-key"]
    async with cli_switch(tmp_path, args, env, name="flag-over-env") as (sw, _):
        assert sw.api_key == "flag-key"


async def test_voxswitch_config_env_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "via-env.toml"
    config.write_text('api_key = "key-via-config-env"\n')
    env = _clean_env(VOXSWITCH_CONFIG=str(config))
    args = _ephemeral_args(tmp_path / "c-data")
    async with cli_switch(tmp_path, args, env) as (sw, _):
        assert sw.api_key == "key-via-config-env"


# ---- bad settings ----------------------------------------------------------------------------

BAD_SETTINGS = [
    pytest.param(["--rtp-ports", "5-1"], {}, "rtp-ports", id="rtp-ports-reversed"),
    pytest.param(["--rtp-ports", "abc"], {}, "rtp-ports", id="rtp-ports-text"),
    pytest.param(["--sip-listen", "127.0.0.1:99999"], {}, "sip-listen", id="sip-port-range"),
    pytest.param(["--http-listen", "nohostport"], {}, "http-listen", id="http-no-port"),
    pytest.param([], {"VOXSWITCH_RTP_PORTS": "9-3"}, "rtp-ports", id="env-rtp-ports"),
    pytest.param([], {"VOXSWITCH_NO_SUCH_SETTING": "1"}, "no_such_setting", id="env-unknown"),
]


@pytest.mark.parametrize(("args", "env", "named"), BAD_SETTINGS)
async def test_a_bad_setting_exits_2_naming_it(tmp_path: Path, args: list[str],
                                               env: dict[str, str], named: str) -> None:
    base = ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
            "--data-dir", str(tmp_path / "bad-data")]
    argv = [*voxswitch_argv(), "serve", *base, *args]
    proc = await start_process("bad", argv, tmp_path / "logs", cwd=tmp_path,
                               env=_clean_env(**env))
    rc = await proc.wait(20.0)
    if rc is None:
        await proc.stop(term_timeout=3.0)
    assert rc == 2, proc.describe()
    assert named in proc.stderr.text, proc.describe()
    assert "Traceback" not in proc.stderr.text
    assert not any(line.startswith("voxswitch ready") for line in proc.stdout.lines)


async def test_a_bad_config_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("api_key = \n")
    argv = [*voxswitch_argv(), "serve", "--config", str(config)]
    proc = await run_process("broken", argv, tmp_path / "logs", 20.0, cwd=tmp_path)
    assert proc.returncode == 2, proc.describe()
    assert str(config) in proc.stderr.text
    assert "Traceback" not in proc.stderr.text


# ---- stopping --------------------------------------------------------------------------------

async def _stop_with_a_live_call(tmp_path: Path, callback_app: CallbackApp,
                                 sipp_runner: SippRunner, sig: signal.Signals) -> None:
    callback_app.set_script({"init_call": Reply.actions([{"type": "PAUSE",
                                                          "params": {"seconds": 60}}]),
                             "end_call": Reply(json={})})
    async with running_switch(tmp_path, callback_app.url, check_exit=False) as sw:
        caller = asyncio.create_task(sipp_runner.run(
            "uac_wait_bye.xml", sw.sip_udp, service="1000",
            params={"BYE_TIMEOUT_MS": 30000}, timeout=40))
        try:
            await callback_app.wait_for(type="init_call", timeout=15)
            await _wait_live(sw, 1)
            await asyncio.sleep(0.5)  # the 200 OK is out and ACKed: the call is up
            sw.process.send_signal(sig)
            rc = await sw.process.wait(EXIT_BOUND_S)
        finally:
            result = await caller
        assert rc == 0, sw.logs()
    result.assert_ok()  # it got the switch's BYE and answered it
    assert "BYE sip:" in result.messages
    end = await callback_app.wait_for(type="end_call", timeout=5)
    assert end.fields["status"] == "completed"
    assert "Traceback" not in sw.logs()


async def test_sigterm_hangs_up_live_calls_and_exits_0(
    tmp_path: Path, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    await _stop_with_a_live_call(tmp_path, callback_app, sipp_runner, signal.SIGTERM)


async def test_sigint_hangs_up_live_calls_and_exits_0(
    tmp_path: Path, callback_app: CallbackApp, sipp_runner: SippRunner,
) -> None:
    await _stop_with_a_live_call(tmp_path, callback_app, sipp_runner, signal.SIGINT)


async def test_sigint_when_idle_exits_0(tmp_path: Path) -> None:
    async with running_switch(tmp_path, check_exit=False) as sw:
        sw.process.send_signal(signal.SIGINT)
        rc = await sw.process.wait(EXIT_BOUND_S)
        assert rc == 0, sw.logs()
