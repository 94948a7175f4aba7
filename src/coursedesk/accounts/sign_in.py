"""Signing in and out: throttling, the password check, the session and their audit entries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts import throttle
from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import (
    Principal,
    attempted_username,
    authenticate_password,
    end_session,
    start_session,
)
from coursedesk.audit.service import record

# A failed sign-in proves nobody's identity, so it is not put in the name of the account.
ANONYMOUS_ACTOR = "anonymous"


@dataclass(frozen=True)
class SignedIn:
    session_id: str
    principal: Principal


@dataclass(frozen=True)
class WrongCredentials:
    """The username or the password is wrong; which one is not told."""


async def sign_in(
    session: AsyncSession, username: str, password: str, address: str
) -> SignedIn | WrongCredentials | throttle.Refusal:
    """Check a password unless throttled; every outcome but a refusal is audited.

    A failure is recorded in the caller's transaction, so the caller must commit it
    even though the sign-in did not succeed.
    """
    attempted = attempted_username(username)
    await throttle.lock_username(session, attempted)
    refused = await throttle.refusal(session, attempted, address)
    if refused is not None:
        return refused
    user = await authenticate_password(session, attempted, password)
    if user is None:
        await throttle.record_failure(session, attempted, address)
        await record(
            session,
            ANONYMOUS_ACTOR,
            "auth.login_failed",
            "staff_user",
            details={"username": attempted, "address": address},
        )
        return WrongCredentials()
    await throttle.clear_failures(session, attempted)
    session_id, web_session = await start_session(session, user)
    await record(
        session, user.username, "auth.login", "staff_user", user.id, details={"address": address}
    )
    principal = Principal(
        name=user.username,
        role=Role(user.role),
        via="session",
        user_id=user.id,
        csrf_token=web_session.csrf_token,
    )
    return SignedIn(session_id=session_id, principal=principal)


async def sign_out(session: AsyncSession, principal: Principal, session_id: str) -> None:
    await end_session(session, session_id)
    await record(session, principal.name, "auth.logout", "staff_user", principal.user_id)
