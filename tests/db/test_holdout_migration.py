"""Migration 0014 down and up again with a control group in the database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from coursedesk.config import load_settings
from coursedesk.db import migrations
from coursedesk.db.engine import create_tool_engine

FIGURES = (
    "SELECT total_recipients, successful_deliveries, cancelled_deliveries, "
    "{holdout} FROM message_history"
)


@pytest.fixture
def empty_engine(empty_database_url: str) -> Engine:
    engine = create_tool_engine(empty_database_url, load_settings(database_url=None))
    yield engine  # type: ignore[misc]
    engine.dispose()


def test_a_downgrade_turns_the_control_group_into_never_sent(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO message_history (id, message_text, status, recipient_type, "
                "audience, holdout_percent, started_at, sent_at) VALUES (1, 'x', 'sent', "
                "'group', '{}', 25, now(), now())"
            )
        )
        connection.execute(
            text(
                "INSERT INTO message_recipients (message_id, user_id, delivery_status, sent_at) "
                "SELECT 1, g, CASE WHEN g <= 3 THEN 'holdout' ELSE 'sent' END, "
                "CASE WHEN g > 3 THEN now() END FROM generate_series(1, 12) AS g"
            )
        )
        assert connection.execute(text(FIGURES.format(holdout="holdout_count"))).one() == (
            12, 9, 0, 3
        )  # fmt: skip

    migrations.downgrade(empty_engine, "0013_tracked_links")
    with empty_engine.begin() as connection:
        assert connection.execute(text(FIGURES.format(holdout="0"))).one() == (12, 9, 3, 0)
        statuses = connection.execute(
            text("SELECT delivery_status, count(*) FROM message_recipients GROUP BY 1 ORDER BY 1")
        ).all()
        assert [tuple(row) for row in statuses] == [("cancelled", 3), ("sent", 9)]
        # The function of 0001 is back: it no longer knows holdout_count.
        connection.execute(text("UPDATE message_recipients SET delivery_status = 'failed' "
                                "WHERE user_id = 4"))  # fmt: skip
        assert connection.execute(
            text("SELECT successful_deliveries, failed_deliveries FROM message_history")
        ).one() == (8, 1)

    assert migrations.upgrade(empty_engine).is_current
    assert migrations.validate(empty_engine) == []
