"""Deleting uploaded files nothing uses: no broadcast, no draft, and older than the retention.

A file is kept while a broadcast sends it or a draft names it, and for MEDIA_RETENTION_DAYS after
its upload whatever holds it, so that one uploaded for a broadcast still being written
is there when it is sent. Each worker prunes when it starts and every
PRUNE_INTERVAL_SECONDS after (pruning_media); `coursedesk media prune` does it by hand.

Races, and why none loses a file in use:
- An upload in progress has not committed its media_files row, so no prune sees it;
  its created_at is its transaction's start, so it is young when it commits.
- Whatever starts to hold a file locks its row FOR KEY SHARE first (keep_media), in the
  transaction that writes the holding row. The prune takes its rows FOR UPDATE SKIP
  LOCKED, so it passes over a file being taken, and one it has taken is seen as gone by
  keep_media, which refuses it (a 400 naming the id), never half-stored.
- A holder that committed after the prune's snapshot, and so unseen by it, is caught by
  the foreign key (broadcast_media.media_id) when the file is deleted: that attempt is
  rolled back to its savepoint and made again, with a snapshot that sees the holder.
  A draft has no foreign key: one saved in the moment between a prune's snapshot and
  its lock may name a file the prune deletes; sending it is then refused with a 400
  naming the file, and the draft is otherwise kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from coursedesk.errors import InvalidInput

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 3600.0
"""How often each worker prunes."""
PRUNE_BATCH = 100
"""Files deleted in one transaction."""
PRUNE_ATTEMPTS = 3
"""Tries of one prune that a holder committed meanwhile makes start again."""

KEEP_MEDIA = text(
    """
-- keep_media: these files exist, and stay until this transaction ends (a prune skips
-- them), so that the row about to name them can be written.
SELECT id FROM media_files WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR KEY SHARE
"""
)

# Files are held by the broadcasts that send them and by the drafts that name them in the
# composer's media_ids field, ids between commas or spaces (pages/composer_form.py);
# anything else in a draft holds nothing.
_UNUSED_FILES = """
    SELECT f.id FROM media_files AS f
    WHERE f.created_at < now() - make_interval(days => :retention_days)
      AND NOT EXISTS (SELECT 1 FROM broadcast_media AS b WHERE b.media_id = f.id)
      AND f.id NOT IN (
          SELECT CAST(listed AS bigint)
          FROM broadcast_drafts AS d,
              regexp_split_to_table(coalesce(d.fields->>'media_ids', ''), '[^0-9]+') AS listed
          WHERE listed ~ '^[0-9]{1,18}$')
    ORDER BY f.id
    LIMIT :batch
"""
"""The files older than :retention_days that nothing holds, the first :batch of them (all
with NULL)."""


@dataclass(frozen=True, slots=True)
class Pruned:
    files: int
    bytes: int


async def keep_media(session: AsyncSession, media_ids: Sequence[int]) -> None:
    """Lock these files against a prune until the caller's transaction ends; InvalidInput
    naming the first one that is gone. Call it before writing a row that names them."""
    wanted = sorted(set(media_ids))
    if not wanted:
        return
    found = set((await session.scalars(KEEP_MEDIA, {"ids": wanted})).all())
    missing = [media_id for media_id in wanted if media_id not in found]
    if missing:
        raise InvalidInput(f"media: no media with id {missing[0]}")


async def unused_media(connection: AsyncConnection, *, retention_days: int) -> Pruned:
    """What a prune would delete now (nothing is locked or deleted)."""
    row = (
        await connection.execute(
            text(
                f"SELECT count(*), coalesce(sum(m.size), 0) FROM media_files AS m "
                f"WHERE m.id IN ({_UNUSED_FILES})"
            ),
            {"retention_days": retention_days, "batch": None},
        )
    ).one()
    return Pruned(int(row[0]), int(row[1]))


async def prune_media(
    connection: AsyncConnection, *, retention_days: int, batch: int = PRUNE_BATCH
) -> Pruned:
    """Delete up to `batch` files nothing holds that are older than `retention_days`, in
    the caller's transaction (their slices go with them); what was deleted.

    Files another transaction has locked are skipped; a holder committed meanwhile
    makes the deletion start again (PRUNE_ATTEMPTS) rather than fail.
    """
    statement = text(
        f"""
        -- prune_media: the unused files, deleted with their slices.
        DELETE FROM media_files WHERE id IN ({_UNUSED_FILES} FOR UPDATE SKIP LOCKED)
        RETURNING size
        """
    )
    parameters = {"retention_days": retention_days, "batch": batch}
    attempt = 1
    while True:
        try:
            async with connection.begin_nested():
                sizes = (await connection.scalars(statement, parameters)).all()
        except IntegrityError:
            if attempt == PRUNE_ATTEMPTS:
                raise
            attempt += 1
            continue
        return Pruned(len(sizes), sum(sizes))


async def prune_all_media(engine: AsyncEngine, *, retention_days: int) -> Pruned:
    """Prune batch after batch, each in a transaction of its own, until one is not full."""
    files = size = 0
    while True:
        async with engine.begin() as connection:
            pruned = await prune_media(connection, retention_days=retention_days)
        files, size = files + pruned.files, size + pruned.bytes
        if pruned.files < PRUNE_BATCH:
            return Pruned(files, size)


@contextlib.asynccontextmanager
async def pruning_media(
    engine: AsyncEngine, *, retention_days: int, interval: float = PRUNE_INTERVAL_SECONDS
) -> AsyncIterator[None]:
    """Prune now and every `interval` seconds for as long as the block lasts.

    At the end a prune under way is let finish, not cancelled: a task cancelled inside a
    database call can leave its connection waiting on the server.
    """
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            try:
                pruned = await prune_all_media(engine, retention_days=retention_days)
            except (DBAPIError, OSError) as exc:
                log.warning("pruning unused media failed, trying again later: %s", exc)
            else:
                if pruned.files:
                    log.info(
                        "deleted %d unused media files (%d bytes) older than %d days",
                        pruned.files,
                        pruned.bytes,
                        retention_days,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    task = asyncio.create_task(run(), name="media-pruner")
    try:
        yield
    finally:
        stop.set()
        await task
