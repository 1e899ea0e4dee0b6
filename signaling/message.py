"""SIP messages (RFC 3261 §7): the model, the parser, the serializer and TCP framing.

Theory of operation: `parse_message` takes one whole message (a UDP datagram, or what
`StreamFramer` cut from a TCP stream), splits the header section once into
(name, value) pairs with folding undone and compact names expanded, and checks what
every later layer relies on: the start line, Content-Length against the bytes present,
and that Via, From, To, Call-ID and CSeq are present, single where they must be, and
parse. So the convenience properties (`cseq`, `top_via`, `from_` ...) of a parsed
message never raise. Other headers stay text until asked for. Garbage raises
SipParseError; when enough of a request was read to answer it, `partial` carries that
request so that the caller can send the 400 (RFC 3261 §8.2, RFC 4475).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from signaling.errors import SipParseError
from signaling.headers import (
    MAGIC_COOKIE,
    REASON_PHRASES,
    CSeq,
    NameAddr,
    Via,
    new_branch,
    new_call_id,
    new_tag,
    split_list,
    validate_name_addr,
    validate_uri,
    validate_via,
)
from signaling.uri import URI

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Headers",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
]

MAX_MESSAGE_SIZE = 65536

# RFC 3261 §7.3.3 and the IANA SIP header registry's compact forms.
_COMPACT = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}


def _words(text: str) -> list[str]:
    return text.split()


_CANONICAL = {
    n.lower(): n
    for n in _words(
        "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events "
        "Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
        "Content-Encoding Content-Language Content-Length Content-Type CSeq Date Diversion "
        "Error-Info Event Expires From History-Info Identity Identity-Info In-Reply-To "
        "Max-Forwards MIME-Version Min-Expires Min-SE Organization P-Asserted-Identity "
        "P-Preferred-Identity Path Priority Privacy Proxy-Authenticate Proxy-Authorization "
        "Proxy-Require RAck Reason Record-Route Refer-To Referred-By Reject-Contact Replaces "
        "Reply-To Request-Disposition Require Retry-After Route RSeq Security-Client "
        "Security-Server Security-Verify Server Service-Route Session-Expires SIP-ETag "
        "SIP-If-Match Subject Subscription-State Supported Timestamp To Unsupported "
        "User-Agent Via Warning WWW-Authenticate"
    )
}
# Headers whose values are comma-separated lists (RFC 3261 §7.3.1), split by getall().
_LIST_KEYS = frozenset(
    _words(
        "accept accept-encoding accept-language allow allow-events alert-info call-info contact "
    "content-encoding content-language error-info in-reply-to path proxy-require "
    "record-route require route security-client security-server security-verify "
    "service-route supported unsupported via accept-contact reject-contact "
        "request-disposition"
    )
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_VERSION_RE = re.compile(r"SIP/\d+\.\d+\Z")
_MAX_NAME_CACHE = 512
_name_cache: dict[str, tuple[str, str]] = {}


def _canon(name: str) -> tuple[str, str]:
    """(lookup key, name to print) for a header name as written, e.g. 'i' -> 'call-id'."""
    hit = _name_cache.get(name)
    if hit is not None:
        return hit
    stripped = name.rstrip(" \t")
    if not _TOKEN_RE.match(stripped):
        raise SipParseError(f"Invalid header name {stripped[:30]!r}")
    low = stripped.lower()
    key = _COMPACT.get(low, low)
    result = (key, _CANONICAL.get(key, stripped))
    # The cache only pays for the common names; a peer inventing names must not grow it.
    if len(_name_cache) < _MAX_NAME_CACHE:
        _name_cache[name] = result
    return result


def _key(name: str) -> str:
    return _canon(name)[0]


class Headers:
    """Ordered, case-insensitive SIP headers; compact names become their full names."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_fields(cls, fields: list[tuple[str, str, str]]) -> Headers:
        h = cls.__new__(cls)
        h._items = fields
        return h

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, as it came (not split at commas)."""
        key = _key(name)
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def getall(self, name: str) -> list[str]:
        """Every value of `name`; list-valued headers are split at their commas."""
        key = _key(name)
        values = [v for k, _, v in self._items if k == key]
        if key in _LIST_KEYS:
            return [part for v in values for part in split_list(v)]
        return values

    def getall_raw(self, name: str) -> list[str]:
        """Every header line's value of `name`, never split."""
        key = _key(name)
        return [v for k, _, v in self._items if k == key]

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` by one, kept where the first one was."""
        key, printed = _canon(name)
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, printed, value)
                self._items[i + 1 :] = [t for t in self._items[i + 1 :] if t[0] != key]
                return
        self._items.append((key, printed, value))

    def add(self, name: str, value: str) -> None:
        key, printed = _canon(name)
        self._items.append((key, printed, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first header (as a proxy adds its Via)."""
        key, printed = _canon(name)
        self._items.insert(0, (key, printed, value))

    def remove(self, name: str) -> None:
        key = _key(name)
        self._items = [t for t in self._items if t[0] != key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(k == key for k, _, _ in self._items)

    def items(self) -> list[tuple[str, str]]:
        return [(n, v) for _, n, v in self._items]

    def copy(self) -> Headers:
        return Headers._from_fields(list(self._items))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class _Message(abc.ABC):
    """Accessors shared by Request and Response, parsing headers on each call."""

    headers: Headers
    body: bytes

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.getall("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.headers.getall("Via")
        if not vias:
            raise SipParseError("Missing Via header")
        return Via.parse(vias[0])

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str | None:
        """The Content-Type value as written, parameters included."""
        return self.headers.get("Content-Type")

    @property
    def media_type(self) -> str | None:
        """The Content-Type's type/subtype, lower-cased, without parameters."""
        value = self.headers.get("Content-Type")
        return None if value is None else value.split(";", 1)[0].strip().lower()

    @property
    def contacts(self) -> list[NameAddr]:
        """The Contact values; a '*' (REGISTER's remove-all) is not a NameAddr, see get."""
        return [NameAddr.parse(v) for v in self.headers.getall("Contact") if v != "*"]

    @abc.abstractmethod
    def _start_line(self) -> str:
        """The request or status line."""

    def encode(self) -> bytes:
        """The wire form; Content-Length is written as the length of `body`."""
        length = str(len(self.body))
        lines = [self._start_line()]
        seen = False
        for key, name, value in self.headers._items:
            if key == "content-length":
                if seen:
                    continue
                value, seen = length, True
            lines.append(f"{name}: {value}")
        if not seen:
            lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.encode()


@dataclass(eq=True)
class Request(_Message):
    method: str
    uri: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    @property
    def ruri(self) -> URI:
        return URI.parse(self.uri)

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@dataclass(eq=True)
class Response(_Message):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"


# Headers that must appear at most once (RFC 3261 §7.3.1, §20); duplicates are a 400.
_SINGLE_KEYS = frozenset(("from", "to", "call-id", "cseq", "max-forwards", "content-type"))
_PRINTED = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to `request` as RFC 3261 §8.2.6.2 says.

    Copies every Via, From, To, Call-ID and CSeq; adds a To tag (`to_tag`, or a new one)
    to responses above 100 whose request had none. Header values are copied as text, so
    this works on the `partial` request of a SipParseError too.
    """
    out = Headers()
    src = request.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in src.getall(name) if name == "Via" else src.getall_raw(name)[:1]:
            if name == "To" and status > 100:
                value = _with_tag(value, to_tag)
            out.add(name, value)
    for name, value in headers or ():
        out.add(name, value)
    if content_type is not None:
        out.set("Content-Type", content_type)
    out.set("Content-Length", str(len(body)))
    if reason is None:
        reason = REASON_PHRASES.get(status, "Unknown")
    return Response(status, reason, out, body)


def _with_tag(to: str, to_tag: str | None) -> str:
    try:
        if NameAddr.parse(to).tag is not None:
            return to
    except SipParseError:
        return to  # a malformed To is copied as it came: the 400 names the fault
    # Appending keeps the To exactly as the peer wrote it, which its dialog matching needs;
    # in both name-addr and addr-spec form a trailing ';tag=' is a header parameter.
    return f"{to};tag={to_tag or new_tag()}"


def parse_message(data: bytes) -> Request | Response:
    """Parse one whole SIP message; raise SipParseError naming the fault.

    Bytes after Content-Length are ignored, as RFC 3261 §18.3 says for datagrams; with
    no Content-Length the body runs to the end of `data` (an RFC 2543 habit).
    """
    start = 0
    while data.startswith(b"\r\n", start):  # §7.5: CRLFs before the start line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        head_end, body_start = end, end + 4
    elif data.endswith(b"\r\n"):
        # No empty line but a complete last header line: a header section with no body.
        head_end = body_start = len(data) - 2
    else:
        raise SipParseError("Incomplete header section")
    head = data[start:head_end].decode("utf-8", "surrogateescape")
    if head.count("\n") != head.count("\r\n"):
        raise SipParseError("Bare LF or CR in header section")
    lines = head.split("\r\n")
    fields = _parse_fields(lines)
    first = lines[0]
    if first.startswith("SIP/"):
        return _parse_response(first, fields, data, body_start)
    return _parse_request(first, fields, data, body_start)


def _parse_fields(lines: list[str]) -> list[tuple[str, str, str]]:
    fields: list[tuple[str, str, str]] = []
    append = fields.append
    cache_get = _name_cache.get
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        canon = cache_get(name)
        if canon is not None and colon:
            append((canon[0], canon[1], value.strip(" \t")))
        elif line[:1] in (" ", "\t"):  # folded continuation, §7.3.1
            if not fields:
                raise SipParseError("Continuation line before the first header")
            key, printed, prev = fields[-1]
            more = line.strip(" \t")
            fields[-1] = (key, printed, f"{prev} {more}" if prev else more)
        elif not colon or not name:
            raise SipParseError(f"Malformed header line {line[:30]!r}")
        else:
            key, printed = _canon(name)
            append((key, printed, value.strip(" \t")))
    return fields


def _parse_response(
    first: str, fields: list[tuple[str, str, str]], data: bytes, body_start: int
) -> Response:
    parts = first.split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0":
        raise SipParseError("Malformed Status-Line")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not code.isascii() or not "100" <= code <= "699":
        raise SipParseError(f"Invalid status code {code[:12]!r}")
    headers = Headers._from_fields(fields)
    _check_core_headers(fields, headers, None)
    body = _body(fields, data, body_start, None)
    return Response(int(code), parts[2] if len(parts) == 3 else "", headers, body)


def _parse_request(
    first: str, fields: list[tuple[str, str, str]], data: bytes, body_start: int
) -> Request:
    parts = first.split(" ")
    headers = Headers._from_fields(fields)
    if len(parts) != 3:
        # Extra or missing spaces (RFC 4475 lwsstart, trws, lwsruri): answerable with 400.
        method = parts[0]
        uri = parts[1] if len(parts) > 1 else ""
        raise SipParseError("Malformed Request-Line", partial=_partial(method, uri, fields))
    method, uri, version = parts
    if not _TOKEN_RE.match(method):
        raise SipParseError("Invalid method in Request-Line")
    if not _VERSION_RE.match(version):
        raise SipParseError("Invalid SIP-Version", partial=_partial(method, uri, fields))
    try:
        validate_uri(uri)
    except SipParseError as e:
        raise SipParseError(
            f"Invalid Request-URI: {e.reason}", partial=_partial(method, uri, fields)
        ) from None
    _check_core_headers(fields, headers, lambda: _partial(method, uri, fields))
    mf = headers.get("Max-Forwards")
    if mf is not None and not (mf.isdigit() and mf.isascii() and int(mf) <= 255):
        raise SipParseError("Invalid Max-Forwards", partial=_partial(method, uri, fields))
    body = _body(fields, data, body_start, lambda: _partial(method, uri, fields))
    return Request(method, uri, headers, body, version)


_PartialFn = Callable[[], "Request | None"] | None


def _check_core_headers(
    fields: list[tuple[str, str, str]], headers: Headers, partial: _PartialFn
) -> None:
    def fail(reason: str) -> SipParseError:
        return SipParseError(reason, partial=partial() if partial else None)

    first: dict[str, str] = {}
    vias: list[str] = []
    for key, _, value in fields:
        if key == "via":
            vias.append(value)
        elif key in _SINGLE_KEYS:
            if key in first:
                raise fail(f"Multiple {_canon(key)[1]} headers")
            first[key] = value
    if not vias:
        raise fail("Missing Via header")
    for key in ("from", "to", "call-id", "cseq"):
        if key not in first:
            raise fail(f"Missing {_PRINTED[key]} header")
    if len(vias) > 1 or "," in vias[0]:
        vias = headers.getall("Via")
        if not vias:
            raise fail("Empty Via header")
    try:
        top = validate_via(vias[0])
        for via in vias[1:]:
            validate_via(via)
    except SipParseError as e:
        raise fail(e.reason if "Via" in e.reason else f"Malformed Via header: {e.reason}") from None
    # A branch of the bare magic cookie names no transaction (RFC 4475 §3.2.1).
    if top is not None and top.branch == MAGIC_COOKIE:
        raise fail("Via branch is only the magic cookie")
    try:
        CSeq.parse(first["cseq"])
    except SipParseError as e:
        raise fail(e.reason) from None
    for key in ("from", "to"):
        try:
            validate_name_addr(first[key])
        except SipParseError as e:
            raise fail(f"Malformed {_PRINTED[key]} header: {e.reason}") from None


def _body(
    fields: list[tuple[str, str, str]], data: bytes, body_start: int, partial: _PartialFn
) -> bytes:
    values = {v for k, _, v in fields if k == "content-length"}
    if not values:
        return data[body_start:]

    def fail(reason: str) -> SipParseError:
        return SipParseError(reason, partial=partial() if partial else None)

    if len(values) > 1:
        raise fail("Multiple Content-Length values")
    (value,) = values
    if not (value.isdigit() and value.isascii()):
        raise fail("Invalid Content-Length")
    length = int(value)
    if length > len(data) - body_start:
        raise fail("Content-Length larger than message")
    return data[body_start : body_start + length]


def _partial(method: str, uri: str, fields: list[tuple[str, str, str]]) -> Request | None:
    """The request reduced to what a response copies, if that much is present and usable."""
    chosen: list[tuple[str, str, str]] = []
    for key in ("via", "from", "to", "call-id", "cseq"):
        values = [f for f in fields if f[0] == key]
        if not values:
            return None
        chosen.extend(values if key == "via" else values[:1])
    partial = Request(method, uri, Headers._from_fields(chosen))
    try:
        partial.top_via  # noqa: B018 - the response is routed by it (§18.2.2)
    except SipParseError:
        return None
    return partial


class StreamFramer:
    """Cuts SIP messages out of a TCP byte stream by Content-Length (RFC 3261 §18.3).

    CRLFs between messages are skipped (RFC 5626 keep-alives); `keepalives` counts the
    double-CRLF pings seen, which the transport answers with a single CRLF.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size
        self.keepalives = 0
        self._crlfs = 0
        # A framing error found after complete messages: they are returned first, and
        # the error is raised by the next feed(); the transport may also check it.
        self.error: SipParseError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Complete messages from the bytes received so far.

        Raises SipParseError on a missing or garbled Content-Length or a message larger
        than `max_size`; the stream cannot be resynchronised, so close the connection.
        Messages completed before the fault are returned first and the error is kept in
        `error` and raised by the next call.
        """
        if self.error is not None:
            raise self.error
        self._buf += data
        out: list[bytes] = []
        try:
            self._frame(out)
        except SipParseError as e:
            if not out:
                raise
            self.error = e
        return out

    def _frame(self, out: list[bytes]) -> None:
        buf = self._buf
        while buf:
            skip = 0
            while buf.startswith(b"\r\n", skip):
                skip += 2
            if skip:
                # Count double-CRLF pings even when their bytes arrive one at a time.
                self._crlfs += skip // 2
                self.keepalives += self._crlfs // 2
                self._crlfs %= 2
                del buf[:skip]
                continue
            if buf[:1] != b"\r":  # a lone CR may be half of the next keep-alive CRLF
                self._crlfs = 0
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise SipParseError("Message too large", status_code=513)
                return
            total = end + 4 + _stream_content_length(bytes(buf[:end]))
            if total > self.max_size:
                raise SipParseError("Message too large", status_code=513)
            if len(buf) < total:
                return
            out.append(bytes(buf[:total]))
            del buf[:total]

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _stream_content_length(head: bytes) -> int:
    values: set[bytes] = set()
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip(b" \t").lower() in (b"content-length", b"l"):
            values.add(value.strip(b" \t"))
    if not values:
        raise SipParseError("Missing Content-Length header")
    if len(values) > 1:
        raise SipParseError("Multiple Content-Length values")
    (value,) = values
    if not value.isdigit():
        raise SipParseError("Invalid Content-Length")
    return int(value)
