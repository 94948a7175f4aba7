"""`GET /r/{token}`: a student's click on a tracked link, counted and sent on its way.

No sign-in: the students who click are not staff. The token is checked before the
database is asked anything (broadcasts/link_tokens.py); a token that checks out is looked
up, recorded and answered in one statement on the primary (broadcasts/clicks.py), as a
click writes. The answer only ever leads to a link the recipient's broadcast was sent
with. Anything else is a 404 page a student can read, and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts.clicks import follow_link
from coursedesk.broadcasts.link_tokens import LinkKeys
from coursedesk.config import Settings
from coursedesk.db.engine import Database, create_app_engine

router = APIRouter(tags=["broadcasts"])

LINK_PREVIEW_AGENTS = ("TelegramBot",)
"""User agents that fetch a link to preview it in a chat (Telegram's, "TelegramBot (like
TwitterBot)"): they are led on, but are no student's click."""
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Link not found</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1f2933; background: #f5f7fa; }
main { max-width: 32rem; margin: 15vh auto; padding: 2rem; background: #fff;
       border-radius: 12px; box-shadow: 0 1px 3px rgba(0, 0, 0, .1); }
h1 { font-size: 1.4rem; margin: 0 0 .75rem; }
p { margin: 0; color: #52606d; }
</style>
</head>
<body>
<main>
<h1>This link does not lead anywhere</h1>
<p>It may have been copied incompletely, or the message it came in has been withdrawn.
Open the link from the message itself, or ask the school for the address.</p>
</main>
</body>
</html>
"""
_NO_TRACES = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@asynccontextmanager
async def click_engine(app: FastAPI, settings: Settings, database: Database) -> AsyncIterator[None]:
    """app.state.click_engine: the primary on a pool of its own, in autocommit and with no
    ping before each use, so that a click is one statement in one round trip. A connection
    the server dropped is found by the click that meets it, which is tried once more."""
    engine = create_app_engine(
        database.primary.url.render_as_string(hide_password=False),
        settings,
        application_name="coursedesk-clicks",
        pre_ping=False,
    )
    app.state.click_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield
    finally:
        await engine.dispose()


async def _follow(
    engine: AsyncEngine, recipient_id: int, position: int, *, record: bool
) -> str | None:
    for attempt in (1, 2):
        try:
            async with engine.connect() as connection:
                return await follow_link(connection, recipient_id, position, record=record)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _not_found() -> HTMLResponse:
    return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=_NO_TRACES)


# Not in the OpenAPI document: it is the students' way through, not part of the API
# (docs/reference.md §8 describes it).
@router.api_route("/r/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def follow(token: str, request: Request) -> Response:
    """302 to the link the token was issued for, its click recorded: one per recipient and
    link, repeats counted apart. HEAD requests and link previews are led on uncounted."""
    state = request.app.state
    database: Database = state.database
    keys: LinkKeys = state.link_keys
    signer = keys.loaded or await keys.signer(database.primary)
    verified = signer.verify(token)
    if verified is None:
        return _not_found()
    recipient_id, position = verified
    agent = request.headers.get("user-agent", "")
    record = request.method == "GET" and not any(bot in agent for bot in LINK_PREVIEW_AGENTS)
    url = await _follow(state.click_engine, recipient_id, position, record=record)
    if url is None:
        return _not_found()
    return RedirectResponse(url, status_code=302, headers=_NO_TRACES)
