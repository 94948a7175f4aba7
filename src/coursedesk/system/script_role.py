"""The role the scripts of POST /api/db-migrate run as, and how the app logs in as it.

A script runs on a connection of its own whose session user is coursedesk_scripts
(migration 0009 says what the role may do). It logs in as the role rather than switching
to it with SET ROLE, because a script could switch back: SET ROLE and
set_config('role', ...) accept any role the session user belongs to, and RESET ROLE
returns to the session user. This role belongs to no role, so it has nowhere to go.

The role may log in only while the app opens such a connection: under a lock, the app
gives it a random password valid for a minute, connects, and takes the login away again.
So the database user coursedesk runs as must be able to alter the role (a superuser, or a
user with CREATEROLE and, from PostgreSQL 16, ADMIN OPTION on the role, which the user
who created it has), and the server must let the role in with a password on the way the
app connects.

The app ends a script's backend when the script is done, stopped or abandoned
(pg_terminate_backend), which needs the privileges of the role: a superuser has them,
another user is made a member of the role at the first run (the role itself still
belongs to no role, so a script gains nothing by it).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.errors import CoursedeskError
from coursedesk.system.models import ScriptRun

SCRIPT_ROLE = "coursedesk_scripts"
_LOGIN_LOCK_KEY = 7_130_412_003
# How long a run waits for another one's login (which takes milliseconds) before giving up.
LOGIN_WAIT_SECONDS = 5.0
# How long ending a script's backend may take before the app says it could not.
END_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.02

# What the role may do beyond the grants of 0009, as the server sees it now: each makes
# running scripts unsafe.
_EXCESS_RIGHTS = text(
    """
    SELECT array_remove(ARRAY[
               CASE WHEN r.rolsuper THEN 'is a superuser' END,
               CASE WHEN r.rolcreaterole THEN 'may create roles' END,
               CASE WHEN r.rolcreatedb THEN 'may create databases' END,
               CASE WHEN r.rolreplication THEN 'may replicate' END,
               CASE WHEN r.rolbypassrls THEN 'bypasses row security' END,
               CASE WHEN has_database_privilege(r.oid, current_database(), 'CREATE')
                    THEN 'may create schemas and extensions' END
           ], NULL)
           || array(SELECT 'is a member of ' || m.roleid::regrole::text
                    FROM pg_auth_members AS m WHERE m.member = r.oid ORDER BY 1)
           || array(SELECT 'may create objects in schema ' || s.name
                    FROM unnest(current_schemas(false)) AS s(name)
                    WHERE has_schema_privilege(r.oid, s.name, 'CREATE') ORDER BY 1)
    FROM pg_roles AS r
    WHERE r.rolname = :role
    """
)


class ScriptsUnavailable(CoursedeskError):
    """Scripts cannot be run safely here: the role is missing, may do too much, or cannot
    log in. Nothing was run."""


@dataclass(frozen=True)
class Target:
    """Where the script's connection goes: the server and database the app is connected
    to, and the schema of the app's tables (`schema`, and quoted as an identifier)."""

    host: str
    port: int
    hostaddr: str
    parameters: dict[str, Any]
    schema: str
    quoted_schema: str

    @property
    def unix_socket(self) -> str | None:
        """The server's socket file when the app reaches it through a Unix socket."""
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") else None


async def _driver(connection: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


async def check_role(control: AsyncConnection) -> Target:
    """Refuse when the role is missing or may do more than 0009 grants it; answer where
    the script's connection should go."""
    excess = await control.scalar(_EXCESS_RIGHTS, {"role": SCRIPT_ROLE})
    if excess is None:
        raise ScriptsUnavailable(
            f"scripts cannot run: the role {SCRIPT_ROLE} is missing; run `coursedesk db upgrade`"
        )
    if excess:
        raise ScriptsUnavailable(
            f"scripts cannot run safely: the role {SCRIPT_ROLE} {', '.join(excess)}; "
            "take those rights away from it"
        )
    await _take_role_privileges(control)
    info = (await _driver(control)).info
    schema, quoted = (
        await control.execute(text("SELECT current_schema(), quote_ident(current_schema())"))
    ).one()
    return Target(
        host=info.host,
        port=info.port,
        hostaddr=info.hostaddr,
        parameters=psycopg.conninfo.conninfo_to_dict(info.dsn),
        schema=str(schema),
        quoted_schema=str(quoted),
    )


async def _take_role_privileges(control: AsyncConnection) -> None:
    """Make sure the app's user may end the role's backends: a superuser may; another user
    is made a member of the role, which gives it the role's privileges."""
    has_privileges = text("SELECT pg_has_role(current_user, :role, 'USAGE')")
    if await control.scalar(has_privileges, {"role": SCRIPT_ROLE}):
        return
    try:
        await (await _driver(control)).execute(
            sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(SCRIPT_ROLE))
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ScriptsUnavailable(
            f"scripts cannot run: the database user coursedesk runs as may not become a "
            f"member of the role {SCRIPT_ROLE} ({exc.diag.message_primary}), which it needs "
            "to end a script's session; it needs CREATEROLE, and from PostgreSQL 16 ADMIN "
            "OPTION on the role"
        ) from exc
    if not await control.scalar(has_privileges, {"role": SCRIPT_ROLE}):
        raise ScriptsUnavailable(
            f"scripts cannot run: the database user coursedesk runs as does not inherit the "
            f"privileges of the role {SCRIPT_ROLE}, which it needs to end a script's session; "
            "give it INHERIT"
        )


async def _take_login_lock(control: AsyncConnection) -> None:
    """The login lock, waited for at most LOGIN_WAIT_SECONDS: a session holding it (a
    script may take any advisory lock) cannot hold every later run back."""
    deadline = time.monotonic() + LOGIN_WAIT_SECONDS
    take = text("SELECT pg_try_advisory_lock(:key)")
    while not await control.scalar(take, {"key": _LOGIN_LOCK_KEY}):
        if time.monotonic() >= deadline:
            raise ScriptsUnavailable(
                f"scripts cannot run now: another run has been logging in for more than "
                f"{LOGIN_WAIT_SECONDS:g} s; try again"
            )
        await asyncio.sleep(_POLL_SECONDS)


async def end_backend(control: AsyncConnection, backend_pid: int) -> None:
    """End the script's backend, whatever it is doing, and wait until it is gone, and with
    it its transaction, its locks (session-level advisory locks too) and its settings.

    Only a backend of the role is ended, should the number name another one by then.
    Raises DBAPIError when the app may not end it, TimeoutError when it outlives
    END_WAIT_SECONDS.
    """
    terminate = text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE pid = :pid AND usename = :role"
    )
    deadline = time.monotonic() + END_WAIT_SECONDS
    while (await control.execute(terminate, {"pid": backend_pid, "role": SCRIPT_ROLE})).first():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the script's backend {backend_pid} was not gone in time")
        await asyncio.sleep(_POLL_SECONDS)


async def _alter_role(driver: psycopg.AsyncConnection[Any], change: sql.Composable) -> None:
    try:
        await driver.execute(sql.SQL("ALTER ROLE {} ").format(sql.Identifier(SCRIPT_ROLE)) + change)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ScriptsUnavailable(
            f"scripts cannot run: the database user coursedesk runs as may not let the role "
            f"{SCRIPT_ROLE} log in ({exc.diag.message_primary}); it needs CREATEROLE, and "
            "from PostgreSQL 16 ADMIN OPTION on the role"
        ) from exc


async def log_in(control: AsyncConnection, conninfo: str) -> psycopg.AsyncConnection[Any]:
    """A connection logged in as the role, with a password made for it alone.

    `control` must be in autocommit: each change of the role is committed before the
    server is asked to let the role in. The session lock keeps two runs from changing
    the password under each other's login.
    """
    driver = await _driver(control)
    password = secrets.token_urlsafe(32)
    verifier = driver.pgconn.encrypt_password(
        password.encode(), SCRIPT_ROLE.encode(), b"scram-sha-256"
    )
    await _take_login_lock(control)
    try:
        database = await control.scalar(text("SELECT current_database()"))
        valid_until = await control.scalar(text("SELECT (now() + interval '1 minute')::text"))
        # Session defaults a script may have given its own role would apply at its login.
        await _alter_role(driver, sql.SQL("RESET ALL"))
        await _alter_role(
            driver, sql.SQL("IN DATABASE {} RESET ALL").format(sql.Identifier(str(database)))
        )
        await _alter_role(
            driver,
            sql.SQL("LOGIN PASSWORD {} VALID UNTIL {}").format(
                sql.Literal(verifier.decode()), sql.Literal(valid_until)
            ),
        )
        try:
            return await psycopg.AsyncConnection.connect(conninfo, password=password)
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            raise ScriptsUnavailable(
                f"scripts cannot run: the role {SCRIPT_ROLE} could not log in: {reason}"
            ) from exc
        finally:
            await _alter_role(driver, sql.SQL("NOLOGIN PASSWORD NULL"))
    finally:
        await control.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOGIN_LOCK_KEY})


async def register_run(control: AsyncConnection, backend_pid: int, actor: str) -> None:
    """Name the actor of the script the backend is about to run, where it cannot write."""
    statement = insert(ScriptRun).values(backend_pid=backend_pid, actor=actor)
    await control.execute(
        statement.on_conflict_do_update(
            index_elements=[ScriptRun.backend_pid],
            set_={
                "actor": statement.excluded.actor,
                "recorded": False,
                "started_at": text("now()"),
            },
        )
    )


async def forget_run(control: AsyncConnection, backend_pid: int) -> None:
    await control.execute(delete(ScriptRun).where(ScriptRun.backend_pid == backend_pid))


async def record_run(
    script: psycopg.AsyncConnection[Any], schema: str, details: dict[str, Any]
) -> None:
    """Add the run's audit entry in the script's own transaction (script_runs.sql).

    Qualified by the app's schema: the script may have set a search_path that finds a
    function of its own by the name first.
    """
    await script.execute(
        sql.SQL("SELECT {}.record_script_run(%s)").format(sql.Identifier(schema)),
        [Jsonb(details)],
    )
