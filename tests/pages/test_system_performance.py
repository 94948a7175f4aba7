"""The system page's performance and query blocks: pools, the answer cache, statements."""

from __future__ import annotations

import html
import re

import pytest
from fastapi import FastAPI
from page_client import SignIn

from coursedesk.accounts.roles import Role
from coursedesk.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"cache_ttl_seconds": 10})


async def test_the_performance_block_shows_the_cache_hit_rate_and_pools(
    signed_in: SignIn,
) -> None:
    viewer = await signed_in(Role.viewer)
    for _ in range(2):
        assert (await viewer.get("/dashboard/blocks/stats")).status_code == 200
    block = await viewer.get("/system/blocks/performance")
    assert block.status_code == 200
    text = block.text
    assert 'data-figure="answer_cache_hit_rate">50% hits · 1 of 2 lookups<' in text
    assert "In this process · 10.0 s" in text
    assert "Primary pool" in text and "idle" in text


async def test_the_queries_block_lists_the_app_s_statements(
    signed_in: SignIn, app: FastAPI
) -> None:
    viewer = await signed_in(Role.viewer)
    assert (await viewer.get("/dashboard/blocks/stats")).status_code == 200
    block = await viewer.get("/system/blocks/queries")
    assert block.status_code == 200
    text = block.text
    assert "Most time spent" in text and "Slowest recent runs" in text
    # Which statements rank highest depends on timing; that the block shows what the
    # process's monitor recorded, the dashboard's figure among it, does not.
    recorded = {figures.statement for figures in app.state.queries.statements()}
    assert any("total_users" in statement for statement in recorded)
    shown = [html.unescape(cell) for cell in re.findall(r'class="text mono" title="([^"]*)"', text)]
    assert shown and set(shown) <= recorded
    assert "%(" not in text, "statements are shown with their values as ?"
    page = await viewer.get("/system")
    assert 'data-block-src="/system/blocks/queries"' in page.text
