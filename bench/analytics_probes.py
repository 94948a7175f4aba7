"""What analytics_bench.py times: the routes, their goals, and the naive SQL for each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from naive_analytics import NaiveQuery

from coursedesk.users.queries import escape_like

COMMON_TERM = "anna"  # a stem of many generated usernames and first names
RARE_MATCHES = 5  # at most this many users share the rare search term
DAYS = 30
TOP_EVENTS = 10
SEARCH_LIMIT = 20  # /api/users/search's default page
PAGE_LIMIT = 50  # /api/users's default page


@dataclass(frozen=True)
class Goal:
    """A target of issue 3: a p50 or p95 bound in ms, and a speed-up over the naive SQL."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    speed_up: float | None = None

    def describe(self) -> str:
        parts = []
        if self.p50_ms is not None:
            parts.append(f"p50 ≤ {self.p50_ms:g} ms")
        if self.p95_ms is not None:
            parts.append(f"p95 ≤ {self.p95_ms:g} ms")
        if self.speed_up is not None:
            parts.append(f"≥ {self.speed_up:g}×")
        return ", ".join(parts)

    def met(self, p50: float, p95: float, speed_up: float | None) -> bool:
        return (
            (self.p50_ms is None or p50 <= self.p50_ms)
            and (self.p95_ms is None or p95 <= self.p95_ms)
            and (self.speed_up is None or (speed_up is not None and speed_up >= self.speed_up))
        )


FIGURE_GOAL = Goal(p50_ms=20, speed_up=50)
DASHBOARD_GOAL = Goal(p50_ms=20)
SEARCH_GOAL = Goal(p95_ms=20)


@dataclass(frozen=True)
class Probe:
    """A route to time, and the naive statement that computes the same answer, if any."""

    path: str
    goal: Goal | None = None
    naive: NaiveQuery | None = None


@dataclass(frozen=True)
class BenchData:
    """What the probes are built from, looked up in the seeded data."""

    users: int
    stream: str
    user_id: int
    rare_term: str
    first_day: date
    last_day: date
    timezone: str


def route_path(route: str, **query: object) -> str:
    return f"{route}?{urlencode(query)}" if query else route


def _search_query(term: str, limit: int) -> NaiveQuery:
    """user_search's parameters for `term`, read as docs/reference.md §4 reads a search."""
    username_term = term.removeprefix("@")
    return NaiveQuery(
        "user_search",
        {
            "name_pattern": f"%{escape_like(term)}%",
            "username_pattern": f"%{escape_like(username_term)}%" if username_term else None,
            "user_id": int(term) if term.isascii() and term.isdigit() else None,
            "limit": limit,
        },
    )


def dashboard_probes(data: BenchData) -> list[Probe]:
    window = {"first_day": data.first_day, "last_day": data.last_day, "tz": data.timezone}
    return [
        # The floor under every route: the token looked up in the database, a small answer.
        Probe("/api/me"),
        Probe("/api/stats", FIGURE_GOAL, NaiveQuery("dashboard_stats")),
        Probe(
            route_path("/api/stats/daily", days=DAYS),
            FIGURE_GOAL,
            NaiveQuery("daily_activity", window),
        ),
        Probe(
            route_path("/api/user-growth", days=DAYS),
            FIGURE_GOAL,
            NaiveQuery("user_growth", window),
        ),
        Probe("/api/courses", FIGURE_GOAL, NaiveQuery("course_figures")),
        Probe("/api/courses/streams", FIGURE_GOAL, NaiveQuery("stream_figures")),
        Probe(
            route_path("/api/events/top", limit=TOP_EVENTS),
            FIGURE_GOAL,
            NaiveQuery("top_events", {"limit": TOP_EVENTS}),
        ),
        Probe("/api/referrals", FIGURE_GOAL, NaiveQuery("referral_figures")),
        Probe("/api/free-lessons/conversion", FIGURE_GOAL, NaiveQuery("lesson_conversion")),
        Probe("/api/events/recent", DASHBOARD_GOAL),
        Probe("/api/bookings/recent", DASHBOARD_GOAL),
        Probe("/api/free-lessons", DASHBOARD_GOAL),
        Probe(route_path("/api/funnel", days=DAYS), DASHBOARD_GOAL),
        Probe("/api/retention", DASHBOARD_GOAL),
    ]


def users_probes(data: BenchData) -> list[Probe]:
    deep_offset = data.users // 2
    user = f"/api/users/{data.user_id}"
    return [
        Probe("/api/users"),
        Probe(route_path("/api/users", stream=data.stream)),
        Probe(route_path("/api/users", status="confirmed")),
        Probe(route_path("/api/users", offset=deep_offset)),
        *(
            Probe(
                route_path("/api/users/search", q=term),
                SEARCH_GOAL,
                _search_query(term, SEARCH_LIMIT),
            )
            for term in (COMMON_TERM, data.rare_term)
        ),
        *(
            Probe(
                route_path("/api/users", search=term), SEARCH_GOAL, _search_query(term, PAGE_LIMIT)
            )
            for term in (COMMON_TERM, data.rare_term)
        ),
        Probe(user),
        Probe(f"{user}/bookings"),
        Probe(f"{user}/events"),
        Probe(f"{user}/free-lessons"),
    ]
