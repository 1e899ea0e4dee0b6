"""Registered softphones: the registrar's users, their passwords, and where they are.

Users come from the settings file (`[registrar] users = {alice = "secret"}`) and from
REST (`PUT /v1/Registrar/Users/{user}`, kept in the database's `sip_users`); a user put
over REST takes the place of a file user of the same name until it is deleted. The
signaling `Registrar` holds the bindings (in memory: registrations are soft state, and a
restarted switch is registered to again within the phones' refresh interval) and the
`DigestAuthenticator` checks REGISTERs against `password`.

`locate(no)` is how calls and messages reach a softphone: a destination that names one of
our users — `alice`, `sip:alice`, or `sip:alice@<our domain>` where our domain is the
`sip_domain` setting or this switch's SIP address — goes to the user's best contact;
a user that is not registered is `NoRoute` with a message that says so. Anything else is
not ours (None), and the caller routes it as before.

Passwords are kept in clear, as the settings file has them (digest needs them, or an HA1
per realm and algorithm): protect the data dir.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from control.calls import iso, utcnow
from control.dialing import NoRoute, Route
from control.settings import Settings, parse_users
from control.storage import Storage
from signaling.authserver import DigestAuthenticator
from signaling.registrar import Binding, Registrar, RegistrarConfig

DEFAULT_REALM = "voxswitch"


@dataclass(frozen=True)
class SipUser:
    username: str
    password: str
    source: str  # "settings" or "api"
    created_on: datetime | None = None
    updated_on: datetime | None = None


class UserError(ValueError):
    """A user that cannot be put or deleted; `field` names the bad part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


class Softphones:
    """The registrar's users and bindings, and the lookup of registered destinations."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.realm = settings.registrar_realm or settings.sip_domain or DEFAULT_REALM
        self.domain = settings.sip_domain
        self.storage = storage
        self.registrar = Registrar(RegistrarConfig(
            min_expires=settings.registrar_min_expires,
            max_expires=settings.registrar_max_expires,
            default_expires=settings.registrar_default_expires))
        self.authenticator = DigestAuthenticator(
            self.realm, self.password, algorithms=settings.registrar_algorithms)
        self._file = {u: SipUser(u, p, "settings")
                      for u, p in settings.registrar_users.items()}
        self._api: dict[str, SipUser] = {}
        # Where we are (host, UDP port, TCP port) and the clock bindings run on: the SIP
        # stack's, once it listens (`attach`).
        self._where: Callable[[], tuple[str, int, int]] = lambda: ("", 0, 0)
        self._now: Callable[[], float] = lambda: 0.0

    def attach(self, where: Callable[[], tuple[str, int, int]],
               now: Callable[[], float]) -> None:
        self._where, self._now = where, now

    async def load(self) -> None:
        """Read the users put over REST."""
        rows = await self.storage.run(
            lambda db: db.execute("SELECT * FROM sip_users").fetchall())
        self._api = {row["username"]: SipUser(
            row["username"], row["password"], "api", _time(row["created_on"]),
            _time(row["updated_on"])) for row in rows}

    # ---- users -----------------------------------------------------------------------

    def password(self, username: str) -> str | None:
        user = self._api.get(username) or self._file.get(username)
        return user.password if user is not None else None

    def is_user(self, username: str) -> bool:
        return username in self._api or username in self._file

    def user(self, username: str) -> SipUser | None:
        return self._api.get(username) or self._file.get(username)

    def users(self) -> list[SipUser]:
        names = sorted({*self._file, *self._api})
        return [u for n in names if (u := self.user(n)) is not None]

    async def put_user(self, username: str, password: Any) -> bool:
        """Create or replace a REST user; True when it is new. UserError when invalid."""
        if not isinstance(password, str) or not password:
            raise UserError("password", "is required: a non-empty string")
        if len(password) > 256 or any(c in password for c in "\r\n\0"):
            raise UserError("password", "must be at most 256 characters, without line "
                                        "breaks")
        try:
            parse_users({username: password})
        except ValueError:
            raise UserError("user", "must be a SIP user name (letters, digits and "
                                    "-_.!~*'()&=+$,%, at most 64)") from None
        now = utcnow()
        old = self._api.get(username)
        created = old.created_on if old is not None and old.created_on else now

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO sip_users (username, password, created_on, updated_on) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
                "password = excluded.password, updated_on = excluded.updated_on",
                (username, password, created.isoformat(), now.isoformat()))

        await self.storage.run(write)
        self._api[username] = SipUser(username, password, "api", created, now)
        if old is not None and old.password != password:
            self.registrar.remove(username)  # registered with the old password
        return old is None and username not in self._file

    async def delete_user(self, username: str) -> SipUser | None:
        """Delete a REST user and its registrations; None when there is no such user.
        UserError for a user of the settings file (remove it there)."""
        if username not in self._api:
            if username in self._file:
                raise UserError("user", f"{username!r} comes from the settings file "
                                        "([registrar] users): remove it there")
            return None
        await self.storage.run(
            lambda db: db.execute("DELETE FROM sip_users WHERE username = ?", (username,)))
        gone = self._api.pop(username)
        if username not in self._file:
            self.registrar.remove(username)
        return gone

    # ---- registrations ---------------------------------------------------------------

    def bindings(self, username: str | None = None) -> list[Binding]:
        now = self._now()
        if username is None:
            return self.registrar.bindings(now)
        return self.registrar.lookup(username, now)

    def binding_to_api(self, binding: Binding) -> dict[str, Any]:
        left = binding.remaining(self._now())
        return {
            "user": binding.aor,
            "contact": str(binding.uri),
            "expires": left,
            "expires_on": iso(utcnow() + timedelta(seconds=left)),
            "q": binding.q,
            "source": f"{binding.source.transport}:{binding.source.host}:"
                      f"{binding.source.port}",
            "user_agent": binding.user_agent,
        }

    def locate(self, no: str) -> Route | None:
        """The route to a registered user that `no` names; None when `no` names no user
        of ours; NoRoute for one of ours that is not registered (or not a user)."""
        text = no.strip()
        if text[:5].lower() == "sips:":
            return None  # route_for refuses it, saying why
        if text[:4].lower() == "sip:":
            text = text[4:]
        user, at, hostport = text.partition("@")
        if at:
            host, port = _host_port(hostport.split(";", 1)[0])
            if not self._ours(host, port):
                return None
            if not self.is_user(user):
                raise NoRoute("no", f"{no!r}: no user {user!r} on this switch")
        elif not self.is_user(user):
            return None
        bound = self.bindings(user)
        if not bound:
            raise NoRoute("no", f"{user!r} is not registered: its softphone must REGISTER "
                                "with this switch first")
        return Route(str(bound[0].uri), None, None)

    def _ours(self, host: str, port: int | None) -> bool:
        host = host.lower().strip("[]")
        if self.domain and host == self.domain.lower():
            return True
        ours, udp, tcp = self._where()
        return host == ours and port in (None, udp, tcp)


def user_to_api(user: SipUser, bindings: list[Binding]) -> dict[str, Any]:
    return {
        "user": user.username,
        "source": user.source,
        "registered": bool(bindings),
        "contacts": [str(b.uri) for b in bindings],
        "created_on": iso(user.created_on) if user.created_on else None,
        "updated_on": iso(user.updated_on) if user.updated_on else None,
    }


def _host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    return host, int(port) if port.isdigit() else None


def _time(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
