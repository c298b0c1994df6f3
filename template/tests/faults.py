"""Failure injection on real services: a TCP proxy the test controls.

Put it between the app and Redis, PostgreSQL or S3 (point the app's URL at `proxy.port`) and
make the service misbehave the way networks do, at the moment the test chooses:
`stall()` keeps connections open but stops carrying bytes (a paused server, a
partition), `trickle(seconds)` carries the server's answers one byte every so many seconds (a server
or link that is slow but never silent long enough for a read timeout), `drop()` closes every
connection now and refuses new ones (a crash, a failover), `resume()` carries bytes
again at full speed.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Self


@dataclass
class FaultyProxy:
    target_host: str
    target_port: int
    port: int = 0
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    refusing: bool = False
    trickle_seconds: float = 0.0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> Self:
        self.flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def stall(self) -> None:
        self.flowing.clear()

    def drop(self) -> None:
        self.refusing = True
        for writer in list(self._writers):
            writer.transport.abort()  # RST: the peer sees the connection die
        self._writers.clear()

    def trickle(self, seconds: float) -> None:
        self.trickle_seconds = seconds

    def resume(self) -> None:
        self.refusing = False
        self.trickle_seconds = 0.0
        self.flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer, answers=True)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool = False
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self.flowing.wait()
                if writer.transport.is_closing():
                    break
                while answers and self.trickle_seconds and data:
                    writer.write(data[:1])
                    await writer.drain()
                    data = data[1:]
                    await asyncio.sleep(self.trickle_seconds)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)
