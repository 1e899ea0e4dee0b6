"""A SIP caller written byte for byte, for timings SIPp cannot hold to: an INVITE and its
CANCEL sent back to back, so that the CANCEL is in before any response comes out (SIPp
aborts a call on a 100 that lands between two of its sends).

It shares nothing with the switch's SIP code: requests are text templates and responses
are read only as far as their status line.
"""

from __future__ import annotations

import asyncio
import random
import socket

from tests.support.ports import free_rtp_port

INVITE = """\
INVITE sip:{user}@{host}:{port} SIP/2.0\r
Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch}\r
From: raw <sip:raw@127.0.0.1:{lport}>;tag={tag}\r
To: <sip:{user}@{host}:{port}>\r
Call-ID: {call_id}\r
CSeq: 1 INVITE\r
Contact: <sip:raw@127.0.0.1:{lport}>\r
Max-Forwards: 70\r
Content-Type: application/sdp\r
Content-Length: {length}\r
\r
{sdp}"""

SDP = """\
v=0\r
o=raw 1 1 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio {rtp} RTP/AVP 0 8 101\r
a=rtpmap:101 telephone-event/8000\r
a=sendrecv\r
"""

# CANCEL and the ACK of a non-2xx share the INVITE's branch and To (§9.1, §17.1.1.3).
SHORT = """\
{method} sip:{user}@{host}:{port} SIP/2.0\r
Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch}\r
From: raw <sip:raw@127.0.0.1:{lport}>;tag={tag}\r
To: {to}\r
Call-ID: {call_id}\r
CSeq: 1 {method}\r
Max-Forwards: 70\r
Content-Length: 0\r
\r
"""


async def invite_then_cancel(target: tuple[str, int], user: str = "1000",
                             timeout: float = 10.0) -> list[tuple[str, int]]:
    """Send INVITE and CANCEL at once; ACK the INVITE's final response. Returns every
    response as (CSeq method, status), in arrival order. AssertionError if the INVITE
    gets no final response within `timeout` s."""
    host, port = target
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        lport = sock.getsockname()[1]
        ids = {"user": user, "host": host, "port": port, "lport": lport,
               "branch": f"z9hG4bK-raw{random.getrandbits(48):x}",
               "tag": f"{random.getrandbits(32):x}",
               "call_id": f"raw-{random.getrandbits(64):x}@127.0.0.1"}
        sdp = SDP.format(rtp=free_rtp_port())
        invite = INVITE.format(**ids, sdp=sdp, length=len(sdp.encode()))
        cancel = SHORT.format(**ids, method="CANCEL", to=f"<sip:{user}@{host}:{port}>")
        sock.sendto(invite.encode(), target)
        sock.sendto(cancel.encode(), target)
        got: list[tuple[str, int]] = []
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            assert remaining > 0, f"no final response to the INVITE in {timeout} s: {got}"
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), remaining)
            status, method, to = _read(data.decode("utf-8", "replace"))
            got.append((method, status))
            if method == "INVITE" and status >= 200:
                ack = SHORT.format(**ids, method="ACK", to=to)
                sock.sendto(ack.encode(), target)
                return got
    finally:
        sock.close()


def _read(text: str) -> tuple[int, str, str]:
    """(status, CSeq method, To header value) of a response."""
    lines = text.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers["cseq"].split()[-1], headers["to"]
