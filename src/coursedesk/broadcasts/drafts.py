"""Drafts of broadcasts: a staff user's compositions kept to finish later.

A draft is saved whole (the composer's fields, as jsonb) and belongs to the staff user
who saved it; nobody else sees it. Every save moves its version on, and a save must name
the version it was made on: a draft open in two tabs and saved in one is refused in the
other (StaleDraft) instead of being overwritten without a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.models import BroadcastDraft
from coursedesk.errors import Conflict, NotFound

MAX_LISTED_DRAFTS = 50


class StaleDraft(Conflict):
    """The save was made on an older version of the draft: nothing was saved."""

    def __init__(self, current: BroadcastDraft, tried_version: int) -> None:
        super().__init__(
            f"draft {current.id} was saved again (version {current.version}) after the "
            f"version {tried_version} this save was made on; nothing was saved"
        )
        self.current = current


async def get_draft(session: AsyncSession, owner_id: int, draft_id: int) -> BroadcastDraft:
    draft = await session.scalar(
        select(BroadcastDraft)
        .where(BroadcastDraft.id == draft_id, BroadcastDraft.owner_id == owner_id)
        .execution_options(populate_existing=True)
    )
    if draft is None:
        raise NotFound(f"no draft with id {draft_id}")
    return draft


async def list_drafts(session: AsyncSession, owner_id: int) -> Sequence[BroadcastDraft]:
    """The owner's drafts, the last saved first (at most MAX_LISTED_DRAFTS)."""
    found = await session.scalars(
        select(BroadcastDraft)
        .where(BroadcastDraft.owner_id == owner_id)
        .order_by(BroadcastDraft.updated_at.desc(), BroadcastDraft.id.desc())
        .limit(MAX_LISTED_DRAFTS)
    )
    return found.all()


async def create_draft(
    session: AsyncSession, owner_id: int, fields: dict[str, Any]
) -> tuple[int, int]:
    """A new draft; answers its id and version."""
    row = (
        await session.execute(
            insert(BroadcastDraft)
            .values(owner_id=owner_id, fields=fields)
            .returning(BroadcastDraft.id, BroadcastDraft.version)
        )
    ).one()
    return int(row.id), int(row.version)


async def update_draft(
    session: AsyncSession, owner_id: int, draft_id: int, version: int, fields: dict[str, Any]
) -> tuple[int, datetime]:
    """Save over the draft if it is still at `version`; answers the new version and time.

    StaleDraft when it was saved since, NotFound when it is gone (deleted, or sent).
    """
    row = (
        await session.execute(
            update(BroadcastDraft)
            .where(
                BroadcastDraft.id == draft_id,
                BroadcastDraft.owner_id == owner_id,
                BroadcastDraft.version == version,
            )
            .values(fields=fields, version=BroadcastDraft.version + 1, updated_at=func.now())
            .returning(BroadcastDraft.version, BroadcastDraft.updated_at)
        )
    ).first()
    if row is None:
        raise StaleDraft(await get_draft(session, owner_id, draft_id), version)
    return int(row.version), row.updated_at


async def delete_draft(session: AsyncSession, owner_id: int, draft_id: int) -> None:
    deleted = await session.scalar(
        delete(BroadcastDraft)
        .where(BroadcastDraft.id == draft_id, BroadcastDraft.owner_id == owner_id)
        .returning(BroadcastDraft.id)
    )
    if deleted is None:
        raise NotFound(f"no draft with id {draft_id}")


async def discard_sent_draft(session: AsyncSession, owner_id: int, draft_id: int) -> None:
    """The draft a broadcast was just made from is done with; gone already is fine."""
    await session.execute(
        delete(BroadcastDraft).where(
            BroadcastDraft.id == draft_id, BroadcastDraft.owner_id == owner_id
        )
    )
