"""The system page: health, migrations, the schema, and for admins the audit log and SQL."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session as SyncSession

from coursedesk import __version__
from coursedesk.accounts.roles import Role
from coursedesk.analytics import folding
from coursedesk.analytics.folding import read_freshness
from coursedesk.analytics.wal_capture import CaptureState, capture_state
from coursedesk.audit.service import AuditFilter, list_entries
from coursedesk.db.engine import Database
from coursedesk.db.inspect import SchemaInfo, read_schema
from coursedesk.db.migrations import MigrationStatus
from coursedesk.pages.paging import PageNumber, pages_of
from coursedesk.pages.rendering import render_page
from coursedesk.pages.routes import page_router
from coursedesk.system.migrate import SCRIPT_LIMITS, SQL_MAX_CHARS
from coursedesk.system.router import HEALTH_TIMEOUT_SECONDS, migration_status, replica_body
from coursedesk.web.deps import PageViewer, Session, get_database

log = logging.getLogger(__name__)

router = page_router()

AUDIT_ENTRIES_PER_PAGE = 25
AuditAction = Annotated[str, Query(max_length=100, pattern=r"^[A-Za-z0-9_.\-]*$")]


async def migrations_or_none(database: Database) -> MigrationStatus | None:
    """The migration state, or None when the database does not answer in time."""
    try:
        return await asyncio.wait_for(migration_status(database), HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # whatever the failure, the page shows the database as down
        log.warning("system page: database unreachable: %s", exc)
        return None


def _schema(session: SyncSession) -> SchemaInfo:
    return read_schema(session.connection())


def _capture(session: SyncSession) -> CaptureState:
    return capture_state(session.connection())


@router.get("/system")
async def system_page(
    request: Request,
    principal: PageViewer,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
    action: AuditAction = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    migrations = await migrations_or_none(database)
    schema = await session.run_sync(_schema)
    # The folding state's tables and columns come with the migrations: read them once
    # the schema is current (until then the page says to migrate).
    current = migrations is not None and migrations.is_current
    capture = await session.run_sync(_capture) if current else None
    freshness = await read_freshness(await session.connection()) if current else None
    context: dict[str, Any] = {
        "version": __version__,
        "migrations": migrations,
        "tables": schema.tables,
        "rows_estimate": sum(table.row_estimate or 0 for table in schema.tables),
        "sql_max_chars": SQL_MAX_CHARS,
        "script_seconds": f"{SCRIPT_LIMITS.seconds:g}",
        "audit_action": action,
        "replica": replica_body(database),
        "freshness": freshness,
        "capture": capture,
        "fold_retry_seconds": f"{folding.FAILURE_RETRY_SECONDS:g}",
    }
    if principal.role.allows(Role.admin):
        entries, total = await list_entries(
            session,
            AuditFilter(action=action or None),
            limit=AUDIT_ENTRIES_PER_PAGE,
            offset=(page - 1) * AUDIT_ENTRIES_PER_PAGE,
        )
        context["audit_entries"] = entries
        context["pages"] = pages_of(request, total=total, limit=AUDIT_ENTRIES_PER_PAGE, page=page)
    return render_page(request, principal, "system/page.html", context, section="system")
