"""docs/reference.md §4 computed in plain Python from the source rows, to check the SQL against."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Sources:
    bookings: list[dict[str, Any]]
    events: list[dict[str, Any]]
    registrations: list[dict[str, Any]]
    course_names: dict[int, str]


def round2(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def lesson_date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value) if value[4] == "-" and value[7] == "-" else None
    except ValueError:
        return None


def users(sources: Sources) -> dict[int, dict[str, Any]]:
    """user_id → the user object's figures."""
    seen: dict[int, list[datetime]] = defaultdict(list)
    named: dict[int, list[tuple[datetime, int, str | None, str | None]]] = defaultdict(list)
    for b in sources.bookings:
        seen[b["user_id"]].append(b["created_at"])
        named[b["user_id"]].append((b["created_at"], b["id"], b["username"], b["first_name"]))
    for e in sources.events:
        if e["user_id"] is not None:
            seen[e["user_id"]].append(e["created_at"])
    for r in sources.registrations:
        seen[r["user_id"]].append(r["registered_at"])
        named[r["user_id"]].append((r["registered_at"], r["id"], r["username"], r["first_name"]))
    result = {}
    for user_id, times in seen.items():
        ordered = sorted(named[user_id], key=lambda n: (n[0], n[1]), reverse=True)
        bookings = [b for b in sources.bookings if b["user_id"] == user_id]
        confirmed = {b["confirmed"] for b in bookings}
        status = (
            "confirmed" if 2 in confirmed
            else "pending" if 1 in confirmed
            else "cancelled" if bookings
            else "no_booking"
        )  # fmt: skip
        live = sorted(
            (b for b in bookings if b["confirmed"] != -1),
            key=lambda b: (b["created_at"], b["id"]),
        )
        result[user_id] = {
            "username": next((n[2] for n in ordered if n[2] is not None), None),
            "first_name": next((n[3] for n in ordered if n[3] is not None), None),
            "first_seen": min(times),
            "last_seen": max(times),
            "status": status,
            "course_stream": live[-1]["course_stream"] if live else None,
            "bookings_count": len(bookings),
            "events_count": sum(1 for e in sources.events if e["user_id"] == user_id),
            "free_lessons_count": sum(1 for r in sources.registrations if r["user_id"] == user_id),
        }
    return result


def stats(sources: Sources) -> dict[str, int]:
    return {
        "total_users": len(users(sources)),
        "active_bookings": sum(1 for b in sources.bookings if b["confirmed"] in (1, 2)),
        "confirmed_payments": sum(1 for b in sources.bookings if b["confirmed"] == 2),
        "free_lesson_registrations": len(sources.registrations),
    }


def _booking_figures(bookings: list[dict[str, Any]]) -> tuple[int, int, int, int, int]:
    return (
        len(bookings),
        sum(1 for b in bookings if b["confirmed"] == 2),
        sum(1 for b in bookings if b["confirmed"] == 1),
        sum(1 for b in bookings if b["confirmed"] == -1),
        len({b["user_id"] for b in bookings}),
    )


def _nulls_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else 0)


def courses(sources: Sources) -> list[tuple[Any, ...]]:
    groups: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for b in sources.bookings:
        groups[b["course_id"]].append(b)
    return [
        (course_id, _course_name(sources, course_id), *_booking_figures(rows))
        for course_id, rows in sorted(groups.items(), key=lambda g: _nulls_last(g[0]))
    ]


def _course_name(sources: Sources, course_id: int | None) -> str | None:
    if course_id is None:
        return None
    return sources.course_names.get(course_id, f"Course {course_id}")


def streams(sources: Sources) -> list[tuple[Any, ...]]:
    groups: dict[tuple[int | None, str], list[dict[str, Any]]] = defaultdict(list)
    for b in sources.bookings:
        if b["course_stream"] is not None:
            groups[(b["course_id"], b["course_stream"])].append(b)
    return [
        (course_id, stream, *_booking_figures(rows))
        for (course_id, stream), rows in sorted(
            groups.items(), key=lambda g: (_nulls_last(g[0][0]), g[0][1].encode())
        )
    ]


def top_events(sources: Sources) -> list[tuple[str, int, int]]:
    counts = Counter(e["event_type"] for e in sources.events)
    users_by_type: dict[str, set[int]] = defaultdict(set)
    for e in sources.events:
        if e["user_id"] is not None:
            users_by_type[e["event_type"]].add(e["user_id"])
    return sorted(
        ((t, n, len(users_by_type[t])) for t, n in counts.items()),
        key=lambda row: (-row[1], row[0].encode()),
    )


def referrals(sources: Sources) -> list[tuple[Any, ...]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in sources.bookings:
        if b["referral_code"] is not None:
            groups[b["referral_code"]].append(b)
    rows = []
    for code, bookings in groups.items():
        discounts = [b["discount_percent"] for b in bookings if b["discount_percent"] is not None]
        average = round2(sum(discounts, Decimal(0)) / len(discounts)) if discounts else None
        rows.append(
            (
                code,
                len(bookings),
                sum(1 for b in bookings if b["confirmed"] == 2),
                len({b["user_id"] for b in bookings}),
                average,
            )
        )
    return sorted(rows, key=lambda row: (-row[1], row[0].encode()))


def conversion(sources: Sources) -> list[tuple[Any, ...]]:
    registered: dict[tuple[Any, Any], set[int]] = defaultdict(set)
    attending: dict[tuple[Any, Any], set[int]] = defaultdict(set)
    for r in sources.registrations:
        registered[(r["lesson_type"], r["lesson_date"])].add(r["user_id"])
    for e in sources.events:
        if e["event_type"] != "lesson_attended":
            continue
        details = e["details"] if isinstance(e["details"], dict) else {}
        lesson_type = details.get("lesson_type")
        key = (
            None if lesson_type is None else str(lesson_type),
            lesson_date(details.get("lesson_date")),
        )
        users_of_key = attending[key]
        if e["user_id"] is not None:
            users_of_key.add(e["user_id"])
    rows = []
    for key in set(registered) | set(attending):
        regs, atts = len(registered.get(key, ())), len(attending.get(key, ()))
        if not regs and not atts:  # only anonymous attendances: no one to count
            continue
        rate = round2(Decimal(100 * atts) / Decimal(regs)) if regs else None
        rows.append((key[0], key[1], regs, atts, rate))
    return sorted(
        rows,
        key=lambda row: (
            row[1] is None,
            -(row[1].toordinal()) if row[1] else 0,
            row[0] is None,
            (row[0] or "").encode(),
        ),
    )


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def daily(sources: Sources, first: date, last: date, timezone: str) -> list[tuple[Any, ...]]:
    zone = ZoneInfo(timezone)
    new_users = Counter(_local_day(u["first_seen"], zone) for u in users(sources).values())
    bookings = Counter(_local_day(b["created_at"], zone) for b in sources.bookings)
    events = Counter(_local_day(e["created_at"], zone) for e in sources.events)
    registrations = Counter(_local_day(r["registered_at"], zone) for r in sources.registrations)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(d, new_users[d], bookings[d], events[d], registrations[d]) for d in days]


def growth(sources: Sources, first: date, last: date, timezone: str) -> list[tuple[Any, ...]]:
    zone = ZoneInfo(timezone)
    firsts = [_local_day(u["first_seen"], zone) for u in users(sources).values()]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(d, firsts.count(d), sum(1 for f in firsts if f <= d)) for d in days]


def funnel(sources: Sources, first: date, last: date, timezone: str) -> list[tuple[int, int]]:
    """(users through every step so far, users who reached the step) per funnel step."""
    zone = ZoneInfo(timezone)
    cohort = [
        user_id
        for user_id, user in users(sources).items()
        if first <= _local_day(user["first_seen"], zone) <= last
    ]
    took = {
        "registered": {r["user_id"] for r in sources.registrations},
        "attended": {e["user_id"] for e in sources.events if e["event_type"] == "lesson_attended"},
        "booked": {b["user_id"] for b in sources.bookings},
        "paid": {b["user_id"] for b in sources.bookings if b["confirmed"] == 2},
    }
    rows = [(len(cohort), len(cohort))]
    through = set(cohort)
    for step in ("registered", "attended", "booked", "paid"):
        through &= took[step]
        rows.append((len(through), sum(1 for u in cohort if u in took[step])))
    return rows


def retention(sources: Sources, first_monday: date, weeks: int, timezone: str) -> dict:
    """(cohort Monday, whole weeks from first_seen to last_seen, capped at 52) → users."""
    zone = ZoneInfo(timezone)
    cohorts: Counter[tuple[date, int]] = Counter()
    for user in users(sources).values():
        day = _local_day(user["first_seen"], zone)
        index = (day - first_monday).days // 7
        if 0 <= index < weeks:
            lifetime = (user["last_seen"] - user["first_seen"]) // timedelta(weeks=1)
            cohorts[(first_monday + timedelta(weeks=index), min(lifetime, 52))] += 1
    return dict(cohorts)
