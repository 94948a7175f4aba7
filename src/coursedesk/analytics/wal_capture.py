"""The change capture read from the WAL: logical decoding instead of triggers.

`coursedesk db capture wal` takes the capture triggers off the bot's tables and reads
the same changes from a logical replication slot (the built-in `pgoutput` plugin,
through a publication of the three tables), so that a bot statement costs exactly what
it costs without coursedesk. It needs `wal_level = logical` (the embedded server runs
with it). `coursedesk db capture triggers` goes back.

Exactly once, with a slot that is not transactional: each batch of the fold
(folding.py) runs in one REPEATABLE READ transaction with snapshot S. In it,
`pull_changes` peeks at the slot (reading does not consume) and copies into the
temporary table fold_pulled the rows of every decoded transaction S sees and the previous
batch's snapshot did not; analytics_fold() then folds them with whatever
analytics_changes holds, and S is recorded with the batch. Only after the commit is the
slot advanced, to the first transaction S did not see. A batch that dies before its
commit leaves the slot and the record as they were; one that dies after it, before the
advance, finds its own transactions again next time and skips them, since the recorded
S sees them. So a transaction is folded in the first batch whose snapshot sees it, and
only in that one, which is also what keeps the fold's recomputation of a user from that
same snapshot exact. A rebuild records its snapshot the same way.

A slot lost (past `max_slot_wal_keep_size`, or dropped) or never made is made again and
every summary rebuilt from the source tables, a snapshot taken after the slot exists:
the folder does it by itself (`restart_capture`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

from coursedesk.analytics.install import (
    CAPTURED_TABLES,
    drop_capture_triggers,
    install_capture_triggers,
)
from coursedesk.analytics.pgoutput import (
    Decoder,
    Transaction,
    decode,
    lsn_text,
    lsn_value,
    split_frames,
)
from coursedesk.db.retry import sqlstate
from coursedesk.errors import Conflict

log = logging.getLogger(__name__)

CaptureMode = Literal["triggers", "wal"]
PUBLICATION = "coursedesk_analytics"
INSERT_CHUNK = 5_000
DUPLICATE_OBJECT = "42710"

READ_MODE = text("SELECT capture FROM analytics_fold_state WHERE id = 1")
# The database's slot and its state (NULL: there is none). Slots belong to the server, so
# the name carries the database's oid.
_SLOT_OF_THIS_DATABASE = """
    SELECT 'coursedesk_analytics_' || d.oid AS slot, r.wal_status,
           pg_wal_lsn_diff(r.confirmed_flush_lsn, r.restart_lsn) AS restart_lag
    FROM pg_database AS d
    LEFT JOIN pg_replication_slots AS r ON r.slot_name = 'coursedesk_analytics_' || d.oid
    WHERE d.datname = current_database()
"""
SLOT = text(_SLOT_OF_THIS_DATABASE)
# The first query of a batch after the fold lock, so the one that takes the batch's
# snapshot: everything committed before this statement started is in it.
READ_PULL_STATE = text(
    f"""
    SELECT s.capture, s.wal_snapshot, statement_timestamp() AS started_at,
           current_schema() AS schema, slot.slot, slot.wal_status, slot.restart_lag,
           to_regclass('pg_temp.fold_pulled') IS NOT NULL AS has_pulled,
           coalesce(has_function_privilege(
               to_regprocedure('pg_log_standby_snapshot()'), 'EXECUTE'), false)
               AS can_log_running
    FROM analytics_fold_state AS s CROSS JOIN ({_SLOT_OF_THIS_DATABASE}) AS slot
    """
)
# Decoding (a peek and an advance alike) starts at the slot's restart_lsn, which moves on
# only past a record of the transactions running then: the server writes one every 15 s
# and at checkpoints, and under heavy writes every batch would read that much WAL again.
# Where the slot lags further than this, a batch writes such a record (PostgreSQL 16 and
# later, for a role allowed to), and the first advance past it moves restart_lsn up to it
# (this batch's, or the next one's where a commit came between).
RESTART_LAG_BOUND = 8 * 1024 * 1024
LOG_RUNNING = text("SELECT pg_log_standby_snapshot()")
TAKE_SNAPSHOT = text(
    "SELECT pg_current_snapshot()::text AS snapshot, pg_current_wal_insert_lsn()::text AS wal_end"
)
FLUSHED = text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)")
# The messages come a few thousand to a row, each prefixed with its length: one row per
# message would cost the client more than decoding them does.
PEEK = text(
    """
    SELECT string_agg(int4send(length(data)) || data, ''::bytea ORDER BY n) AS frames
    FROM pg_logical_slot_peek_binary_changes(
             CAST(:slot AS name), CAST(:upto AS pg_lsn), NULL, 'proto_version', '1',
             'publication_names', CAST(:publication AS text))
         WITH ORDINALITY AS m(lsn, xid, data, n)
    GROUP BY (n - 1) / 4000
    ORDER BY (n - 1) / 4000
    """
)
# What a batch read from the slot waits for analytics_fold() in a temporary table, so it
# writes no WAL (which the slot would then read through again). The rows go as one jsonb
# array: one parameter, which costs the client far less to send than four arrays of
# values each adapted on its own.
MAKE_PULLED = text("CREATE TEMP TABLE fold_pulled (LIKE analytics_changes) ON COMMIT DELETE ROWS")
APPEND = text(
    """
    INSERT INTO fold_pulled (captured_at, source, sign, data)
    SELECT CAST(c ->> 0 AS timestamptz), c ->> 1, CAST(c ->> 2 AS smallint),
           nullif(c -> 3, 'null')
    FROM jsonb_array_elements(CAST(:changes AS jsonb)) AS c
    """
)
RECORD_PULL = text(
    "UPDATE analytics_fold_state SET wal_snapshot = :snapshot, wal_read_at = :read_at WHERE id = 1"
)
ADVANCE = text(
    "SELECT pg_replication_slot_advance(slot_name, CAST(:lsn AS pg_lsn)) "
    "FROM pg_replication_slots "
    "WHERE slot_name = :slot AND confirmed_flush_lsn < CAST(:lsn AS pg_lsn)"
)


class CaptureLost(Exception):
    """The slot is gone, was given up by the server, or was never joined to a rebuild:
    the summaries must be rebuilt after a new slot is made (`restart_capture`)."""


@dataclass(frozen=True)
class Snapshot:
    """A pg_snapshot: which transactions it sees."""

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, value: str) -> Snapshot:
        xmin, xmax, running = value.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in running.split(",") if x))

    def sees(self, xid: int) -> bool:
        """Whether a committed transaction of 32-bit id `xid` is visible in it.

        The decoded xid has no epoch: it is read as the full id nearest to xmax, which
        is exact for any transaction less than two billion ids from the snapshot.
        """
        full = _widen(xid, self.xmax)
        return full < self.xmax and full not in self.running


def _widen(xid: int, near: int) -> int:
    delta = (xid - near) & 0xFFFFFFFF
    if delta >= 1 << 31:
        delta -= 1 << 32
    return near + delta


@dataclass(frozen=True)
class Pull:
    """What a batch copied from the slot, and where to advance it once committed."""

    slot: str
    advance_to: str


@dataclass(frozen=True)
class CaptureState:
    """How the capture reads the bot's changes, and what is wrong with it."""

    mode: CaptureMode
    # With the capture from the WAL: what keeps it from reading every change.
    problems: tuple[str, ...]
    # With the capture by triggers: why the server or the role cannot read the WAL, or
    # None where `db capture wal` would switch (and always None with the WAL's capture).
    wal_refused: str | None


def capture_mode(connection: Connection) -> CaptureMode:
    mode: CaptureMode = connection.execute(READ_MODE).one().capture
    return mode


def capture_state(connection: Connection) -> CaptureState:
    mode = capture_mode(connection)
    if mode == "wal":
        return CaptureState(mode, tuple(wal_capture_problems(connection)), None)
    try:
        require_wal_capture(connection)
    except Conflict as refused:
        return CaptureState(mode, (), str(refused))
    return CaptureState(mode, (), None)


def slot_name(connection: Connection) -> str:
    return _slot(connection)[0]


def existing_slot(connection: Connection) -> str | None:
    """The name of the database's slot, if it exists."""
    slot, status = _slot(connection)
    return slot if status is not None else None


def _slot(connection: Connection) -> tuple[str, str | None]:
    """The database's slot's name and its wal_status (None: there is no slot)."""
    row = connection.execute(SLOT).one()
    return str(row.slot), row.wal_status


def pull_changes(connection: Connection) -> Pull | None:
    """In a fold batch's transaction, after the fold lock: copy what the slot holds for
    this batch's snapshot into fold_pulled, where analytics_fold() takes it (None: the
    capture is by triggers)."""
    state = connection.execute(READ_PULL_STATE).one()
    if state.capture != "wal":
        return None
    slot, status = state.slot, state.wal_status
    if status is None or status == "lost" or state.wal_snapshot is None:
        raise CaptureLost(
            f"replication slot {slot} is {'missing' if status is None else status}"
            if status in (None, "lost")
            else f"replication slot {slot} was not joined to a rebuild"
        )
    # The slot is advanced once this commits: the commit must be as durable as that.
    connection.execute(text("SET LOCAL synchronous_commit = on"))
    previous = Snapshot.parse(state.wal_snapshot)
    if state.can_log_running and (state.restart_lag or 0) > RESTART_LAG_BOUND:
        connection.execute(LOG_RUNNING)
    taken = connection.execute(TAKE_SNAPSHOT).one()
    current = Snapshot.parse(taken.snapshot)
    _flush_to(connection, taken.wal_end)

    if not state.has_pulled:
        connection.execute(MAKE_PULLED)
    decoder = Decoder(CAPTURED_TABLES, namespace=state.schema)
    messages = _peek(connection, slot, taken.wal_end)
    advance_to = lsn_value(taken.wal_end)
    read_at: datetime = state.started_at
    pending: list[Transaction] = []
    pending_rows = 0
    for transaction in decode(messages, decoder):
        if previous.sees(transaction.xid):
            continue  # folded by an earlier batch or counted by the rebuild
        if not current.sees(transaction.xid):
            # Committed after this snapshot: the next batch's.
            advance_to = min(advance_to, transaction.final_lsn)
            read_at = min(read_at, transaction.committed_at)
            continue
        pending.append(transaction)
        pending_rows += len(transaction.changes)
        if pending_rows >= INSERT_CHUNK:
            _append(connection, pending)
            pending, pending_rows = [], 0
    _append(connection, pending)
    connection.execute(RECORD_PULL, {"snapshot": taken.snapshot, "read_at": read_at})
    return Pull(slot, lsn_text(advance_to))


def advance(connection: Connection, pull: Pull) -> None:
    """Once the batch has committed, in a transaction of its own: let the server forget
    what was folded. Under the fold lock, since a slot serves one process at a time."""
    connection.execute(FOLD_LOCK)
    connection.execute(ADVANCE, {"slot": pull.slot, "lsn": pull.advance_to})


def _flush_to(connection: Connection, lsn: str) -> None:
    """Decoding reads only flushed WAL, and a transaction committed asynchronously
    (synchronous_commit off) is visible before its commit record is flushed. So that
    every transaction this batch's snapshot sees can be decoded, the WAL is flushed up to
    `lsn`, read after the snapshot: where it is not yet, by committing a transaction that
    wrote to the WAL, synchronously, on a connection of its own (such a commit flushes
    all WAL before its own record). What it writes is a logical decoding message, which
    touches no table and which pgoutput leaves out."""
    if connection.execute(FLUSHED, {"lsn": lsn}).scalar_one():
        return
    with connection.engine.connect() as side:
        side.execute(text("SET LOCAL synchronous_commit = on"))
        side.execute(text("SELECT pg_logical_emit_message(true, 'coursedesk', '')"))
        side.commit()
    if not connection.execute(FLUSHED, {"lsn": lsn}).scalar_one():
        raise RuntimeError(f"the WAL is not flushed to {lsn} after a synchronous commit")


def _peek(connection: Connection, slot: str, upto: str) -> Iterator[bytes]:
    result = connection.execute(
        PEEK,
        {"slot": slot, "upto": upto, "publication": PUBLICATION},
        execution_options={"yield_per": 1},
    )
    for (frames,) in result:
        yield from split_frames(frames)


def _append(connection: Connection, transactions: Iterable[Transaction]) -> None:
    changes = [
        (
            committed_at,
            "truncate" if change.sign == 0 else change.table,
            change.sign,
            change.row,
        )
        for transaction in transactions
        for committed_at in (transaction.committed_at.isoformat(),)
        for change in transaction.changes
    ]
    if changes:
        connection.execute(APPEND, {"changes": json.dumps(changes, separators=(",", ":"))})


# -- the slot, the publication, and switching ---------------------------------------------

# The fold lock (folding.py): batches, rebuilds and every step below that touches the
# slot take it, so none of them meets another at the slot.
FOLD_LOCK = text("LOCK TABLE analytics_fold_state IN EXCLUSIVE MODE")
# A switch alters the bot's tables: it gives up after a few seconds rather than keep the
# bot's statements queued behind it (and a request folding its own edit waits as long).
SHORT_LOCK_WAIT = text("SET LOCAL lock_timeout = '3s'")
CREATE_SLOT = text("SELECT pg_create_logical_replication_slot(:slot, 'pgoutput')")
DROP_SLOT = text(
    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = :slot"
)
# Before a slot is dropped or made, no snapshot may say what is counted: a batch then
# stops (CaptureLost) until a rebuild records one. A rebuild records its snapshot only
# where it sees the slot ready, which is written once the slot exists, so the snapshot it
# records is always one taken after the slot was made.
NOT_READY = text(
    "UPDATE analytics_fold_state SET wal_snapshot = NULL, wal_slot_ready = false WHERE id = 1"
)
READY = text("UPDATE analytics_fold_state SET wal_slot_ready = true WHERE id = 1")
RECORD_REBUILD = text(
    "UPDATE analytics_fold_state SET wal_snapshot = pg_current_snapshot()::text, "
    "wal_read_at = clock_timestamp() WHERE id = 1 AND capture = 'wal' AND wal_slot_ready"
)
# Until the rebuild that follows a switch to the WAL, the figures are as of the switch.
USE_WAL = text(
    "UPDATE analytics_fold_state SET capture = 'wal', wal_snapshot = NULL, "
    "wal_read_at = clock_timestamp() WHERE id = 1"
)
USE_TRIGGERS = text(
    "UPDATE analytics_fold_state SET capture = 'triggers', wal_snapshot = NULL, "
    "wal_slot_ready = false, wal_read_at = NULL WHERE id = 1"
)
LOCK_NOT_AVAILABLE = "55P03"


def record_rebuild(connection: Connection) -> None:
    """In a rebuild's transaction: what its snapshot sees is counted, so no batch may
    fold it again (where the slot was ready when the snapshot was taken)."""
    connection.execute(RECORD_REBUILD)


def require_wal_capture(connection: Connection) -> None:
    """Refuse, saying why, where the server or the role cannot read the WAL safely."""
    level = connection.execute(text("SHOW wal_level")).scalar_one()
    if level != "logical":
        raise Conflict(
            f"the server runs with wal_level = {level}: reading the changes from the WAL "
            "needs wal_level = logical (postgresql.conf, then a restart of the server)"
        )
    allowed = connection.execute(
        text("SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user")
    ).scalar_one()
    if not allowed:
        raise Conflict(
            "reading the changes from the WAL needs a replication slot, which only a role "
            "with the REPLICATION attribute (or a superuser) may use: "
            "ALTER ROLE … WITH REPLICATION"
        )
    foreign = connection.execute(
        text(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "AND relname = ANY(:tables) AND NOT pg_has_role(current_user, relowner, 'USAGE') "
            "ORDER BY relname"
        ),
        {"tables": list(CAPTURED_TABLES)},
    ).scalars()
    if names := list(foreign):
        raise Conflict(
            f"the role does not own {', '.join(names)}: publishing a table and having it "
            "log whole old rows needs its owner"
        )
    if connection.execute(text("SHOW max_slot_wal_keep_size")).scalar_one() == "-1":
        raise Conflict(
            "max_slot_wal_keep_size is -1: a slot left unread would keep WAL until the disk "
            "is full; set a bound first (the embedded server keeps 1GB)"
        )


def make_slot(connection: Connection) -> None:
    """Make the database's slot where it is missing or lost, with the slot marked not
    ready before and ready after (`connection` in no transaction). Making a slot waits
    for every transaction open on the server at that moment to end, outside any
    transaction: it is made on a connection of its own."""
    with connection.begin():
        connection.execute(FOLD_LOCK)
        connection.execute(NOT_READY)
    with connection.engine.connect() as plain:
        side = plain.execution_options(isolation_level="AUTOCOMMIT")
        slot, status = _slot(side)
        if status == "lost":
            log.warning("replication slot %s was lost; making it again", slot)
            side.execute(DROP_SLOT, {"slot": slot})
        if status in (None, "lost"):
            try:
                side.execute(CREATE_SLOT, {"slot": slot})
            except ProgrammingError as exc:  # made meanwhile by another process
                if sqlstate(exc) != DUPLICATE_OBJECT:
                    raise
    with connection.begin():
        connection.execute(FOLD_LOCK)
        connection.execute(READY)


def drop_slot(connection: Connection) -> None:
    """Drop the database's slot if there is one (`connection` in no transaction)."""
    with connection.begin():
        connection.execute(FOLD_LOCK)
        connection.execute(NOT_READY)
        connection.execute(DROP_SLOT, {"slot": slot_name(connection)})


def publish(connection: Connection) -> None:
    """In a transaction of its own, before the slot is made: the bot's tables in the
    publication (it must exist before the slot decodes anything), each logging its
    whole old row on UPDATE and DELETE, as the triggers' OLD did."""
    require_wal_capture(connection)
    _altering_the_bots_tables(connection)
    exists = connection.execute(
        text("SELECT FROM pg_publication WHERE pubname = :name"), {"name": PUBLICATION}
    ).first()
    if exists is None:
        tables = ", ".join(CAPTURED_TABLES)
        connection.execute(text(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {tables}"))
    for table in CAPTURED_TABLES:
        connection.execute(text(f'ALTER TABLE "{table}" REPLICA IDENTITY FULL'))


def unpublish(connection: Connection) -> None:
    """In a transaction: the publication gone, the bot's tables logging as before."""
    _altering_the_bots_tables(connection)
    for table in CAPTURED_TABLES:
        connection.execute(text(f'ALTER TABLE "{table}" REPLICA IDENTITY DEFAULT'))
    connection.execute(text(f"DROP PUBLICATION IF EXISTS {PUBLICATION}"))


def use_wal(connection: Connection) -> None:
    """In the switch's transaction, once the slot is ready: the capture triggers off."""
    _altering_the_bots_tables(connection)
    connection.execute(FOLD_LOCK)
    drop_capture_triggers(connection)
    connection.execute(USE_WAL)


def use_triggers(connection: Connection) -> None:
    """In the switch's transaction: the capture triggers on; the slot is dropped once
    a rebuild has counted what it held (folding.set_capture)."""
    _altering_the_bots_tables(connection)
    connection.execute(FOLD_LOCK)
    install_capture_triggers(connection)
    connection.execute(USE_TRIGGERS)


def _altering_the_bots_tables(connection: Connection) -> None:
    connection.execute(SHORT_LOCK_WAIT)


def is_lock_wait(exc: BaseException) -> bool:
    return sqlstate(exc) == LOCK_NOT_AVAILABLE


def wal_capture_problems(connection: Connection) -> list[str]:
    """What keeps the capture from reading every change of the bot's tables."""
    problems = []
    slot, status = _slot(connection)
    if status in (None, "lost"):
        problems.append(f"replication slot {slot} is {'missing' if status is None else 'lost'}")
    published = set(
        connection.execute(
            text(
                "SELECT tablename FROM pg_publication_tables "
                "WHERE pubname = :name AND schemaname = current_schema()"
            ),
            {"name": PUBLICATION},
        ).scalars()
    )
    problems += [
        f"{table} is not in publication {PUBLICATION}"
        for table in CAPTURED_TABLES
        if table not in published
    ]
    identities = connection.execute(
        text(
            "SELECT relname, relreplident FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(:tables)"
        ),
        {"tables": list(CAPTURED_TABLES)},
    ).all()
    problems += [
        f"{row.relname} does not log whole old rows (REPLICA IDENTITY FULL)"
        for row in identities
        if row.relreplident != "f"
    ]
    if connection.execute(text("SHOW max_slot_wal_keep_size")).scalar_one() == "-1":
        problems.append("max_slot_wal_keep_size is -1: an unread slot would keep WAL without bound")
    return problems
