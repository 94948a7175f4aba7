"""Running an admin's SQL script inside the caller's transaction, with a statement timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.errors import DatabaseUnavailable
from coursedesk.system.sql_script import split_statements


@dataclass(frozen=True)
class StatementResult:
    """What the server answered for one statement: its command tag and row count."""

    command: str
    rowcount: int | None


class ScriptFailed(Exception):
    """The script was refused or failed; nothing it did is kept."""

    def __init__(self, message: str, *, sqlstate: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.line = line

    def describe(self) -> str:
        return self.message if self.line is None else f"{self.message} (line {self.line})"


def check_script(script: str) -> None:
    """Refuse a script with no statement, or with one that controls the transaction.

    A COMMIT in the middle would break the promise that the script runs, or is rolled
    back, as one transaction.
    """
    statements = split_statements(script)
    if not statements:
        raise ScriptFailed("the SQL holds no statement")
    for number, statement in enumerate(statements, start=1):
        if statement.controls_transaction:
            keyword = " ".join(statement.leading_words).upper()
            raise ScriptFailed(
                f"statement {number} ({keyword}) controls the transaction; the script always "
                "runs as one transaction, so leave out BEGIN, COMMIT, ROLLBACK and SAVEPOINT"
            )


async def prepare_transaction(
    connection: AsyncConnection, *, actor: str, statement_timeout_ms: int
) -> str:
    """Settings local to the transaction; answers the search_path to restore afterwards.

    The audit triggers name `actor` for the rows the script changes, and the lexer of
    check_script is right only with standard_conforming_strings on.
    """
    search_path = await connection.scalar(
        text(
            "SELECT current_setting('search_path'), "
            "set_config('statement_timeout', :timeout, true), "
            "set_config('standard_conforming_strings', 'on', true), "
            "set_config('coursedesk.actor', :actor, true)"
        ),
        {"timeout": str(statement_timeout_ms), "actor": actor},
    )
    return str(search_path)


async def restore_search_path(connection: AsyncConnection, search_path: str) -> None:
    """Undo a `SET search_path` of the script, so the app's own rows land in its tables."""
    await connection.execute(
        text("SELECT set_config('search_path', :search_path, true)"),
        {"search_path": search_path},
    )


# Should a COMMIT or ROLLBACK get past check_script, the run must not claim a rollback it lost.
_ENDED_TRANSACTION = (
    "the script ended the transaction it was run in, so what it did before that may have "
    "been committed"
)


async def _transaction_id(cursor: psycopg.AsyncCursor[Any]) -> int:
    # Qualified, so that a function the script defines cannot stand in for it.
    await cursor.execute("SELECT pg_catalog.txid_current()")
    row = await cursor.fetchone()
    assert row is not None, "a SELECT of one value answers one row"
    return int(row[0])


def _line_of(script: str, position: str | None) -> int | None:
    if not position or not position.isdigit():
        return None
    return script.count("\n", 0, max(0, int(position) - 1)) + 1


def _server_failure(exc: psycopg.Error, script: str | None = None) -> ScriptFailed:
    """The server's error as one line, with the line of `script` it points at, if given."""
    message = " ".join((exc.diag.message_primary or str(exc)).split())
    line = None if script is None else _line_of(script, exc.diag.statement_position)
    return ScriptFailed(message, sqlstate=exc.sqlstate, line=line)


async def execute_script(connection: AsyncConnection, script: str) -> list[StatementResult]:
    """Send the script as one simple query and collect each statement's result.

    Raises ScriptFailed with the server's one-line message when a statement fails, or when
    the script ended the caller's transaction; the caller must then roll back.
    """
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    results: list[StatementResult] = []
    try:
        async with driver.cursor() as cursor:
            transaction_id = await _transaction_id(cursor)
            # No parameters: psycopg then uses the simple protocol, which runs many statements.
            await cursor.execute(script.encode(driver.info.encoding))
            while True:
                rowcount = cursor.rowcount if cursor.rowcount >= 0 else None
                results.append(StatementResult(cursor.statusmessage or "", rowcount))
                if not cursor.nextset():
                    break
            if await _transaction_id(cursor) != transaction_id:
                raise ScriptFailed(_ENDED_TRANSACTION)
    except psycopg.Error as exc:
        if driver.broken or driver.closed:
            raise DatabaseUnavailable("the database connection was lost") from exc
        if driver.info.transaction_status != TransactionStatus.INERROR:
            raise ScriptFailed(_ENDED_TRANSACTION) from exc
        raise _server_failure(exc, script) from exc
    return results


@asynccontextmanager
async def server_errors_fail_the_script() -> AsyncIterator[None]:
    """For what still belongs to the script's transaction after it ran (the audit entry,
    the commit): an error of the server there, say a deferred constraint or a setting the
    script made, fails the script as an error of its own statements does."""
    try:
        yield
    except DBAPIError as exc:
        if exc.connection_invalidated or not isinstance(exc.orig, psycopg.Error):
            raise
        raise _server_failure(exc.orig) from exc
