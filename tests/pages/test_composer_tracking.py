"""The composer's link tracking: offered with PUBLIC_BASE_URL, on unless unchecked."""

from __future__ import annotations

import re

import pytest
from page_client import SignIn, form_token
from pages_data import ANNA, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.config import Settings

_KEY = re.compile(r'name="request_key" value="([^"]*)"')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_base_url": "https://school.example"})


async def test_links_are_tracked_unless_the_box_is_unchecked(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    made = {}
    for track in ("1", ""):
        page = await client.get("/broadcasts/new")
        assert 'name="track_links" value="1" checked' in page.text
        form = {
            "csrf_token": form_token(page),
            "request_key": _KEY.findall(page.text)[0],
            "text": "Timetable: https://example.org/timetable",
            "audience_type": "users",
            "user_ids": str(ANNA),
            "send_at": "now",
            "track_links": track,
        }
        review = await client.post("/broadcasts/new", data=form | {"action": "review"})
        said = "Tracked: clicks are counted per student" if track else "not tracked"
        assert review.status_code == 200 and said in review.text
        sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
        assert sent.status_code == 303
        made[track] = int(sent.headers["location"].rsplit("/", 1)[1])
    with sync_engine.connect() as connection:
        tracked = dict(
            connection.execute(
                text(
                    "SELECT m.id, count(l.position) FROM message_history AS m"
                    " LEFT JOIN broadcast_links AS l ON l.message_id = m.id"
                    " WHERE m.id IN (:on, :off) AND m.track_links GROUP BY m.id"
                ),
                {"on": made["1"], "off": made[""]},
            ).all()
        )
    assert tracked == {made["1"]: 1}
