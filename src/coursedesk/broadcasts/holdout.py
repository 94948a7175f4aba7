"""The control group: a share of a broadcast's audience, drawn at random, never sent.

Its recipients are recorded with delivery_status `holdout` when the audience is
resolved, in the same INSERT … SELECT as everyone else. Every path of the workers works
on `pending` rows (claiming), on `pending` ones (a cancel) or on `sent` ones (a delete),
so a holdout row is never claimed, sent, cancelled or deleted: it stays as it was
written, for the outcome (broadcasts/earnings.py) to compare against.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal, select

from coursedesk.broadcasts.models import MAX_HOLDOUT_PERCENT
from coursedesk.errors import InvalidInput


def checked_holdout_percent(percent: int) -> int:
    """The percentage as given, or InvalidInput when it is outside 0–50."""
    if not 0 <= percent <= MAX_HOLDOUT_PERCENT:
        raise InvalidInput(
            f"holdout_percent: give a whole number from 0 to {MAX_HOLDOUT_PERCENT}, not {percent}"
        )
    return percent


def holdout_size(audience: int, percent: int) -> int:
    """round(percent % of audience), halves up, in whole numbers (as the SQL below)."""
    return (audience * percent + 50) // 100


def with_holdout(members: Select[int, str | None], percent: int) -> Select[Any]:
    """(user_id, username, delivery_status) of `members`: exactly holdout_size of them,
    drawn at random, `holdout`, the others `pending`; in user_id order.

    Each member gets a place in one random order (row_number over random()); the first
    holdout_size places are the control group, so its size is exact, not a coin toss per
    member.
    """
    listed = members.order_by(None).subquery("members")
    drawn = select(
        listed.c.user_id,
        listed.c.username,
        func.row_number().over(order_by=func.random()).label("place"),
        func.count().over().label("audience"),
    ).subquery("drawn")
    held_out: ColumnElement[bool] = drawn.c.place <= (
        drawn.c.audience * literal(percent) + literal(50)
    ) // literal(100)
    status = case((held_out, literal("holdout")), else_=literal("pending")).label("delivery_status")
    return select(drawn.c.user_id, drawn.c.username, status).order_by(drawn.c.user_id)
