"""The student summary: one row per user of the bot, and the users per status and stream.

Both are derived from the source tables and kept by the analytics fold
(analytics/sql/install/3_fold.sql), like every summary; this domain reads them to list,
search and count students.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Computed, Index, Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base, identified_by

USER_STATUSES = ("confirmed", "pending", "cancelled", "no_booking")

# Written the way PostgreSQL prints it back, so that the schema comparison sees no change.
USER_STATUS_EXPRESSION = (
    "CASE WHEN (confirmed_bookings > 0) THEN 'confirmed'::text "
    "WHEN (pending_bookings > 0) THEN 'pending'::text "
    "WHEN (bookings_count > 0) THEN 'cancelled'::text "
    "ELSE 'no_booking'::text END"
)
NAME_GRAMS_EXPRESSION = "analytics_name_grams(username, first_name)"
SHORT_TERM = 2  # the longest search term the trigram indexes cannot serve


def _counter() -> Mapped[int]:
    return mapped_column(Integer, server_default="0")


class UserSummary(Base):
    """One row per user (docs/reference.md §4): names, first and last seen, status, stream
    and counts.

    Each `*_at`/`*_row` pair records which source row the value beside it came from
    (time, then row id), so a later row replaces it only when it is more recent.
    """

    __tablename__ = "user_summaries"
    __table_args__ = (
        # Carries the names, so that the most recent users are searched in the index alone.
        Index(
            "ix_user_summaries_first_seen_user_id",
            "first_seen",
            "user_id",
            postgresql_include=["username", "first_name"],
        ),
        Index("ix_user_summaries_status_first_seen_user_id", "status", "first_seen", "user_id"),
        Index(
            "ix_user_summaries_course_stream_first_seen_user_id",
            "course_stream",
            "first_seen",
            "user_id",
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(Text)
    username_at: Mapped[datetime | None]
    username_row: Mapped[int | None] = mapped_column(Integer)
    first_name: Mapped[str | None] = mapped_column(Text)
    first_name_at: Mapped[datetime | None]
    first_name_row: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    bookings_count: Mapped[int] = _counter()
    confirmed_bookings: Mapped[int] = _counter()
    pending_bookings: Mapped[int] = _counter()
    events_count: Mapped[int] = _counter()
    lessons_attended: Mapped[int] = _counter()
    free_lessons_count: Mapped[int] = _counter()
    course_stream: Mapped[str | None] = mapped_column(Text)
    stream_booking_at: Mapped[datetime | None]
    stream_booking_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, Computed(USER_STATUS_EXPRESSION, persisted=True))


NAME_INDEX_STORAGE = {"fastupdate": "on", "gin_pending_list_limit": 1024}


class UserName(Base):
    """The names of each user who has one, indexed for search.

    A copy of user_summaries' names, kept apart so that the fold's many updates of a
    summary (every booking and event changes a count) write no search index: the fold
    writes a row here only when a name changes, and only then pays for the three GIN
    indexes. Their new entries wait in a pending list of at most 1 MB, merged into the
    index a list at a time (by the fold's insert that finds it full, or by autovacuum),
    which costs the fold far less than an entry at a time; a search reads that much
    unmerged at most.
    """

    __tablename__ = "user_names"
    __table_args__ = (
        Index(
            "ix_user_names_username_trgm",
            "username",
            postgresql_using="gin",
            postgresql_ops={"username": "gin_trgm_ops"},
            postgresql_with=NAME_INDEX_STORAGE,
        ),
        Index(
            "ix_user_names_first_name_trgm",
            "first_name",
            postgresql_using="gin",
            postgresql_ops={"first_name": "gin_trgm_ops"},
            postgresql_with=NAME_INDEX_STORAGE,
        ),
        Index(
            "ix_user_names_name_grams",
            "name_grams",
            postgresql_using="gin",
            postgresql_with=NAME_INDEX_STORAGE,
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    # Every substring of one or two characters of the lower-cased names, for searches
    # too short for the trigram indexes.
    name_grams: Mapped[list[str]] = mapped_column(
        ARRAY(Text), Computed(NAME_GRAMS_EXPRESSION, persisted=True)
    )


class UserSegment(Base):
    """How many users have each (status, course_stream): the totals of the users list."""

    __tablename__ = "user_segments"
    __table_args__ = (
        Index(
            "uq_user_segments_status_course_stream",
            "status",
            "course_stream",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = identified_by("status", "course_stream")

    status: Mapped[str] = mapped_column(Text)
    course_stream: Mapped[str | None] = mapped_column(Text)
    users: Mapped[int] = _counter()
