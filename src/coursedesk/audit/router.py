"""`GET /api/audit`: the audit log for admins, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from coursedesk.audit.service import AuditFilter, list_entries
from coursedesk.web.deps import Admin, Session
from coursedesk.web.schemas import Timestamp

router = APIRouter(prefix="/api", tags=["audit"])


class AuditItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: Timestamp
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: str
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditItem]
    total: int


@router.get(
    "/audit",
    summary="The audit log, newest first (admin)",
    description=(
        "Every change made through the app (sign-ins, users, tokens, db-migrate, edits) and "
        "every UPDATE or DELETE of a source table, by the app or by plain SQL (`source` "
        "tells which). `action` with a dot matches that action (`auth.login`); a bare "
        "family name matches the family (`auth`: `auth.login`, `auth.logout`, ...). "
        "`actor` matches exactly. Answers `{items, total}`."
    ),
)
async def audit_log(
    _: Admin,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")] = None,
    actor: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f]+$")] = None,
) -> AuditPage:
    entries, total = await list_entries(
        session, AuditFilter(action=action, actor=actor), limit=limit, offset=offset
    )
    return AuditPage(items=[AuditItem.model_validate(entry) for entry in entries], total=total)
