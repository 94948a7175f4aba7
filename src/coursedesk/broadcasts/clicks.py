"""Clicks on tracked links: each recorded in one statement, and the figures they make.

A click is one row per recipient and link (broadcast_clicks, keyed by both), so a
recipient who clicks a link again only counts up its `clicks`: the rows are the unique
clicks, the sum of `clicks` the total, and a recipient with any row has clicked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

FOLLOW_LINK = text(
    """
-- follow_link: the address of a recipient's tracked link, and the click counted, in one
-- round trip. Nothing is found, so nothing recorded, for a link the recipient's
-- broadcast does not have or a broadcast taken back from the chats.
WITH link AS (
    SELECT l.message_id, l.url
    FROM message_recipients AS r
    JOIN broadcast_links AS l ON l.message_id = r.message_id AND l.position = :position
    JOIN message_history AS m ON m.id = r.message_id
    WHERE r.id = :recipient_id AND m.delete_requested_at IS NULL
), clicked AS (
    INSERT INTO broadcast_clicks AS c (recipient_id, position, message_id)
    SELECT :recipient_id, :position, link.message_id FROM link WHERE :record
    ON CONFLICT (recipient_id, position)
    DO UPDATE SET clicks = c.clicks + 1, last_clicked_at = now()
)
SELECT url FROM link
"""
)

CLICKED_COUNTS = text(
    """
-- clicked_counts: recipients of each broadcast who clicked any of its links.
SELECT message_id, count(DISTINCT recipient_id) AS clicked
FROM broadcast_clicks
WHERE message_id = ANY(CAST(:ids AS integer[]))
GROUP BY message_id
"""
)

LINK_FIGURES = text(
    """
-- link_figures: each link of a broadcast with its unique and total clicks.
SELECT l.position, l.url,
    count(c.recipient_id) AS unique_clicks,
    coalesce(sum(c.clicks), 0) AS total_clicks
FROM broadcast_links AS l
LEFT JOIN broadcast_clicks AS c ON c.message_id = l.message_id AND c.position = l.position
WHERE l.message_id = :message_id
GROUP BY l.position, l.url
ORDER BY l.position
"""
)


async def follow_link(
    connection: AsyncConnection, recipient_id: int, position: int, *, record: bool
) -> str | None:
    """The address a verified token leads to, its click recorded when `record`; None
    when there is none to lead to (nothing is recorded then)."""
    url: str | None = await connection.scalar(
        FOLLOW_LINK, {"recipient_id": recipient_id, "position": position, "record": record}
    )
    return url


async def clicked_counts(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, int]:
    """Recipients who clicked any link, per broadcast (none: absent)."""
    if not message_ids:
        return {}
    rows = await session.execute(CLICKED_COUNTS, {"ids": sorted(set(message_ids))})
    return {row.message_id: row.clicked for row in rows}


@dataclass(frozen=True, slots=True)
class LinkFigures:
    position: int
    url: str
    unique_clicks: int
    """Recipients who clicked it."""
    total_clicks: int
    """Clicks on it, repeats included."""


async def link_figures(session: AsyncSession, message_id: int) -> list[LinkFigures]:
    """The tracked links of a broadcast in position order, with their clicks."""
    rows = await session.execute(LINK_FIGURES, {"message_id": message_id})
    return [
        LinkFigures(row.position, row.url, row.unique_clicks, int(row.total_clicks)) for row in rows
    ]


async def click_figures(session: AsyncSession, message_id: int) -> tuple[list[LinkFigures], int]:
    """A tracked broadcast's links with their clicks, and the recipients who clicked any."""
    counted = await clicked_counts(session, [message_id])
    return await link_figures(session, message_id), counted.get(message_id, 0)
