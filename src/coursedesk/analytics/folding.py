"""Folding the change log into the summaries: one batch, everything pending, and the
folder that does it every second inside `serve`, `worker` and `demo`.

Any number of processes run a folder; the one holding a session-level advisory lock
folds and the others wait to take over. A process that dies (even by SIGKILL) closes its
connection, which releases the lock, and another takes over within
`LEADERSHIP_RETRY_SECONDS`. Each batch is one REPEATABLE READ transaction that takes
the fold lock before its first query (analytics/sql/install/3_fold.sql explains why);
the rows it reads are deleted in it, so a batch is applied exactly once or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from coursedesk.analytics.changes import source_changes
from coursedesk.analytics.pgoutput import ProtocolError
from coursedesk.analytics.wal_capture import (
    FOLD_LOCK,
    SHORT_LOCK_WAIT,
    CaptureLost,
    CaptureMode,
    Pull,
    advance,
    capture_mode,
    drop_slot,
    existing_slot,
    is_lock_wait,
    make_slot,
    publish,
    pull_changes,
    record_rebuild,
    unpublish,
    use_triggers,
    use_wal,
)
from coursedesk.config import FRESHNESS_BOUND_SECONDS
from coursedesk.db.retry import is_lost_race
from coursedesk.errors import Conflict

log = logging.getLogger(__name__)

BATCH_ROWS = 20_000
"""Change rows a batch takes at most: large enough to fold tens of thousands of rows a
second, small enough that a backlog is folded in steps that each show."""
LEADERSHIP_RETRY_SECONDS = 2.0
FAILURE_RETRY_SECONDS = 5.0
# pg_advisory_lock key of the folder lease (the migrations use 7_130_412_001).
FOLDER_LOCK_KEY = 7_130_412_002

LOCK = FOLD_LOCK
# A batch that meets a TRUNCATE marker rebuilds every summary, which at a million users
# takes longer than any request may; the batches of the folder and the tools may.
NO_STATEMENT_TIMEOUT = text("SET LOCAL statement_timeout = 0")
FOLD = text("SELECT analytics_fold(:max_rows)")
REBUILD = text("SELECT analytics_rebuild()")
TRY_LEAD = text("SELECT pg_try_advisory_lock(:key)")
CLAIM = text("UPDATE analytics_fold_state SET folder = :folder, folder_since = now() WHERE id = 1")
RECORD_FAILURE = text(
    "UPDATE analytics_fold_state SET error = :error, failed_at = now() WHERE id = 1"
)
# The lease held now shows in pg_locks: a bigint key as its high and low 32 bits.
READ_STATE = text(
    f"""
    SELECT least(CASE WHEN s.capture = 'wal' THEN s.wal_read_at END,
                 (SELECT min(captured_at) FROM analytics_changes)) AS oldest_change,
           clock_timestamp() AS now, s.folder, s.folder_since, s.folded_at, s.folded_rows,
           s.error, s.failed_at,
           EXISTS (
               SELECT FROM pg_locks AS l
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                 AND l.database = (SELECT oid FROM pg_database
                                   WHERE datname = current_database())
                 AND (l.classid::bigint << 32 | l.objid::bigint) = {FOLDER_LOCK_KEY}
           ) AS folder_running
    FROM analytics_fold_state AS s
    """
)
REPEATABLE_READ = "REPEATABLE READ"


def describe_failure(exc: BaseException) -> str:
    """One line naming a failed fold: the server's error code and first line of message."""
    original = getattr(exc, "orig", exc)
    code = getattr(original, "sqlstate", None)
    message = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    return f"{code}: {message}" if code else message


# -- one batch, for tools and tests (sync) and for the app (async) -----------------------


def fold_pending(engine: Engine, *, batch_rows: int = BATCH_ROWS) -> int:
    """Fold batch after batch until one finds less than a full batch, so every change
    committed before the call is folded (later ones may be too); answers the change rows
    folded. With the capture reading the WAL, a slot found lost is made again and the
    summaries rebuilt first."""
    folded = 0
    with engine.connect() as plain:
        connection = plain.execution_options(isolation_level=REPEATABLE_READ)
        while True:
            batch = fold_or_mend(connection, batch_rows)
            folded += batch
            if batch < batch_rows:
                return folded


def fold_batch_in(
    connection: Connection, batch_rows: int | None, bounds: TextClause = NO_STATEMENT_TIMEOUT
) -> int:
    """One batch on `connection` (in REPEATABLE READ), committed; with the capture
    reading the WAL, the slot is then advanced past it. Answers the change rows folded."""
    with connection.begin():
        connection.execute(bounds)
        pull = fold_in(connection)
        rows = None if pull else batch_rows
        folded = int(connection.execute(FOLD, {"max_rows": rows}).scalar_one())
    if pull is not None:
        with connection.begin():
            advance(connection, pull)
    return folded


def fold_or_mend(
    connection: Connection,
    batch_rows: int | None = BATCH_ROWS,
    bounds: TextClause = NO_STATEMENT_TIMEOUT,
) -> int:
    """One batch, as the folder and the tools fold: where the capture's slot is found
    lost, it is made again with a rebuild, and the batch run after it."""
    try:
        return fold_batch_in(connection, batch_rows, bounds)
    except CaptureLost as lost:
        log.warning("%s: making it again and rebuilding the summaries", lost)
        restart_capture(connection)
        return fold_batch_in(connection, batch_rows, bounds)


def fold_in(connection: Connection) -> Pull | None:
    """The start of every batch, in its transaction: the fold lock, then (with the
    capture reading the WAL) what the slot holds for this snapshot, all of which the
    batch must fold."""
    connection.execute(LOCK)
    return pull_changes(connection)


def rebuild_in(connection: Connection) -> None:
    """Recompute every summary, in one transaction on `connection` (REPEATABLE READ)."""
    with connection.begin():
        connection.execute(NO_STATEMENT_TIMEOUT)
        connection.execute(LOCK)
        connection.execute(REBUILD)
        record_rebuild(connection)


def rebuild_summaries(engine: Engine) -> None:
    """Recompute every summary from the source tables while the bot goes on writing: the
    rows the rebuild's snapshot sees are counted by it, later ones stay to be folded."""
    with engine.connect() as plain:
        rebuild_in(plain.execution_options(isolation_level=REPEATABLE_READ))


def restart_capture(connection: Connection) -> None:
    """With the capture reading the WAL: make the slot (again), then rebuild every
    summary from a snapshot taken after it exists, so that each change is counted by the
    rebuild or found in the slot (wal_capture.py)."""
    make_slot(connection)
    rebuild_in(connection.execution_options(isolation_level=REPEATABLE_READ))


def set_capture(engine: Engine, mode: CaptureMode) -> bool:
    """Switch the capture to `mode` and rebuild the summaries; answers False when it
    already was. The new capture is in place before the old one stops, and the rebuild
    at the end counts once what the bot wrote meanwhile. Refused before anything
    changes where the server, the role or a busy table of the bot's does not allow it."""
    with engine.connect() as plain:
        connection = plain.execution_options(isolation_level=REPEATABLE_READ)
        try:
            return _switch(connection, mode)
        except DBAPIError as exc:
            if is_lock_wait(exc):
                raise Conflict(
                    "the bot's tables stayed busy for 3 s (a long transaction?); nothing "
                    "was switched, try again"
                ) from None
            raise


def _switch(connection: Connection, mode: CaptureMode) -> bool:
    with connection.begin():
        current = capture_mode(connection)
    if current == mode:
        if mode == "triggers" and (leftover := existing_slot_of(connection)):
            log.warning("dropping %s, left by an earlier capture from the WAL", leftover)
            _stop_reading_the_wal(connection)
        return False
    if mode == "wal":
        with connection.begin():
            publish(connection)
        try:
            make_slot(connection)
            with connection.begin():
                use_wal(connection)
        except BaseException:
            _stop_reading_the_wal(connection)
            raise
        rebuild_in(connection)
    else:
        with connection.begin():
            use_triggers(connection)
        rebuild_in(connection)
        _stop_reading_the_wal(connection)
    return True


def _stop_reading_the_wal(connection: Connection) -> None:
    drop_slot(connection)
    with connection.begin():
        unpublish(connection)


def existing_slot_of(connection: Connection) -> str | None:
    with connection.begin():
        return existing_slot(connection)


async def fold_batch(
    connection: AsyncConnection,
    batch_rows: int | None = BATCH_ROWS,
    *,
    bounds: TextClause = NO_STATEMENT_TIMEOUT,
    mend: bool = False,
) -> int:
    """Fold one batch on `connection` (in REPEATABLE READ) and commit it; `bounds` is
    the SET LOCAL that limits the transaction (by default: none, for the folder). With
    `mend`, a lost slot of the capture is made again first (`fold_or_mend`)."""
    fold = fold_or_mend if mend else fold_batch_in
    return int(await connection.run_sync(fold, batch_rows, bounds))


async def fold_now(engine: AsyncEngine) -> int:
    """Fold what is pending now, so a staff member sees their own edit in every figure,
    then drop the cached answers (source_changes), folded or not.

    Waits for a batch under way elsewhere (the fold lock), at most a few seconds, and
    keeps the request's statement timeout; a failure is left to the folder to report
    and retry, and answers -1.
    """
    folded = 0
    try:
        async with engine.connect() as plain:
            connection = await plain.execution_options(isolation_level=REPEATABLE_READ)
            while True:
                # Waits a few seconds at most for a batch under way.
                batch = await fold_batch(connection, bounds=SHORT_LOCK_WAIT)
                folded += batch
                if batch < BATCH_ROWS:
                    return folded
    except (DBAPIError, CaptureLost) as exc:
        log.warning("folding after an edit failed (the folder will retry): %s", exc)
        return -1
    finally:
        source_changes.announce()


_FOLD_AFTER_COMMIT = "coursedesk.fold_after_commit"


def fold_after_commit(session: AsyncSession) -> None:
    """Ask the request's unit of work to fold once it has committed (web/deps.py), so
    the staff member who made this edit sees it in every figure on their next page."""
    session.sync_session.info[_FOLD_AFTER_COMMIT] = True


def wants_fold(session: AsyncSession) -> bool:
    return bool(session.sync_session.info.pop(_FOLD_AFTER_COMMIT, False))


# -- how far behind the figures are ------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """How far the summaries lag the source tables, and how the folding goes."""

    lag_seconds: float
    oldest_change: datetime | None
    # The process that last took the folder lease, and whether one holds it now.
    folder: str | None
    folder_since: datetime | None
    folder_running: bool
    folded_at: datetime | None
    folded_rows: int
    error: str | None
    failed_at: datetime | None

    @property
    def status(self) -> str:
        """`failing` while a fold fails, `behind` past the freshness bound, else `ok`."""
        if self.error is not None:
            return "failing"
        if self.lag_seconds > FRESHNESS_BOUND_SECONDS:
            return "behind"
        return "ok"

    @property
    def as_of(self) -> datetime | None:
        """The figures count every change captured before this moment (None: all)."""
        return self.oldest_change


async def read_freshness(connection: AsyncConnection) -> Freshness:
    row = (await connection.execute(READ_STATE)).one()
    lag = (row.now - row.oldest_change).total_seconds() if row.oldest_change else 0.0
    return Freshness(
        lag_seconds=max(lag, 0.0),
        oldest_change=row.oldest_change,
        folder=row.folder,
        folder_since=row.folder_since,
        folder_running=row.folder_running,
        folded_at=row.folded_at,
        folded_rows=row.folded_rows,
        error=row.error,
        failed_at=row.failed_at,
    )


# -- the folder --------------------------------------------------------------------------


def process_name(role: str) -> str:
    """How the folder names this process: role, host and pid."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class Folder:
    """Folds the change log every `interval` seconds while this process holds the lease."""

    def __init__(self, engine: AsyncEngine, *, name: str, interval: float = 1.0) -> None:
        self._engine = engine
        self._name = name
        self._interval = interval
        self._last_error: str | None = None
        self.leading = False

    async def run(self) -> None:
        """Until cancelled: wait for the lease, then fold; start over after any error."""
        while True:
            try:
                async with self._engine.connect() as plain:
                    connection = await plain.execution_options(isolation_level=REPEATABLE_READ)
                    if await self._take_lease(connection):
                        try:
                            await self._fold_forever(connection)
                        finally:
                            # The lease is a session lock: a connection going back to the
                            # pool would keep it, and no process could fold again.
                            await plain.invalidate()
            except asyncio.CancelledError:
                raise
            # Whatever stops it (the database gone, a schema not migrated yet), the folder
            # starts over: the figures must not stop for good on one error.
            except Exception as exc:
                self._report(f"the analytics folder cannot fold: {describe_failure(exc)}")
            finally:
                self.leading = False
            await asyncio.sleep(LEADERSHIP_RETRY_SECONDS)

    async def _take_lease(self, connection: AsyncConnection) -> bool:
        async with connection.begin():
            leading = bool(
                (await connection.execute(TRY_LEAD, {"key": FOLDER_LOCK_KEY})).scalar_one()
            )
            if leading:
                await connection.execute(CLAIM, {"folder": self._name})
        if leading:
            self.leading = True
            log.info("%s folds the analytics change log", self._name)
        return leading

    async def _fold_forever(self, connection: AsyncConnection) -> None:
        while True:
            try:
                batch = await fold_batch(connection, mend=True)
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise
                await self._record_failure(connection, exc)
                continue
            except ProtocolError as exc:  # a message from the slot it cannot read
                await self._record_failure(connection, exc)
                continue
            if self._last_error is not None:
                log.info("the analytics fold works again")
                self._last_error = None
            if batch > 0:
                # Cached answers of this process (or of all, in Redis) would hide the batch.
                source_changes.announce()
            if batch < BATCH_ROWS:
                await asyncio.sleep(self._interval)

    async def _record_failure(self, connection: AsyncConnection, exc: Exception) -> None:
        """A lost race is tried again at once; anything else is logged once, named in
        analytics_fold_state for /api/health, and tried again after a pause."""
        if isinstance(exc, DBAPIError) and is_lost_race(exc):
            return
        failure = describe_failure(exc)
        self._report(f"the analytics fold failed and is stopped: {failure}")
        async with connection.begin():
            await connection.execute(RECORD_FAILURE, {"error": failure})
        await asyncio.sleep(FAILURE_RETRY_SECONDS)

    def _report(self, message: str) -> None:
        if message != self._last_error:
            log.error("%s", message)
        self._last_error = message


@contextlib.asynccontextmanager
async def folding(
    engine: AsyncEngine, *, name: str, interval: float
) -> AsyncIterator[Folder | None]:
    """Run a folder beside the caller's work for as long as the block lasts (`interval`
    0: none)."""
    if interval <= 0:
        yield None
        return
    folder = Folder(engine, name=name, interval=interval)
    task = asyncio.create_task(folder.run(), name="analytics-folder")
    try:
        yield folder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
