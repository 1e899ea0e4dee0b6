"""The client commands of `voxswitch`: calls, hangup, dial, conf — over the REST API.

Each command is one or two REST requests (urllib, no event loop) and a rendering of the
answer. The renderers take the parsed JSON and return text, so tests check tables without
a network. Failures become `ClientError`: one line on stderr and exit status 1 — the
spec's error body as "CODE Message: help", or where the connection was tried.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_DATA_DIR = "voxswitch-data"
TIMEOUT_S = 15.0
# Environment variables only the client reads; `serve` must not take them as settings.
CLIENT_ENV = ("VOXSWITCH_URL",)
# conf VERB → the Conferences action (control/api/conferences.py)
CONF_ACTIONS = {"mute": "Mute", "unmute": "Unmute", "kick": "Leave", "hold": "Hold",
                "resume": "Resume"}
EXIT_ERROR = 1
EXIT_USAGE = 2


class ClientError(Exception):
    """A request failed; the message is the one line shown, `status` the exit status."""

    def __init__(self, line: str, status: int = EXIT_ERROR) -> None:
        super().__init__(line)
        self.line = line
        self.status = status


# ---- rendering (no network) ------------------------------------------------------------


def error_line(status: int, body: Any) -> str:
    """The spec's error body as one line: `404404 Not Found: No call '1@1': ...`."""
    if isinstance(body, dict) and "code" in body:
        text = f"{body['code']} {body.get('message') or 'Error'}"
        detail = body.get("help") or body.get("user_message")
        return f"{text}: {detail}" if detail else text
    return f"HTTP {status}: {str(body).strip()[:200] or 'no error body'}"


def duration(ms: Any) -> str:
    """Milliseconds as M:SS, or H:MM:SS from an hour on."""
    seconds = int(ms or 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart; missing values show as '-'."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [list(headers), *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def calls_table(body: Mapping[str, Any]) -> str:
    """List Live Calls as id, direction, from, to, status, duration.

    Inbound calls come from `no` (the caller) to `caller_id_no` (our number); outbound
    ones from `caller_id_no` (the caller ID shown) to `no` (the number dialled).
    """
    calls = body.get("calls") or []
    if not calls:
        return "no live calls"
    rows = []
    for c in calls:
        outbound = c.get("direction") == "outbound"
        src, dst = (c.get("caller_id_no"), c.get("no")) if outbound \
            else (c.get("no"), c.get("caller_id_no"))
        rows.append((c.get("id"), c.get("direction"), src, dst, c.get("status"),
                     duration(c.get("connected_time"))))
    text = table(("ID", "DIRECTION", "FROM", "TO", "STATUS", "DURATION"), rows)
    total = body.get("total_calls", len(calls))
    return text if total == len(calls) else f"{text}\n({len(calls)} of {total} calls shown)"


def conferences_table(body: Mapping[str, Any]) -> str:
    conferences = body.get("conferences") or []
    if not conferences:
        return "no live conferences"
    return table(("NAME", "ID", "STATUS", "PARTICIPANTS"),
                 [(c.get("name"), c.get("id"), c.get("status"), c.get("num_participants"))
                  for c in conferences])


def _flags(p: Mapping[str, Any]) -> str:
    return ",".join(f for f, on in (("muted", p.get("muted")), ("on-hold", p.get("on_hold")))
                    if on)


def conference_detail(conference: Mapping[str, Any]) -> str:
    head = (f"{conference.get('name')} ({conference.get('id')}): {conference.get('status')}, "
            f"{conference.get('num_participants', 0)} participant(s)")
    participants = conference.get("participants") or []
    if not participants:
        return head
    rows = [(p.get("id"), (p.get("call") or {}).get("id"), (p.get("call") or {}).get("no"),
             _flags(p)) for p in participants]
    return f"{head}\n{table(('PARTICIPANT', 'CALL', 'NO', 'STATE'), rows)}"


# ---- the REST client -------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """`url` is the switch's base URL (without /v1)."""

    url: str
    api_key: str
    timeout: float = TIMEOUT_S

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer (None for 204); ClientError for anything else."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + "/v1" + path, data=data,
                                     method=method)
        req.add_header("X-API-Key", self.api_key)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ClientError(error_line(exc.code, _decode(exc.read()))) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach the switch at {self.url}: {reason}. Is it "
                              "running? Start it with `voxswitch serve`, or pass --url "
                              "(or set VOXSWITCH_URL).") from None
        return _decode(raw) if raw else None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="@")


def resolve_api_key(given: str | None, env: Mapping[str, str], data_dir: str | None) -> str:
    """--api-key, else VOXSWITCH_API_KEY, else the key `serve` keeps in the data dir."""
    key = given or env.get("VOXSWITCH_API_KEY")
    if key:
        return key
    path = Path(data_dir or env.get("VOXSWITCH_DATA_DIR") or DEFAULT_DATA_DIR) / "api_key"
    try:
        key = path.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise ClientError(f"no API key: pass --api-key, set VOXSWITCH_API_KEY, or run from "
                          f"where `voxswitch serve` keeps {path}", EXIT_USAGE)
    return key


# ---- commands --------------------------------------------------------------------------


Command = Callable[[Client, argparse.Namespace], Any]


def cmd_calls(client: Client, args: argparse.Namespace) -> Any:
    return client.request("GET", "/LiveCalls")


def cmd_hangup(client: Client, args: argparse.Namespace) -> Any:
    body = {"message": args.message} if args.message else {}
    client.request("POST", f"/LiveCalls/{quote(args.id)}/Actions/HangUp", body)
    return {"id": args.id, "hung_up": True}


def cmd_dial(client: Client, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"call": {"no": args.no, "caller_id_no": args.caller_id}}
    if args.session_data is not None:
        body["session_data"] = args.session_data
    return client.request("POST", "/Dials/Connect", body)


def find_conference(client: Client, name: str) -> dict[str, Any]:
    """The conference named `name` (or with that id); 404701-like ClientError if none."""
    listing = client.request("GET", "/LiveCalls/Conferences") or {}
    for conference in listing.get("conferences") or []:
        if name in (conference.get("name"), conference.get("id")):
            return dict(conference)
    raise ClientError(f"404701 Not Found: No live conference {name!r}: it may have ended.")


def participant_call(conference: Mapping[str, Any], who: str) -> str:
    """The call id of participant `who` (a participant id or a call id)."""
    for p in conference.get("participants") or []:
        call_id = (p.get("call") or {}).get("id")
        if who in (p.get("id"), call_id):
            return str(call_id)
    return who  # let the switch answer 404702 for it


def cmd_conf(client: Client, args: argparse.Namespace) -> Any:
    if args.verb == "list":
        return client.request("GET", "/LiveCalls/Conferences")
    conference = find_conference(client, args.name)
    if args.verb == "show":
        return conference
    call_id = participant_call(conference, args.participant)
    body: dict[str, Any] = {"conference_name": conference["name"]}
    if args.message:
        body["message"] = args.message
    action = CONF_ACTIONS[args.verb]
    client.request("POST", f"/LiveCalls/{quote(call_id)}/Actions/Conference/{action}", body)
    return {"conference": conference["name"], "call_id": call_id, "action": action}


def render(args: argparse.Namespace, result: Any) -> str:
    if args.json:
        return json.dumps(result, indent=2)
    if args.command == "calls":
        return calls_table(result)
    if args.command == "hangup":
        return f"hung up {result['id']}"
    if args.command == "dial":
        call = result.get("call") or {}
        return f"dialling {call.get('no')} from {call.get('caller_id_no')}: call {call.get('id')}"
    if args.verb == "list":
        return conferences_table(result)
    if args.verb == "show":
        return conference_detail(result)
    return f"{result['action']}: call {result['call_id']} in {result['conference']}"


COMMANDS: dict[str, Command] = {"calls": cmd_calls, "hangup": cmd_hangup, "dial": cmd_dial,
                                "conf": cmd_conf}


# ---- argument parsing ------------------------------------------------------------------


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"the switch's REST base URL (default $VOXSWITCH_URL, "
                                      f"else {DEFAULT_URL})")
    parser.add_argument("--api-key", metavar="KEY", help="X-API-Key (default "
                        "$VOXSWITCH_API_KEY, else the key kept in the data dir)")
    parser.add_argument("--data-dir", metavar="DIR", help="where `serve` keeps api_key "
                        f"(default $VOXSWITCH_DATA_DIR, else ./{DEFAULT_DATA_DIR})")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


def add_commands(sub: Any) -> None:
    """Add calls, hangup, dial and conf to the `voxswitch` subparsers."""
    _common(sub.add_parser("calls", help="list live calls"))
    hangup = sub.add_parser("hangup", help="hang up a live call")
    hangup.add_argument("id", help="the call id, as `voxswitch calls` shows it")
    hangup.add_argument("--message", action="append", help="played first (TTS, audio URL)")
    _common(hangup)
    dial = sub.add_parser("dial", help="make a call (Dials/Connect)")
    dial.add_argument("no", help="E.164 number or SIP destination to ring")
    dial.add_argument("--from", dest="caller_id", metavar="CALLER_ID", required=True,
                      help="caller_id_no: the number shown, whose call flow runs")
    dial.add_argument("--session-data", type=json_object, metavar="JSON",
                      help="a JSON object handed to the call flow")
    _common(dial)
    conf = sub.add_parser("conf", help="live conferences")
    verbs = conf.add_subparsers(dest="verb", required=True)
    _common(verbs.add_parser("list", help="list live conferences"))
    show = verbs.add_parser("show", help="a conference and its participants")
    show.add_argument("name")
    _common(show)
    for verb, action in CONF_ACTIONS.items():
        p = verbs.add_parser(verb, help=f"{action} a participant")
        p.add_argument("name", help="the conference name")
        p.add_argument("participant", help="participant id or call id")
        p.add_argument("--message", action="append", help="played to that participant")
        _common(p)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run a client command; print its result or the one error line."""
    env = os.environ if env is None else env
    try:
        client = Client(args.url or env.get("VOXSWITCH_URL") or DEFAULT_URL,
                        resolve_api_key(args.api_key, env, args.data_dir))
        print(render(args, COMMANDS[args.command](client, args)))
    except ClientError as exc:
        print(f"voxswitch: {exc.line}", file=sys.stderr)
        return exc.status
    return 0
