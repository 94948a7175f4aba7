"""Alembic migrations: upgrade, downgrade, status, checksum validation and reset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RangeNotAncestorError, ResolutionError, RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from coursedesk.errors import CoursedeskError, InvalidInput

SCRIPT_LOCATION = Path(__file__).parent / "alembic"
# Serialises migration runs of several processes on one database.
_MIGRATION_LOCK_KEY = 7_130_412_001


class UnknownRevision(CoursedeskError):
    """The database is at a revision no migration file here has (newer code migrated it)."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"the database is at revision {revision!r}, which this code does not know "
            "(was it migrated by a newer version?)"
        )


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str
    pending: list[str]
    applied: list[str]
    # False when `current` is no revision of this code: applied and pending are then unknown.
    current_known: bool = True

    @property
    def is_current(self) -> bool:
        return self.current_known and not self.pending

    def as_dict(self) -> dict[str, object]:
        return {
            "current": self.current,
            "current_known": self.current_known,
            "head": self.head,
            "pending": self.pending,
            "applied": self.applied,
            "up_to_date": self.is_current,
        }


@dataclass(frozen=True)
class ChecksumProblem:
    revision: str
    filename: str
    problem: str


def script_directory() -> ScriptDirectory:
    return _script_directory(SCRIPT_LOCATION)


@cache
def _script_directory(location: Path) -> ScriptDirectory:
    """Alembic imports every migration file to read the folder; that is done once per
    folder and process (the health check asks often, and the files do not change under a
    running process)."""
    return ScriptDirectory(str(location))


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def _file_checksum(script: Script) -> str:
    """The migration file's checksum, and with it that of each SQL file it applies
    (`<its name>_*.sql` beside it)."""
    path = Path(script.path)
    digest = hashlib.sha256(path.read_bytes())
    for companion in sorted(path.parent.glob(f"{path.stem}_*.sql")):
        digest.update(companion.read_bytes())
    return digest.hexdigest()


def _accepted_checksums(script: Script) -> set[str]:
    """The file's checksum now, and those of earlier texts it declares equivalent
    (CHECKSUMS_OF_EARLIER_TEXT), as recorded by databases migrated with them."""
    earlier = getattr(script.module, "CHECKSUMS_OF_EARLIER_TEXT", ())
    return {_file_checksum(script), *earlier}


def _current_revision(connection: Connection) -> str | None:
    # The history is linear, so alembic_version holds one row; several were written by
    # hand, and together they name no revision this code knows.
    return ", ".join(MigrationContext.configure(connection).get_current_heads()) or None


def _applied_scripts(scripts: ScriptDirectory, current: str | None) -> list[Script]:
    if current is None:
        return []
    return list(reversed(list(scripts.iterate_revisions(current, "base"))))


def _is_known(scripts: ScriptDirectory, revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def _known_current_revision(scripts: ScriptDirectory, connection: Connection) -> str | None:
    current = _current_revision(connection)
    if not _is_known(scripts, current):
        raise UnknownRevision(str(current))
    return current


def _steps(
    scripts: ScriptDirectory, current: str | None, revision: str, *, down: bool
) -> list[Script]:
    """The migrations going from `current` to `revision` runs, newest first.

    A target that does not exist, lies the wrong way, or is a relative step past either
    end (`+9`, `-9`) is bad input, refused before anything runs.
    """
    try:
        if down:
            return list(scripts.iterate_revisions(current, revision, select_for_downgrade=True))
        return list(scripts.iterate_revisions(revision, current, implicit_base=True))
    except ResolutionError:
        raise InvalidInput(f"unknown revision {revision!r}") from None
    except RangeNotAncestorError:
        way = "below" if down else "above"
        raise InvalidInput(
            f"revision {revision!r} is not {way} the current revision {current or 'base'}"
        ) from None
    except RevisionError as exc:
        raise InvalidInput(f"revision {revision!r}: {exc}") from None


def _record_checksums(connection: Connection) -> None:
    """Record the checksum of each newly applied migration; forget rolled-back ones."""
    scripts = script_directory()
    applied = _applied_scripts(scripts, _current_revision(connection))
    if not applied:
        return
    revisions = [script.revision for script in applied]
    connection.execute(
        text("DELETE FROM migration_checksums WHERE NOT (revision = ANY(:revisions))"),
        {"revisions": revisions},
    )
    for script in applied:
        connection.execute(
            text(
                "INSERT INTO migration_checksums (revision, filename, checksum) "
                "VALUES (:revision, :filename, :checksum) ON CONFLICT (revision) DO NOTHING"
            ),
            {
                "revision": script.revision,
                "filename": Path(script.path).name,
                "checksum": _file_checksum(script),
            },
        )


def _locked(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})


def upgrade(engine: Engine, revision: str = "head") -> MigrationStatus:
    scripts = script_directory()
    with engine.begin() as connection:
        _locked(connection)
        _steps(scripts, _known_current_revision(scripts, connection), revision, down=False)
        command.upgrade(_config(connection), revision)
        _record_checksums(connection)
    return status(engine)


def downgrade(engine: Engine, revision: str, *, to_base: bool = False) -> MigrationStatus:
    """Roll back to `revision`; undoing the first migration (dropping the bot's tables and
    every row) is refused unless `to_base`."""
    scripts = script_directory()
    with engine.begin() as connection:
        _locked(connection)
        current = _known_current_revision(scripts, connection)
        steps = _steps(scripts, current, revision, down=True)
        if not to_base and any(step.is_base for step in steps):
            raise InvalidInput(
                f"downgrading to {revision!r} drops every table and row; "
                "run again with --force to do it"
            )
        command.downgrade(_config(connection), revision)
        if _current_revision(connection) is not None:
            _record_checksums(connection)
    return status(engine)


def status(connectable: Engine | Connection) -> MigrationStatus:
    if isinstance(connectable, Engine):
        with connectable.connect() as connection:
            return status(connection)
    scripts = script_directory()
    head = scripts.get_current_head()
    assert head is not None, "the migrations folder has no head"
    current = _current_revision(connectable)
    if not _is_known(scripts, current):
        return MigrationStatus(current, head, pending=[], applied=[], current_known=False)
    applied = [script.revision for script in _applied_scripts(scripts, current)]
    pending = [
        script.revision
        for script in reversed(list(scripts.iterate_revisions(head, current or "base")))
        if script.revision not in applied
    ]
    return MigrationStatus(current=current, head=head, pending=pending, applied=applied)


def validate(connectable: Engine | Connection) -> list[ChecksumProblem]:
    """Applied migrations whose file changed (or vanished) since they were applied."""
    if isinstance(connectable, Engine):
        with connectable.connect() as connection:
            return validate(connection)
    scripts = script_directory()
    current = _known_current_revision(scripts, connectable)
    if current is None:
        return []
    recorded = {
        row.revision: (row.filename, row.checksum)
        for row in connectable.execute(
            text("SELECT revision, filename, checksum FROM migration_checksums")
        )
    }
    problems: list[ChecksumProblem] = []
    for script in _applied_scripts(scripts, current):
        filename = Path(script.path).name
        if script.revision not in recorded:
            problems.append(ChecksumProblem(script.revision, filename, "no checksum recorded"))
        elif recorded[script.revision][1] not in _accepted_checksums(script):
            problems.append(
                ChecksumProblem(script.revision, filename, "file edited after it was applied")
            )
    return problems


def reset(engine: Engine) -> MigrationStatus:
    """Drop every object of the public schema, and the schema `scripts` of the db-migrate
    scripts (migration 0009), and migrate up from nothing."""
    with engine.begin() as connection:
        _locked(connection)
        connection.execute(text("DROP SCHEMA IF EXISTS scripts CASCADE"))
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    return upgrade(engine)
