"""A sent broadcast with a control group, and what its recipients (and others) did, written
straight into the tables; and the outcome computed from those rows in plain Python."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

STARTED = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
FINISHED = STARTED + timedelta(hours=1)
TICK = timedelta(microseconds=1)
# When, from the start of a recipient's window, something happens: the edges of the
# 1- and 7-day windows on either side, and a few times well inside and outside.
OFFSETS = (
    -timedelta(days=2), -TICK, timedelta(0), timedelta(hours=5), timedelta(days=1) - TICK,
    timedelta(days=1), timedelta(days=3), timedelta(days=7) - TICK, timedelta(days=7),
    timedelta(days=8), timedelta(days=40),
)  # fmt: skip
STATUSES = ("sent", "sent", "sent", "deleted", "failed", "holdout", "holdout")
FIGURES = ("clicked", "booked", "confirmed", "free_lesson_registered", "attended", "blocked")
OTHER_USER = 99_999
"""Someone who is no recipient, active at every moment: counted nowhere."""


@dataclass
class Recipient:
    user_id: int
    status: str
    sent_at: datetime | None
    recipient_id: int = 0
    clicks: list[datetime] = field(default_factory=list)
    bookings: list[tuple[datetime, int]] = field(default_factory=list)
    registrations: list[datetime] = field(default_factory=list)
    events: list[tuple[datetime, str]] = field(default_factory=list)
    blocked_at: datetime | None = None
    """bot_users' block held now (None: not blocked now)."""

    @property
    def group(self) -> str | None:
        if self.status in ("sent", "deleted"):
            return "sent"
        return "holdout" if self.status == "holdout" else None

    def window_start(self, holdout_from: datetime | None) -> datetime | None:
        return self.sent_at if self.group == "sent" else holdout_from

    def figures(self, holdout_from: datetime | None, days: int) -> dict[str, bool]:
        start = self.window_start(holdout_from)
        if start is None:
            return dict.fromkeys(FIGURES, False)
        end = start + timedelta(days=days)

        def within(moment: datetime) -> bool:
            return start <= moment < end

        booked = [confirmed for at, confirmed in self.bookings if within(at)]
        return {
            "clicked": any(within(at) for at in self.clicks),
            "booked": bool(booked),
            "confirmed": 2 in booked,
            "free_lesson_registered": any(within(at) for at in self.registrations),
            "attended": any(within(at) and kind == "lesson_attended" for at, kind in self.events),
            "blocked": any(within(at) and kind == "bot_blocked" for at, kind in self.events)
            or (self.blocked_at is not None and within(self.blocked_at)),
        }


@dataclass
class OutcomeData:
    message_id: int
    holdout_from: datetime | None
    recipients: list[Recipient]

    def expected(self, days: int) -> dict[str, dict[str, int] | None]:
        groups: dict[str, dict[str, int] | None] = {}
        for group in ("sent", "holdout"):
            members = [r for r in self.recipients if r.group == group]
            if group == "holdout" and not members:
                groups[group] = None
                continue
            totals = {"recipients": len(members)} | dict.fromkeys(FIGURES, 0)
            for member in members:
                for name, done in member.figures(self.holdout_from, days).items():
                    totals[name] += done
            groups[group] = totals
        return {"window_days": days} | groups  # type: ignore[dict-item]

    def expected_rows(self, days: int) -> list[list[str]]:
        """The CSV's rows: the delivered first, then the control group, by user_id."""
        shown = sorted(
            (r for r in self.recipients if r.group is not None),
            key=lambda r: (r.group != "sent", r.user_id),
        )
        return [
            [str(r.user_id), str(r.group), r.sent_at.isoformat() if r.sent_at else ""]
            + ["true" if done else "false" for done in r.figures(self.holdout_from, days).values()]
            for r in shown
        ]


def _at(rng: random.Random, start: datetime) -> datetime:
    return start + rng.choice(OFFSETS)


def _activity(rng: random.Random, member: Recipient, start: datetime) -> None:
    for _ in range(rng.randint(0, 3)):
        member.bookings.append((_at(rng, start), rng.choice((-1, 1, 2))))
    for _ in range(rng.randint(0, 2)):
        member.registrations.append(_at(rng, start))
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(("lesson_attended", "bot_blocked", "start", "button_click"))
        member.events.append((_at(rng, start), kind))
    if rng.random() < 0.3:
        member.blocked_at = _at(rng, start)
    if member.status in ("sent", "deleted"):
        for _ in range(rng.randint(0, 2)):
            member.clicks.append(_at(rng, start))


def make_recipients(
    seed: int, count: int, *, holdout_from: datetime | None, first_user: int = 1000
) -> list[Recipient]:
    rng = random.Random(seed)
    made = []
    for index in range(count):
        status = rng.choice(STATUSES)
        sent_at = None
        if status in ("sent", "deleted"):
            sent_at = STARTED + timedelta(seconds=rng.randint(0, 3600), microseconds=index)
        member = Recipient(first_user + index, status, sent_at)
        start = member.window_start(holdout_from) or STARTED
        _activity(rng, member, start)
        made.append(member)
    return made


def insert_broadcast(
    engine: Engine,
    recipients: list[Recipient],
    *,
    status: str = "sent",
    started_at: datetime | None = STARTED,
    sent_at: datetime | None = FINISHED,
    cancelled_at: datetime | None = None,
    holdout_percent: int = 20,
) -> int:
    """The broadcast, its two links, its recipients with their clicks, and what each
    recipient (and OTHER_USER) did in the bot's tables and bot_users."""
    with engine.begin() as connection:
        message_id = connection.execute(
            text(
                "INSERT INTO message_history (message_text, status, recipient_type, "
                "recipient_group, audience, holdout_percent, started_at, sent_at, "
                "cancelled_at, track_links) VALUES ('Spring offer', :status, 'group', 'all', "
                "'{\"type\": \"all\"}', :holdout, :started, :sent, :cancelled, true) "
                "RETURNING id"
            ),
            {"status": status, "holdout": holdout_percent, "started": started_at,
             "sent": sent_at, "cancelled": cancelled_at},
        ).scalar_one()  # fmt: skip
        for position in (0, 1):
            connection.execute(
                text("INSERT INTO broadcast_links VALUES (:m, :p, :url)"),
                {"m": message_id, "p": position, "url": f"https://school.example/{position}"},
            )
        for member in recipients:
            member.recipient_id = connection.execute(
                text(
                    "INSERT INTO message_recipients (message_id, user_id, delivery_status, "
                    "sent_at, telegram_message_id) VALUES (:m, :u, :s, :at, :telegram_id) "
                    "RETURNING id"
                ),
                {"m": message_id, "u": member.user_id, "s": member.status, "at": member.sent_at,
             "telegram_id": None if member.sent_at is None else member.user_id},
            ).scalar_one()  # fmt: skip
            for position, clicked_at in enumerate(member.clicks[:2]):
                connection.execute(
                    text(
                        "INSERT INTO broadcast_clicks (recipient_id, position, message_id, "
                        "first_clicked_at, last_clicked_at, clicks) "
                        "VALUES (:r, :p, :m, :at, :at + interval '1 hour', 2)"
                    ),
                    {"r": member.recipient_id, "p": position, "m": message_id, "at": clicked_at},
                )
        _insert_activity(connection, recipients)
    return int(message_id)


def _insert_activity(connection: object, recipients: Iterable[Recipient]) -> None:
    execute = connection.execute  # type: ignore[attr-defined]
    other = Recipient(OTHER_USER, "none", None)
    other.bookings = [(STARTED + offset, 2) for offset in OFFSETS]
    other.registrations = [STARTED + offset for offset in OFFSETS]
    other.events = [(STARTED + offset, "lesson_attended") for offset in OFFSETS]
    other.blocked_at = STARTED + timedelta(hours=5)
    for member in [*recipients, other]:
        for at, confirmed in member.bookings:
            execute(
                text(
                    "INSERT INTO bookings (user_id, course_id, confirmed, created_at) "
                    "VALUES (:u, 1, :c, :at)"
                ),
                {"u": member.user_id, "c": confirmed, "at": at},
            )
        for at in member.registrations:
            execute(
                text(
                    "INSERT INTO free_lesson_registrations (user_id, registered_at) "
                    "VALUES (:u, :at)"
                ),
                {"u": member.user_id, "at": at},
            )
        for at, kind in member.events:
            execute(
                text("INSERT INTO events (user_id, event_type, created_at) VALUES (:u, :k, :at)"),
                {"u": member.user_id, "k": kind, "at": at},
            )
        execute(
            text(
                "INSERT INTO bot_users (user_id, is_blocked, blocked_at) "
                "VALUES (:u, :blocked, :at) ON CONFLICT (user_id) DO NOTHING"
            ),
            {"u": member.user_id, "blocked": member.blocked_at is not None,
             "at": member.blocked_at},
        )  # fmt: skip
