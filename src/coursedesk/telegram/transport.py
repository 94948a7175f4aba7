"""The HTTP transport python-telegram-bot sends through: aiohttp, JSON bodies, kept-alive.

python-telegram-bot's own HTTPXRequest spends about 3 ms of CPU per request once dozens
of requests are in flight (httpx's connection pool walks every connection for each
request); a worker sent 550-580 messages a second with it on a quiet machine. This
transport keeps one aiohttp session with a pool of kept-alive connections, about an
eighth of that cost (docs/benchmarks.md). Parameters go as one JSON body, which the Bot
API accepts for every method that uploads no file, so neither side builds or parses a
form.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

KEEPALIVE_SECONDS = 30.0
"""How long an idle connection is kept for the next request."""

_JSON_HEADERS = {"Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    """A `telegram.request.BaseRequest` on one aiohttp session of up to `connection_limit`.

    The timeouts are python-telegram-bot's: `connect_timeout` to open a connection,
    `pool_timeout` more to wait for a free one, `read_timeout` between two reads of the
    answer. aiohttp has no write timeout; a request this small is written at once.
    Uploading files is refused: coursedesk never sends any.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_limit",
        "_default_timeout",
        "_pool_timeout",
        "_read_timeout",
        "_session",
    )

    def __init__(
        self,
        *,
        connection_limit: int,
        read_timeout: float,
        connect_timeout: float,
        pool_timeout: float,
    ) -> None:
        self._connection_limit = connection_limit
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
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
        if request_data is not None and request_data.contains_files:
            raise TelegramError("this transport does not upload files")
        timeout = self._timeout_for_call(read_timeout, connect_timeout, pool_timeout)
        body = request_data.json_payload if request_data is not None else None
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=_JSON_HEADERS if body is not None else None,
                timeout=timeout,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut("the Bot API did not answer in time") from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise NetworkError(f"the Bot API could not be reached: {exc}") from exc
