"""The declarative base every table hangs from, with stable constraint names."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import MetaData, Text, func
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TimestampTZ = TIMESTAMP(timezone=True)

# The range of PostgreSQL's bigint, the type of every Telegram user and chat id here.
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


def identified_by(*columns: str) -> dict[str, Any]:
    """Mapper arguments naming the columns that identify a row of a table without a key
    (a summary grouped by columns that may be null has a unique index instead)."""
    return {"primary_key": list(columns)}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: TimestampTZ}


class MigrationChecksum(Base):
    """The checksum of each migration file as it was when it was applied."""

    __tablename__ = "migration_checksums"

    revision: Mapped[str] = mapped_column(Text, primary_key=True)
    filename: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(server_default=func.now())
