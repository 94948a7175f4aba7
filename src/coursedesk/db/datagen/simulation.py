"""Simulates the bot's users over the last six months, the same for a seed.

Users are simulated in fixed chunks, each with a random generator of its own derived
from the seed, so a chunk's rows depend only on (seed, anchor, chunk number).
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import TypeVar

from coursedesk.db.datagen.plan import DAY, EventKind, GenerationPlan, RawChunk, day_text
from coursedesk.db.datagen.vocabulary import (
    BUTTONS,
    COURSES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LESSONS,
    MANUAL_DISCOUNT_TEXT,
    REFERRAL_CODES,
    START_PAYLOADS,
    STREAM_PERIOD_DAYS,
    USERNAME_SUFFIXES,
    CourseSpec,
    FirstName,
    LessonSpec,
    ReferralCode,
)

# Part of what a seed means: changing it changes every generated row.
CHUNK_USERS = 2_000
# Telegram user ids: old accounts have small ids, recent ones are far past 2^31.
USER_ID_RANGE = (10_000_000, 8_500_000_000)
# Daily sign-ups at the end of the history are this many times those at its start.
GROWTH = 4.0

T = TypeVar("T")

# Shares of users (or rows) with each trait; together they give about ten rows a user.
NO_USERNAME = 0.12
NO_FIRST_NAME = 0.05
ROW_WITHOUT_FIRST_NAME = 0.03
RENAMED = 0.10
MEAN_RETURNS = 2.2
MAX_RETURNS = 14
# Of the clicks in a visit: buttons, then views of the user's own course, then others.
CLICK = 0.6
FAVOURITE_VIEW = 0.88
BOOKER = 0.38
SECOND_BOOKING = 0.20
NO_STREAM = 0.06
REFERRED = 0.30
MANUAL_DISCOUNT = 0.02
FREE_LESSON = 0.32
SECOND_FREE_LESSON = 0.15
NO_EMAIL = 0.15
NOTIFIED = 0.93
ATTENDED = 0.55
WALK_IN = 0.03
ANONYMOUS_EVENT = 0.12


def weekday(day: int) -> int:
    """Monday is 0; 1970-01-01 was a Thursday."""
    return (day + 3) % 7


def stream_name(course: CourseSpec, period: int) -> str:
    return f"{course.stream_prefix}-{course.first_stream + period}"


def user_ids(plan: GenerationPlan) -> list[int]:
    """Distinct user ids for the plan, in the order their users are simulated."""
    rng = random.Random(f"coursedesk-users:{plan.seed}")
    return rng.sample(range(*USER_ID_RANGE), plan.users)


def generate_chunks(plan: GenerationPlan) -> Iterator[RawChunk]:
    """The plan's rows, chunk by chunk, so that memory stays flat at any scale."""
    ids = user_ids(plan)
    for number, offset in enumerate(range(0, plan.users, CHUNK_USERS)):
        simulator = _ChunkSimulator(plan, number)
        for user_id in ids[offset : offset + CHUNK_USERS]:
            simulator.simulate(user_id)
        yield simulator.chunk


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    return [running / total for running in accumulate(weights)]


_COURSE_CUMULATIVE = _cumulative([course.weight for course in COURSES])
_REFERRAL_CUMULATIVE = _cumulative([referral.weight for referral in REFERRAL_CODES])
_LESSON_CUMULATIVE = _cumulative([lesson.weight for lesson in LESSONS])
_BUTTON_DETAILS = tuple(f'{{"button": "{button}"}}' for button in BUTTONS)
_START_DETAILS = tuple(f'{{"payload": "{payload}"}}' for payload in START_PAYLOADS)
_COURSE_DETAILS = {course.id: f'{{"course_id": {course.id}}}' for course in COURSES}
_SIGNUP_DETAILS = {
    lesson.lesson_type: f'{{"lesson_type": "{lesson.lesson_type}"}}' for lesson in LESSONS
}
_BUTTONS = len(_BUTTON_DETAILS)
_COURSE_COUNT = len(_COURSE_DETAILS)
_GROWTH_SPAN = GROWTH - 1
_LOG_GROWTH = math.log(GROWTH)


@lru_cache(maxsize=4096)
def lesson_details(lesson_type: str, lesson_day: int) -> str:
    """The details of a `lesson_attended` event, as the bot writes them."""
    return f'{{"lesson_type": "{lesson_type}", "lesson_date": "{day_text(lesson_day)}"}}'


@dataclass(slots=True)
class _Person:
    user_id: int
    first_name: str | None
    username: str | None
    old_username: str | None
    renamed_at: int
    email_local: str
    course: CourseSpec


class _ChunkSimulator:
    """Simulates users one by one into the rows of one chunk."""

    def __init__(self, plan: GenerationPlan, number: int) -> None:
        rng = random.Random(f"coursedesk-activity:{plan.seed}:{number}")
        self.rand = rng.random
        self.start = plan.start_ts
        self.end = plan.end_ts
        self.end_day = self.end // DAY
        self.chunk = RawChunk()
        self._kind_codes: dict[EventKind, int] = {}
        self.start_kinds = [self.kind("/start", details) for details in _START_DETAILS]
        self.plain_start_kind = self.kind("/start", None)
        self.return_kind = self.kind("start", None)
        self.button_kinds = [self.kind("button_click", details) for details in _BUTTON_DETAILS]
        self.view_kinds = {c: self.kind("course_view", d) for c, d in _COURSE_DETAILS.items()}
        self.any_view_kinds = list(self.view_kinds.values())
        self.booking_kinds = {
            c: self.kind("booking_created", d) for c, d in _COURSE_DETAILS.items()
        }
        self.signup_kinds = {
            t: self.kind("free_lesson_signup", d) for t, d in _SIGNUP_DETAILS.items()
        }

    def kind(self, event_type: str, details: str | None) -> int:
        """The number of (event_type, details) in the chunk's table of event kinds."""
        key = (event_type, details)
        code = self._kind_codes.get(key)
        if code is None:
            code = self._kind_codes[key] = len(self.chunk.events.kind_table)
            self.chunk.events.kind_table.append(key)
        return code

    def event(self, user_id: int, ts: int, kind: int) -> None:
        events = self.chunk.events
        events.user_ids.append(user_id)
        events.times.append(ts)
        events.kinds.append(kind)

    def simulate(self, user_id: int) -> None:
        rand = self.rand
        span = self.end - self.start
        # Inverse of an exponential sign-up curve: later days get more new users.
        first_seen = self.start + int(span * math.log1p(rand() * _GROWTH_SPAN) / _LOG_GROWTH)
        person = self._person(user_id, first_seen)
        sessions = self._sessions(person, first_seen)
        if rand() < BOOKER:
            self._bookings(person, sessions)
        if rand() < FREE_LESSON:
            self._free_lessons(person, sessions)
        elif rand() < WALK_IN:
            self._walk_in(person, first_seen)
        if rand() < ANONYMOUS_EVENT:
            self.chunk.anonymous_events.append(
                (None, "button_click", self.start + int(span * rand()), self._pick(_BUTTON_DETAILS))
            )
        self.chunk.users += 1

    def _pick(self, items: Sequence[T]) -> T:
        return items[int(self.rand() * len(items))]

    def _weighted(self, items: Sequence[T], cumulative: list[float]) -> T:
        return items[min(bisect(cumulative, self.rand()), len(items) - 1)]

    def _username(self, first: FirstName | None) -> str:
        rand = self.rand
        stem = (first or self._pick(FIRST_NAMES)).stem
        name = stem + self._pick(USERNAME_SUFFIXES)
        if rand() < 0.55 or len(name) < 5:
            name += str(int(rand() * 1000))
        return name

    def _person(self, user_id: int, first_seen: int) -> _Person:
        rand = self.rand
        first = self._pick(FIRST_NAMES)
        username = None if rand() < NO_USERNAME else self._username(first)
        old_username, renamed_at = username, first_seen
        if username is not None and rand() < RENAMED:
            old_username = self._username(None)
            renamed_at = first_seen + int((self.end - first_seen) * rand())
        return _Person(
            user_id=user_id,
            first_name=None if rand() < NO_FIRST_NAME else first.shown,
            username=username,
            old_username=old_username,
            renamed_at=renamed_at,
            email_local=username or f"{first.stem}{int(rand() * 10_000)}",
            course=self._weighted(COURSES, _COURSE_CUMULATIVE),
        )

    def _names_at(self, person: _Person, ts: int) -> tuple[str | None, str | None]:
        username = person.username if ts >= person.renamed_at else person.old_username
        first_name = None if self.rand() < ROW_WITHOUT_FIRST_NAME else person.first_name
        return username, first_name

    def _sessions(self, person: _Person, first_seen: int) -> list[int]:
        """Visits to the bot: a /start, then returns that thin out over time."""
        rand, end, user_id = self.rand, self.end, person.user_id
        events = self.chunk.events
        add_user, add_time, add_kind = (
            events.user_ids.append,
            events.times.append,
            events.kinds.append,
        )
        buttons, any_view = self.button_kinds, self.any_view_kinds
        favourite = self.view_kinds[person.course.id]
        room = end - first_seen
        returns = min(int(-math.log(1.0 - rand()) * MEAN_RETURNS), MAX_RETURNS)
        sessions = sorted(first_seen + int(room * rand() ** 2) for _ in range(returns))
        sessions.insert(0, first_seen)
        kind = self._pick(self.start_kinds) if rand() < 0.4 else self.plain_start_kind
        for ts in sessions:
            add_user(user_id)
            add_time(ts)
            add_kind(kind)
            kind = self.return_kind
            for _ in range(int(rand() * 4.5)):
                ts += 5 + int(rand() * 300)
                if ts > end:
                    break
                draw = rand()
                add_user(user_id)
                add_time(ts)
                if draw < CLICK:
                    add_kind(buttons[int(rand() * _BUTTONS)])
                elif draw < FAVOURITE_VIEW:
                    add_kind(favourite)
                else:
                    add_kind(any_view[int(rand() * _COURSE_COUNT)])
        return sessions

    def _bookings(self, person: _Person, sessions: list[int]) -> None:
        rand, chunk = self.rand, self.chunk
        for number in range(2 if rand() < SECOND_BOOKING else 1):
            ts = min(self._pick(sessions) + 60 + int(rand() * 900), self.end)
            course = person.course if number == 0 else self._weighted(COURSES, _COURSE_CUMULATIVE)
            self.event(person.user_id, ts, self.booking_kinds[course.id])
            stream = None
            if rand() >= NO_STREAM:
                stream = stream_name(course, (ts - self.start) // (STREAM_PERIOD_DAYS * DAY) + 1)
            code, discount = self._referral()
            username, first_name = self._names_at(person, ts)
            chunk.bookings.append(
                (
                    person.user_id,
                    username,
                    first_name,
                    course.id,
                    stream,
                    self._booking_status(ts),
                    ts,
                    code,
                    discount,
                )
            )

    def _booking_status(self, ts: int) -> int:
        """Recent bookings are mostly still pending; older ones were settled one way or another."""
        draw = self.rand()
        if self.end - ts < 7 * DAY:
            return 1 if draw < 0.55 else 2 if draw < 0.90 else -1
        return 2 if draw < 0.50 else 1 if draw < 0.78 else -1

    def _referral(self) -> tuple[str | None, str | None]:
        draw = self.rand()
        if draw < REFERRED:
            referral: ReferralCode = self._weighted(REFERRAL_CODES, _REFERRAL_CUMULATIVE)
            if self.rand() < 0.05:
                return referral.code, MANUAL_DISCOUNT_TEXT
            return referral.code, referral.discount_text
        if draw < REFERRED + MANUAL_DISCOUNT:
            return None, MANUAL_DISCOUNT_TEXT
        return None, None

    def _lesson_day_after(self, lesson: LessonSpec, day: int) -> int:
        """The lesson's next weekly date after `day`, sometimes the one a week later."""
        ahead = (lesson.weekday - weekday(day)) % 7 or 7
        return day + ahead + (7 if self.rand() < 0.25 else 0)

    def _free_lessons(self, person: _Person, sessions: list[int]) -> None:
        rand, chunk = self.rand, self.chunk
        first = self._weighted(LESSONS, _LESSON_CUMULATIVE)
        lessons = [first]
        if rand() < SECOND_FREE_LESSON:
            lessons.append(LESSONS[(LESSONS.index(first) + 1) % len(LESSONS)])
        for lesson in lessons:
            ts = min(self._pick(sessions) + 30 + int(rand() * 600), self.end)
            lesson_day = self._lesson_day_after(lesson, ts // DAY)
            held = lesson_day < self.end_day
            email = None
            if rand() >= NO_EMAIL:
                email = f"{person.email_local}@{self._pick(EMAIL_DOMAINS)}".lower()
            username, first_name = self._names_at(person, ts)
            chunk.registrations.append(
                (
                    person.user_id,
                    username,
                    first_name,
                    email,
                    ts,
                    held and rand() < NOTIFIED,
                    lesson.lesson_type,
                    lesson_day,
                )
            )
            self.event(person.user_id, ts, self.signup_kinds[lesson.lesson_type])
            if held and rand() < ATTENDED:
                self._attend(person.user_id, lesson, lesson_day)

    def _walk_in(self, person: _Person, first_seen: int) -> None:
        """A user who comes to a free lesson without having registered for it."""
        lesson = self._pick(LESSONS)
        lesson_day = self._lesson_day_after(lesson, first_seen // DAY)
        if lesson_day < self.end_day:
            self._attend(person.user_id, lesson, lesson_day)

    def _attend(self, user_id: int, lesson: LessonSpec, lesson_day: int) -> None:
        # Lessons start at 18:00 UTC; attendance is recorded within two hours.
        ts = lesson_day * DAY + 18 * 3600 + int(self.rand() * 7200)
        details = lesson_details(lesson.lesson_type, lesson_day)
        self.event(user_id, ts, self.kind("lesson_attended", details))
