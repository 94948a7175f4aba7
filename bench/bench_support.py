"""What the benchmarks share: the server they run on, scratch databases, free ports."""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from coursedesk.config import load_settings
from coursedesk.db import migrations
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.embedded import drop_database, server_url, start_embedded
from coursedesk.db.engine import create_tool_engine, libpq_url
from coursedesk.db.seed import LoadHooks, SeedResult, seed_database


def server_admin_url() -> str:
    """The `postgres` database of DATABASE_URL's server, or of an embedded server started
    in a temporary directory (deleted when the process exits)."""
    given = os.environ.get("DATABASE_URL")
    if given:
        return server_url(libpq_url(given), "postgres")
    home = Path(tempfile.mkdtemp(prefix="coursedesk-bench-"))
    # Registered before the server's own exit handler, so it runs after it: once the
    # server has stopped and deleted its data, only the empty directory is left.
    atexit.register(_remove_if_empty, home)
    return server_url(libpq_url(start_embedded(home / "pgdata", delete_on_exit=True)), "postgres")


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()


def recreate_database(admin_url: str, name: str) -> None:
    """An empty database `name`, whatever a crashed earlier run left under that name."""
    drop_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate(url: str, revision: str = "head") -> None:
    engine = create_tool_engine(url, load_settings(database_url=url))
    try:
        migrations.upgrade(engine, revision)
    finally:
        engine.dispose()


@contextmanager
def scratch_database(admin_url: str, prefix: str, revision: str = "head") -> Iterator[str]:
    """A database of this process's own, migrated to `revision`, dropped on the way out."""
    name = f"{prefix}_{os.getpid()}"
    recreate_database(admin_url, name)
    try:
        url = server_url(admin_url, name)
        migrate(url, revision)
        yield url
    finally:
        drop_database(admin_url, name)


def seed(url: str, plan: GenerationPlan, hooks: LoadHooks | None = None) -> SeedResult:
    """`db seed` on the database at `url` (summaries rebuilt once unless `hooks` say else)."""
    engine = create_tool_engine(url, load_settings(database_url=url))
    try:
        return seed_database(engine, plan, hooks=hooks)
    finally:
        engine.dispose()
