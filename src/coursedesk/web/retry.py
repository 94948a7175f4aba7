"""A request whose unit of work lost a race to another transaction is run again.

The error handler turns a deadlock or serialization failure into `LostRace`
(web/errors.py); this middleware, outside the handlers and before any byte of the
answer is sent, runs the whole request again with the same body: its unit of work
rolled back, so nothing was written. Only after `ATTEMPTS` lost races does the caller
see a 503. A body too large to keep (an upload) is not kept, and its request not retried:
one declared larger is passed on untouched, and one sent without a length (chunked) is
read only up to the limit, then passed on, what was read first and the rest as it comes.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursedesk.db.retry import ATTEMPTS, backoff_seconds

log = logging.getLogger(__name__)

MAX_REPLAYED_BODY = 1024 * 1024
BUSY = "the database is busy; try again shortly"


class LostRace(Exception):
    """The request's unit of work was rolled back by a deadlock or serialization failure."""


class RetryLostRaces:
    def __init__(self, app: ASGIApp, *, attempts: int = ATTEMPTS) -> None:
        self.app = app
        self.attempts = attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _declared_length(scope) > MAX_REPLAYED_BODY:
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if not complete:
            await self.app(scope, _replay(body, receive, more_body=True), send)
            return
        for attempt in range(1, self.attempts + 1):
            started = False

            async def noting_start(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await self.app(scope, _replay(body, receive), noting_start)
                return
            except LostRace as exc:
                if started:
                    raise
                cause = exc.__cause__
                if attempt == self.attempts:
                    log.warning(
                        "%s %s lost %d races: %s", scope["method"], scope["path"], attempt, cause
                    )
                    await _busy(send)
                    return
                await asyncio.sleep(backoff_seconds(attempt))


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The body, or its first MAX_REPLAYED_BODY bytes or more; whether it is all there."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
        if size > MAX_REPLAYED_BODY:
            return b"".join(chunks), False
    return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, *, more_body: bool = False) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay


async def _busy(send: Send) -> None:
    payload = json.dumps({"error": BUSY}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
