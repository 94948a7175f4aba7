"""Running an admin's SQL script inside the caller's transaction, with a statement timeout."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from sqlalchemy import text
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


def _line_of(script: str, position: str | None) -> int | None:
    if not position or not position.isdigit():
        return None
    return script.count("\n", 0, max(0, int(position) - 1)) + 1


async def execute_script(connection: AsyncConnection, script: str) -> list[StatementResult]:
    """Send the script as one simple query and collect each statement's result.

    Raises ScriptFailed with the server's one-line message when a statement fails; the
    caller's transaction is then aborted and must be rolled back.
    """
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    results: list[StatementResult] = []
    try:
        async with driver.cursor() as cursor:
            # No parameters: psycopg then uses the simple protocol, which runs many statements.
            await cursor.execute(script.encode(driver.info.encoding))
            while True:
                rowcount = cursor.rowcount if cursor.rowcount >= 0 else None
                results.append(StatementResult(cursor.statusmessage or "", rowcount))
                if not cursor.nextset():
                    break
    except psycopg.Error as exc:
        if driver.broken or driver.closed:
            raise DatabaseUnavailable("the database connection was lost") from exc
        message = " ".join((exc.diag.message_primary or str(exc)).split())
        raise ScriptFailed(
            message, sqlstate=exc.sqlstate, line=_line_of(script, exc.diag.statement_position)
        ) from exc
    return results
