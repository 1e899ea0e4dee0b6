"""An HTTP server that writes its responses byte for byte, for the answers a well-behaved
framework will not send: a Content-Length that lies, a connection dropped mid-body, a
server that stops sending and holds the connection open.

    async with RawHttpServer([RawReply.lying_length(body, declared=len(body) - 10)]) as srv:
        ... callback url srv.url ...

Replies are used in arrival order; the last one repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RawReply:
    """Write `head`, then each of `parts` (`pause` s apart), then close or hold the
    connection (`hold`: keep it open, sending nothing, until the server stops)."""

    head: bytes
    parts: tuple[bytes, ...] = ()
    pause: float = 0.0
    hold: bool = False

    @classmethod
    def lying_length(cls, body: bytes, declared: int, *, hold: bool = False,
                     late_rest: float = 0.0,
                     content_type: str = "application/json") -> RawReply:
        """`body` under a Content-Length of `declared`; then close (or hold). With
        `late_rest`, what is past `declared` follows that many seconds later, in a
        segment of its own."""
        parts = (body[:declared], body[declared:]) if late_rest else (body,)
        return cls(head=_head(200, content_type, f"Content-Length: {declared}"),
                   parts=parts, pause=late_rest, hold=hold)

    @classmethod
    def dropped(cls, body: bytes, after: int, *, chunk: int = 4096, pause: float = 0.02,
                content_type: str = "application/json") -> RawReply:
        """A chunked body whose connection is closed after `after` bytes of it."""
        data = body[:after]
        parts = tuple(b"%x\r\n%s\r\n" % (len(data[i:i + chunk]), data[i:i + chunk])
                      for i in range(0, len(data), chunk))
        return cls(head=_head(200, content_type, "Transfer-Encoding: chunked"), parts=parts,
                   pause=pause)


def _head(status: int, content_type: str, framing: str) -> bytes:
    return (f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n{framing}\r\n"
            "Connection: keep-alive\r\n\r\n").encode()


@dataclass
class RawHttpServer:
    replies: Sequence[RawReply]
    requests: list[bytes] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _held: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("RawHttpServer not started")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{HOST}:{port}/"

    async def __aenter__(self) -> RawHttpServer:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._held:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: nothing to answer
        finally:
            self._tasks.discard(task)

    async def _answer_one(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True to read another on the same connection."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        writer.write(reply.head)
        for i, part in enumerate(reply.parts):
            if i and reply.pause:
                await asyncio.sleep(reply.pause)
            writer.write(part)
            await writer.drain()
        if reply.hold:
            self._held.append(writer)
            return False
        writer.close()
        return False
