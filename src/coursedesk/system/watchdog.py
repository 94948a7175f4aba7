"""The limits of a running script, kept from outside it.

A script may SET statement_timeout and lock_timeout to anything, so the server's own
timeouts on its connection are only a second line. The watchdog watches the script's
backend from the app's own connection, every tenth of a second, and cancels what the
script is running (the protocol's cancel request, which needs no right on the backend)
as soon as it passes its time limit, has waited for a lock longer than allowed, or, in a
dry run, holds a lock that would stop other sessions' writes. A script can catch a cancel
(an EXCEPTION WHEN query_canceled in PL/pgSQL): one still running a second after it was
cancelled has its backend ended (pg_terminate_backend), and its locks with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.system.script_role import SCRIPT_ROLE

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
RECANCEL_SECONDS = 1.0
# How long a cancelled script has to end before its backend is ended.
TERMINATE_AFTER_SECONDS = 1.0

# The table locks a bot's INSERT waits for (it takes ROW EXCLUSIVE), and advisory locks,
# which outlive a rollback and which the app's own workers take.
_LOCKS_OF_BACKEND = text(
    """
    SELECT coalesce(bool_or(NOT l.granted AND l.waitstart
                            < clock_timestamp() - make_interval(secs => :lock_wait)), false),
           coalesce(bool_or(l.granted AND (
               l.locktype = 'advisory'
               OR (l.locktype = 'relation'
                   AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                                  'AccessExclusiveLock')
                   AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :role)))), false)
    FROM pg_locks AS l
    LEFT JOIN pg_class AS c
        ON c.oid = l.relation
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    WHERE l.pid = :pid
    """
)


@dataclass(frozen=True)
class Limits:
    """How long a script may run, and wait for one lock, in seconds."""

    seconds: float
    lock_wait_seconds: float


def _seconds(value: float) -> str:
    return f"{value:g} s"


class Watchdog:
    """Runs beside a script, from `__aenter__` to `__aexit__`; `reason` says why it
    stopped the script, if it did."""

    def __init__(
        self,
        control: AsyncConnection,
        script: psycopg.AsyncConnection[Any],
        limits: Limits,
        *,
        dry_run: bool,
    ) -> None:
        self._control = control
        self._script = script
        self._limits = limits
        self._dry_run = dry_run
        self.reason: str | None = None
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watchdog:
        self._task = asyncio.create_task(self._watch(time.monotonic() + self._limits.seconds))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        assert self._task is not None
        # Also when the request is cancelled: the watchdog uses the app's connection,
        # which must be free again before anything else uses it.
        with anyio.CancelScope(shield=True):
            await self._task

    async def _watch(self, deadline: float) -> None:
        pid = self._script.info.backend_pid
        first_cancel: float | None = None
        cancelled_at = 0.0
        while not self._done.is_set():
            if self.reason is None:
                self.reason = await self._check(deadline, pid)
            now = time.monotonic()
            if self.reason and first_cancel is None:
                first_cancel = cancelled_at = now
                await self._cancel()
            elif first_cancel is not None and now - first_cancel >= TERMINATE_AFTER_SECONDS:
                await self._terminate(pid)
            elif first_cancel is not None and now - cancelled_at >= RECANCEL_SECONDS:
                cancelled_at = now
                await self._cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), POLL_SECONDS)

    async def _check(self, deadline: float, pid: int) -> str | None:
        if time.monotonic() >= deadline:
            return (
                f"the script ran past its time limit of {_seconds(self._limits.seconds)} and "
                "was stopped; nothing was kept"
            )
        try:
            return await self._lock_reason(pid)
        except DBAPIError as exc:
            log.warning("could not watch a db-migrate script, so it is stopped: %s", exc)
            return "the app could not watch the script, so it was stopped; nothing was kept"

    async def _lock_reason(self, pid: int) -> str | None:
        result = await self._control.execute(
            _LOCKS_OF_BACKEND,
            {"pid": pid, "role": SCRIPT_ROLE, "lock_wait": self._limits.lock_wait_seconds},
        )
        waited_too_long, holds_writers_back = result.one()
        if waited_too_long:
            return (
                f"the script waited for a lock longer than "
                f"{_seconds(self._limits.lock_wait_seconds)} and was stopped; nothing was kept"
            )
        if holds_writers_back and self._dry_run:
            return (
                "a dry run may not take a lock that stops other sessions' writes (LOCK "
                "TABLE, an advisory lock); it was stopped and nothing was kept"
            )
        return None

    async def _cancel(self) -> None:
        try:
            await self._script.cancel_safe(timeout=RECANCEL_SECONDS)
        except psycopg.Error as exc:
            log.warning("could not cancel a db-migrate script: %s", exc)

    async def _terminate(self, pid: int) -> None:
        try:
            await self._control.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid = :pid AND usename = :role"
                ),
                {"pid": pid, "role": SCRIPT_ROLE},
            )
        except DBAPIError as exc:
            log.warning("could not end a db-migrate script's backend: %s", exc)
