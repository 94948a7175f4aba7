"""Sign-in throttling: too many recent failures per username or per address are refused.

Failures live in `login_attempts`, so every process of the app sees the same count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.models import LoginAttempt

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
# Looser than the per-username limit: several people may sign in from one office address.
MAX_FAILURES_PER_ADDRESS = 20
# Namespace of the advisory locks that serialise sign-ins to one username.
_LOCK_NAMESPACE = 7_130_412


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in is refused without checking the password, and for how long."""

    reason: str
    retry_after_seconds: int


async def lock_username(session: AsyncSession, username: str) -> None:
    """Serialise sign-ins to one username until the transaction ends.

    Without it, parallel guesses would each read the count before any of them recorded
    its failure, and a burst could try far more passwords than the limit allows.
    """
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:username))"),
        {"namespace": _LOCK_NAMESPACE, "username": username},
    )


async def _time_until_below_limit(
    session: AsyncSession, match: ColumnElement[bool], limit: int
) -> timedelta | None:
    """How long until the failures matching `match` drop below `limit`, if they are at it."""
    limit_th_latest = (
        select(LoginAttempt.attempted_at)
        .where(match, LoginAttempt.attempted_at > func.now() - WINDOW)
        .order_by(LoginAttempt.attempted_at.desc())
        .offset(limit - 1)
        .limit(1)
        .scalar_subquery()
    )
    remaining: timedelta | None = await session.scalar(
        select(limit_th_latest + WINDOW - func.now())
    )
    return remaining


async def refusal(session: AsyncSession, username: str, address: str) -> Refusal | None:
    """A Refusal when this username or address has failed too often in the window."""
    checks = (
        (LoginAttempt.username == username, MAX_FAILURES_PER_USERNAME, "this username"),
        (LoginAttempt.address == address, MAX_FAILURES_PER_ADDRESS, "this address"),
    )
    for match, limit, subject in checks:
        remaining = await _time_until_below_limit(session, match, limit)
        if remaining is not None:
            seconds = max(1, math.ceil(remaining.total_seconds()))
            minutes = math.ceil(seconds / 60)
            return Refusal(
                reason=(
                    f"Too many failed sign-ins for {subject}. "
                    f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
                ),
                retry_after_seconds=seconds,
            )
    return None


async def record_failure(session: AsyncSession, username: str, address: str) -> None:
    """Count one failure, forgetting this username's and address's expired ones."""
    await session.execute(
        delete(LoginAttempt).where(
            (LoginAttempt.username == username) | (LoginAttempt.address == address),
            LoginAttempt.attempted_at <= func.now() - WINDOW,
        )
    )
    await session.execute(insert(LoginAttempt).values(username=username, address=address))


async def clear_failures(session: AsyncSession, username: str) -> None:
    await session.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
