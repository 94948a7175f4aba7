"""Every page, page fragment and static asset, as one router for the app."""

from __future__ import annotations

from fastapi import APIRouter

from coursedesk.pages import (
    assets,
    broadcasts,
    composer,
    composer_drafts,
    dashboard,
    performance,
    student_edits,
    students,
    system,
)

router = APIRouter()
for part in (
    assets.router,
    dashboard.router,
    dashboard.blocks_router,
    students.router,
    student_edits.router,
    # Before the broadcast pages, whose /broadcasts/{id} would otherwise claim /broadcasts/new.
    composer.router,
    composer.fragments,
    composer_drafts.router,
    broadcasts.router,
    system.router,
    performance.router,
):
    router.include_router(part)
