"""The broadcast page's outcome: sent beside the control group, and whether it is noise."""

from __future__ import annotations

import re

import httpx
import pytest
from page_client import SignIn
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.pages.broadcast_earnings import difference_interval, wilson_interval
from page_text import text_of

SENT_AT = "2025-03-03 09:00:00+00"


def _broadcast(engine: Engine, *, sent: int, held: int, booked: tuple[int, int]) -> int:
    """`sent` delivered recipients (users 1…) and `held` in the control group (users
    100001…); the first booked[0] and booked[1] of each booked a day after, and in both
    groups every tenth attended a lesson (the same share: a difference of nothing)."""
    with engine.begin() as connection:
        message_id = connection.execute(
            text(
                "INSERT INTO message_history (message_text, status, recipient_type, "
                "recipient_group, audience, holdout_percent, started_at, sent_at) VALUES "
                "('Offer', 'sent', 'group', 'all', '{\"type\": \"all\"}', :percent, "
                f"'{SENT_AT}', '{SENT_AT}') RETURNING id"
            ),
            {"percent": 10 if held else 0},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO message_recipients (message_id, user_id, delivery_status, sent_at) "
                f"SELECT :m, g, 'sent', timestamptz '{SENT_AT}' "
                "FROM generate_series(1, :sent) AS g "
                "UNION ALL SELECT :m, 100000 + g, 'holdout', NULL "
                "FROM generate_series(1, :held) AS g"
            ),
            {"m": message_id, "sent": sent, "held": held},
        )
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, course_id, confirmed, created_at) "
                f"SELECT g, 1, 2, timestamptz '{SENT_AT}' + interval '1 day' "
                "FROM generate_series(1, :sent_booked) AS g UNION ALL "
                f"SELECT 100000 + g, 1, 2, timestamptz '{SENT_AT}' + interval '1 day' "
                "FROM generate_series(1, :held_booked) AS g"
            ),
            {"sent_booked": booked[0], "held_booked": booked[1]},
        )
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type, created_at) "
                f"SELECT u, 'lesson_attended', timestamptz '{SENT_AT}' + interval '2 days' "
                "FROM (SELECT g FROM generate_series(10, :sent, 10) AS g UNION ALL "
                "SELECT 100000 + g FROM generate_series(10, :held, 10) AS g) AS s(u)"
            ),
            {"sent": sent, "held": held},
        )
    return int(message_id)


def _row(page: httpx.Response, figure: str) -> str:
    found = re.search(rf'<tr data-figure-row="{figure}">(.*?)</tr>', page.text, re.S)
    assert found is not None, f"no {figure} row"
    return text_of(found.group(1))


async def test_the_page_sets_the_broadcast_beside_its_control_group(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    message_id = _broadcast(sync_engine, sent=900, held=100, booked=(180, 5))
    client = await signed_in(Role.viewer)
    page = await client.get(f"/broadcasts/{message_id}")
    assert page.status_code == 200
    assert "Control group" in page.text and "(100)" in page.text and "(900)" in page.text
    low, high = difference_interval(180, 900, 5, 100)
    booked = _row(page, "booked")
    assert booked.startswith("Booked 180 20.0 % 5 5.0 % +15.0 pts")
    assert f"{100 * low:+.1f} to {100 * high:+.1f}" in booked
    assert "Higher than the control group" in booked
    assert 'data-verdict="higher"' in page.text
    attended = _row(page, "attended")
    assert attended.startswith("Attended a lesson 90 10.0 % 10 10.0 % +0.0 pts")
    assert "Not distinguishable from noise" in attended
    assert "got no links" in _row(page, "clicked")
    assert f'href="/api/messages/{message_id}/outcome.csv?window_days=7"' in page.text

    # The booking came a day after: a window of one day holds none of it.
    one_day = await client.get(f"/broadcasts/{message_id}", params={"window_days": 1})
    assert _row(one_day, "booked").startswith("Booked 0 0.0 % 0 0.0 % +0.0 pts")
    assert '<option value="1" selected>' in one_day.text
    refused = await client.get(f"/broadcasts/{message_id}", params={"window_days": 0})
    assert refused.status_code == 400
    assert "window_days: give a whole number of days from 1 to 90" in refused.text.lower()


async def test_without_a_control_group_only_the_sent_column(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    message_id = _broadcast(sync_engine, sent=50, held=0, booked=(5, 0))
    client = await signed_in(Role.viewer)
    page = await client.get(f"/broadcasts/{message_id}")
    assert page.status_code == 200
    assert "Control group" not in page.text
    assert _row(page, "booked") == "Booked 5 10.0 %"
    assert "had no control group" in page.text


@pytest.mark.parametrize(
    ("counts", "interval"),
    [
        # Newcombe (1998), Table II, method 10.
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ],
)
def test_the_interval_is_newcombes(
    counts: tuple[int, int, int, int], interval: tuple[float, float]
) -> None:
    low, high = difference_interval(*counts)
    assert (round(low, 4), round(high, 4)) == interval


def test_a_wilson_interval_stays_within_0_and_1() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
