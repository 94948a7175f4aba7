"""What a broadcast earned (docs/reference.md §8): its two groups' figures, and the
recipients with theirs as CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from coursedesk.analytics.export import csv_response
from coursedesk.broadcasts import earnings
from coursedesk.broadcasts.schemas import OutcomeAnswer
from coursedesk.broadcasts.service import get_message
from coursedesk.db.engine import Database
from coursedesk.web.deps import ReadSession, Session, Viewer, get_database

router = APIRouter(prefix="/api/messages", tags=["broadcasts"])

MessageId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The broadcast's id")]
WindowDays = Annotated[
    int,
    Query(
        description=(
            f"Days after each recipient's send, 1 to {earnings.MAX_WINDOW_DAYS} (else 400)"
        )
    ),
]


@router.get(
    "/{message_id:int}/outcome",
    summary="What a broadcast earned: delivered recipients beside the control group",
    description=(
        "Of the delivered recipients (`sent`, each from their own send) and of the control "
        "group (`holdout`, from the broadcast's sent_at; null when it has none): how many "
        "clicked its links, booked, have that booking confirmed, registered for a free "
        "lesson, attended a lesson or blocked the bot within `window_days`."
    ),
)
async def outcome(
    message_id: MessageId,
    _: Viewer,
    session: ReadSession,
    window_days: WindowDays = earnings.DEFAULT_WINDOW_DAYS,
) -> OutcomeAnswer:
    found = await earnings.outcome_of(session, message_id, window_days)
    return OutcomeAnswer.model_validate(asdict(found))


async def _csv_rows(
    database: Database, message_id: int, window_days: int
) -> AsyncIterator[list[object]]:
    """The rows on a session of their own, which lasts as long as the download."""
    async with database.sessions() as session:
        message = await get_message(session, message_id)
        async for row in earnings.recipient_rows(session, message, window_days):
            yield row


@router.get(
    "/{message_id:int}/outcome.csv",
    summary="The recipients of both groups with their outcome, as CSV",
    description=(
        "One row per delivered or held-out recipient: user_id, group, sent_at and, as "
        "true/false, each figure of the outcome within `window_days`; the delivered "
        "first, each group in user_id order. A download as of docs/reference.md §5.4."
    ),
    responses={200: {"content": {"text/csv": {}}}},
)
async def outcome_csv(
    message_id: MessageId,
    _: Viewer,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
    window_days: WindowDays = earnings.DEFAULT_WINDOW_DAYS,
) -> StreamingResponse:
    earnings.checked_window_days(window_days)
    await get_message(session, message_id)
    return csv_response(
        f"broadcast-{message_id}-outcome-{window_days}d.csv",
        earnings.CSV_COLUMNS,
        _csv_rows(database, message_id, window_days),
    )
