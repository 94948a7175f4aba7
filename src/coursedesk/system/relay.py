"""A relay that carries a script's connection and bounds what the server may send the app.

libpq holds a whole result before handing it over, and a row a whole row, which may be a
gigabyte: no way of fetching bounds what a script's SELECT puts in the app's memory. So
the script's connection does not go straight to the server but through this relay on
127.0.0.1, which passes the bytes on untouched (TLS included, end to end) and counts
those coming from the server; past the limit it closes both sides. libpq then sees a
closed connection, and the server, sending to a client that is gone, ends the backend
and with it the script's transaction.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

_CHUNK = 64 * 1024


class Relay:
    """One listening socket on 127.0.0.1; each connection to it is carried to the server
    (`host`:`port`, or the Unix socket `unix_socket`)."""

    def __init__(self, *, host: str, port: int, unix_socket: str | None, limit_bytes: int) -> None:
        self._host = host
        self._port = port
        self._unix_socket = unix_socket
        self.limit_bytes = limit_bytes
        self.received = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def exceeded(self) -> bool:
        return self.received > self.limit_bytes

    @property
    def port(self) -> int:
        assert self._server is not None, "the relay listens once entered"
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix_socket is not None:
            return await asyncio.open_unix_connection(self._unix_socket)
        return await asyncio.open_connection(self._host, self._port)

    async def _carry(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        try:
            server, to_server = await self._open_upstream()
        except OSError:
            to_client.close()
            return
        pair = (to_client, to_server)
        self._writers.update(pair)
        try:
            await asyncio.gather(
                self._pump(client, to_server, pair, counted=False),
                self._pump(server, to_client, pair, counted=True),
            )
        finally:
            self._writers.difference_update(pair)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        counted: bool,
    ) -> None:
        """Copy one direction until it ends or the server has sent too much, then close
        both: the protocol has no use for a connection open one way. Past the limit what
        is still buffered is dropped, not delivered."""
        try:
            while data := await reader.read(_CHUNK):
                if counted:
                    self.received += len(data)
                    if self.exceeded:
                        break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            for end in pair:
                if self.exceeded:
                    end.transport.abort()
                else:
                    end.close()
