"""`voxswitch serve`: start the switch with embedded defaults.

Beside it, `calls`, `hangup`, `dial` and `conf` drive a running switch over its REST API
(control.clientcli). The CLI is a contract (tests drive the switch through it): flags,
the one ready line on stdout, and a clean exit 0 on SIGTERM/SIGINT within five seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from control import clientcli, logs
from control.settings import Settings, SettingsError, ensure_api_key, load

log = logging.getLogger("voxswitch")

STOP_BUDGET_S = 4.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxswitch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the switch")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--sip-listen", metavar="HOST:PORT",
                       help="SIP UDP+TCP address (default 127.0.0.1:5060; port 0 = any)")
    serve.add_argument("--http-listen", metavar="HOST:PORT",
                       help="REST API address (default 127.0.0.1:8080; port 0 = any)")
    serve.add_argument("--rtp-ports", metavar="LOW-HIGH",
                       help="RTP port range (default 20000-29999; 0-0 = any free port)")
    serve.add_argument("--data-dir", metavar="DIR",
                       help="database, API key and caches (default ./voxswitch-data)")
    serve.add_argument("--api-key", metavar="KEY",
                       help="X-API-Key for the REST API (default: generated once, kept in "
                            "the data dir)")
    serve.add_argument("--default-callback", metavar="URL",
                       help="callback URL of the Default call flow configuration")
    serve.add_argument("--media-dir", metavar="DIR",
                       help="directory whose files PLAY may use by path or file:// URL")
    serve.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")
    serve.add_argument("--log-format", choices=("json", "text"),
                       help="stderr lines: json (default, one object a line) or text "
                            "(HH:MM:SS.mmm LEVEL event key=value ... call_id=...)")
    serve.add_argument("--outbound-proxy", metavar="SIP_URI",
                       help="where calls to numbers go, e.g. sip:127.0.0.1:5070 (SIP URIs "
                            "are dialled directly); credentials: [outbound] username, "
                            "password in the file or VOXSWITCH_OUTBOUND_USERNAME/_PASSWORD")
    serve.add_argument("--print-dashboard", action="store_true",
                       help="after the ready line, print the web dashboard's address, "
                            "signed in with the API key (make run does)")
    clientcli.add_commands(sub)
    return parser


def settings_from_args(args: argparse.Namespace, env: dict[str, str]) -> Settings:
    cli = {
        "sip_listen": args.sip_listen,
        "http_listen": args.http_listen,
        "rtp_ports": args.rtp_ports,
        "data_dir": args.data_dir,
        "api_key": args.api_key,
        "default_callback": args.default_callback,
        "media_dir": args.media_dir,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "outbound_proxy": args.outbound_proxy,
    }
    config = args.config or (Path(env["VOXSWITCH_CONFIG"]) if env.get("VOXSWITCH_CONFIG")
                             else None)
    server_env = {k: v for k, v in env.items() if k not in clientcli.CLIENT_ENV}
    return ensure_api_key(load(config, server_env, cli))


async def serve(settings: Settings, print_dashboard: bool = False) -> int:
    from control.switch import Switch

    switch = Switch(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await switch.start()
    except OSError as exc:
        log.error("switch.start_failed", extra={"error": str(exc)})
        print(f"voxswitch: cannot start: {exc}. Is another process using the port? "
              "Pass --sip-listen/--http-listen with free ports (0 = any).", file=sys.stderr)
        with contextlib.suppress(Exception):
            await switch.stop()
        return 2
    print(switch.ready_line(), flush=True)
    if print_dashboard:
        print(f"voxswitch dashboard {switch.dashboard_url()}", flush=True)
    log.info("switch.ready", extra={"sip_udp": switch.stack.udp_port,
                                    "sip_tcp": switch.stack.tcp_port, "http": switch.http_url})
    await stop.wait()
    log.info("switch.stopping", extra={"live_calls": len(switch.registry)})
    try:
        await asyncio.wait_for(switch.stop(), timeout=STOP_BUDGET_S)
    except TimeoutError:
        log.warning("switch.stop_timeout", extra={"budget_s": STOP_BUDGET_S})
    log.info("switch.stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ)
    if args.command != "serve":
        return clientcli.run(args, env)
    try:
        settings = settings_from_args(args, env)
    except SettingsError as exc:
        print(f"voxswitch: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format)
    runner: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        log.info("uvloop not installed; using the asyncio event loop")
    return runner(serve(settings, args.print_dashboard))


if __name__ == "__main__":
    sys.exit(main())
