"""The client commands' tables, error lines and arguments (control.clientcli), no network."""

from __future__ import annotations

import argparse
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control import clientcli
from control.cli import build_parser, main, settings_from_args

INBOUND = {"id": "3@7890", "no": "sipp", "caller_id_no": "+17145551212",
           "status": "live-in-progress", "connected_time": 65_400, "direction": "inbound"}
OUTBOUND = {"id": "12@7890", "no": "+19495550100", "caller_id_no": "+17145551212",
            "status": "live-ringing", "connected_time": 0, "direction": "outbound"}


def test_calls_table_reads_from_and_to_by_direction() -> None:
    text = clientcli.calls_table({"calls": [INBOUND, OUTBOUND], "total_calls": 2})
    assert text.splitlines() == [
        "ID       DIRECTION  FROM          TO            STATUS            DURATION",
        "3@7890   inbound    sipp          +17145551212  live-in-progress  1:05",
        "12@7890  outbound   +17145551212  +19495550100  live-ringing      0:00",
    ]


def test_calls_table_empty_and_truncated() -> None:
    assert clientcli.calls_table({"calls": [], "total_calls": 0}) == "no live calls"
    text = clientcli.calls_table({"calls": [INBOUND], "total_calls": 3})
    assert text.splitlines()[-1] == "(1 of 3 calls shown)"


@pytest.mark.parametrize(("ms", "shown"), [
    (0, "0:00"), (None, "0:00"), (999, "0:00"), (59_999, "0:59"), (60_000, "1:00"),
    (3_599_000, "59:59"), (3_600_000, "1:00:00"), (36_061_000, "10:01:01"),
])
def test_duration(ms: int | None, shown: str) -> None:
    assert clientcli.duration(ms) == shown


def test_table_shows_missing_values_as_dash() -> None:
    assert clientcli.table(("A", "B"), [(None, ""), ("x", 1)]).splitlines() == [
        "A  B", "-  -", "x  1"]


CONFERENCE = {"id": "c1", "name": "sales", "status": "in-progress", "num_participants": 2,
              "participants": [
                  {"id": "p1", "call": {"id": "3@7890", "no": "sipp"}, "muted": True,
                   "on_hold": False},
                  {"id": "p2", "call": {"id": "4@7890", "no": "+1714"}, "muted": False,
                   "on_hold": True}]}


def test_conference_tables() -> None:
    assert clientcli.conferences_table({"conferences": [CONFERENCE]}).splitlines() == [
        "NAME   ID  STATUS       PARTICIPANTS",
        "sales  c1  in-progress  2",
    ]
    assert clientcli.conferences_table({"conferences": []}) == "no live conferences"
    assert clientcli.conference_detail(CONFERENCE).splitlines() == [
        "sales (c1): in-progress, 2 participant(s)",
        "PARTICIPANT  CALL    NO     STATE",
        "p1           3@7890  sipp   muted",
        "p2           4@7890  +1714  on-hold",
    ]


@pytest.mark.parametrize("who", ["p2", "4@7890"])
def test_participant_by_participant_or_call_id(who: str) -> None:
    assert clientcli.participant_call(CONFERENCE, who) == "4@7890"


def test_error_line_is_code_message_help() -> None:
    body = {"ref_id": "r", "status": 404, "code": 404404, "message": "Not Found",
            "help": "No call '1@1': the ID is wrong.", "user_message": "No call."}
    assert clientcli.error_line(404, body) == \
        "404404 Not Found: No call '1@1': the ID is wrong."
    assert clientcli.error_line(502, "Bad Gateway\n") == "HTTP 502: Bad Gateway"


# ---- arguments --------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_dial_arguments() -> None:
    args = parse("dial", "+19495550100", "--from", "+17145551212",
                 "--session-data", '{"lead": 7}', "--url", "http://h:1", "--json")
    assert (args.no, args.caller_id, args.session_data) == \
        ("+19495550100", "+17145551212", {"lead": 7})
    assert args.url == "http://h:1" and args.json


@pytest.mark.parametrize("argv", [
    ["dial", "+19495550100", "--from", "1", "--session-data", "[1]"],
    ["dial", "+19495550100", "--from", "1", "--session-data", "{nope"],
    ["dial", "+19495550100"],
    ["hangup"],
    ["conf"],
    ["conf", "mute", "sales"],
    ["calls", "extra"],
    ["nonsense"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_conf_verbs() -> None:
    args = parse("conf", "kick", "sales", "p1", "--message", "Bye")
    assert (args.verb, args.name, args.participant, args.message) == \
        ("kick", "sales", "p1", ["Bye"])
    assert parse("conf", "list").verb == "list"
    assert parse("conf", "show", "sales").name == "sales"


def test_api_key_order(tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("from-file\n")
    env = {"VOXSWITCH_API_KEY": "from-env", "VOXSWITCH_DATA_DIR": str(tmp_path)}
    assert clientcli.resolve_api_key("given", env, None) == "given"
    assert clientcli.resolve_api_key(None, env, None) == "from-env"
    assert clientcli.resolve_api_key(None, {"VOXSWITCH_DATA_DIR": str(tmp_path)}, None) \
        == "from-file"
    assert clientcli.resolve_api_key(None, {}, str(tmp_path)) == "from-file"
    with pytest.raises(clientcli.ClientError) as exc:
        clientcli.resolve_api_key(None, {}, str(tmp_path / "none"))
    assert exc.value.status == 2 and "--api-key" in exc.value.line


def test_serve_ignores_the_client_url_variable(tmp_path: Path) -> None:
    args = parse("serve", "--data-dir", str(tmp_path), "--api-key", "k")
    settings = settings_from_args(args, {"VOXSWITCH_URL": "http://127.0.0.1:9"})
    assert settings.api_key == "k"


# ---- against a stand-in server ----------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, Any]] = []  # noqa: RUF012

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, self.path, self.headers.get("X-API-Key"), body))
        if self.path == "/v1/LiveCalls":
            self._json(200, {"calls": [INBOUND], "total_calls": 1})
        elif self.path == "/v1/LiveCalls/Conferences":
            self._json(200, {"conferences": [CONFERENCE]})
        elif self.path.endswith("/Actions/Conference/Mute"):
            self.send_response(204)
            self.end_headers()
        else:
            self._json(404, {"status": 404, "code": 404404, "message": "Not Found",
                             "help": "No call.", "user_message": "", "ref_id": "x"})

    do_GET = do_POST = _answer

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def cli(*argv: str, env: dict[str, str] | None = None) -> int:
    return clientcli.run(parse(*argv), env or {})


def test_calls_table_and_json(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("calls", "--url", server, "--api-key", "k") == 0
    assert "3@7890  inbound    sipp" in capsys.readouterr().out
    assert cli("calls", "--json", env={"VOXSWITCH_URL": server, "VOXSWITCH_API_KEY": "k"}) == 0
    assert json.loads(capsys.readouterr().out)["calls"] == [INBOUND]
    assert [s[2] for s in Handler.seen] == ["k", "k"]


def test_error_body_is_one_line_and_exit_1(server: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("hangup", "1@1", "--url", server, "--api-key", "k") == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == "voxswitch: 404404 Not Found: No call.\n"
    assert Handler.seen[-1][:2] == ("POST", "/v1/LiveCalls/1@1/Actions/HangUp")


def test_conf_mute_posts_the_participants_call(server: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("conf", "mute", "sales", "p2", "--url", server, "--api-key", "k") == 0
    assert capsys.readouterr().out == "Mute: call 4@7890 in sales\n"
    assert Handler.seen[-1] == ("POST", "/v1/LiveCalls/4@7890/Actions/Conference/Mute", "k",
                                {"conference_name": "sales"})
    assert cli("conf", "show", "nobody", "--url", server, "--api-key", "k") == 1
    assert capsys.readouterr().err.startswith("voxswitch: 404701 Not Found")


def test_connection_refused_says_where_and_what_to_do(
        capsys: pytest.CaptureFixture[str]) -> None:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    httpd.server_close()  # nothing listens on it now
    assert cli("calls", "--url", f"http://127.0.0.1:{port}", "--api-key", "k") == 1
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}" in err and "voxswitch serve" in err
    assert err.count("\n") == 1
