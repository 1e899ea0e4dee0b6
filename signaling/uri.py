"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), sans-I/O.

`URI.parse` keeps the user part, password, URI parameters and headers unescaped;
`str()` escapes them again with the character sets of the RFC 3261 grammar, so a
parsed URI prints in a canonical, possibly differently escaped, but equivalent form.
URIs of any other scheme are kept opaque: everything after "scheme:" as it came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from signaling.errors import SipParseError

__all__ = ["URI", "SipParseError", "escape", "unescape"]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_.])?\Z")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters that RFC 3261 §25.1 allows unescaped in each URI component.
_UNRESERVED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
)
_USER_SAFE = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_SAFE = _UNRESERVED | frozenset("&=+$,")
_PARAM_SAFE = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_SAFE = _UNRESERVED | frozenset("[]/?:+$")
# Characters that never appear in a URI's text unescaped: whitespace, controls, quotes.
_BAD_URI_CHARS = re.compile(r"[\x00-\x20\x7f\"<>\\^`{|}]")


def unescape(text: str) -> str:
    """Decode %HH escapes once (RFC 3261 §19.1.2); '%' not followed by two hex digits stays."""
    if "%" not in text:
        return text
    raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    # Escapes encode octets: re-read runs of them as UTF-8 where they form valid text.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def escape(text: str, safe: frozenset[str]) -> str:
    """Escape every character outside `safe` as %HH of its UTF-8 octets."""
    if all(c in safe for c in text):
        return text
    out: list[str] = []
    for c in text:
        if c in safe:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _split_params(text: str, what: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise SipParseError(f"Empty {what} parameter")
        params[unescape(name).lower()] = unescape(value) if eq else None
    return params


@dataclass
class URI:
    """A parsed URI; for schemes other than sip, sips and tel only `opaque` is set."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse a URI; raise SipParseError naming the fault."""
        scheme, colon, rest = text.partition(":")
        if not colon or not _SCHEME_RE.match(scheme):
            raise SipParseError(f"Invalid URI scheme in {text!r}")
        if not rest or _BAD_URI_CHARS.search(rest):
            raise SipParseError(f"Invalid characters in URI {text!r}")
        scheme = scheme.lower()
        if scheme in ("sip", "sips"):
            return cls._parse_sip(scheme, rest)
        if scheme == "tel":
            number, _, params = rest.partition(";")
            if not number:
                raise SipParseError(f"Empty telephone number in {text!r}")
            return cls(scheme, user=unescape(number), params=_tel_params(params))
        return cls(scheme, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> URI:
        user = password = None
        # '@' is never unescaped after the userinfo, so the first one ends it (§25.1).
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            if not userinfo:
                raise SipParseError("Empty user part in SIP URI")
            u, colon, pw = userinfo.partition(":")
            user = unescape(u)
            password = unescape(pw) if colon else None
        rest, q, hdrs = rest.partition("?")
        hostport, semi, params = rest.partition(";")
        host, port = _split_hostport(hostport)
        uri = cls(scheme, user=user, password=password, host=host, port=port)
        if semi:
            uri.params = _split_params(params, "URI")
        if q:
            for item in hdrs.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq:
                    raise SipParseError("Malformed URI header")
                uri.headers[unescape(name)] = unescape(value)
        return uri

    def __str__(self) -> str:
        if self.scheme in ("sip", "sips"):
            return self._str_sip()
        if self.scheme == "tel" and self.opaque is None:
            return "tel:" + (self.user or "") + _params_str(self.params)
        return f"{self.scheme}:{self.opaque or ''}"

    def _str_sip(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts += [":", escape(self.password, _PASSWORD_SAFE)]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        parts.append(_params_str(self.params))
        if self.headers:
            parts.append("?")
            parts.append(
                "&".join(
                    f"{escape(k, _HEADER_SAFE)}={escape(v, _HEADER_SAFE)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(parts)

    @property
    def transport(self) -> str | None:
        """The transport parameter, lower-cased, if any."""
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def _params_str(params: dict[str, str | None]) -> str:
    out = []
    for k, v in params.items():
        out.append(f";{escape(k, _PARAM_SAFE)}")
        if v is not None:
            out.append(f"={escape(v, _PARAM_SAFE)}")
    return "".join(out)


def _tel_params(text: str) -> dict[str, str | None]:
    return _split_params(text, "tel URI") if text else {}


def _split_hostport(text: str) -> tuple[str, int | None]:
    port_text = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError("Unterminated IPv6 reference in URI")
        host, tail = text[: end + 1], text[end + 1 :]
        if tail:
            if tail[0] != ":":
                raise SipParseError(f"Invalid host {text!r} in URI")
            port_text = tail[1:]
        if not _IPV6_RE.match(host):
            raise SipParseError(f"Invalid IPv6 reference {host!r} in URI")
    else:
        host, colon, port_text_ = text.partition(":")
        if colon:
            port_text = port_text_
        if not _HOST_RE.match(host):
            raise SipParseError(f"Invalid host {host!r} in URI")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise SipParseError(f"Invalid port {port_text!r} in URI")
    return host, int(port_text)
