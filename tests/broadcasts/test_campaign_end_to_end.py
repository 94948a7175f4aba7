"""A campaign end to end, as a school would run one.

Two broadcasts to 2,500 students, each with a control group: an album (a photo and a
video) with a personal caption holding a link, and a photo with a personal URL button
and a callback button. They go out through the stand-in Bot API with server errors,
floods, blocked chats and latency, from three worker processes, one of them killed
mid-send. Then students click, book, confirm, register and attend, and the outcome the
API answers is checked against a plain computation over the rows the test wrote.
"""

from __future__ import annotations

import random
import re
import signal
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from broadcast_helpers import (
    PROCESS_IN_FLIGHT,
    StartProcess,
    figures_agree,
    rows,
    scalar,
    send_broadcast,
    wait_for,
)
from media_samples import JPEG, MP4, PNG, uploaded
from sqlalchemy import Engine, text

from coursedesk.analytics.folding import fold_pending
from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin, ReceivedMessage

pytestmark = pytest.mark.slow

BASE = "https://school.example/go"
TRACKED = re.compile(re.escape(BASE) + r"/r/([A-Za-z0-9_-]+)")
FIRST, COUNT = 700_001, 2500
WINDOW_DAYS = 7
NAMES = ("Anna", "Bo<b>", "R&D", "snake_case", "*star*", "Zoë")
"""First names as the bot recorded them: markup characters must arrive as typed."""
FIGURES = (
    "recipients", "clicked", "booked", "confirmed", "free_lesson_registered", "attended",
    "blocked",
)  # fmt: skip
AUTUMN = "https://school.example/autumn"
BOOK = "https://school.example/book"


def first_name(user_id: int) -> str:
    return f"{NAMES[user_id % len(NAMES)]}{user_id % 1000}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_base_url": BASE})


def _add_students(engine: Engine) -> None:
    """Each student with one pending booking a month old, before any window opens."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, username, first_name, course_id, course_stream,"
                " confirmed, created_at)"
                " SELECT g, 'user' || g, (CAST(:names AS text[]))[1 + g % :n] || (g % 1000),"
                " 1, 'S-1', 1, now() - interval '30 days'"
                " FROM generate_series(CAST(:first AS bigint), :last) AS g"
            ),
            {"names": list(NAMES), "n": len(NAMES), "first": FIRST, "last": FIRST + COUNT - 1},
        )
    fold_pending(engine)


def _status(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


@dataclass(frozen=True)
class Recipient:
    user_id: int
    group: str
    starts_at: datetime


def _groups(engine: Engine, message_id: int) -> list[Recipient]:
    """Each delivered recipient from their own send, the control group from the
    broadcast's sent_at (docs/reference.md §8)."""
    sent_at = scalar(engine, "SELECT sent_at FROM message_history WHERE id = :m", m=message_id)
    return [
        Recipient(
            row.user_id,
            "holdout" if row.delivery_status == "holdout" else "sent",
            sent_at if row.delivery_status == "holdout" else row.sent_at,
        )
        for row in rows(
            engine,
            "SELECT user_id, delivery_status, sent_at FROM message_recipients"
            " WHERE message_id = :m AND delivery_status IN ('sent', 'holdout')",
            m=message_id,
        )
    ]


@dataclass(frozen=True)
class Activity:
    bookings: list[tuple[int, datetime, int]]
    registrations: list[tuple[int, datetime]]
    attendances: list[tuple[int, datetime]]
    blocks: list[tuple[int, datetime]]


def _activity_after(engine: Engine, since: datetime) -> Activity:
    """What the students did since `since`, as the bot and the sending recorded it."""
    return Activity(
        [
            (r.user_id, r.created_at, r.confirmed)
            for r in rows(
                engine,
                "SELECT user_id, created_at, confirmed FROM bookings WHERE created_at >= :s",
                s=since,
            )
        ],
        [
            (r.user_id, r.registered_at)
            for r in rows(
                engine,
                "SELECT user_id, registered_at FROM free_lesson_registrations"
                " WHERE registered_at >= :s",
                s=since,
            )
        ],
        [
            (r.user_id, r.created_at)
            for r in rows(
                engine,
                "SELECT user_id, created_at FROM events"
                " WHERE event_type = 'lesson_attended' AND created_at >= :s",
                s=since,
            )
        ],
        [
            (r.user_id, r.blocked_at)
            for r in rows(
                engine,
                "SELECT user_id, blocked_at FROM bot_users WHERE is_blocked AND blocked_at >= :s",
                s=since,
            )
        ],
    )


def _by_user(pairs: list[tuple[int, datetime]]) -> dict[int, list[datetime]]:
    found: dict[int, list[datetime]] = {}
    for user_id, at in pairs:
        found.setdefault(user_id, []).append(at)
    return found


def expected_outcome(
    recipients: list[Recipient], clicked: set[int], activity: Activity
) -> dict[str, dict[str, int]]:
    """The outcome of §8 computed plainly, recipient by recipient."""
    window = timedelta(days=WINDOW_DAYS)
    bookings: dict[int, list[tuple[datetime, int]]] = {}
    for user_id, at, confirmed in activity.bookings:
        bookings.setdefault(user_id, []).append((at, confirmed))
    registrations = _by_user(activity.registrations)
    attendances = _by_user(activity.attendances)
    blocks = _by_user(activity.blocks)
    figures: dict[str, Counter[str]] = {"sent": Counter(), "holdout": Counter()}
    for recipient in recipients:
        start, end, mine = recipient.starts_at, recipient.starts_at + window, recipient.user_id
        booked = [confirmed for at, confirmed in bookings.get(mine, []) if start <= at < end]
        did = {
            "recipients": True,
            "clicked": mine in clicked and recipient.group == "sent",
            "booked": bool(booked),
            "confirmed": 2 in booked,
            "free_lesson_registered": any(start <= at < end for at in registrations.get(mine, [])),
            "attended": any(start <= at < end for at in attendances.get(mine, [])),
            "blocked": any(start <= at < end for at in blocks.get(mine, [])),
        }
        figures[recipient.group].update(name for name, done in did.items() if done)
    return {group: {name: counted[name] for name in FIGURES} for group, counted in figures.items()}


def _token_path(url: str) -> str:
    """The path the app serves a tracked link at: PUBLIC_BASE_URL is where a proxy
    forwards to it."""
    assert TRACKED.fullmatch(url), url
    return url.removeprefix(BASE)


async def _click(client: httpx.AsyncClient, url: str, goes_to: str) -> None:
    response = await client.get(_token_path(url))
    assert response.status_code == 302, response.text
    assert response.headers["location"] == goes_to


def _link_in(message: ReceivedMessage) -> str:
    [token] = TRACKED.findall(message.text)
    return f"{BASE}/r/{token}"


def _copies(received: list[ReceivedMessage], kind: str) -> dict[int, list[ReceivedMessage]]:
    by_chat: dict[int, list[ReceivedMessage]] = {}
    for message in received:
        if message.kind == kind:
            by_chat.setdefault(message.chat_id, []).append(message)
    return by_chat


async def test_a_campaign_reaches_each_student_once_and_says_what_it_earned(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_process: StartProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE)  # the workers' own setting
    chance = random.Random(14)
    students = range(FIRST, FIRST + COUNT)
    blocked = sorted(chance.sample(students, 40))
    standin.update_faults(
        {
            "seed": 14,
            "blocked_chats": blocked,
            "server_error_rate": 0.03,
            "flood_rate": 0.001,
            "flood_retry_after": 1,
            "latency_ms": 5,
            "jitter_ms": 10,
        }
    )
    _add_students(sync_engine)
    photo, video, poster = [
        (await uploaded(client, operator_headers, content, name))["media_id"]
        for content, name in ((JPEG, "term.jpg"), (MP4, "tour.mp4"), (PNG, "poster.png"))
    ]
    album = await send_broadcast(
        client, operator_headers, audience={"type": "all"}, parse_mode="HTML",
        text=f"<b>{{{{first_name|friend}}}}</b>, the autumn term: {AUTUMN}",
        media=[{"media_id": photo}, {"media_id": video}], holdout_percent=10,
    )  # fmt: skip
    buttons = await send_broadcast(
        client, operator_headers, audience={"type": "all"}, parse_mode="HTML",
        text="Hi {{first_name}}, one place left", media=[{"media_id": poster}],
        buttons=[
            [{"text": "Book, {{first_name}}", "url": BOOK}],
            [{"text": "Later", "callback_data": "later"}],
        ],
        holdout_percent=20,
    )  # fmt: skip
    album_id, buttons_id = int(album["message_id"]), int(buttons["message_id"])

    rate = 300
    workers = [start_process(rate) for _ in range(3)]
    await wait_for(lambda: len(standin.received()) >= 1500, within=90, what="sending")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(10)
    workers[0] = start_process(rate)
    for message_id in (album_id, buttons_id):
        await wait_for(
            lambda m=message_id: _status(sync_engine, m) == "sent", within=120, what="sent"
        )

    received = standin.received()
    albums, photos = _copies(received, "album"), _copies(received, "photo")
    for message_id, copies, share in ((album_id, albums, 0.10), (buttons_id, photos, 0.20)):
        figures_agree(sync_engine, message_id)
        held = {
            r.user_id
            for r in rows(
                sync_engine,
                "SELECT user_id FROM message_recipients"
                " WHERE message_id = :m AND delivery_status = 'holdout'",
                m=message_id,
            )
        }
        assert len(held) == round(COUNT * share)
        assert held != set(range(FIRST, FIRST + len(held)))  # drawn, not the first ids
        assert set(copies) == set(students) - held - set(blocked)
        # A killed worker may have sent what it never recorded: at most its in-flight.
        assert sum(len(got) - 1 for got in copies.values()) <= PROCESS_IN_FLIGHT

    for chat, got in albums.items():
        caption = got[0].shown_text
        assert caption.startswith(f"{first_name(chat)}, the autumn term: "), caption
    for chat, got in photos.items():
        assert got[0].shown_text == f"Hi {first_name(chat)}, one place left"
        [[book], [later]] = got[0].buttons
        assert book.text == f"Book, {first_name(chat)}"
        assert later.text == "Later" and later.url is None
    # One upload per file per broadcast; every other copy went by its file_id.
    for copies in (albums, photos):
        sent_files = [m.files for got in copies.values() for m in got]
        for position in range(len(sent_files[0])):
            files = [each[position] for each in sent_files]
            assert sum(f.uploaded for f in files) == 1
            assert len({f.file_id for f in files}) == 1

    # Students click: some twice, and a token from one student's copy is theirs alone.
    album_clickers = set(chance.sample(sorted(albums), 300))
    button_clickers = set(chance.sample(sorted(photos), 500))
    twice = set(chance.sample(sorted(button_clickers), 60))
    for chat in album_clickers:
        await _click(client, _link_in(albums[chat][0]), AUTUMN)
    for chat in button_clickers:
        url = photos[chat][0].buttons[0][0].url
        assert url is not None
        for _ in range(2 if chat in twice else 1):
            await _click(client, url, BOOK)
    detail = (await client.get(f"/api/messages/{buttons_id}", headers=operator_headers)).json()
    assert detail["clicked_count"] == len(button_clickers)
    [link] = detail["links"]
    assert (link["url"], link["unique_clicks"], link["total_clicks"]) == (
        BOOK, len(button_clickers), len(button_clickers) + len(twice)
    )  # fmt: skip

    # What they did after: bookings (some confirmed, some a window too late), free
    # lessons, lessons attended, blocks; holdout students too, and others.
    everyone = list(range(FIRST - 50, FIRST + COUNT + 50))
    with sync_engine.begin() as connection:
        for user_id in chance.sample(everyone, 700):
            connection.execute(
                text(
                    "INSERT INTO bookings (user_id, course_id, course_stream, confirmed,"
                    " created_at) VALUES (:u, 2, 'S-2', :c, now() + make_interval(days => :d))"
                ),
                {"u": user_id, "c": chance.choice((1, 2, 2, -1)), "d": chance.choice((0, 0, 8))},
            )
        for user_id in chance.sample(everyone, 300):
            connection.execute(
                text("INSERT INTO free_lesson_registrations (user_id) VALUES (:u)"),
                {"u": user_id},
            )
        for user_id in chance.sample(everyone, 250):
            connection.execute(
                text(
                    "INSERT INTO events (user_id, event_type, details) VALUES (:u,"
                    " 'lesson_attended', CAST('{\"lesson_type\": \"free\"}' AS jsonb))"
                ),
                {"u": user_id},
            )
        for user_id in chance.sample(everyone, 80):
            connection.execute(
                text(
                    "INSERT INTO bot_users (user_id, is_blocked, blocked_at) VALUES (:u, true,"
                    " now()) ON CONFLICT (user_id) DO UPDATE SET is_blocked = true,"
                    " blocked_at = now()"
                ),
                {"u": user_id},
            )
    fold_pending(sync_engine)

    for message_id, clickers in ((album_id, album_clickers), (buttons_id, button_clickers)):
        answer = await client.get(
            f"/api/messages/{message_id}/outcome",
            params={"window_days": WINDOW_DAYS},
            headers=operator_headers,
        )
        assert answer.status_code == 200, answer.text
        recipients = _groups(sync_engine, message_id)
        started = min(r.starts_at for r in recipients)
        expected = expected_outcome(recipients, clickers, _activity_after(sync_engine, started))
        got: dict[str, Any] = answer.json()
        assert got["window_days"] == WINDOW_DAYS
        assert {group: got[group] for group in ("sent", "holdout")} == expected
        assert expected["sent"]["booked"] > 0 and expected["holdout"]["booked"] > 0
