"""GET /api/messages/{id}/outcome and outcome.csv: each figure exactly what the rows say."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import httpx
import pytest
from outcome_data import FINISHED, STARTED, OutcomeData, insert_broadcast, make_recipients
from sqlalchemy import Engine


async def _outcome(
    client: httpx.AsyncClient, headers: dict[str, str], message_id: int, days: int
) -> dict[str, object]:
    answer = await client.get(
        f"/api/messages/{message_id}/outcome", params={"window_days": days}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_figure_counts_what_the_rows_say(
    sync_engine: Engine, client: httpx.AsyncClient, viewer_headers: dict[str, str], seed: int
) -> None:
    recipients = make_recipients(seed, 80, holdout_from=FINISHED)
    data = OutcomeData(insert_broadcast(sync_engine, recipients), FINISHED, recipients)
    for days in (1, 7, 30, 90):
        assert await _outcome(client, viewer_headers, data.message_id, days) == data.expected(days)
    # The data reaches every figure, and the windows' edges decide some of them.
    seven = data.expected(7)
    assert all(seven["sent"][name] > 0 for name in seven["sent"])  # type: ignore[index]
    held = seven["holdout"]
    assert held["recipients"] > 0 and held["clicked"] == 0  # type: ignore[index]
    assert data.expected(1) != seven != data.expected(30)


async def test_the_edges_of_a_window(
    sync_engine: Engine, client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    """Just before the send and exactly at the window's end are out; the send's own moment
    and a microsecond before the end are in; a cancelled booking is booked, not confirmed;
    another user's rows count for nobody; a failed recipient is in no group."""
    recipients = make_recipients(3, 5, holdout_from=FINISHED)
    sent_at = STARTED + timedelta(minutes=10)
    for member, status in zip(
        recipients, ("sent", "sent", "deleted", "failed", "holdout"), strict=True
    ):
        member.status, member.sent_at = status, sent_at if status in ("sent", "deleted") else None
        member.clicks, member.bookings, member.registrations, member.events = [], [], [], []
        member.blocked_at = None
    before, at_end = sent_at - timedelta(microseconds=1), sent_at + timedelta(days=7)
    first, second, deleted, failed, held = recipients
    first.bookings = [(before, 2), (at_end, 2)]
    first.events = [(at_end, "lesson_attended")]
    first.registrations = [before]
    second.bookings = [(sent_at, -1)]
    second.registrations = [at_end - timedelta(microseconds=1)]
    second.clicks = [sent_at + timedelta(minutes=1)]
    deleted.events = [(sent_at + timedelta(days=2), "bot_blocked")]
    failed.bookings = [(sent_at, 2)]
    held.bookings = [(FINISHED, 2)]
    held.blocked_at = FINISHED + timedelta(days=7)
    data = OutcomeData(insert_broadcast(sync_engine, recipients), FINISHED, recipients)
    found = await _outcome(client, viewer_headers, data.message_id, 7)
    assert found == {
        "window_days": 7,
        "sent": {"recipients": 3, "clicked": 1, "booked": 1, "confirmed": 0,
                 "free_lesson_registered": 1, "attended": 0, "blocked": 1},
        "holdout": {"recipients": 1, "clicked": 0, "booked": 1, "confirmed": 1,
                    "free_lesson_registered": 0, "attended": 0, "blocked": 0},
    }  # fmt: skip
    assert found == data.expected(7)


async def test_the_recipients_with_their_outcome_as_csv(
    sync_engine: Engine, client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    recipients = make_recipients(4, 60, holdout_from=FINISHED)
    data = OutcomeData(insert_broadcast(sync_engine, recipients), FINISHED, recipients)
    answer = await client.get(
        f"/api/messages/{data.message_id}/outcome.csv",
        params={"window_days": 7},
        headers=viewer_headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert f"broadcast-{data.message_id}-outcome-7d.csv" in answer.headers["content-disposition"]
    assert answer.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert table[0] == [
        "user_id", "group", "sent_at", "clicked", "booked", "confirmed",
        "free_lesson_registered", "attended", "blocked",
    ]  # fmt: skip
    expected = data.expected_rows(7)
    assert [row[:2] + row[3:] for row in table[1:]] == [row[:2] + row[3:] for row in expected]
    assert [datetime.fromisoformat(row[2]) if row[2] else None for row in table[1:]] == [
        datetime.fromisoformat(row[2]) if row[2] else None for row in expected
    ]


async def test_without_a_control_group_and_before_any_send(
    sync_engine: Engine, client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    plain = [m for m in make_recipients(5, 30, holdout_from=None) if m.status != "holdout"]
    message_id = insert_broadcast(sync_engine, plain, holdout_percent=0)
    found = await _outcome(client, viewer_headers, message_id, 7)
    assert found["holdout"] is None
    assert found == OutcomeData(message_id, None, plain).expected(7)

    # Scheduled, not started: nobody delivered, and the control group's window not open.
    waiting = [m for m in make_recipients(6, 20, holdout_from=None, first_user=5000)
               if m.status == "holdout"]  # fmt: skip
    for member in waiting:
        member.clicks = []
    message_id = insert_broadcast(
        sync_engine, waiting, status="scheduled", started_at=None, sent_at=None
    )
    found = await _outcome(client, viewer_headers, message_id, 7)
    zeros = dict.fromkeys(
        ("clicked", "booked", "confirmed", "free_lesson_registered", "attended", "blocked"), 0
    )
    assert found == {
        "window_days": 7,
        "sent": {"recipients": 0} | zeros,
        "holdout": {"recipients": len(waiting)} | zeros,
    }


async def test_a_cancelled_broadcast_measures_its_control_group_from_the_cancel(
    sync_engine: Engine, client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    cancelled_at = STARTED + timedelta(minutes=30)
    recipients = make_recipients(7, 60, holdout_from=cancelled_at)
    message_id = insert_broadcast(
        sync_engine, recipients, status="cancelled", sent_at=None, cancelled_at=cancelled_at
    )
    data = OutcomeData(message_id, cancelled_at, recipients)
    for days in (1, 7):
        assert await _outcome(client, viewer_headers, message_id, days) == data.expected(days)


@pytest.mark.parametrize("days", ["0", "91", "-3"])
async def test_a_window_outside_1_to_90_days_is_refused(
    sync_engine: Engine, client: httpx.AsyncClient, viewer_headers: dict[str, str], days: str
) -> None:
    message_id = insert_broadcast(sync_engine, make_recipients(8, 3, holdout_from=FINISHED))
    for path in ("outcome", "outcome.csv"):
        answer = await client.get(
            f"/api/messages/{message_id}/{path}", params={"window_days": days},
            headers=viewer_headers,
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("window_days: "), answer.text
    malformed = await client.get(
        f"/api/messages/{message_id}/outcome", params={"window_days": "week"},
        headers=viewer_headers,
    )  # fmt: skip
    assert malformed.status_code == 422


async def test_an_unknown_broadcast_is_404_and_a_stranger_401(
    client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    for path in ("outcome", "outcome.csv"):
        answer = await client.get(f"/api/messages/424242/{path}", headers=viewer_headers)
        assert answer.status_code == 404, answer.text
        assert (await client.get(f"/api/messages/424242/{path}")).status_code == 401
