"""Read-your-writes with a replica: a browser that just changed something reads the
primary for a few seconds.

A staff edit commits on the primary; the replica shows it only once it has replayed it,
up to REPLICA_MAX_LAG_SECONDS later. So every successful change made through the app
(a POST, PUT, PATCH or DELETE answered below 400) sets a short-lived cookie, and the
read session (web/deps.py) keeps to the primary while the browser sends it: the page
an edit leads to, and any page opened right after, shows the edit at once. Without a
replica nothing is set.
"""

from __future__ import annotations

import math
from http.cookies import SimpleCookie

from starlette.types import ASGIApp, Message, Receive, Scope, Send

RECENT_WRITE_COOKIE = "coursedesk_wrote"
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def recent_write_cookie(seconds: float, *, secure: bool) -> bytes:
    cookie: SimpleCookie = SimpleCookie()
    cookie[RECENT_WRITE_COOKIE] = "1"
    morsel = cookie[RECENT_WRITE_COOKIE]
    morsel["max-age"] = str(math.ceil(seconds) + 1)
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString().encode("latin-1")


class ReadYourWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        database = getattr(getattr(scope.get("app"), "state", None), "database", None)
        if (
            scope["type"] != "http"
            or scope["method"] not in _CHANGES
            or database is None
            or database.router is None
        ):
            await self.app(scope, receive, send)
            return

        async def marking(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                cookie = recent_write_cookie(
                    database.max_replica_lag_seconds, secure=scope.get("scheme") == "https"
                )
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, marking)
