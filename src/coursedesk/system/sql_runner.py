"""Running an admin's SQL script in one transaction, and what the answer keeps of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import waiting
from psycopg.generators import execute
from psycopg.pq import ConnStatus, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from coursedesk.errors import DatabaseUnavailable
from coursedesk.system.sql_script import split_statements


@dataclass(frozen=True)
class StatementResult:
    """What the server answered for one statement: its command tag, its row count, and
    for a statement that returns rows, its columns and the rows the answer keeps, each
    value as PostgreSQL prints it."""

    command: str
    rowcount: int | None
    columns: list[str] | None = None
    rows: list[list[str | None]] | None = None


@dataclass
class AnswerLimits:
    """How many rows, and how many bytes of values, the answer keeps in all: rows in the
    order they came until one does not fit. Those left out still count in their
    statement's rowcount."""

    rows: int
    value_bytes: int
    truncated: bool = field(default=False, init=False)

    def keep(self, result: PGresult, encoding: str) -> list[list[str | None]]:
        kept: list[list[str | None]] = []
        for number in range(result.ntuples):
            values = [result.get_value(number, column) for column in range(result.nfields)]
            size = sum(len(value) for value in values if value is not None)
            if self.truncated or self.rows < 1 or size > self.value_bytes:
                self.truncated = True
                break
            self.rows -= 1
            self.value_bytes -= size
            kept.append([None if v is None else v.decode(encoding, "replace") for v in values])
        return kept


class ScriptFailed(Exception):
    """The script was refused or failed; nothing it did is kept."""

    def __init__(self, message: str, *, sqlstate: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.line = line

    def describe(self) -> str:
        return self.message if self.line is None else f"{self.message} (line {self.line})"


def check_script(script: str, *, dry_run: bool) -> None:
    """Refuse a script with no statement, with one that controls the transaction, and in a
    dry run one that locks a table.

    A COMMIT in the middle would break the promise that the script runs, or is rolled
    back, as one transaction. A LOCK holds other sessions' writes until the dry run ends,
    which no rollback undoes; the watchdog stops one run from a function.
    """
    statements = split_statements(script)
    if not statements:
        raise ScriptFailed("the SQL holds no statement")
    for number, statement in enumerate(statements, start=1):
        keyword = " ".join(statement.leading_words).upper()
        if statement.controls_transaction:
            raise ScriptFailed(
                f"statement {number} ({keyword}) controls the transaction; the script always "
                "runs as one transaction, so leave out BEGIN, COMMIT, ROLLBACK and SAVEPOINT"
            )
        if dry_run and statement.locks_tables:
            raise ScriptFailed(
                f"statement {number} ({keyword}) would hold other sessions' writes until the "
                "dry run ends; a dry run may not lock tables"
            )


# Should a COMMIT or ROLLBACK get past check_script, the run must not claim a rollback it lost.
_ENDED_TRANSACTION = (
    "the script ended the transaction it was run in, so what it did before that may have "
    "been committed"
)
_COPY_WITH_CLIENT = (
    "COPY to STDOUT or from STDIN cannot be used here: the script has no client to copy "
    "with; nothing was kept"
)


async def _transaction_id(cursor: psycopg.AsyncCursor[Any]) -> int:
    # Qualified, so that a function the script defines cannot stand in for it.
    await cursor.execute("SELECT pg_catalog.txid_current()")
    row = await cursor.fetchone()
    assert row is not None, "a SELECT of one value answers one row"
    return int(row[0])


def _line_of(script: str, position: str | None, offset: int) -> int | None:
    """The line of `script` holding the character at `position` (from 1) of the statement
    that starts at `offset`."""
    if not position or not position.isdigit():
        return None
    return script.count("\n", 0, max(0, offset + int(position) - 1)) + 1


def server_failure(exc: psycopg.Error, script: str | None = None, offset: int = 0) -> ScriptFailed:
    """The server's error as one line, with the line of `script` it points at, if given:
    the failed statement starts at `offset` of it."""
    message = " ".join((exc.diag.message_primary or str(exc)).split())
    line = None if script is None else _line_of(script, exc.diag.statement_position, offset)
    return ScriptFailed(message, sqlstate=exc.sqlstate, line=line)


def _result_of(result: PGresult, answer: AnswerLimits, encoding: str) -> StatementResult:
    command = (result.command_status or b"").decode(encoding, "replace")
    rowcount = result.command_tuples
    if result.status != ExecStatus.TUPLES_OK:
        return StatementResult(command, rowcount)
    columns = [
        (result.fname(column) or b"").decode(encoding, "replace")
        for column in range(result.nfields)
    ]
    return StatementResult(command, rowcount, columns, answer.keep(result, encoding))


async def _execute_one(connection: psycopg.AsyncConnection[Any], statement: bytes) -> PGresult:
    """Run one statement with the extended protocol (as PQexecParams does), which refuses
    a string of several commands: should the splitter ever see a statement end where the
    server does not, the server fails the script rather than run a COMMIT it holds."""
    pgconn = connection.pgconn
    async with connection.lock:
        pgconn.send_query_params(statement, None)
        # Not connection.wait(), which on a cancelled task waits for the statement to
        # end: a script's backend is ended instead (scripts.py).
        results: list[PGresult] = await waiting.wait_async(execute(pgconn), pgconn.socket)
    if not results:
        raise psycopg.OperationalError("the server answered no result")
    for result in results:
        if result.status == ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=connection.info.encoding)
    return results[-1]


_COPY = (ExecStatus.COPY_IN, ExecStatus.COPY_OUT, ExecStatus.COPY_BOTH)


def _failure(
    exc: psycopg.Error, connection: psycopg.AsyncConnection[Any], script: str, start: int
) -> Exception:
    if connection.broken or connection.closed or connection.pgconn.status != ConnStatus.OK:
        return DatabaseUnavailable("the database connection was lost")
    status = connection.info.transaction_status
    if status == TransactionStatus.ACTIVE:
        return ScriptFailed(_COPY_WITH_CLIENT)
    if status != TransactionStatus.INERROR:
        return ScriptFailed(_ENDED_TRANSACTION)
    return server_failure(exc, script, start)


# The sqlstate of a statement cancelled: the script's, when it was stopped between two.
QUERY_CANCELED = "57014"


def _never_stopped() -> str | None:
    return None


async def execute_script(
    connection: psycopg.AsyncConnection[Any],
    script: str,
    answer: AnswerLimits,
    stop_reason: Callable[[], str | None] = _never_stopped,
) -> list[StatementResult]:
    """Send the script's statements one by one in the connection's transaction and
    collect each one's result, until `stop_reason` gives a reason to stop: a cancel
    request reaching the backend between two statements cancels nothing.

    Raises ScriptFailed with the server's one-line message when a statement fails, or when
    the script ended the transaction; the connection must then be closed, not reused.
    """
    results: list[StatementResult] = []
    encoding = connection.info.encoding
    start = 0
    try:
        async with connection.cursor() as cursor:
            transaction_id = await _transaction_id(cursor)
            for statement in split_statements(script):
                if (reason := stop_reason()) is not None:
                    raise ScriptFailed(reason, sqlstate=QUERY_CANCELED)
                start = statement.start
                result = await _execute_one(connection, statement.text.encode(encoding))
                if result.status in _COPY:
                    raise ScriptFailed(_COPY_WITH_CLIENT)
                if connection.info.transaction_status != TransactionStatus.INTRANS:
                    raise ScriptFailed(_ENDED_TRANSACTION)
                results.append(_result_of(result, answer, encoding))
            if await _transaction_id(cursor) != transaction_id:
                raise ScriptFailed(_ENDED_TRANSACTION)
    except psycopg.Error as exc:
        raise _failure(exc, connection, script, start) from exc
    return results
