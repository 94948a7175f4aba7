"""Running a script of POST /api/db-migrate: on a connection of its own, logged in as the
role coursedesk_scripts, carried by the relay and kept to its limits by the watchdog.

The app's own connection (`control`, in autocommit) lets the role in, names the run's
actor in script_runs and watches the script. At the end, however the run ends (done,
failed, stopped, or its request cancelled), the app ends the script's backend and waits
until it is gone before closing the connection: what was not committed is rolled back,
and every lock and setting the script took goes with it, even from a script that catches
the cancel request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.db.engine import Database
from coursedesk.errors import DatabaseUnavailable
from coursedesk.system.relay import Relay
from coursedesk.system.script_role import (
    SCRIPT_ROLE,
    Target,
    check_role,
    end_backend,
    forget_run,
    log_in,
    record_run,
    register_run,
)
from coursedesk.system.sql_runner import (
    QUERY_CANCELED,
    AnswerLimits,
    ScriptFailed,
    StatementResult,
    execute_script,
    server_failure,
)
from coursedesk.system.watchdog import Limits, Watchdog

log = logging.getLogger(__name__)

# The server's own timeouts are a second line behind the watchdog, this much later.
_SERVER_TIMEOUT_MARGIN_SECONDS = 1.0
# Parameters of the app's connection that do not apply to the script's.
_NOT_CARRIED = (
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "passfile",
    "service",
    "options",
    "application_name",
    "target_session_attrs",
    "load_balance_hosts",
)


@dataclass(frozen=True)
class ScriptLimits:
    """What one script may take: time, one lock wait, bytes of results sent to the app,
    and rows and bytes of values kept in the answer."""

    seconds: float = 30.0
    lock_wait_seconds: float = 2.0
    received_bytes: int = 8 * 1024 * 1024
    answer_rows: int = 1000
    answer_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class ScriptRequest:
    sql: str
    dry_run: bool
    actor: str
    # The audit entry of an applied run, given its number of statements.
    audit_details: Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class ScriptOutcome:
    results: list[StatementResult]
    # Rows were left out of the answer.
    truncated: bool


def size_text(size: int) -> str:
    """A number of bytes as a person reads it: 8 MB, 1.5 KB, 850 bytes."""
    for unit, name in ((1024 * 1024, "MB"), (1024, "KB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} bytes"


def _milliseconds(seconds: float) -> int:
    return max(1, round((seconds + _SERVER_TIMEOUT_MARGIN_SECONDS) * 1000))


def _escaped(value: object) -> str:
    """A value as libpq's `options` takes it: spaces and backslashes escaped."""
    return str(value).replace("\\", "\\\\").replace(" ", "\\ ")


def _conninfo(target: Target, relay: Relay, limits: ScriptLimits) -> str:
    """The app's connection parameters, pointed at the relay and at the role.

    For a server reached over TCP, `host` stays the server's name, so that TLS checks the
    server's certificate against it, while `hostaddr` sends the connection to the relay;
    for one reached through its Unix socket, the relay listens on a Unix socket too.
    """
    parameters = {key: value for key, value in target.parameters.items() if key not in _NOT_CARRIED}
    settings = {
        # The app's tables, unqualified, as the app's own statements find them.
        "search_path": target.quoted_schema,
        "statement_timeout": _milliseconds(limits.seconds),
        "lock_timeout": _milliseconds(limits.lock_wait_seconds),
        "idle_in_transaction_session_timeout": _milliseconds(limits.seconds),
        # The lexer of check_script is right only with standard_conforming_strings on.
        "standard_conforming_strings": "on",
    }
    parameters |= {
        "port": relay.port,
        "user": SCRIPT_ROLE,
        "application_name": "coursedesk-script",
        "options": " ".join(f"-c {name}={_escaped(value)}" for name, value in settings.items()),
    }
    if target.unix_socket:
        # The server speaks neither TLS nor GSS on its socket, and the relay is local.
        parameters |= {"host": relay.host, "sslmode": "disable", "gssencmode": "disable"}
    else:
        parameters |= {"host": target.host, "hostaddr": relay.host}
    return make_conninfo(**parameters)


def _stopped(failure: Exception, watchdog: Watchdog, relay: Relay) -> Exception:
    """The failure as the reason the script was stopped for, if it was stopped."""
    if relay.exceeded:
        return ScriptFailed(
            f"the script's results passed {size_text(relay.limit_bytes)}, more than the app "
            "takes in; it was stopped and nothing was kept (return fewer rows, or count them)"
        )
    if watchdog.reason is not None:
        sqlstate = failure.sqlstate if isinstance(failure, ScriptFailed) else QUERY_CANCELED
        return ScriptFailed(watchdog.reason, sqlstate=sqlstate)
    return failure


async def _commit(
    script: psycopg.AsyncConnection[Any], schema: str, details: dict[str, Any]
) -> None:
    """Add the audit entry in the script's transaction and commit both. An error of the
    server here (a deferred constraint, a setting the script made) fails the script as an
    error of its own statements does."""
    try:
        await record_run(script, schema, details)
        await script.commit()
    except psycopg.Error as exc:
        if script.broken or script.closed:
            raise DatabaseUnavailable("the connection was lost while committing") from exc
        raise server_failure(exc) from exc


async def _end_script(
    database: Database, control: AsyncConnection, script: psycopg.AsyncConnection[Any]
) -> None:
    """End the script's backend and close its connection; from a new connection of the
    app's when its own fails."""
    pid = script.info.backend_pid
    try:
        try:
            await end_backend(control, pid)
        except (DBAPIError, TimeoutError) as exc:
            log.warning("ending a db-migrate script's backend failed, trying again: %s", exc)
            async with database.primary.connect() as fresh:
                await end_backend(await fresh.execution_options(isolation_level="AUTOCOMMIT"), pid)
    finally:
        await script.close()


async def _run_as_role(
    database: Database,
    control: AsyncConnection,
    target: Target,
    relay: Relay,
    request: ScriptRequest,
    limits: ScriptLimits,
) -> ScriptOutcome:
    script = await log_in(control, _conninfo(target, relay, limits))
    pid = script.info.backend_pid
    answer = AnswerLimits(rows=limits.answer_rows, value_bytes=limits.answer_bytes)
    try:
        await register_run(control, pid, request.actor)
        watch = Limits(seconds=limits.seconds, lock_wait_seconds=limits.lock_wait_seconds)
        async with Watchdog(control, script, watch, dry_run=request.dry_run) as watchdog:
            try:
                results = await execute_script(script, request.sql, answer, lambda: watchdog.reason)
                if watchdog.reason is not None:
                    # Stopped after its last statement: nothing is kept.
                    raise ScriptFailed(watchdog.reason, sqlstate=QUERY_CANCELED)
                if not request.dry_run:
                    await _commit(script, target.schema, request.audit_details(len(results)))
            except (ScriptFailed, DatabaseUnavailable) as failure:
                raise _stopped(failure, watchdog, relay) from failure
    finally:
        # Also when the request is cancelled: the backend must not outlive it.
        with anyio.CancelScope(shield=True):
            try:
                await _end_script(database, control, script)
            finally:
                await forget_run(control, pid)
    return ScriptOutcome(results, answer.truncated)


async def run_script(
    database: Database, request: ScriptRequest, limits: ScriptLimits
) -> ScriptOutcome:
    """Run the script as one transaction: committed with its audit entry, or rolled back
    when it is a dry run or fails (ScriptFailed)."""
    async with database.primary.connect() as pooled:
        control = await pooled.execution_options(isolation_level="AUTOCOMMIT")
        try:
            target = await check_role(control)
            async with Relay(
                host=target.hostaddr or target.host,
                port=target.port,
                unix_socket=target.unix_socket,
                limit_bytes=limits.received_bytes,
            ) as relay:
                return await _run_as_role(database, control, target, relay, request, limits)
        except ScriptFailed:
            raise
        except BaseException:
            # It may have been left holding the login lock, or mid-way through a query.
            await pooled.invalidate()
            raise
