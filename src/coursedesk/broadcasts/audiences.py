"""Who a broadcast goes to: the four audiences of docs/reference.md §4, resolved in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Select,
    any_,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.holdout import with_holdout
from coursedesk.broadcasts.models import MessageRecipient
from coursedesk.db.base import BIGINT_MAX
from coursedesk.errors import InvalidInput
from coursedesk.sources.models import BOOKING_CANCELLED, Booking
from coursedesk.telegram.models import BotUser
from coursedesk.users.models import UserSummary

MAX_LISTED_USERS = 100_000
USER_ID_MAX = BIGINT_MAX

UserId = Annotated[int, Field(gt=0, le=USER_ID_MAX)]
StreamName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _AudienceBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllUsers(_AudienceBase):
    """Every user."""

    type: Literal["all"]


class NonCourseUsers(_AudienceBase):
    """Users with no confirmed booking."""

    type: Literal["non_course"]


class StreamUsers(_AudienceBase):
    """Users with a booking in the stream that is not cancelled (any, not only the latest)."""

    type: Literal["stream"]
    stream: StreamName


class ListedUsers(_AudienceBase):
    """The users named; ids that are not users are reported, repeated ids count once."""

    type: Literal["users"]
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_LISTED_USERS)]


Audience = Annotated[
    AllUsers | NonCourseUsers | StreamUsers | ListedUsers, Field(discriminator="type")
]


def recipient_type_of(audience: Audience) -> str:
    return "individual" if isinstance(audience, ListedUsers) else "group"


def recipient_group_of(audience: Audience) -> str | None:
    """The group name the history shows and filters on: all, non_course or stream:NAME."""
    if isinstance(audience, StreamUsers):
        return f"stream:{audience.stream}"
    if isinstance(audience, ListedUsers):
        return None
    return audience.type


def parse_audience_argument(argument: str) -> Audience:
    """The command line's spelling: all, non_course, stream:NAME or users:1,2,3."""
    kind, _, rest = argument.strip().partition(":")
    if kind in ("all", "non_course") and not rest:
        return AllUsers(type="all") if kind == "all" else NonCourseUsers(type="non_course")
    if kind == "stream" and rest.strip():
        return StreamUsers(type="stream", stream=rest)
    if kind == "users" and rest.strip():
        try:
            ids = [int(part) for part in rest.split(",") if part.strip()]
        except ValueError:
            raise InvalidInput(f"--audience users: not a list of user ids: {rest!r}") from None
        if not ids or any(not 0 < user_id <= USER_ID_MAX for user_id in ids):
            raise InvalidInput("--audience users: user ids are positive whole numbers")
        if len(ids) > MAX_LISTED_USERS:
            raise InvalidInput(f"--audience users: at most {MAX_LISTED_USERS} ids")
        return ListedUsers(type="users", user_ids=ids)
    raise InvalidInput(
        f"unknown audience {argument!r}: use all, non_course, stream:NAME or users:1,2,3"
    )


def _id_array(user_ids: list[int]) -> BindParameter[list[int]]:
    # One array parameter, however many ids: an IN list would need a parameter per id.
    return literal(sorted(set(user_ids)), ARRAY(BigInteger))


def _not_blocked() -> ColumnElement[bool]:
    return ~exists().where(BotUser.user_id == UserSummary.user_id, BotUser.is_blocked)


def _members(audience: Audience) -> ColumnElement[bool]:
    if isinstance(audience, AllUsers):
        return true()
    if isinstance(audience, NonCourseUsers):
        # "No booking with confirmed = 2": the summary counts those bookings.
        return UserSummary.confirmed_bookings == 0
    if isinstance(audience, StreamUsers):
        return exists().where(
            Booking.user_id == UserSummary.user_id,
            Booking.course_stream == audience.stream,
            Booking.confirmed != BOOKING_CANCELLED,
        )
    return UserSummary.user_id == any_(_id_array(audience.user_ids))


def audience_filter(audience: Audience) -> ColumnElement[bool]:
    """Whether a user_summaries row is a recipient: a member who has not blocked us."""
    return _members(audience) & _not_blocked()


def recipients_select(audience: Audience) -> Select[int, str | None]:
    """(user_id, username) of every recipient: the audience's users who have not blocked us.

    user_summaries has one row per user (docs/reference.md §4) with their latest username,
    kept by the analytics fold; the ids come out in order so that the recipient indexes
    are filled from one end, which is what keeps a million-row insert fast.
    """
    return (
        select(UserSummary.user_id, UserSummary.username)
        .where(_members(audience), _not_blocked())
        .order_by(UserSummary.user_id)
    )


@dataclass(frozen=True)
class ResolvedAudience:
    total_recipients: int
    invalid_user_ids: list[int]


async def unknown_user_ids(session: AsyncSession, audience: Audience) -> list[int]:
    """The listed ids that are no user at all (blocked users are users, left out silently)."""
    if not isinstance(audience, ListedUsers):
        return []
    given = (
        func.unnest(_id_array(audience.user_ids)).table_valued("user_id").render_derived("given")
    )
    unknown = await session.scalars(
        select(given.c.user_id)
        .where(~exists().where(UserSummary.user_id == given.c.user_id))
        .order_by(given.c.user_id)
    )
    return [int(user_id) for user_id in unknown]


async def count_recipients(session: AsyncSession, audience: Audience) -> ResolvedAudience:
    """What a dry run answers: how many would receive it, and which listed ids are unknown."""
    total = await session.scalar(
        select(func.count()).select_from(recipients_select(audience).order_by(None).subquery())
    )
    return ResolvedAudience(total or 0, await unknown_user_ids(session, audience))


BULK_STATEMENT_TIMEOUT_MS = 300_000


async def allow_long_statement(session: AsyncSession) -> None:
    """Lift the statement timeout for this transaction to a few minutes.

    Adding or cancelling a million recipients is one statement of several seconds; the
    usual timeout guards interactive reads and would cut it off on a busy server.
    """
    await session.execute(
        select(func.set_config("statement_timeout", str(BULK_STATEMENT_TIMEOUT_MS), True))
    )


REPLICATION_ROLE = "session_replication_role"

HAS_SET_PRIVILEGE = text(
    """
-- has_set_privilege: may this role set session_replication_role (PostgreSQL 15 and on)?
SELECT has_parameter_privilege('session_replication_role', 'SET')
"""
)

IS_SUPERUSER = text(
    """
-- is_superuser: before PostgreSQL 15 only a superuser may set session_replication_role.
SELECT rolsuper FROM pg_roles WHERE rolname = current_user
"""
)

APPLY_TALLY = text(
    """
-- apply_recipient_tally: what the insert tally trigger would have added (migration 0001).
SELECT message_recipients_apply(
    CAST(:message_ids AS integer[]), CAST(:statuses AS text[]), CAST(:counts AS bigint[])
)
"""
)


async def insert_recipients(
    session: AsyncSession, message_id: int, audience: Audience, holdout_percent: int = 0
) -> None:
    """Add one pending recipient row per audience member in one INSERT … SELECT, with
    round(holdout_percent %) of them, drawn at random, as `holdout` (broadcasts/holdout.py).

    The whole resolution runs in the database, and the message's figures
    (total_recipients, pending_deliveries, holdout_count) grow in the same transaction.

    Only for a message inserted by the caller's own transaction: no other session can
    see that row, let alone delete it, so every recipient's foreign key holds by
    construction. Where the role may, the per-row foreign-key check (some 40 % of a
    million-row insert) is therefore skipped by running the insert with
    session_replication_role = replica, and the tally the insert trigger would have made
    is applied once after it.
    """
    await allow_long_statement(session)
    chosen = recipients_select(audience)
    if holdout_percent:
        members = with_holdout(chosen, holdout_percent).subquery()
        status = members.c.delivery_status
    else:
        members = chosen.subquery()
        status = literal("pending")
    adding = insert(MessageRecipient).from_select(
        ["message_id", "user_id", "username", "delivery_status"],
        select(literal(message_id), members.c.user_id, members.c.username, status),
    )
    if not await may_skip_row_triggers(session):
        await session.execute(adding)
        return
    added = adding.returning(MessageRecipient.delivery_status).cte("added")
    previous = str(await session.scalar(select(func.current_setting(REPLICATION_ROLE))))
    await _set_replication_role(session, "replica")
    tally = (
        await session.execute(
            select(added.c.delivery_status, func.count()).group_by(added.c.delivery_status)
        )
    ).all()
    await _set_replication_role(session, previous)
    await session.execute(
        APPLY_TALLY,
        {
            "message_ids": [message_id] * len(tally),
            "statuses": [status for status, _ in tally],
            "counts": [count for _, count in tally],
        },
    )


async def may_skip_row_triggers(session: AsyncSession) -> bool:
    """Whether this role may set session_replication_role: a superuser, or one granted it."""
    version = await session.scalar(select(func.current_setting("server_version_num")))
    if int(str(version)) >= 150_000:
        return bool(await session.scalar(HAS_SET_PRIVILEGE))
    return bool(await session.scalar(IS_SUPERUSER))


async def _set_replication_role(session: AsyncSession, role: str) -> None:
    await session.execute(select(func.set_config(REPLICATION_ROLE, role, True)))
