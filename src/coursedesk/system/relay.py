"""A relay that carries a script's connection and bounds what the server may send the app.

libpq holds a whole result before handing it over, and a row a whole row, which may be a
gigabyte: no way of fetching bounds what a script's SELECT puts in the app's memory. So
the script's connection does not go straight to the server but through this relay,
which passes the bytes on untouched (TLS included, end to end) and counts those coming
from the server; past the limit it closes both sides. libpq then sees a closed
connection, and the server, sending to a client that is gone, ends the backend and with
it the script's transaction.

A connection through the relay reaches the server from the app, which the server may
trust (peer authentication on its Unix socket takes it for the app's OS user). So the
relay carries one connection only, the script's, and stops listening once it has it; and
for a server reached through a Unix socket it listens on a Unix socket of its own, in a
directory only the app's OS user may enter, rather than on 127.0.0.1, which any local
user may reach.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

_CHUNK = 64 * 1024
# The port in the name of the relay's socket file, `.s.PGSQL.<port>`, as libpq looks for it.
SOCKET_PORT = 5432


class Relay:
    """One listening socket, on 127.0.0.1 or, for a server reached through its Unix socket,
    a Unix socket in a private directory; its first connection is carried to the server
    (`host`:`port`, or the Unix socket `unix_socket`), any other is closed at once."""

    def __init__(self, *, host: str, port: int, unix_socket: str | None, limit_bytes: int) -> None:
        self._host = host
        self._port = port
        self._unix_socket = unix_socket
        self.limit_bytes = limit_bytes
        self.received = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._directory: Path | None = None
        self._carried = False
        self._listening_port: int | None = None

    @property
    def exceeded(self) -> bool:
        return self.received > self.limit_bytes

    @property
    def host(self) -> str:
        """Where libpq reaches the relay: its socket's directory, or 127.0.0.1."""
        return "127.0.0.1" if self._directory is None else str(self._directory)

    @property
    def port(self) -> int:
        assert self._listening_port is not None, "the relay listens once entered"
        return self._listening_port

    async def __aenter__(self) -> Relay:
        if self._unix_socket is None:
            self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
            self._listening_port = int(self._server.sockets[0].getsockname()[1])
            return self
        # mkdtemp makes the directory readable and enterable by its owner only (0700).
        self._directory = Path(tempfile.mkdtemp(prefix="coursedesk-relay-"))
        try:
            self._server = await asyncio.start_unix_server(
                self._carry, path=self._directory / f".s.PGSQL.{SOCKET_PORT}"
            )
            self._listening_port = SOCKET_PORT
        except BaseException:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
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
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix_socket is not None:
            return await asyncio.open_unix_connection(self._unix_socket)
        return await asyncio.open_connection(self._host, self._port)

    async def _carry(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        if self._carried:
            to_client.transport.abort()
            return
        # The first connection is the script's: no other is taken from now on.
        self._carried = True
        assert self._server is not None
        self._server.close()
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
