"""One broadcast as the API and `coursedesk broadcast status` show it, with its files and
the clicks on its tracked links."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts import clicks, service
from coursedesk.broadcasts.composition import media_of
from coursedesk.broadcasts.schemas import LinkItem, MessageDetail, SentMediaItem


async def message_detail(session: AsyncSession, message_id: int) -> MessageDetail:
    """A broadcast as GET /api/messages/{id} answers it (NotFound if there is none)."""
    detail = MessageDetail.model_validate(await service.get_message(session, message_id))
    detail.media = [
        SentMediaItem.model_validate(item) for item in await media_of(session, message_id)
    ]
    if detail.track_links:
        figures, detail.clicked_count = await clicks.click_figures(session, message_id)
        detail.links = [LinkItem.model_validate(asdict(link)) for link in figures]
    return detail
