"""A staff edit whose transaction loses a race (a deadlock, a serialization failure) is run
again from the start; only repeated losses reach the caller, as a 503 to retry."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.users import service

DEADLOCK = (
    "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = 'deadlock_detected'; END $$"
)


@pytest.fixture
def booking_id(sync_engine: Engine) -> int:
    with sync_engine.begin() as connection:
        return int(
            connection.scalar(
                text(
                    "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
                    " VALUES (51, 1, 'A', 1) RETURNING id"
                )
            )
        )


def _losing(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the booking edit's transaction lose a race (a real 40P01 from the server) the
    first `times` times it runs; answers the list of attempts."""
    attempts: list[int] = []
    real = service.update_booking

    async def update_booking(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        attempts.append(len(attempts) + 1)
        answer = await real(session, *args, **kwargs)
        if len(attempts) <= times:
            await session.execute(text(DEADLOCK))
        return answer

    monkeypatch.setattr(service, "update_booking", update_booking)
    return attempts


async def test_an_edit_that_lost_a_race_is_run_again(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    booking_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = _losing(2, monkeypatch)
    response = await client.patch(
        f"/api/bookings/{booking_id}",
        json={"course_stream": "B", "create_stream": True},
        headers=operator_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["course_stream"] == "B"
    assert attempts == [1, 2, 3]
    with sync_engine.connect() as connection:
        audited = connection.scalar(
            text("SELECT count(*) FROM audit_log WHERE target_id = :t AND target_type = 'booking'"),
            {"t": str(booking_id)},
        )
        stream = connection.scalar(
            text("SELECT course_stream FROM user_summaries WHERE user_id = 51")
        )
    assert audited == 1  # the rolled-back attempts left nothing behind
    assert stream == "B"  # and the edit was folded at once


async def test_an_edit_that_keeps_losing_gets_503_and_changes_nothing(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    booking_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = _losing(100, monkeypatch)
    response = await client.patch(
        f"/api/bookings/{booking_id}",
        json={"course_stream": "B", "create_stream": True},
        headers=operator_headers,
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"error": "the database is busy; try again shortly"}
    assert len(attempts) == 5
    with sync_engine.connect() as connection:
        stream = connection.scalar(
            text("SELECT course_stream FROM bookings WHERE id = :id"), {"id": booking_id}
        )
    assert stream == "A"
