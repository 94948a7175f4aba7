"""Staff users, API tokens and web sessions: creation and lookup."""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.models import ApiToken, StaffUser, WebSession
from coursedesk.accounts.roles import Role
from coursedesk.accounts.secrets import digest, hash_password, new_token, verify_password
from coursedesk.errors import Conflict, InvalidInput

SESSION_LIFETIME = timedelta(hours=12)
USERNAME_MAX = 64
PASSWORD_MIN = 8


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and through what."""

    name: str
    role: Role
    via: str  # "session" or "token"
    user_id: int | None = None
    csrf_token: str | None = None

    @property
    def actor(self) -> str:
        return self.name if self.via == "session" else f"token:{self.name}"


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if (
        not name
        or len(name) > USERNAME_MAX
        or not name.replace("_", "").replace(".", "").replace("-", "").isalnum()
    ):
        raise InvalidInput("username must be 1-64 letters, digits, '.', '_' or '-'")
    return name


async def create_user(session: AsyncSession, username: str, password: str, role: Role) -> StaffUser:
    name = normalise_username(username)
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"password must be at least {PASSWORD_MIN} characters")
    taken = await session.scalar(select(StaffUser.id).where(StaffUser.username == name))
    if taken is not None:
        raise Conflict(f"user {name!r} already exists")
    user = StaffUser(username=name, password_hash=hash_password(password), role=role.value)
    session.add(user)
    await session.flush()
    return user


async def authenticate_password(
    session: AsyncSession, username: str, password: str
) -> StaffUser | None:
    user = await session.scalar(
        select(StaffUser).where(
            StaffUser.username == username.strip().lower(), StaffUser.is_active.is_(True)
        )
    )
    if not verify_password(user.password_hash if user else None, password):
        return None
    return user


async def create_token(
    session: AsyncSession, role: Role, name: str, created_by: str | None
) -> tuple[ApiToken, str]:
    token = new_token()
    row = ApiToken(name=name, token_hash=digest(token), role=role.value, created_by=created_by)
    session.add(row)
    await session.flush()
    return row, token


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    row = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    await session.execute(
        update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=func.now())
    )
    return Principal(name=row.name, role=Role(row.role), via="token")


async def start_session(session: AsyncSession, user: StaffUser) -> tuple[str, WebSession]:
    """A fresh session id for every sign-in, so a planted id is never promoted."""
    session_id = pysecrets.token_urlsafe(32)
    row = WebSession(
        id_hash=digest(session_id),
        user_id=user.id,
        csrf_token=pysecrets.token_urlsafe(32),
        expires_at=datetime.now(UTC) + SESSION_LIFETIME,
    )
    session.add(row)
    await session.flush()
    return session_id, row


async def principal_for_session(session: AsyncSession, session_id: str) -> Principal | None:
    row = (
        await session.execute(
            select(WebSession, StaffUser)
            .join(StaffUser, StaffUser.id == WebSession.user_id)
            .where(
                WebSession.id_hash == digest(session_id),
                WebSession.expires_at > func.now(),
                StaffUser.is_active.is_(True),
            )
        )
    ).first()
    if row is None:
        return None
    web_session, user = row
    return Principal(
        name=user.username,
        role=Role(user.role),
        via="session",
        user_id=user.id,
        csrf_token=web_session.csrf_token,
    )


async def end_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.id_hash == digest(session_id)))
