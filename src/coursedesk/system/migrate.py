"""`POST /api/db-migrate`: an admin's SQL run as one audited transaction on the primary."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.analytics.folding import fold_now
from coursedesk.audit.service import record
from coursedesk.db.engine import Database
from coursedesk.system.sql_runner import (
    ScriptFailed,
    StatementResult,
    check_script,
    execute_script,
    prepare_transaction,
    restore_search_path,
    server_errors_fail_the_script,
)
from coursedesk.web.deps import Admin, Session, get_database
from coursedesk.web.errors import error_response

router = APIRouter(prefix="/api", tags=["system"])

STATEMENT_TIMEOUT_MS = 30_000
SQL_MAX_CHARS = 100_000

Outcome = Literal["applied", "dry_run", "failed"]


async def migrate_statement_timeout_ms() -> int:
    """The statement timeout of a db-migrate run, as a dependency that tests can override."""
    return STATEMENT_TIMEOUT_MS


class MigrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: Annotated[str, StringConstraints(min_length=1, max_length=SQL_MAX_CHARS)]
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)
    ]
    dry_run: bool = False

    @field_validator("sql", "description")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class MigrateResult(BaseModel):
    applied: bool
    dry_run: bool
    statements: int
    results: list[StatementResult]
    message: str


async def _audit(
    connection: AsyncSession | AsyncConnection,
    principal: Principal,
    body: MigrateRequest,
    outcome: Outcome,
    statements: int | None,
    error: str | None = None,
) -> None:
    details: dict[str, Any] = {
        "description": body.description,
        "sql": body.sql,
        "dry_run": body.dry_run,
        "outcome": outcome,
        "statements": statements,
    }
    if error is not None:
        details["error"] = error
    await record(connection, principal.actor, "db.migrate", "database", details=details)


async def _run(
    database: Database, principal: Principal, body: MigrateRequest, timeout_ms: int
) -> list[StatementResult]:
    """Run the script in a transaction of its own; commit it with its audit entry unless
    it is a dry run, and announce the change, which may touch any figure. The connection
    is closed afterwards rather than pooled, since the script may have changed settings
    of the session that would outlive it."""
    async with database.primary.connect() as connection:
        try:
            search_path = await prepare_transaction(
                connection, actor=principal.actor, statement_timeout_ms=timeout_ms
            )
            results = await execute_script(connection, body.sql)
            if body.dry_run:
                await connection.rollback()
            else:
                async with server_errors_fail_the_script():
                    await restore_search_path(connection, search_path)
                    await _audit(connection, principal, body, "applied", len(results))
                    await connection.commit()
        finally:
            await connection.invalidate()
    if not body.dry_run:
        # The script may have written the bot's tables: the figures show it at once, and
        # cached answers are dropped.
        await fold_now(database.primary)
    return results


@router.post(
    "/db-migrate",
    summary="Run SQL as one audited transaction (admin)",
    response_model=MigrateResult,
    description=(
        "Runs `sql` (one or more statements, at most 100,000 characters) on the primary "
        "database as ONE transaction, with a statement timeout of "
        f"{STATEMENT_TIMEOUT_MS // 1000} s per statement. "
        "The transaction is committed, or rolled back when `dry_run` is true or any "
        "statement fails. BEGIN, COMMIT, ROLLBACK and SAVEPOINT are refused. Rows of the "
        "source tables the SQL changes are audited under the caller's name.\n\n"
        "Answers `{applied, dry_run, statements, results: [{command, rowcount}], message}`, "
        "one result per statement as the server reported it (`UPDATE 3`, `CREATE TABLE`). "
        "A failure answers 400 with the server's message, its `sqlstate` and the `line` of "
        "the script it points at, and nothing is kept. Every run, failed or dry, is in the "
        "audit log as `db.migrate` with the SQL, the description and the outcome. "
        "A dry run undoes what a transaction can undo; sequence values it draws stay drawn."
    ),
    responses={400: {"description": "The SQL was refused or failed; nothing was kept."}},
)
async def db_migrate(
    body: MigrateRequest,
    principal: Admin,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
    timeout_ms: Annotated[int, Depends(migrate_statement_timeout_ms)],
) -> MigrateResult | JSONResponse:
    # Finding the caller read api_tokens or web_sessions in the request's transaction; ended
    # now, its locks cannot make the script's ALTER TABLE of those tables wait for itself.
    await session.commit()
    try:
        check_script(body.sql)
        results = await _run(database, principal, body, timeout_ms)
    except ScriptFailed as failure:
        # The request's own transaction is apart from the failed one, so this entry stays.
        await _audit(session, principal, body, "failed", None, failure.describe())
        return error_response(400, failure.describe(), sqlstate=failure.sqlstate, line=failure.line)
    count = len(results)
    if body.dry_run:
        await _audit(session, principal, body, "dry_run", count)
        message = f"dry run: {count} statement(s) ran and were rolled back"
    else:
        message = f"applied {count} statement(s)"
    return MigrateResult(
        applied=not body.dry_run,
        dry_run=body.dry_run,
        statements=count,
        results=results,
        message=message,
    )
