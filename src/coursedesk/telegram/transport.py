"""The HTTP transport python-telegram-bot sends through: aiohttp, JSON bodies, kept-alive.

python-telegram-bot's own HTTPXRequest spends about 3 ms of CPU per request once dozens
of requests are in flight (httpx's connection pool walks every connection for each
request); a worker sent 550-580 messages a second with it on a quiet machine. This
transport keeps one aiohttp session with a pool of kept-alive connections, about an
eighth of that cost (docs/benchmarks.md). Parameters go as one JSON body, which the Bot
API accepts for every method that uploads no file, so neither side builds or parses a
form. A call that uploads files goes as multipart/form-data, each file written a slice
at a time as it is read: from bytes in memory, or from a FileStream (a file kept
elsewhere, read again from its start each time the request is sent), so a 50 MB file is
never copied whole on its way out, and a streamed one is never held whole at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Protocol, runtime_checkable

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

KEEPALIVE_SECONDS = 30.0
"""How long an idle connection is kept for the next request."""
UPLOAD_SLICE_BYTES = 256 * 1024
"""How much of a file is handed to the connection at once."""

_JSON_HEADERS = {"Content-Type": "application/json"}
_HEADER_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\0": " "})


@runtime_checkable
class FileStream(Protocol):
    """A file to upload that is not in memory: `chunks()` reads it from its start, in
    order, each time it is called, so a request sent again reads it again."""

    @property
    def size(self) -> int:
        """How many bytes `chunks()` yields in all."""
        ...

    def chunks(self) -> AsyncGenerator[bytes, None]: ...


class FileStreamBroken(TelegramError):
    """A FileStream failed while its request was being sent (it raised, or yielded more or
    fewer bytes than its size): the request was cut short, and nothing was sent. The
    stream's own exception is the cause."""


class _FileSlices(Payload):
    """A file's bytes as a multipart part, written a slice at a time.

    aiohttp's own BytesPayload hands all the bytes to the connection in one write, and
    asyncio's transport (before Python 3.12) copies whatever the socket did not take at
    once into its buffer: twice the file, briefly. Slices of a memoryview copy nothing;
    after each one the writer waits for the connection to drain, so at most a slice or
    two is ever buffered. A FileStream is read one chunk at a time, each written the
    same way before the next is read, and from its start on every write: aiohttp's
    AsyncIterablePayload could be sent once only, or keep every chunk to send it again.
    A slice that cannot be written for `write_timeout` seconds fails the call as a
    timeout, and its connection is dropped: closed the ordinary way, it would hold the
    unsent bytes, and the socket, until the server read them.
    """

    _autoclose = True

    def __init__(
        self, content: bytes | FileStream, content_type: str, write_timeout: float | None
    ) -> None:
        super().__init__(content, content_type=content_type)
        self._content = content
        self._size = len(content) if isinstance(content, bytes) else content.size
        self._write_timeout = write_timeout

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        if not isinstance(self._content, bytes):
            raise TypeError("a streamed file is not kept, so it cannot be decoded")
        return self._content.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        try:
            if isinstance(self._content, bytes):
                await self._write_slices(writer, self._content)
            else:
                await self._write_stream(writer, self._content)
        except TimeoutError:
            transport = getattr(writer, "transport", None)
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            raise

    async def _write_stream(self, writer: AbstractStreamWriter, stream: FileStream) -> None:
        written, size = 0, stream.size
        async with contextlib.aclosing(stream.chunks()) as chunks:
            while True:
                try:
                    chunk = await anext(chunks, None)
                except Exception as exc:
                    raise FileStreamBroken(f"the file could not be read: {exc}") from exc
                if chunk is None:
                    break
                written += len(chunk)
                if written > size:
                    raise FileStreamBroken(f"the file is longer than its {size} bytes")
                await self._write_slices(writer, chunk)
        if written < size:
            raise FileStreamBroken(f"the file ended at {written} of its {size} bytes")

    async def _write_slices(self, writer: AbstractStreamWriter, content: bytes) -> None:
        view = memoryview(content)
        for start in range(0, len(view), UPLOAD_SLICE_BYTES):
            async with asyncio.timeout(self._write_timeout):
                await writer.write(view[start : start + UPLOAD_SLICE_BYTES])


class AiohttpRequest(BaseRequest):
    """A `telegram.request.BaseRequest` on one aiohttp session of up to `connection_limit`.

    The timeouts are python-telegram-bot's: `connect_timeout` to open a connection,
    `pool_timeout` more to wait for a free one, `read_timeout` between two reads of the
    answer, counted once the request is written. `write_timeout` bounds how long one
    slice of an uploaded file may wait for the connection (default: `read_timeout`); a
    request without files is small enough to be written at once. Files are uploaded
    from bytes or from a FileStream.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_limit",
        "_default_timeout",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        *,
        connection_limit: int,
        read_timeout: float,
        connect_timeout: float,
        pool_timeout: float,
        write_timeout: float | None = None,
    ) -> None:
        self._connection_limit = connection_limit
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._write_timeout = read_timeout if write_timeout is None else write_timeout
        self._default_timeout = self._timeout(read_timeout, connect_timeout, pool_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._connection_limit, keepalive_timeout=KEEPALIVE_SECONDS
            ),
            timeout=self._default_timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self.USER_AGENT},
        )

    async def shutdown(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @staticmethod
    def _timeout(
        read: float | None, connect: float | None, pool: float | None
    ) -> aiohttp.ClientTimeout:
        waiting = None if connect is None or pool is None else connect + pool
        return aiohttp.ClientTimeout(
            total=None, connect=waiting, sock_connect=connect, sock_read=read
        )

    def _timeout_for_call(self, read: Any, connect: Any, pool: Any) -> aiohttp.ClientTimeout:
        """The defaults, unless this call names timeouts of its own."""
        default = BaseRequest.DEFAULT_NONE
        if read is default and connect is default and pool is default:
            return self._default_timeout
        return self._timeout(
            self._read_timeout if read is default else read,
            self._connect_timeout if connect is default else connect,
            self._pool_timeout if pool is default else pool,
        )

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("the transport is not initialized")
        timeout = self._timeout_for_call(read_timeout, connect_timeout, pool_timeout)
        body: bytes | aiohttp.MultipartWriter | None = None
        headers: dict[str, str] | None = None
        if request_data is not None and request_data.contains_files:
            body = self._form(
                request_data,
                self._write_timeout if write_timeout is BaseRequest.DEFAULT_NONE else write_timeout,
            )
        elif request_data is not None:
            body, headers = request_data.json_payload, _JSON_HEADERS
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut("the Bot API did not answer in time") from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            # aiohttp reports whatever failed while the body was written as a connection
            # error; a file that could not be read is said as such.
            if isinstance(exc.__cause__, FileStreamBroken):
                raise exc.__cause__ from exc.__cause__.__cause__
            raise NetworkError(f"the Bot API could not be reached: {exc}") from exc

    @staticmethod
    def _form(request_data: RequestData, write_timeout: float | None) -> aiohttp.MultipartWriter:
        """multipart/form-data of the call: its parameters as text parts, then its files.

        File names go out as UTF-8, as browsers send them; aiohttp's default would
        percent-encode them, and the Bot API would show the escapes as the name.
        """
        form = aiohttp.MultipartWriter("form-data")
        for name, value in request_data.json_parameters.items():
            form.append(value).set_content_disposition("form-data", name=name)
        for name, (filename, content, mime_type) in request_data.multipart_data.items():
            if not isinstance(content, bytes | FileStream):
                raise TelegramError("this transport uploads files from bytes or a FileStream")
            part = _FileSlices(content, mime_type, write_timeout)
            part.set_content_disposition(
                "form-data",
                quote_fields=False,
                name=name,
                filename=(filename or name).translate(_HEADER_BREAKS),
            )
            form.append_payload(part)
        return form
