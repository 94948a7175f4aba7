"""`POST /api/db-migrate`: an admin's SQL run as one audited transaction on the primary,
as a role of its own and within limits (system/scripts.py)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.analytics.folding import fold_now
from coursedesk.audit.service import record
from coursedesk.db.engine import Database
from coursedesk.system.script_role import ScriptsUnavailable
from coursedesk.system.scripts import ScriptLimits, ScriptRequest, run_script, size_text
from coursedesk.system.sql_runner import ScriptFailed, StatementResult, check_script
from coursedesk.web.deps import Admin, Session, get_database
from coursedesk.web.errors import error_response

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["system"])

SCRIPT_LIMITS = ScriptLimits()
SQL_MAX_CHARS = 100_000

Outcome = Literal["applied", "dry_run", "failed"]


async def script_limits() -> ScriptLimits:
    """The limits of a db-migrate run, as a dependency that tests can override."""
    return SCRIPT_LIMITS


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
    # Rows were left out of `results` past the answer's limits.
    truncated: bool
    message: str


def _details(
    body: MigrateRequest, outcome: Outcome, statements: int | None, error: str | None = None
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "description": body.description,
        "sql": body.sql,
        "dry_run": body.dry_run,
        "outcome": outcome,
        "statements": statements,
    }
    if error is not None:
        details["error"] = error
    return details


async def _audit(session: AsyncSession, principal: Principal, details: dict[str, Any]) -> None:
    await record(session, principal.actor, "db.migrate", "database", details=details)


def _message(body: MigrateRequest, count: int, truncated: bool, limits: ScriptLimits) -> str:
    message = (
        f"dry run: {count} statement(s) ran and were rolled back"
        if body.dry_run
        else f"applied {count} statement(s)"
    )
    if truncated:
        message += (
            f"; the answer holds the first rows only (at most {limits.answer_rows}, and "
            f"{size_text(limits.answer_bytes)} of values)"
        )
    return message


@router.post(
    "/db-migrate",
    summary="Run SQL as one audited transaction (admin)",
    response_model=MigrateResult,
    description=(
        "Runs `sql` (one or more statements, at most 100,000 characters) on the primary "
        "database as ONE transaction, as the database role `coursedesk_scripts`: it may "
        "read the app's tables but for credentials and bookkeeping, change the rows of the "
        "bot's tables and `bot_users`, and create objects in the schema `scripts`; "
        "nothing else. The transaction is committed, or rolled back when `dry_run` is true "
        "or any statement fails. BEGIN, COMMIT, ROLLBACK and SAVEPOINT are refused, and LOCK "
        f"in a dry run. The whole script may run {SCRIPT_LIMITS.seconds:g} s and wait "
        f"{SCRIPT_LIMITS.lock_wait_seconds:g} s for a lock, whatever it sets; past that, or "
        f"past {size_text(SCRIPT_LIMITS.received_bytes)} of results, it is stopped. "
        "A dry run holding a lock that stops other sessions' writes is stopped too. Rows of "
        "the source tables the SQL changes are audited under the caller's name.\n\n"
        "Answers `{applied, dry_run, statements, results: [{command, rowcount, columns, "
        "rows}], truncated, message}`, one result per statement as the server reported it "
        "(`UPDATE 3`, `CREATE TABLE`); a statement that returns rows gives its `columns` and "
        f"its `rows` (values as text), at most {SCRIPT_LIMITS.answer_rows} rows and "
        f"{size_text(SCRIPT_LIMITS.answer_bytes)} of values in the whole answer, "
        "`truncated` saying whether any were left out. "
        "A failure answers 400 with one line (the server's message, or why the script was "
        "stopped), its `sqlstate` and the `line` of the script it points at, and nothing is "
        "kept. Every run, failed or dry, is in the audit log as `db.migrate` with the SQL, "
        "the description and the outcome. A dry run undoes what a transaction can undo; "
        "sequence values it draws stay drawn."
    ),
    responses={
        400: {"description": "The SQL was refused, failed or was stopped; nothing was kept."},
        503: {"description": "Scripts cannot run safely on this database; nothing was run."},
    },
)
async def db_migrate(
    body: MigrateRequest,
    principal: Admin,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
    limits: Annotated[ScriptLimits, Depends(script_limits)],
) -> MigrateResult | JSONResponse:
    # The request's transaction read api_tokens or web_sessions to find the caller; it
    # ends now rather than stay open while the script runs on a connection of its own.
    await session.commit()
    request = ScriptRequest(
        sql=body.sql,
        dry_run=body.dry_run,
        actor=principal.actor,
        audit_details=lambda count: _details(body, "applied", count),
    )
    try:
        check_script(body.sql, dry_run=body.dry_run)
        outcome = await run_script(database, request, limits)
    except ScriptFailed as failure:
        # The request's own transaction is apart from the failed one, so this entry stays.
        await _audit(session, principal, _details(body, "failed", None, failure.describe()))
        return error_response(400, failure.describe(), sqlstate=failure.sqlstate, line=failure.line)
    except ScriptsUnavailable as unavailable:
        log.warning("db-migrate refused to run a script: %s", unavailable)
        await _audit(session, principal, _details(body, "failed", None, str(unavailable)))
        return error_response(503, str(unavailable))
    count = len(outcome.results)
    if body.dry_run:
        await _audit(session, principal, _details(body, "dry_run", count))
    else:
        # The script may have written the bot's tables: the figures show it at once, and
        # cached answers are dropped.
        await fold_now(database.primary)
    return MigrateResult(
        applied=not body.dry_run,
        dry_run=body.dry_run,
        statements=count,
        results=outcome.results,
        truncated=outcome.truncated,
        message=_message(body, count, outcome.truncated, limits),
    )
