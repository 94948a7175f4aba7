"""The system page: what everyone sees, and the audit log and SQL form only admins see."""

from __future__ import annotations

from page_client import SignIn
from sqlalchemy import Engine

from coursedesk.accounts.roles import Role
from coursedesk.db import migrations
from coursedesk.db.migrations import script_directory
from coursedesk.pages.rendering import breakable
from page_text import text_of


async def test_admins_see_the_audit_log_and_the_sql_form(signed_in: SignIn) -> None:
    admin = await signed_in(Role.admin)
    page = await admin.get("/system")
    assert page.status_code == 200
    # Long names may wrap after an underscore, and only there.
    assert '<span class="name mono">message_<wbr>recipients</span>' in page.text
    text = page.text.replace("<wbr>", "")
    assert "Up to date" in text and str(script_directory().get_current_head()) in text
    assert "message_recipients" in text and "pk_message_recipients" in text
    assert 'id="sql-form"' in text and 'action="/api/db-migrate"' in text
    assert "Audit log" in text and '<td class="mono">auth.login</td>' in text

    only_users = await admin.get("/system", params={"action": "user"})
    assert '<td class="mono">user.create</td>' in only_users.text
    assert '<td class="mono">auth.login</td>' not in only_users.text
    nothing = await admin.get("/system", params={"action": "no.such"})
    assert "No entry for this action" in nothing.text


async def test_viewers_see_health_schema_and_performance_only(signed_in: SignIn) -> None:
    viewer = await signed_in(Role.viewer)
    page = await viewer.get("/system")
    assert page.status_code == 200
    assert "Schema" in page.text and 'data-block-src="/system/blocks/performance"' in page.text
    assert "Audit log" not in page.text and "sql-form" not in page.text

    block = await viewer.get("/system/blocks/performance")
    assert block.status_code == 200
    assert "Buffer cache hits" in block.text and "Primary pool" in block.text


def test_a_name_wraps_after_its_underscores_and_stays_escaped() -> None:
    assert breakable("user_summaries") == "user_<wbr>summaries"
    assert breakable("plain") == "plain"
    assert breakable("a_<b>&") == "a_<wbr>&lt;b&gt;&amp;"


async def test_the_page_answers_before_the_schema_is_migrated(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    """New code started on an old schema (before the capture's columns): the page says to
    migrate rather than fail on what is not there yet."""
    viewer = await signed_in(Role.viewer)
    migrations.downgrade(sync_engine, "0015_broadcast_drafts")
    page = await viewer.get("/system")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Needs migrating" in text and "Run coursedesk db upgrade" in text
    assert "Analytics figures" in text and "Shown once the schema is migrated" in text
