"""`GET /api/db-schema`: the live schema with its keys, indexes and row estimates."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session as SyncSession

from coursedesk.db.inspect import SchemaInfo, read_schema
from coursedesk.web.deps import Session, Viewer

router = APIRouter(prefix="/api", tags=["system"])


def _read(session: SyncSession) -> SchemaInfo:
    return read_schema(session.connection())


# The primary, not the replica: its statistics (the row estimates) are the live ones.
@router.get(
    "/db-schema",
    summary="Tables, columns, primary and foreign keys, indexes and row estimates",
)
async def db_schema(_: Viewer, session: Session) -> SchemaInfo:
    return await session.run_sync(_read)
