"""Switch settings: embedded defaults < TOML file < VOXSWITCH_* environment < CLI flags."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from control.numbers import DEFAULT_POOL, PoolError, parse_pool, parse_pool_entry
from control.objectstore import ConfigError, S3Config


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it and says what fits."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise SettingsError(f"{what}: expected HOST:PORT, got {text!r}")
        host = host.strip("[]")
        try:
            number = int(port)
        except ValueError:
            raise SettingsError(f"{what}: port {port!r} is not a number") from None
        if not 0 <= number <= 65535:
            raise SettingsError(f"{what}: port {number} is out of range 0-65535")
        return cls(host, number)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high if sep else low)
    except ValueError:
        raise SettingsError(f"rtp-ports: expected LOW-HIGH, got {text!r}") from None
    if not (0 <= lo <= hi <= 65535) or (lo == 0) != (hi == 0):
        raise SettingsError(f"rtp-ports: {text!r} is not a range within 1-65535 (or 0-0 "
                            "for any free port)")
    if lo and hi - lo < 1:
        raise SettingsError(f"rtp-ports: {text!r} holds no RTP/RTCP port pair")
    return lo, hi


@dataclass(frozen=True)
class Settings:
    sip_listen: HostPort = HostPort("127.0.0.1", 5060)
    http_listen: HostPort = HostPort("127.0.0.1", 8080)
    rtp_ports: tuple[int, int] = (20000, 29999)
    data_dir: Path = Path("voxswitch-data")
    api_key: str | None = None
    default_callback: str | None = None
    media_dir: Path | None = None
    log_level: str = "INFO"
    log_format: str = "json"  # json (one object a line) or text (HH:MM:SS.mmm LEVEL ...)
    node_id: int = 7890
    app_id: str = field(default="voxswitch")
    sip_domain: str | None = None
    # The registrar (`[registrar]` in the file): the users lab softphones register as
    # (`users = {alice = "secret"}`; users put over REST are added to these), the digest
    # realm (default: sip_domain, else "voxswitch"), the algorithms challenged with, in
    # order, and the bounds of a registration's expiry in seconds.
    registrar_users: dict[str, str] = field(default_factory=dict, repr=False)
    registrar_realm: str | None = None
    registrar_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    registrar_min_expires: int = 60
    registrar_max_expires: int = 3600
    registrar_default_expires: int = 3600
    # Where calls to numbers go (`[outbound] proxy = "sip:host:port"` in the file), and
    # the digest credentials it may ask for. SIP URIs are dialled directly.
    outbound_proxy: str | None = None
    outbound_username: str | None = None
    outbound_password: str | None = None
    # The S3 bucket closed recordings go to (`[recording_storage]` in the file: access_key,
    # security_key, region, bucket, endpoint_url); Integrations/RecordingStorage/AWS set
    # over REST takes its place until DELETEd. None: recordings stay in the data dir.
    recording_storage_access_key: str | None = None
    recording_storage_security_key: str | None = field(default=None, repr=False)
    recording_storage_region: str | None = None
    recording_storage_bucket: str | None = None
    recording_storage_endpoint_url: str | None = None
    # The local number pool GET /PhoneNumbers/Available searches (`[numbers] pool = [...]`:
    # "+1949555XXXX" patterns, NANP prefixes "+1949555", ranges "+1...-+1..."; the
    # environment takes them comma-separated).
    numbers_pool: tuple[str, ...] = DEFAULT_POOL
    # Whether GET /metrics asks for X-API-Key too (VOXSWITCH_METRICS_REQUIRE_KEY=1); by
    # default it is open on the HTTP listener, as Prometheus scrapers send no key.
    metrics_require_key: bool = False
    # The PSTN simulator (`[simulator]`, control.pstnsim): virtual numbers that answer the
    # switch's dials as a person, a voicemail, a fax, a busy line...; one number pool
    # entry, apart from `numbers_pool`. `enabled = false` routes them like any number.
    simulator_enabled: bool = True
    simulator_numbers: str = "+1555010XXXX"

    # Call timelines and audio taps (`[taps]`, control.timeline, control.taps): finished
    # calls' are kept keep_s seconds, at most max_calls of them (oldest dropped first);
    # a call keeps at most max_events events; audio taps each call's audio, at most
    # audio_max_s seconds of it.
    taps_keep_s: float = 3600.0
    taps_max_calls: int = 1000
    taps_max_events: int = 5000
    taps_audio: bool = True
    taps_audio_max_s: float = 600.0
    # The browser phone's gateway (`[webrtc]`, control.webrtc): at most max_sessions
    # WebRTC calls at once (each is a peer connection, a SIP leg and two sockets).
    webrtc_max_sessions: int = 20

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def recording_storage(self) -> S3Config | None:
        """The settings' recording storage, or None; ConfigError when incomplete. Its
        region defaults to us-east-1 when an endpoint_url names the store."""
        values = (self.recording_storage_access_key, self.recording_storage_security_key,
                  self.recording_storage_region, self.recording_storage_bucket,
                  self.recording_storage_endpoint_url)
        if not any(values):
            return None
        region = self.recording_storage_region
        if not region and self.recording_storage_endpoint_url:
            region = "us-east-1"
        return S3Config(self.recording_storage_access_key or "",
                        self.recording_storage_security_key or "", region or "",
                        self.recording_storage_bucket or "",
                        self.recording_storage_endpoint_url or None)


_CONVERTERS: dict[str, Any] = {
    "sip_listen": lambda v: HostPort.parse(str(v), "sip-listen"),
    "http_listen": lambda v: HostPort.parse(str(v), "http-listen"),
    "rtp_ports": lambda v: parse_port_range(str(v)),
    "data_dir": lambda v: Path(str(v)),
    "media_dir": lambda v: Path(str(v)) if v else None,
    "node_id": int,
    "outbound_proxy": lambda v: check_proxy(str(v)) if v else None,
    "numbers_pool": lambda v: check_pool(v),
    "metrics_require_key": lambda v: parse_bool(v, "metrics_require_key"),
    "simulator_enabled": lambda v: parse_bool(v, "simulator enabled"),
    "simulator_numbers": lambda v: check_simulator_numbers(v),
}


def parse_bool(value: Any, what: str) -> bool:
    """A TOML boolean, or 1/0, true/false, yes/no, on/off from the environment."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{what}: expected true or false, got {value!r}")

# TOML tables: keys are TABLE_KEY
_TABLES = ("outbound", "recording_storage", "numbers", "simulator")


def check_proxy(text: str) -> str:
    """A `sip:host:port` proxy URI, as given; SettingsError saying what fits otherwise."""
    rest = text[4:] if text.lower().startswith("sip:") else None
    host, sep, port = (rest or "").rpartition(":")
    if rest is None or "@" in rest or not host or not sep or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise SettingsError(f"outbound proxy: expected sip:HOST:PORT, got {text!r}")
    return text


def check_pool(value: Any) -> tuple[str, ...]:
    """The number pool's entries (a TOML list, or one comma-separated string)."""
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, list | tuple) or not all(isinstance(e, str) for e in entries):
        raise SettingsError("numbers pool: expected a list of strings such as "
                            "[\"+1949555XXXX\"]")
    cleaned = tuple(e.strip() for e in entries if e.strip())
    try:
        parse_pool(cleaned)
    except PoolError as exc:
        raise SettingsError(str(exc)) from None
    return cleaned


def check_simulator_numbers(value: Any) -> str:
    """The simulator's range: one pool entry, wide enough to hold its behaviour digits."""
    if not isinstance(value, str):
        raise SettingsError("simulator numbers: expected a string such as \"+1555010XXXX\"")
    text = value.strip()
    try:
        block = parse_pool_entry(text)
    except PoolError as exc:
        raise SettingsError(f"simulator numbers: {str(exc).removeprefix('numbers pool: ')}"
                            " (for example \"+1555010XXXX\")") from None
    if block.digits < 8:
        raise SettingsError(f"simulator numbers: {text!r}: its numbers need at least 8 "
                            "digits (the last four choose what they do)")
    return text


def check_simulator(settings: Settings) -> None:
    """The simulator's numbers must not be numbers the pool hands out."""
    if not settings.simulator_enabled:
        return
    sim = parse_pool_entry(settings.simulator_numbers)
    for entry, block in zip(settings.numbers_pool, parse_pool(settings.numbers_pool),
                            strict=True):
        if block.digits == sim.digits and block.first <= sim.last and sim.first <= block.last:
            raise SettingsError(f"simulator numbers {settings.simulator_numbers!r} overlap "
                                f"the numbers pool's {entry!r}: choose a range apart "
                                "([simulator] numbers) or set [simulator] enabled = false")


def _flatten(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _TABLES and isinstance(value, dict):
            out.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _apply(base: Settings, values: dict[str, Any], source: str) -> Settings:
    names = {f.name for f in fields(Settings)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in names:
            raise SettingsError(f"{source}: unknown setting {key!r}; known: "
                                f"{', '.join(sorted(names))}")
        if value is None:
            continue
        try:
            changes[name] = _CONVERTERS.get(name, str)(value)
        except SettingsError:
            raise
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{source}: {key}: {exc}") from None
    return replace(base, **changes)


# ---- [registrar] ---------------------------------------------------------------------

# RFC 3261 §25.1 user characters, less ';' '?' '/' that would make URIs ambiguous
_SIP_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]{1,64}")
DIGEST_ALGORITHMS = ("SHA-256", "MD5")


def parse_users(value: Any) -> dict[str, str]:
    """Registrar users: a TOML table {user = "password"}, or "user:password,..." text."""
    if isinstance(value, str):
        pairs = [item.partition(":") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise SettingsError("registrar users: expected user:password,user:password")
        value = {user.strip(): password for user, _, password in pairs}
    if not isinstance(value, dict):
        raise SettingsError("registrar users: expected a table of user = \"password\"")
    for user, password in value.items():
        if not isinstance(user, str) or not _SIP_USER.fullmatch(user):
            raise SettingsError(f"registrar users: {user!r} is not a SIP user name")
        if not isinstance(password, str) or not password:
            raise SettingsError(f"registrar users: {user}'s password must be a non-empty "
                                "string")
    return dict(value)


def parse_algorithms(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise SettingsError("registrar algorithms: expected a list such as [\"SHA-256\", "
                            "\"MD5\"]")
    chosen = tuple(str(item).strip().upper() for item in items)
    unknown = [a for a in chosen if a not in DIGEST_ALGORITHMS]
    if unknown:
        raise SettingsError(f"registrar algorithms: {', '.join(unknown)} not supported "
                            f"(choose from {', '.join(DIGEST_ALGORITHMS)})")
    return chosen


def _seconds(value: Any, what: str) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
        raise SettingsError(f"{what}: expected a whole number of seconds, got {value!r}")
    return int(value)


_TABLES: tuple[str, ...] = (*_TABLES, "registrar")  # type: ignore[no-redef]
_CONVERTERS.update({
    "registrar_users": parse_users,
    "registrar_algorithms": parse_algorithms,
    "registrar_min_expires": lambda v: _seconds(v, "registrar min_expires"),
    "registrar_max_expires": lambda v: _seconds(v, "registrar max_expires"),
    "registrar_default_expires": lambda v: _seconds(v, "registrar default_expires"),
})


def check_registrar(settings: Settings) -> None:
    if not (settings.registrar_min_expires <= settings.registrar_default_expires
            <= settings.registrar_max_expires):
        raise SettingsError("registrar: expected min_expires <= default_expires <= "
                            "max_expires")


# ---- [taps], log format ----------------------------------------------------------------

def _positive(value: Any, what: str, whole: bool = False) -> Any:
    try:
        number = int(value) if whole else float(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number <= 0 or (whole and str(value).strip() != str(number)):
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{what}: expected {kind} above 0, got {value!r}")
    return number


def check_log_format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("json", "text"):
        raise SettingsError(f"log format: expected json or text, got {value!r}")
    return text


_TABLES: tuple[str, ...] = (*_TABLES, "taps")  # type: ignore[no-redef]
_CONVERTERS.update({
    "log_format": check_log_format,
    "taps_keep_s": lambda v: _positive(v, "taps keep_s"),
    "taps_max_calls": lambda v: _positive(v, "taps max_calls", whole=True),
    "taps_max_events": lambda v: _positive(v, "taps max_events", whole=True),
    "taps_audio": lambda v: parse_bool(v, "taps audio"),
    "taps_audio_max_s": lambda v: _positive(v, "taps audio_max_s"),
})
_TABLES: tuple[str, ...] = (*_TABLES, "webrtc")  # type: ignore[no-redef]
_CONVERTERS["webrtc_max_sessions"] = lambda v: _positive(v, "webrtc max_sessions", whole=True)


def load(config_file: Path | None, env: dict[str, str], cli: dict[str, Any]) -> Settings:
    """Merge the sources in order of precedence (later wins)."""
    settings = Settings()
    if config_file is not None:
        try:
            doc = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from None
        settings = _apply(settings, _flatten(doc.get("voxswitch", doc)), str(config_file))
    from_env = {k[len("VOXSWITCH_"):].lower(): v for k, v in env.items()
                if k.startswith("VOXSWITCH_") and k != "VOXSWITCH_CONFIG"}
    settings = _apply(settings, from_env, "environment")
    settings = _apply(settings, cli, "command line")
    check_registrar(settings)
    check_simulator(settings)
    try:
        _ = settings.recording_storage
    except ConfigError as exc:
        raise SettingsError(f"recording_storage: {exc.field.removeprefix('s3.')} "
                            f"{exc.problem}") from None
    return settings


def ensure_api_key(settings: Settings) -> Settings:
    """Use the configured key, else the one kept in the data dir, else make and keep one."""
    if settings.api_key:
        return settings
    path = settings.data_dir / "api_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return replace(settings, api_key=key)
    key = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return replace(settings, api_key=key)
