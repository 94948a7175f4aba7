"""Staff users, API tokens and web sessions: creation, lookup, and taking access away."""

from __future__ import annotations

import asyncio
import secrets as pysecrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.models import ApiToken, StaffUser, WebSession
from coursedesk.accounts.roles import Role
from coursedesk.accounts.secrets import digest, hash_password, new_token, verify_password
from coursedesk.audit.service import record
from coursedesk.errors import Conflict, InvalidInput, NotFound

SESSION_LIFETIME = timedelta(hours=12)
USERNAME_MAX = 64
PASSWORD_MIN = 8
TOKEN_NAME_MAX = 64
# last_used_at is news to a person, not to the second: touching it on every request would
# make concurrent requests with one token queue on its row lock.
_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and through what."""

    name: str
    role: Role
    via: str  # "session" or "token"
    user_id: int | None = None
    csrf_token: str | None = None
    token_id: int | None = None

    @property
    def actor(self) -> str:
        return self.name if self.via == "session" else f"token:{self.name}"

    @property
    def account(self) -> str:
        """The staff account behind the request, `user:ID` or `token:ID`: unlike the
        actor's name, never shared by two tokens."""
        return f"user:{self.user_id}" if self.via == "session" else f"token:{self.token_id}"


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if (
        not name
        or len(name) > USERNAME_MAX
        or not name.replace("_", "").replace(".", "").replace("-", "").isalnum()
    ):
        raise InvalidInput("username must be 1-64 letters, digits, '.', '_' or '-'")
    return name


def attempted_username(username: str) -> str:
    """A typed-in username made safe to count and log, whether or not it is valid."""
    printable = "".join(char for char in username if char.isprintable())
    return printable.strip().lower()[:USERNAME_MAX]


async def create_user(
    session: AsyncSession,
    username: str,
    password: str,
    role: Role,
    *,
    created_by: str | None = None,
) -> StaffUser:
    """Add a staff user with an argon2 hash of the password; audited as `user.create`."""
    name = normalise_username(username)
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"password must be at least {PASSWORD_MIN} characters")
    taken = await session.scalar(select(StaffUser.id).where(StaffUser.username == name))
    if taken is not None:
        raise Conflict(f"user {name!r} already exists")
    # argon2 is slow on purpose; off the event loop, it does not stall other requests.
    password_hash = await asyncio.to_thread(hash_password, password)
    user = StaffUser(username=name, password_hash=password_hash, role=role.value)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"user {name!r} already exists") from exc
    await record(
        session,
        created_by or SYSTEM_ACTOR,
        "user.create",
        "staff_user",
        user.id,
        after={"username": name, "role": role.value},
    )
    return user


async def _user_named(session: AsyncSession, username: str) -> StaffUser:
    user = await session.scalar(
        select(StaffUser)
        .where(StaffUser.username == normalise_username(username))
        .with_for_update()
    )
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


async def _end_sessions_of(session: AsyncSession, user: StaffUser) -> None:
    await session.execute(delete(WebSession).where(WebSession.user_id == user.id))


async def set_password(
    session: AsyncSession, username: str, password: str, *, changed_by: str | None = None
) -> StaffUser:
    """Give an existing staff user a new password and sign them out everywhere; audited
    as `user.password`."""
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"password must be at least {PASSWORD_MIN} characters")
    user = await _user_named(session, username)
    user.password_hash = await asyncio.to_thread(hash_password, password)
    await _end_sessions_of(session, user)
    await session.flush()
    await record(session, changed_by or SYSTEM_ACTOR, "user.password", "staff_user", user.id)
    return user


async def set_active(
    session: AsyncSession, username: str, active: bool, *, changed_by: str | None = None
) -> tuple[StaffUser, bool]:
    """Let a staff user sign in again, or stop them (their sessions end at once).

    Answers the user and whether anything changed; a change is audited as
    `user.enable` or `user.disable`.
    """
    user = await _user_named(session, username)
    if user.is_active == active:
        return user, False
    user.is_active = active
    if not active:
        await _end_sessions_of(session, user)
    await session.flush()
    await record(
        session,
        changed_by or SYSTEM_ACTOR,
        "user.enable" if active else "user.disable",
        "staff_user",
        user.id,
        before={"is_active": not active},
        after={"is_active": active},
    )
    return user, True


async def list_users(session: AsyncSession) -> Sequence[StaffUser]:
    return (await session.scalars(select(StaffUser).order_by(StaffUser.username))).all()


async def authenticate_password(
    session: AsyncSession, username: str, password: str
) -> StaffUser | None:
    user = await session.scalar(
        select(StaffUser).where(
            StaffUser.username == attempted_username(username), StaffUser.is_active.is_(True)
        )
    )
    stored = user.password_hash if user else None
    if not await asyncio.to_thread(verify_password, stored, password):
        return None
    return user


def _token_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > TOKEN_NAME_MAX or not cleaned.isprintable():
        raise InvalidInput(f"token name must be 1-{TOKEN_NAME_MAX} printable characters")
    return cleaned


async def create_token(
    session: AsyncSession, role: Role, name: str, created_by: str | None
) -> tuple[ApiToken, str]:
    """A new bearer token (returned once, stored as a digest); audited as `token.create`."""
    token = new_token()
    row = ApiToken(
        name=_token_name(name), token_hash=digest(token), role=role.value, created_by=created_by
    )
    session.add(row)
    await session.flush()
    await record(
        session,
        created_by or SYSTEM_ACTOR,
        "token.create",
        "api_token",
        row.id,
        after={"name": row.name, "role": role.value},
    )
    return row, token


async def revoke_token(
    session: AsyncSession, token_id: int, *, revoked_by: str | None = None
) -> tuple[ApiToken, bool]:
    """Refuse a token from now on. Answers the token and whether it was in use until now;
    revoking is audited as `token.revoke`."""
    row = await session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is not None:
        return row, False
    row.revoked_at = datetime.now(UTC)
    await session.flush()
    await record(
        session,
        revoked_by or SYSTEM_ACTOR,
        "token.revoke",
        "api_token",
        row.id,
        before={"name": row.name, "role": row.role},
    )
    return row, True


async def list_tokens(session: AsyncSession) -> Sequence[ApiToken]:
    """Every token ever made, revoked ones included (they show what access there was)."""
    return (await session.scalars(select(ApiToken).order_by(ApiToken.id))).all()


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    row = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at < datetime.now(UTC) - _TOKEN_TOUCH_INTERVAL:
        unlocked = (
            select(ApiToken.id).where(ApiToken.id == row.id).with_for_update(skip_locked=True)
        )
        await session.execute(
            update(ApiToken).where(ApiToken.id.in_(unlocked)).values(last_used_at=func.now())
        )
    return Principal(name=row.name, role=Role(row.role), via="token", token_id=row.id)


async def start_session(session: AsyncSession, user: StaffUser) -> tuple[str, WebSession]:
    """A fresh session id for every sign-in, so a planted id is never promoted."""
    await session.execute(
        delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires_at <= func.now())
    )
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
