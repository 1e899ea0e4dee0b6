"""Benchmark: parse and serialize a realistic INVITE with SDP; prints one JSON line.

Each rate is measured over ``--seconds`` (1 s); ``--quick`` (what tests/bench runs) over
0.1 s, with the same fields.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signaling.message import parse_message

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    "INVITE sip:+15551234567@switch.example.com;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnashds8;received=198.51.100.7\r\n"
    "Max-Forwards: 69\r\n"
    'From: "Alice Example" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    "To: <sip:+15551234567@switch.example.com;user=phone>\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n"
    "Record-Route: <sip:proxy.example.com;lr>\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
    "Supported: replaces, timer\r\n"
    "User-Agent: softphone/1.2.3\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n"
    "\r\n"
).encode() + SDP


def _rate(fn: object, seconds: float) -> float:
    assert callable(fn)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measured rate")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 0.1 s per rate")
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(seconds=0.1)
        args = parser.parse_args()
    msg = parse_message(INVITE)
    parsed = _rate(lambda: parse_message(INVITE), args.seconds)
    serialized = _rate(msg.encode, args.seconds)
    print(
        json.dumps(
            {
                "benchmark": "sip_parse",
                "quick": args.quick,
                "invites_parsed_per_s": round(parsed),
                "invites_serialized_per_s": round(serialized),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
