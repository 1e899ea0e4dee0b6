"""SDP parsing and serialisation (RFC 4566) and offer/answer (RFC 3264)."""

from __future__ import annotations

import pytest

from signaling.sdp import (
    Codec,
    Connection,
    NegotiatedMedia,
    NotAcceptable,
    SdpError,
    SessionDescription,
    answer,
    negotiate_answer,
    offer,
)

LOCAL = {"local_host": "203.0.113.5", "local_port": 40000, "session_id": 7, "session_version": 1}


def _offer(media: str, session: str = "c=IN IP4 192.0.2.10\r\n") -> SessionDescription:
    text = (
        "v=0\r\no=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\ns=call\r\n"
        + session
        + "t=0 0\r\n"
        + media
    )
    return SessionDescription.parse(text)


FULL = (
    "v=0\r\n"
    "o=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\n"
    "s=Session\r\n"
    "i=info\r\n"
    "u=http://example.com/\r\n"
    "e=alice@example.com\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "b=AS:64\r\n"
    "t=0 0\r\n"
    "a=tool:x\r\n"
    "m=audio 49170 RTP/AVP 0 8 97 101\r\n"
    "i=voice\r\n"
    "c=IN IP4 192.0.2.11\r\n"
    "b=TIAS:64000\r\n"
    "a=rtpmap:97 iLBC/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:30\r\n"
    "a=sendonly\r\n"
    "m=video 51372 RTP/AVP 31\r\n"
    "a=rtpmap:31 H261/90000\r\n"
)


def test_parse_and_serialise_round_trip() -> None:
    sd = SessionDescription.parse(FULL)
    assert str(sd) == FULL
    assert bytes(sd) == FULL.encode()
    assert sd.origin.session_version == "2890844527"
    assert sd.connection == Connection("192.0.2.10")
    audio, video = sd.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio", 49170, "RTP/AVP", ["0", "8", "97", "101"],
    )
    assert audio.connection is not None and audio.connection.host == "192.0.2.11"
    assert audio.rtpmaps == {
        97: Codec(97, "iLBC", 8000),
        101: Codec(101, "telephone-event", 8000),
    }
    assert audio.fmtp == {101: "0-16"}
    assert (audio.direction, audio.ptime) == ("sendonly", 30)
    assert audio.codec("0") == Codec(0, "PCMU", 8000)
    assert audio.codec("96") is None
    assert video.direction is None
    assert SessionDescription.parse(str(sd)) == sd


def test_parse_bytes_lf_and_ipv6() -> None:
    text = (
        b"v=0\no=- 1 2 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::2\nt=0 0\n"
        b"m=audio 5004 RTP/AVP 0\n"
    )
    sd = SessionDescription.parse(text)
    assert sd.connection == Connection("2001:db8::2", "IP6")
    assert str(sd).count("\r\n") == 6


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "SDP must start with v=0"),
        ("hello world", "SDP must start with v=0"),
        ("v=1\r\n", "SDP must start with v=0"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "SDP lacks its o= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n", "SDP lacks its s= line"),
        ("v=0\r\no=- 1 1 IN\r\ns=-\r\n", "Malformed o= line '- 1 1 IN'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IPX h\r\n", "Malformed c= line 'IN IPX h'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio\r\n", "Malformed m= line 'audio'"),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio x RTP/AVP 0\r\n",
            "Invalid port in m= line 'audio x RTP/AVP 0'",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n",
            "Invalid port in m= line 'audio 70000 RTP/AVP 0'",
        ),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm =video 1 RTP/AVP 31\r\n",
         "Malformed SDP line 'm =video 1 RTP/AVP 31'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n",
         "Unexpected t= line in a media section"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\na=\r\n", "Empty a= attribute"),
        ("v=0\r\nv=0\r\n", "Repeated v= line"),
    ],
)
def test_garbage_sdp(text: str, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(text)
    assert str(info.value) == reason
    assert info.value.status_code == 400


def test_non_utf8_sdp() -> None:
    with pytest.raises(SdpError, match="SDP is not UTF-8 text"):
        SessionDescription.parse(b"v=0\r\n\xff\r\n")


@pytest.mark.parametrize(
    ("formats", "rtpmaps", "codecs", "codec"),
    [
        ("0", "", ("PCMU", "PCMA"), Codec(0, "PCMU", 8000)),
        ("8", "", ("PCMU", "PCMA"), Codec(8, "PCMA", 8000)),
        ("0 8", "", ("PCMU", "PCMA"), Codec(0, "PCMU", 8000)),
        ("8 0", "", ("PCMU", "PCMA"), Codec(8, "PCMA", 8000)),  # the offerer's order
        ("18 8 0", "", ("PCMU", "PCMA"), Codec(8, "PCMA", 8000)),
        ("0 8", "", ("PCMA",), Codec(8, "PCMA", 8000)),
        ("96", "a=rtpmap:96 pcmu/8000\r\n", ("PCMU",), Codec(96, "PCMU", 8000)),
        ("0", "a=rtpmap:0 PCMU/8000/1\r\n", ("PCMU",), Codec(0, "PCMU", 8000)),
    ],
)
def test_answer_codec_choice(
    formats: str, rtpmaps: str, codecs: tuple[str, ...], codec: Codec
) -> None:
    offered = _offer(f"m=audio 49170 RTP/AVP {formats}\r\n{rtpmaps}")
    sd, neg = answer(offered, codecs=codecs, **LOCAL)
    assert neg == NegotiatedMedia("192.0.2.10", 49170, codec, None, "sendrecv", 20)
    (m,) = sd.media
    assert (m.port, m.formats) == (40000, [str(codec.pt)])
    assert m.rtpmaps == {codec.pt: codec}


def test_answer_full_text() -> None:
    sd, _ = answer(
        _offer("m=audio 49170 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"), **LOCAL
    )
    assert str(sd) == (
        "v=0\r\n"
        "o=voxswitch 7 1 IN IP4 203.0.113.5\r\n"
        "s=voxswitch\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


@pytest.mark.parametrize(
    ("media", "pt", "fmtp"),
    [
        ("m=audio 1 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", 101, "0-15"),
        (
            "m=audio 1 RTP/AVP 0 96\r\na=rtpmap:96 Telephone-Event/8000\r\na=fmtp:96 0-16\r\n",
            96,
            "0-16",
        ),
        ("m=audio 1 RTP/AVP 0 97\r\na=rtpmap:97 telephone-event/16000\r\n", None, None),
        ("m=audio 1 RTP/AVP 0\r\n", None, None),
    ],
)
def test_answer_telephone_event(media: str, pt: int | None, fmtp: str | None) -> None:
    sd, neg = answer(_offer(media), **LOCAL)
    assert neg.telephone_event_pt == pt
    (m,) = sd.media
    if pt is None:
        assert m.formats == ["0"]
        assert m.fmtp == {}
    else:
        assert m.formats == ["0", str(pt)]
        assert m.fmtp == {pt: fmtp}
        assert m.rtpmaps[pt] == Codec(pt, "telephone-event", 8000)


@pytest.mark.parametrize(
    ("media", "session", "ours"),
    [
        ("a=sendrecv\r\n", "c=IN IP4 192.0.2.10\r\n", "sendrecv"),
        ("a=sendonly\r\n", "c=IN IP4 192.0.2.10\r\n", "recvonly"),
        ("a=recvonly\r\n", "c=IN IP4 192.0.2.10\r\n", "sendonly"),
        ("a=inactive\r\n", "c=IN IP4 192.0.2.10\r\n", "inactive"),
        ("", "c=IN IP4 192.0.2.10\r\na=sendonly\r\n", "recvonly"),  # session-level attribute
        ("", "c=IN IP4 0.0.0.0\r\n", "recvonly"),  # RFC 2543 hold
        ("a=sendonly\r\n", "c=IN IP4 0.0.0.0\r\n", "recvonly"),
        ("a=recvonly\r\n", "c=IN IP4 0.0.0.0\r\n", "inactive"),
        ("a=inactive\r\n", "c=IN IP4 0.0.0.0\r\n", "inactive"),
    ],
)
def test_answer_direction_hold_and_resume(media: str, session: str, ours: str) -> None:
    sd, neg = answer(_offer("m=audio 49170 RTP/AVP 0\r\n" + media, session), **LOCAL)
    assert neg.direction == ours
    assert sd.media[0].direction == ours


def test_resume_after_hold() -> None:
    held = _offer("m=audio 49170 RTP/AVP 0\r\na=sendonly\r\n")
    resumed = _offer("m=audio 49170 RTP/AVP 0\r\na=sendrecv\r\n")
    assert answer(held, **LOCAL)[1].direction == "recvonly"
    assert answer(resumed, **{**LOCAL, "session_version": 2})[1].direction == "sendrecv"
    assert answer(resumed, **{**LOCAL, "session_version": 2})[0].origin.session_version == "2"


def test_answer_rejects_other_streams_with_port_zero() -> None:
    offered = _offer(
        "m=video 51372 RTP/AVP 31\r\n"
        "m=audio 49170 RTP/SAVP 0\r\n"
        "m=audio 49172 RTP/AVP 18\r\n"
        "m=audio 49174 RTP/AVP 8\r\nc=IN IP4 192.0.2.99\r\na=ptime:30\r\n"
        "m=audio 49176 RTP/AVP 0\r\n"
    )
    sd, neg = answer(offered, **LOCAL)
    assert [(m.media, m.port, m.proto, m.formats) for m in sd.media] == [
        ("video", 0, "RTP/AVP", ["31"]),
        ("audio", 0, "RTP/SAVP", ["0"]),
        ("audio", 0, "RTP/AVP", ["18"]),
        ("audio", 40000, "RTP/AVP", ["8"]),
        ("audio", 0, "RTP/AVP", ["0"]),
    ]
    assert neg == NegotiatedMedia("192.0.2.99", 49174, Codec(8, "PCMA", 8000), None, "sendrecv", 30)


def test_answer_ipv6() -> None:
    offered = _offer("m=audio 5004 RTP/AVP 0\r\n", "c=IN IP6 2001:db8::10\r\n")
    sd, neg = answer(offered, **{**LOCAL, "local_host": "[2001:db8::1]"})
    assert neg.remote_host == "2001:db8::10"
    assert str(sd.connection) == "IN IP6 2001:db8::1"
    assert str(sd.origin) == "voxswitch 7 1 IN IP6 2001:db8::1"


@pytest.mark.parametrize(
    ("media", "message"),
    [
        (
            "m=audio 49170 RTP/AVP 18 96\r\na=rtpmap:96 opus/48000/2\r\nm=video 5 RTP/AVP 31\r\n",
            "No common audio codec (offered: audio RTP/AVP G729/8000, opus/48000; "
            "video RTP/AVP 31; supported: PCMU, PCMA)",
        ),
        (
            "m=video 51372 RTP/AVP 31\r\n",
            "No audio stream offered (offered: video RTP/AVP 31)",
        ),
        ("", "No audio stream offered (offered: nothing)"),
        ("m=audio 0 RTP/AVP 0\r\n", "No audio stream offered (offered: nothing)"),
        (
            "m=audio 49170 RTP/SAVP 0\r\n",
            "No common audio codec (offered: audio RTP/SAVP PCMU/8000; supported: PCMU, PCMA)",
        ),
    ],
)
def test_nothing_acceptable(media: str, message: str) -> None:
    with pytest.raises(NotAcceptable) as info:
        answer(_offer(media), **LOCAL)
    assert str(info.value) == message
    assert info.value.status_code == 488


def test_answer_needs_a_connection() -> None:
    with pytest.raises(SdpError, match="No c= line for the audio stream"):
        answer(_offer("m=audio 1 RTP/AVP 0\r\n", session=""), **LOCAL)


def test_offer_text() -> None:
    sd = offer(**LOCAL)
    assert str(sd) == (
        "v=0\r\n"
        "o=voxswitch 7 1 IN IP4 203.0.113.5\r\n"
        "s=voxswitch\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert str(offer(**LOCAL, codecs=("PCMA",), telephone_event_pt=None, direction="sendonly")) == (
        str(sd)
        .replace(" 0 8 101", " 8")
        .replace("a=rtpmap:0 PCMU/8000\r\n", "")
        .replace("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n", "")
        .replace("sendrecv", "sendonly")
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codecs": ("opus",)}, "no static payload type for codec 'opus'"),
        ({"direction": "sideways"}, "unknown direction 'sideways'"),
    ],
)
def test_offer_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        offer(**LOCAL, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("our_direction", "their_answer", "codecs", "expected"),
    [
        ("sendrecv", "a=sendrecv\r\n", ("PCMU", "PCMA"), ("sendrecv", 0)),
        ("sendrecv", "a=recvonly\r\n", ("PCMA",), ("sendonly", 8)),
        ("sendonly", "a=recvonly\r\n", ("PCMU", "PCMA"), ("sendonly", 0)),
        ("sendonly", "a=inactive\r\n", ("PCMU", "PCMA"), ("inactive", 0)),
        ("inactive", "a=inactive\r\n", ("PCMU", "PCMA"), ("inactive", 0)),
        ("recvonly", "a=sendonly\r\n", ("PCMU", "PCMA"), ("recvonly", 0)),
    ],
)
def test_negotiate_answer(
    our_direction: str, their_answer: str, codecs: tuple[str, ...], expected: tuple[str, int]
) -> None:
    ours = offer(**LOCAL, direction=our_direction)
    formats = " ".join(str(Codec(0, c, 8000).pt if c == "PCMU" else 8) for c in codecs)
    theirs = _offer(
        f"m=audio 6000 RTP/AVP {formats} 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        + their_answer
    )
    neg = negotiate_answer(ours, theirs)
    direction, pt = expected
    assert (neg.direction, neg.codec.pt, neg.telephone_event_pt) == (direction, pt, 101)
    assert (neg.remote_host, neg.remote_port) == ("192.0.2.10", 6000)


def test_negotiate_answer_with_our_own_answer() -> None:
    ours = offer(**LOCAL)
    their_sd, their_view = answer(ours, **{**LOCAL, "local_host": "198.51.100.1"})
    neg = negotiate_answer(ours, their_sd)
    assert neg.codec == their_view.codec == Codec(0, "PCMU", 8000)
    assert neg.telephone_event_pt == 101
    assert (neg.remote_host, neg.remote_port) == ("198.51.100.1", 40000)


@pytest.mark.parametrize(
    ("answer_media", "error", "message"),
    [
        ("m=audio 0 RTP/AVP 0\r\n", NotAcceptable, "Audio stream refused in the answer"),
        ("", SdpError, "Answer has fewer m-lines than the offer"),
        (
            "m=audio 6000 RTP/AVP 18\r\n",
            NotAcceptable,
            "Answer has no codec that was offered (audio RTP/AVP G729/8000)",
        ),
    ],
)
def test_negotiate_answer_failures(
    answer_media: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        negotiate_answer(offer(**LOCAL), _offer(answer_media))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a=rtcp:53020\r\n", ("192.0.2.10", 53020)),  # the connection address
        ("a=rtcp:53020 IN IP4 198.51.100.7\r\n", ("198.51.100.7", 53020)),
        ("a=rtcp:53020 IN IP6 2001:db8::7\r\n", ("2001:db8::7", 53020)),
        ("", None),  # none: RTP port + 1, the channel's default
        ("a=rtcp:port\r\n", None),  # unreadable ones are ignored, never fatal
        ("a=rtcp:0\r\n", None),
        ("a=rtcp:70000\r\n", None),
        ("a=rtcp\r\n", None),
    ],
)
def test_answer_reads_the_rtcp_address(line: str, expected: tuple[str, int] | None) -> None:
    _, neg = answer(_offer(f"m=audio 49170 RTP/AVP 0\r\n{line}"), **LOCAL)
    assert neg.rtcp == expected


@pytest.mark.parametrize("offered", [True, False])
def test_rtcp_mux_is_answered_only_when_offered(offered: bool) -> None:
    sd, neg = answer(
        _offer("m=audio 49170 RTP/AVP 0\r\n" + ("a=rtcp-mux\r\n" if offered else "")), **LOCAL
    )
    assert neg.rtcp_mux is offered
    assert ("a=rtcp-mux\r\n" in str(sd)) is offered


def test_negotiate_answer_reads_rtcp_and_takes_mux_only_if_we_offered_it() -> None:
    theirs = _offer("m=audio 6000 RTP/AVP 0\r\na=rtcp:6001 IN IP4 198.51.100.9\r\na=rtcp-mux\r\n")
    neg = negotiate_answer(offer(**LOCAL), theirs)
    assert neg.rtcp == ("198.51.100.9", 6001)
    assert neg.rtcp_mux is False  # our offer had no a=rtcp-mux
