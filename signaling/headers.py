"""Structured SIP header values (RFC 3261 §20, §25.1), reason phrases, tags and branches.

Each structured header is a small dataclass with `parse(text)` and `str()`. Parsers
accept the LWS the grammar allows anywhere (folded lines arrive already unfolded to
single spaces) and raise SipParseError naming the fault for anything else.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from signaling.errors import SipParseError
from signaling.uri import URI

__all__ = [
    "REASON_PHRASES",
    "CSeq",
    "NameAddr",
    "Via",
    "new_branch",
    "new_call_id",
    "new_tag",
    "params_str",
    "parse_params",
    "split_list",
]

MAGIC_COOKIE = "z9hG4bK"

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN + r"\Z")
_QUOTED = r'"(?:[^"\\]|\\[\s\S])*"'
# One ";name[=value]" generic-param with the LWS RFC 3261 §25.1 allows around ';' and '='.
_PARAM_RE = re.compile(
    r"\s*;\s*(" + _TOKEN + r")(?:\s*=\s*(" + _QUOTED + r"|[A-Za-z0-9\-.!%*_+`'~:\[\]/]+))?\s*"
)
_VIA_RE = re.compile(
    r"\s*(" + _TOKEN + r")\s*/\s*(" + _TOKEN + r")\s*/\s*(" + _TOKEN + r")\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?:\s*:\s*(\d{1,5}))?\s*"
)
_CSEQ_RE = re.compile(r"\s*(\d+)\s+(" + _TOKEN + r")\s*\Z")
_DISPLAY_TOKENS_RE = re.compile(r"\s*(?:" + _TOKEN + r"\s*)*\Z")
_QUOTED_PAIR_RE = re.compile(r"\\([\s\S])")


# Fast paths for the everyday forms: a full match proves that the full parser accepts
# the text, so parse_message can validate a header with one regex call. Anything that
# does not match (escapes in odd places, quoted params, five-digit ports ...) falls back
# to the full parser, which accepts or names the fault.
_FAST_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,4})?"
_FAST_PARAMS = r"(?:;" + _TOKEN + r"(?:=" + _TOKEN + r")?)*"
_FAST_SIP_URI = (
    r"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+@)?"
    + _FAST_HOST
    + r"(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+)?)*"
)
_FAST_SIP_URI_RE = re.compile(_FAST_SIP_URI + r"\Z")
_FAST_NAMEADDR_RE = re.compile(
    r'(?:"[^"\\]*" ?|(?:' + _TOKEN + r" )*)<" + _FAST_SIP_URI + r">" + _FAST_PARAMS + r"\Z"
)
_FAST_VIA_RE = re.compile(r"SIP/2\.0/[A-Za-z]+ " + _FAST_HOST + _FAST_PARAMS + r"\Z")


def validate_uri(text: str) -> None:
    """Raise SipParseError unless `text` parses as a URI."""
    if not _FAST_SIP_URI_RE.match(text):
        URI.parse(text)


def validate_name_addr(text: str) -> None:
    """Raise SipParseError unless `text` parses as a NameAddr."""
    if not _FAST_NAMEADDR_RE.match(text):
        NameAddr.parse(text)


def validate_via(text: str) -> Via | None:
    """Raise SipParseError unless `text` parses as a Via; returns it when parsed fully."""
    if _FAST_VIA_RE.match(text) and ";branch=z9hG4bK;" not in text + ";":
        return None
    return Via.parse(text)


def parse_params(text: str, pos: int = 0) -> dict[str, str | None]:
    """Parse `;name=value` generic-params from text[pos:] to its end.

    Names are lower-cased; quoted values keep their quotes so that they print back as
    they came.
    """
    params: dict[str, str | None] = {}
    end = len(text)
    while pos < end:
        m = _PARAM_RE.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise SipParseError(f"Malformed parameter at {text[pos:pos + 20]!r}")
        params[m.group(1).lower()] = m.group(2)
        pos = m.end()
    return params


def params_str(params: dict[str, str | None]) -> str:
    """Print generic-params back as `;name=value` pairs."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quoted strings and <...>.

    Empty elements are dropped, as RFC 3261 §7.3.1 (via RFC 2616's #rule) allows.
    """
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    out: list[str] = []
    start = 0
    quoted = angle = escaped = False
    for i, c in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            out.append(value[start:i].strip())
            start = i + 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def unquote(text: str) -> str:
    """The content of a quoted-string with its quoted-pairs resolved."""
    return _QUOTED_PAIR_RE.sub(r"\1", text[1:-1])


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Via:
    """One Via header value (RFC 3261 §20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_RE.match(text)
        if m is None:
            raise SipParseError(f"Malformed Via header {text.strip()[:40]!r}")
        name, version, transport, host, port = m.groups()
        if port is not None and int(port) > 65535:
            raise SipParseError(f"Invalid port {port} in Via header")
        params = parse_params(text, m.end()) if m.end() < len(text) else {}
        return cls(
            transport.upper(),
            host,
            int(port) if port is not None else None,
            params,
            f"{name.upper()}/{version}",
        )

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{params_str(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value (RFC 3581) when it carries one."""
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() else None

    @property
    def has_rport(self) -> bool:
        """True when the sender asked for rport (a valueless `;rport`)."""
        return "rport" in self.params

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass
class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, ...

    In the addr-spec form (no <>) the URI ends at the first ';', so what follows is a
    header parameter (RFC 3261 §20.10); such a URI must not contain ',', '?' or ';'.
    """

    display: str | None
    uri: URI
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        s = text.strip()
        display: str | None = None
        if s.startswith('"'):
            m = re.match(_QUOTED, s)
            if m is None:
                raise SipParseError("Unterminated quoted string in display name")
            display = unquote(m.group(0))
            lt = m.end()
            while lt < len(s) and s[lt] in " \t":
                lt += 1
            if lt >= len(s) or s[lt] != "<":
                raise SipParseError("Expected '<' after display name")
        else:
            lt = s.find("<")
        if lt < 0:
            return cls._parse_addr_spec(s)
        if display is None and lt > 0:
            words = s[:lt]
            if not _DISPLAY_TOKENS_RE.match(words):
                raise SipParseError(f"Invalid display name {words.strip()!r}")
            display = " ".join(words.split()) or None
        gt = s.find(">", lt)
        if gt < 0:
            raise SipParseError("Missing '>' in name-addr")
        uri = URI.parse(s[lt + 1 : gt])
        params = parse_params(s, gt + 1) if gt + 1 < len(s) else {}
        return cls(display, uri, params)

    @classmethod
    def _parse_addr_spec(cls, s: str) -> NameAddr:
        semi = s.find(";")
        uri_text = s if semi < 0 else s[:semi]
        if "?" in uri_text or "," in uri_text:
            raise SipParseError("URI with headers or commas must be enclosed in <>")
        params = parse_params(s, semi) if semi >= 0 else {}
        return cls(None, URI.parse(uri_text.rstrip()), params)

    def __str__(self) -> str:
        display = "" if self.display is None else quote(self.display) + " "
        return f"{display}<{self.uri}>{params_str(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is None:
            self.params.pop("tag", None)
        else:
            self.params["tag"] = value


@dataclass
class CSeq:
    """The CSeq header (RFC 3261 §20.16): a 32-bit sequence number and a method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        m = _CSEQ_RE.match(text)
        if m is None:
            raise SipParseError(f"Malformed CSeq header {text.strip()[:40]!r}")
        seq = int(m.group(1))
        if seq > 0xFFFFFFFF:
            raise SipParseError("CSeq number out of range")
        return cls(seq, m.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}


def new_tag() -> str:
    """A From/To tag with 64 bits of randomness (RFC 3261 §19.3 asks for at least 32)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A Via branch that starts with the RFC 3261 magic cookie (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"
