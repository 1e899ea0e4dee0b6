"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for audio calls, sans-I/O.

`SessionDescription.parse` reads a session description into dataclasses that print
back with `str()`; lines this module has no field for are kept in order. `answer`
builds our answer to an offer and says what was negotiated; `offer` and
`negotiate_answer` do the same for calls we place. Only one audio stream is used: the
first one with a codec in common, every other m-line is refused with port 0 (§6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Codec",
    "Connection",
    "MediaDescription",
    "NegotiatedMedia",
    "NotAcceptable",
    "Origin",
    "SdpError",
    "SessionDescription",
    "answer",
    "negotiate_answer",
    "offer",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
TELEPHONE_EVENT = "telephone-event"
DEFAULT_EVENTS = "0-15"  # RFC 4733 §2.4.1: the default when fmtp is absent
OFFER_EVENTS = "0-16"
DEFAULT_PTIME = 20


class SdpError(ValueError):
    """The session description is malformed."""

    status_code: int = 400


class NotAcceptable(SdpError):
    """Well-formed, but nothing in it can be accepted (RFC 3264 §6)."""

    status_code = 488


@dataclass(frozen=True)
class Codec:
    pt: int
    name: str
    rate: int

    def __str__(self) -> str:
        return f"{self.name}/{self.rate}"


# RFC 3551 table 4: static payload types usable without an rtpmap.
STATIC_CODECS: dict[int, Codec] = {
    0: Codec(0, "PCMU", 8000),
    3: Codec(3, "GSM", 8000),
    4: Codec(4, "G723", 8000),
    8: Codec(8, "PCMA", 8000),
    9: Codec(9, "G722", 8000),
    18: Codec(18, "G729", 8000),
}
_STATIC_BY_NAME = {c.name: c for c in STATIC_CODECS.values()}


@dataclass
class Origin:
    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, text: str) -> Origin:
        parts = text.split()
        if len(parts) != 6:
            raise SdpError(f"Malformed o= line {text!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return " ".join(
            (
                self.username,
                self.session_id,
                self.session_version,
                self.nettype,
                self.addrtype,
                self.address,
            )
        )


@dataclass
class Connection:
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Connection:
        parts = text.split()
        if len(parts) != 3 or parts[1] not in ("IP4", "IP6"):
            raise SdpError(f"Malformed c= line {text!r}")
        # A multicast address may carry /ttl/count; the host is what precedes them.
        return cls(parts[2], parts[1], parts[0])

    @classmethod
    def for_host(cls, host: str) -> Connection:
        host = host.strip("[]")
        return cls(host, "IP6" if ":" in host else "IP4")

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def is_hold(self) -> bool:
        """The RFC 2543 way of putting a call on hold (RFC 3264 §8.4)."""
        return self.host in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


def _attr_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


@dataclass
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    port_count: int | None = None
    # i=, b= and k= lines, kept in order as (letter, value)
    other: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The value of the first a=name attribute ('' for a flag), or None."""
        for n, v in self.attributes:
            if n == name:
                return "" if v is None else v
        return None

    def getall(self, name: str) -> list[str]:
        return [v or "" for n, v in self.attributes if n == name]

    @property
    def rtpmaps(self) -> dict[int, Codec]:
        """Payload type -> codec from a=rtpmap lines (clock rate only, channels dropped)."""
        out: dict[int, Codec] = {}
        for value in self.getall("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            name, _, rest = encoding.strip().partition("/")
            rate = rest.partition("/")[0]
            if pt_text.isdigit() and rate.isdigit() and name:
                out[int(pt_text)] = Codec(int(pt_text), name, int(rate))
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for value in self.getall("fmtp"):
            pt_text, _, params = value.partition(" ")
            if pt_text.isdigit():
                out[int(pt_text)] = params.strip()
        return out

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, if any."""
        for n, _ in self.attributes:
            if n in DIRECTIONS:
                return n
        return None

    @property
    def ptime(self) -> int | None:
        value = self.get("ptime")
        if value is None:
            return None
        try:
            return round(float(value))
        except ValueError:
            return None

    def codec(self, fmt: str) -> Codec | None:
        """The codec a format stands for: its rtpmap, else the static table."""
        if not fmt.isdigit():
            return None
        pt = int(fmt)
        return self.rtpmaps.get(pt) or STATIC_CODECS.get(pt)

    def __str__(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        lines += [f"{k}={v}" for k, v in self.other if k == "i"]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"{k}={v}" for k, v in self.other if k != "i"]
        lines += [_attr_line(n, v) for n, v in self.attributes]
        return "\r\n".join(lines) + "\r\n"


# Session-level letters in the order RFC 4566 §5 requires them.
_SESSION_ORDER = "vosiuepcbtrzka"


@dataclass
class SessionDescription:
    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    timing: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    # i=, u=, e=, p=, b=, r=, z=, k= lines, kept in order as (letter, value)
    other: list[tuple[str, str]] = field(default_factory=list)
    version: int = 0

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        """Parse an SDP body; raise SdpError naming the fault."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpError("SDP is not UTF-8 text") from None
        lines = [ln for ln in data.replace("\r\n", "\n").split("\n") if ln.strip()]
        if not lines or lines[0].strip() != "v=0":
            raise SdpError("SDP must start with v=0")
        sd = cls(timing=[])
        seen: set[str] = set()
        current: MediaDescription | None = None
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise SdpError(f"Malformed SDP line {line[:40]!r}")
            kind, value = line[0], line[2:].strip()
            if kind == "m":
                current = _parse_media(value)
                sd.media.append(current)
            elif current is not None:
                _media_line(current, kind, value)
            else:
                _session_line(sd, kind, value)
                seen.add(kind)
        for required in "os":
            if required not in seen:
                raise SdpError(f"SDP lacks its {required}= line")
        if not sd.timing:
            sd.timing = ["0 0"]
        return sd

    @property
    def direction(self) -> str | None:
        """The session-level direction attribute, if any."""
        for n, _ in self.attributes:
            if n in DIRECTIONS:
                return n
        return None

    def __str__(self) -> str:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += [f"{k}={v}" for k, v in self.other if k in "iuep"]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"{k}={v}" for k, v in self.other if k == "b"]
        for t in self.timing:
            lines.append(f"t={t}")
        lines += [f"{k}={v}" for k, v in self.other if k in "rzk"]
        lines += [_attr_line(n, v) for n, v in self.attributes]
        return "\r\n".join(lines) + "\r\n" + "".join(str(m) for m in self.media)

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


def _parse_attr(value: str) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    if not name:
        raise SdpError("Empty a= attribute")
    return name, rest if colon else None


def _session_line(sd: SessionDescription, kind: str, value: str) -> None:
    if kind == "o":
        sd.origin = Origin.parse(value)
    elif kind == "s":
        sd.session_name = value
    elif kind == "c":
        sd.connection = Connection.parse(value)
    elif kind == "t":
        sd.timing.append(value)
    elif kind == "a":
        sd.attributes.append(_parse_attr(value))
    elif kind == "v":
        raise SdpError("Repeated v= line")
    else:
        sd.other.append((kind, value))


def _media_line(m: MediaDescription, kind: str, value: str) -> None:
    if kind == "c":
        m.connection = Connection.parse(value)
    elif kind == "a":
        m.attributes.append(_parse_attr(value))
    elif kind in "ibk":
        m.other.append((kind, value))
    else:
        raise SdpError(f"Unexpected {kind}= line in a media section")


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"Malformed m= line {value!r}")
    port_text, _, count = parts[1].partition("/")
    if not port_text.isdigit() or int(port_text) > 65535 or (count and not count.isdigit()):
        raise SdpError(f"Invalid port in m= line {value!r}")
    return MediaDescription(
        parts[0], int(port_text), parts[2], parts[3:], port_count=int(count) if count else None
    )


@dataclass
class NegotiatedMedia:
    remote_host: str
    remote_port: int
    codec: Codec
    telephone_event_pt: int | None
    direction: str  # OUR direction: sendrecv, sendonly, recvonly or inactive
    ptime: int
    rtcp: tuple[str, int] | None = None  # where the peer wants RTCP (RFC 3605 a=rtcp)
    rtcp_mux: bool = False  # RTCP on the RTP port, both ways (RFC 5761)


# What each side may do, by its direction attribute: (sends, receives).
_CAN = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}
_DIRECTION_OF = {v: k for k, v in _CAN.items()}


def _their_direction(sd: SessionDescription, m: MediaDescription) -> str:
    direction = m.direction or sd.direction or "sendrecv"
    conn = m.connection or sd.connection
    if conn is not None and conn.is_hold:
        # c=0.0.0.0 says "do not send to me" (RFC 3264 §8.4), whatever the attribute.
        sends, _ = _CAN[direction]
        direction = _DIRECTION_OF[(sends, False)]
    return direction


def _mirror(direction: str, ours: str = "sendrecv") -> str:
    """Our direction given theirs: we send only where they receive, and the reverse."""
    they_send, they_recv = _CAN[direction]
    we_send, we_recv = _CAN[ours]
    return _DIRECTION_OF[(we_send and they_recv, we_recv and they_send)]


def _describe(m: MediaDescription) -> str:
    names = []
    for fmt in m.formats:
        codec = m.codec(fmt)
        names.append(str(codec) if codec is not None else fmt)
    return f"{m.media} {m.proto} {', '.join(names)}".rstrip()


def _remote_host(sd: SessionDescription, m: MediaDescription) -> str:
    conn = m.connection or sd.connection
    if conn is None:
        raise SdpError("No c= line for the audio stream")
    return conn.host


def _pick_codec(m: MediaDescription, codecs: tuple[str, ...]) -> Codec | None:
    wanted = {c.upper() for c in codecs}
    for fmt in m.formats:  # the offerer's order of preference (RFC 3264 §5.1)
        codec = m.codec(fmt)
        if codec is not None and codec.name.upper() in wanted and codec.rate == 8000:
            return Codec(codec.pt, codec.name.upper(), codec.rate)
    return None


def _telephone_event(m: MediaDescription) -> tuple[int, str] | None:
    fmtp = m.fmtp
    for fmt in m.formats:
        codec = m.codec(fmt)
        if codec is not None and codec.name.lower() == TELEPHONE_EVENT and codec.rate == 8000:
            return codec.pt, fmtp.get(codec.pt) or DEFAULT_EVENTS
    return None


def _rtcp_address(sd: SessionDescription, m: MediaDescription) -> tuple[str, int] | None:
    """The peer's RTCP address from `a=rtcp:PORT [IN IP4|IP6 ADDR]` (RFC 3605), if given
    and readable; the connection address unless it names one. An unreadable one is
    ignored (RTCP then goes to RTP port + 1): it must not fail the call."""
    value = m.get("rtcp")
    if not value:
        return None
    parts = value.split()
    if not parts[0].isdigit() or not 0 < int(parts[0]) <= 0xFFFF:
        return None
    host = parts[3] if len(parts) == 4 and parts[1] == "IN" else _remote_host(sd, m)
    return host, int(parts[0])


def _audio_media(
    port: int,
    codec: Codec,
    event: tuple[int, str] | None,
    direction: str,
    ptime: int = DEFAULT_PTIME,
    rtcp_mux: bool = False,
) -> MediaDescription:
    formats = [str(codec.pt)]
    attributes: list[tuple[str, str | None]] = [("rtpmap", f"{codec.pt} {codec.name}/{codec.rate}")]
    if event is not None:
        pt, events = event
        formats.append(str(pt))
        attributes += [("rtpmap", f"{pt} {TELEPHONE_EVENT}/8000"), ("fmtp", f"{pt} {events}")]
    attributes += [("ptime", str(ptime)), (direction, None)]
    if rtcp_mux:
        attributes.append(("rtcp-mux", None))
    return MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)


def _session(
    local_host: str, session_id: int, session_version: int, user: str
) -> SessionDescription:
    conn = Connection.for_host(local_host)
    origin = Origin(user, str(session_id), str(session_version), "IN", conn.addrtype, conn.host)
    return SessionDescription(origin=origin, session_name=user, connection=conn)


def answer(
    offer: SessionDescription,
    *,
    local_host: str,
    local_port: int,
    session_id: int,
    session_version: int,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    user: str = "voxswitch",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Our RFC 3264 answer to `offer`, and what it negotiated.

    Raises NotAcceptable, naming what was offered, when no audio stream has a codec
    in `codecs`.
    """
    sd = _session(local_host, session_id, session_version, user)
    sd.timing = list(offer.timing)
    negotiated: NegotiatedMedia | None = None
    for m in offer.media:
        codec = None
        if negotiated is None and m.media == "audio" and m.port != 0 and m.proto == "RTP/AVP":
            codec = _pick_codec(m, codecs)
        if codec is None:
            # Refused streams keep their formats and get port 0 (RFC 3264 §6).
            sd.media.append(MediaDescription(m.media, 0, m.proto, list(m.formats)))
            continue
        event = _telephone_event(m)
        direction = _mirror(_their_direction(offer, m))
        mux = any(n == "rtcp-mux" for n, _ in m.attributes)
        sd.media.append(_audio_media(local_port, codec, event, direction, rtcp_mux=mux))
        negotiated = NegotiatedMedia(
            remote_host=_remote_host(offer, m),
            remote_port=m.port,
            codec=codec,
            telephone_event_pt=event[0] if event else None,
            direction=direction,
            ptime=m.ptime or offer_ptime(offer) or DEFAULT_PTIME,
            rtcp=_rtcp_address(offer, m),
            rtcp_mux=mux,
        )
    if negotiated is None:
        raise NotAcceptable(_refusal(offer, codecs))
    return sd, negotiated


def offer_ptime(sd: SessionDescription) -> int | None:
    for n, v in sd.attributes:
        if n == "ptime" and v and v.isdigit():
            return int(v)
    return None


def _refusal(offer: SessionDescription, codecs: tuple[str, ...]) -> str:
    offered = "; ".join(_describe(m) for m in offer.media if m.port != 0)
    if not any(m.media == "audio" and m.port != 0 for m in offer.media):
        return f"No audio stream offered (offered: {offered or 'nothing'})"
    return f"No common audio codec (offered: {offered}; supported: {', '.join(codecs)})"


def offer(
    *,
    local_host: str,
    local_port: int,
    session_id: int,
    session_version: int,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    telephone_event_pt: int | None = 101,
    direction: str = "sendrecv",
    user: str = "voxswitch",
) -> SessionDescription:
    """An offer of one audio stream with `codecs` (static payload types) and DTMF events."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    sd = _session(local_host, session_id, session_version, user)
    m = MediaDescription("audio", local_port, "RTP/AVP", [])
    for name in codecs:
        codec = _STATIC_BY_NAME.get(name.upper())
        if codec is None:
            raise ValueError(f"no static payload type for codec {name!r}")
        m.formats.append(str(codec.pt))
        m.attributes.append(("rtpmap", f"{codec.pt} {codec.name}/{codec.rate}"))
    if telephone_event_pt is not None:
        m.formats.append(str(telephone_event_pt))
        m.attributes += [
            ("rtpmap", f"{telephone_event_pt} {TELEPHONE_EVENT}/8000"),
            ("fmtp", f"{telephone_event_pt} {OFFER_EVENTS}"),
        ]
    m.attributes += [("ptime", str(DEFAULT_PTIME)), (direction, None)]
    sd.media.append(m)
    return sd


def negotiate_answer(
    offer_sent: SessionDescription, answer_received: SessionDescription
) -> NegotiatedMedia:
    """What an answer to our `offer` settles; NotAcceptable if it refused our audio."""
    ours = next((m for m in offer_sent.media if m.media == "audio"), None)
    if ours is None:
        raise ValueError("the offer sent has no audio stream")
    index = offer_sent.media.index(ours)
    if index >= len(answer_received.media):
        raise SdpError("Answer has fewer m-lines than the offer")
    m = answer_received.media[index]
    if m.media != "audio" or m.port == 0:
        raise NotAcceptable("Audio stream refused in the answer")
    offered = {c.name.upper() for f in ours.formats if (c := ours.codec(f)) is not None}
    codec = None
    for fmt in m.formats:
        c = m.codec(fmt)
        if c is not None and c.name.upper() in offered and c.name.lower() != TELEPHONE_EVENT:
            codec = Codec(c.pt, c.name.upper(), c.rate)
            break
    if codec is None:
        raise NotAcceptable(f"Answer has no codec that was offered ({_describe(m)})")
    event = _telephone_event(m) if TELEPHONE_EVENT.upper() in offered else None
    ours_direction = ours.direction or offer_sent.direction or "sendrecv"
    return NegotiatedMedia(
        remote_host=_remote_host(answer_received, m),
        remote_port=m.port,
        codec=codec,
        telephone_event_pt=event[0] if event else None,
        direction=_mirror(_their_direction(answer_received, m), ours_direction),
        ptime=m.ptime or offer_ptime(answer_received) or DEFAULT_PTIME,
        rtcp=_rtcp_address(answer_received, m),
        # mux only if both said so (we offer it only where the caller of offer() adds it)
        rtcp_mux=any(n == "rtcp-mux" for n, _ in m.attributes)
        and any(n == "rtcp-mux" for n, _ in ours.attributes),
    )
