"""Writing and reading the audit log; writes join the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coursedesk.audit.models import AuditEntry


def _json(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # Rows handed in may hold datetimes and Decimals, which JSONB cannot take as they are.
    return None if value is None else dict(to_jsonable_python(value))


async def record(
    session: AsyncSession | AsyncConnection,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add one entry in the caller's transaction: it is kept only if that commits."""
    await session.execute(
        insert(AuditEntry).values(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            before=_json(before),
            after=_json(after),
            details=_json(details),
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    """`action` with a dot matches exactly; a bare family name matches the whole family.

    So `auth.login` is one action and `auth` is `auth.login`, `auth.logout`, ... too.
    """

    action: str | None = None
    actor: str | None = None


def _filtered(statement: Select[Any], where: AuditFilter) -> Select[Any]:
    if where.action and "." in where.action:
        statement = statement.where(AuditEntry.action == where.action)
    elif where.action:
        statement = statement.where(
            or_(
                AuditEntry.action == where.action,
                AuditEntry.action.startswith(where.action + ".", autoescape=True),
            )
        )
    if where.actor:
        statement = statement.where(AuditEntry.actor == where.actor)
    return statement


async def list_entries(
    session: AsyncSession, where: AuditFilter, *, limit: int, offset: int
) -> tuple[Sequence[AuditEntry], int]:
    """One page of entries, newest first, and how many match in all."""
    entries = await session.scalars(
        _filtered(select(AuditEntry), where)
        .order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(_filtered(select(func.count()).select_from(AuditEntry), where))
    return entries.all(), total or 0
