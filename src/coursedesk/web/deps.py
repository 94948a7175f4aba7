"""Request dependencies: the unit of work, the caller and their role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.roles import Role
from coursedesk.accounts.secrets import secrets_match
from coursedesk.accounts.service import Principal, principal_for_session, principal_for_token
from coursedesk.accounts.signing import session_id_from_cookie
from coursedesk.analytics.folding import fold_now, wants_fold
from coursedesk.cache.answers import AnswerCache
from coursedesk.cache.reads import CachedReads
from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.web.fresh_reads import RECENT_WRITE_COOKIE
from coursedesk.web.retry import LostRace

SESSION_COOKIE = "coursedesk_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Dependencies are coroutines, even those that only read app state: FastAPI runs a plain
# function in its thread pool, a hand-off that costs more than the function itself.


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def db_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the handler returns, else rolled back.

    An edit of the bot's tables is folded into the summaries right after the commit, so
    the page it leads to shows it in every figure.
    """
    async with database.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        if wants_fold(session):
            await fold_now(database.primary)


Session = Annotated[AsyncSession, Depends(db_session, scope="function")]


class ReplicaLost(LostRace):
    """The replica's connection broke during a request; nothing was written there, so
    the request can run again from the start, on the primary."""


async def _replica_session(database: Database) -> AsyncSession | None:
    """A session on the replica with its connection in hand; None, and the replica marked
    down until the next probe reaches it, when it cannot be reached."""
    assert database.replica_sessions is not None and database.router is not None
    session = database.replica_sessions()
    try:
        await session.connection()
    except (DBAPIError, OSError) as exc:
        await session.close()
        database.router.mark_down(exc)
        return None
    return session


async def read_session(
    request: Request, database: Annotated[Database, Depends(get_database)], session: Session
) -> AsyncIterator[AsyncSession]:
    """For reads that promise fresh figures: a read-only session on the replica while it
    keeps up (db/replica.py) and this browser made no change in the last few seconds
    (web/fresh_reads.py); otherwise the request's own unit of work on the primary, so
    that a request holds one connection, not two. A replica that cannot be reached is
    not an error: the request reads the primary."""
    replica_session = None
    if database.reads_replica and RECENT_WRITE_COOKIE not in request.cookies:
        replica_session = await _replica_session(database)
    if replica_session is None:
        yield session
        return
    try:
        yield replica_session
    except DBAPIError as exc:
        if not exc.connection_invalidated or database.router is None:
            raise
        # The replica went away during the request: it reads the primary from now on,
        # and this request is run again (web/retry.py), on the primary.
        database.router.mark_down(exc)
        raise ReplicaLost from exc
    finally:
        await replica_session.close()


ReadSession = Annotated[AsyncSession, Depends(read_session, scope="function")]


async def get_cache(request: Request) -> AnswerCache:
    cache: AnswerCache = request.app.state.cache
    return cache


async def cached_reads(
    session: ReadSession, cache: Annotated[AnswerCache, Depends(get_cache)]
) -> CachedReads:
    """Service reads on the read session, through the answer cache."""
    return CachedReads(session, cache)


CachedRead = Annotated[CachedReads, Depends(cached_reads)]


async def _csrf_token_sent(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    # A multipart body is not parsed for it: that would read a whole upload before the
    # route streams it (web/uploads.py). Uploads carry the token in the header.
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        value = form.get(CSRF_FORM_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse (403) a cookie-borne mutation that does not carry its session's CSRF token.

    A bearer token is never sent by a browser on its own, so it needs no such proof.
    """
    if principal.via != "session" or request.method in _SAFE_METHODS:
        return
    sent = await _csrf_token_sent(request)
    if not sent or not secrets_match(sent, principal.csrf_token or ""):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")


def session_id_of(request: Request) -> str | None:
    """The id in the request's session cookie, if the cookie was signed by this app."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    return session_id_from_cookie(settings_of(request).secret_key, cookie)


async def optional_principal(request: Request, session: Session) -> Principal | None:
    """The caller by bearer token or session cookie, or None when anonymous."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return await principal_for_token(session, credentials.strip())
    session_id = session_id_of(request)
    if session_id:
        return await principal_for_session(session, session_id)
    return None


async def _admit(request: Request, session: AsyncSession, principal: Principal) -> Principal:
    await check_csrf(request, principal)
    if request.method not in _SAFE_METHODS:
        await session.execute(
            text("SELECT set_config('coursedesk.actor', :actor, true)"),
            {"actor": principal.actor},
        )
    return principal


async def current_principal(
    request: Request,
    session: Session,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """The signed-in caller (401 otherwise); cookie-borne mutations must carry the CSRF token.

    The caller is also named as the actor of the request's transaction, so that the
    audit triggers on the source tables record who made each change.
    """
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="authentication required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await _admit(request, session, principal)


def login_url(request: Request) -> str:
    """/login, with the page asked for as `next` so that signing in leads back to it."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if wanted == "/" else f"/login?{urlencode({'next': wanted})}"


async def page_principal(
    request: Request,
    session: Session,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """Like current_principal, but an anonymous visitor of a page is sent to /login."""
    if principal is None:
        raise HTTPException(
            status_code=303, detail="sign in first", headers={"Location": login_url(request)}
        )
    return await _admit(request, session, principal)


MAX_FORM_WITH_FILE = 50 * 1024 * 1024 + 4 * 1024 * 1024
"""A page form posted with a file: Telegram's largest upload, and the form's other fields."""
MAX_FORM_FIELD_BYTES = 3 * 1024 * 1024


async def page_principal_posting_a_file(
    request: Request,
    session: Session,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> AsyncIterator[Principal]:
    """page_principal for a page form posted as multipart/form-data with one file, as a
    browser without the page's script sends a file input. Such a form cannot put its
    CSRF token in a header, so the form is read first, whole but within
    MAX_FORM_WITH_FILE bytes (its length said up front), and the token taken from it;
    the route reads the same parsed form, whose files are closed once it is done."""
    if principal is None:
        raise HTTPException(
            status_code=303, detail="sign in first", headers={"Location": login_url(request)}
        )
    length = request.headers.get("content-length", "")
    if not (length.isascii() and length.isdigit()):
        raise HTTPException(status_code=411, detail="send the form with its length")
    if int(length) > MAX_FORM_WITH_FILE:
        raise HTTPException(
            status_code=413,
            detail=f"the form is over {MAX_FORM_WITH_FILE // (1024 * 1024)} MB",
        )
    form = await request.form(max_files=1, max_fields=200, max_part_size=MAX_FORM_FIELD_BYTES)
    try:
        sent = form.get(CSRF_FORM_FIELD)
        from_browser = principal.via == "session"
        if from_browser and not (
            isinstance(sent, str) and secrets_match(sent, principal.csrf_token or "")
        ):
            raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
        await session.execute(
            text("SELECT set_config('coursedesk.actor', :actor, true)"),
            {"actor": principal.actor},
        )
        yield principal
    finally:
        await form.close()


def check_role(principal: Principal, role: Role) -> Principal:
    """The principal, if their role includes `role`; 403 otherwise."""
    if not principal.role.allows(role):
        raise HTTPException(status_code=403, detail=f"this needs the {role.value} role")
    return principal


@cache
def require_role(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """The API dependency for `role`; one function per role, so routes can be told apart."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        return check_role(principal, role)

    return dependency


@cache
def require_page_role_posting_a_file(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """require_page_role for a page form posted with a file (page_principal_posting_a_file)."""

    async def dependency(
        principal: Annotated[Principal, Depends(page_principal_posting_a_file, scope="function")],
    ) -> Principal:
        return check_role(principal, role)

    return dependency


@cache
def require_page_role(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """The page dependency for `role`: anonymous visitors are redirected to /login."""

    async def dependency(
        principal: Annotated[Principal, Depends(page_principal)],
    ) -> Principal:
        return check_role(principal, role)

    return dependency


Viewer = Annotated[Principal, Depends(require_role(Role.viewer))]
Operator = Annotated[Principal, Depends(require_role(Role.operator))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]
PageViewer = Annotated[Principal, Depends(require_page_role(Role.viewer))]
