"""The dashboard: a page of blocks, each loaded on its own so a slow one holds up nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from coursedesk.analytics import service
from coursedesk.analytics.folding import read_freshness
from coursedesk.analytics.periods import MAX_DAYS, DayWindow, resolve_window
from coursedesk.broadcasts import service as broadcasts
from coursedesk.cache.reads import CachedReads
from coursedesk.config import Settings
from coursedesk.errors import InvalidInput
from coursedesk.pages.charts import (
    FUNNEL_LABELS,
    BroadcastMark,
    activity_figure,
    funnel_figure,
    growth_figure,
)
from coursedesk.pages.rendering import render_fragment, render_page, settings_of
from coursedesk.pages.routes import page_router
from coursedesk.web.deps import CachedRead, PageViewer

router = page_router()
blocks_router = page_router(fragments=True)

PRESET_DAYS = (7, 30, 90)
RANGE_COOKIE = "dashboard_range"
RANGE_COOKIE_SECONDS = 90 * 24 * 3600
TABLE_ROWS = 12
RECENT_ROWS = 10
MARK_LABEL_CHARS = 60

BlockName = Literal[
    "freshness",
    "stats",
    "growth",
    "activity",
    "funnel",
    "conversion",
    "courses",
    "streams",
    "top-events",
    "referrals",
    "recent-bookings",
    "recent-events",
]
Days = Annotated[int | None, Query(ge=1, le=MAX_DAYS)]
FirstDay = Annotated[date | None, Query(alias="from")]
LastDay = Annotated[date | None, Query(alias="to")]


@dataclass(frozen=True)
class ChosenRange:
    window: DayWindow
    preset: int | None

    @property
    def query(self) -> str:
        """The range as the blocks' query string."""
        if self.preset is not None:
            return urlencode({"days": self.preset})
        return urlencode({"from": self.window.first_day, "to": self.window.last_day})


def choose_range(
    settings: Settings, days: int | None, first_day: date | None, last_day: date | None
) -> ChosenRange:
    """The days the charts cover: a preset (`days`) or a custom `from`/`to` range."""
    today = settings.today()
    custom = first_day is not None or last_day is not None
    window = resolve_window(
        today=today, days=None if custom else days, first_day=first_day, last_day=last_day
    )
    return ChosenRange(window, None if custom else window.days)


def _remembered(request: Request) -> tuple[int | None, date | None, date | None]:
    """The range last chosen in this browser (a cookie), as (days, from, to); nothing when
    there is none or it no longer parses."""
    stored = parse_qs(request.cookies.get(RANGE_COOKIE, ""))
    try:
        days = int(stored["days"][0]) if "days" in stored else None
        first_day = date.fromisoformat(stored["from"][0]) if "from" in stored else None
        last_day = date.fromisoformat(stored["to"][0]) if "to" in stored else None
    except ValueError:
        return None, None, None
    if days is not None and not 1 <= days <= MAX_DAYS:
        return None, None, None
    return days, first_day, last_day


@router.get("/")
async def dashboard(
    request: Request,
    principal: PageViewer,
    days: Days = None,
    first_day: FirstDay = None,
    last_day: LastDay = None,
) -> HTMLResponse:
    settings = settings_of(request)
    range_error = None
    chosen_here = days is not None or first_day is not None or last_day is not None
    if not chosen_here:
        days, first_day, last_day = _remembered(request)
    try:
        chosen = choose_range(settings, days, first_day, last_day)
    except InvalidInput as exc:
        if chosen_here:
            range_error = f"That date range does not work: {exc}. Showing the last 30 days."
        chosen = choose_range(settings, 30, None, None)
    response = render_page(
        request,
        principal,
        "dashboard.html",
        {"chosen": chosen, "presets": PRESET_DAYS, "range_error": range_error},
        section="dashboard",
    )
    if chosen_here and range_error is None:
        # Kept for the next visit of the dashboard, from any page of this browser.
        response.set_cookie(
            RANGE_COOKIE,
            chosen.query,
            max_age=RANGE_COOKIE_SECONDS,
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    return response


Block = tuple[str, dict[str, Any]]
BlockBuilder = Callable[[CachedReads, DayWindow, Settings], Awaitable[Block]]


async def _freshness(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    """A note when the figures lag the bot's writes by more than the freshness bound."""
    freshness = await read_freshness(await reads.session.connection())
    return "blocks/freshness.html", {"freshness": freshness}


async def _stats(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    return "blocks/stats.html", {"stats": await reads(service.dashboard_stats)}


async def _growth(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    days = await reads(service.user_growth, window, settings.app_timezone)
    new_users = sum(day.new_users for day in days)
    return "blocks/chart.html", {
        "figure": growth_figure(days),
        "note": f"{new_users:,} new users in these {window.days} days",
        "is_empty": not any(day.total_users for day in days),
        "empty_text": "Users appear here once the bot records them.",
    }


async def _broadcast_marks(
    reads: CachedReads, window: DayWindow, settings: Settings
) -> list[BroadcastMark]:
    """The broadcasts that began going out in the window's days, as chart markers."""
    zone = settings.timezone
    start = datetime.combine(window.first_day, time.min, zone)
    end = datetime.combine(window.last_day + timedelta(days=1), time.min, zone)
    found = await broadcasts.started_between(reads.session, start, end)
    return [
        BroadcastMark(
            day=message.started_at.astimezone(zone).date(),
            url=f"/broadcasts/{message.id}",
            label=_shortened(message.message_text),
        )
        for message in found
        if message.started_at is not None
    ]


def _shortened(text: str, limit: int = MARK_LABEL_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


async def _activity(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    days = await reads(service.daily_activity, window, settings.app_timezone)
    marks = await _broadcast_marks(reads, window, settings)
    totals = {
        "bookings": sum(day.bookings for day in days),
        "events": sum(day.events for day in days),
        "free lessons": sum(day.free_lesson_registrations for day in days),
    }
    return "blocks/chart.html", {
        "figure": activity_figure(days, marks),
        "note": " · ".join(f"{count:,} {name}" for name, count in totals.items()),
        "is_empty": not any(totals.values()) and not any(day.new_users for day in days),
        "empty_text": "No bookings, events or registrations in these days.",
        "marks": marks,
    }


async def _funnel(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    funnel = await reads(service.funnel, window, settings.app_timezone)
    return "blocks/funnel.html", {
        "funnel": funnel,
        "figure": funnel_figure(funnel.items),
        "labels": FUNNEL_LABELS,
    }


async def _conversion(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    rows = await reads(service.lesson_conversion)
    return "blocks/conversion.html", {
        "rows": rows[:TABLE_ROWS],
        "more": len(rows) - TABLE_ROWS,
        "today": settings.today(),
    }


async def _courses(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    return "blocks/courses.html", {"rows": await reads(service.course_figures)}


async def _streams(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    rows = await reads(service.stream_figures)
    return "blocks/streams.html", {"rows": rows[:TABLE_ROWS], "more": len(rows) - TABLE_ROWS}


async def _top_events(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    rows = await reads(service.top_events, 10)
    largest = max((row.count for row in rows), default=0)
    return "blocks/top_events.html", {"rows": rows, "largest": largest}


async def _referrals(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    rows = await reads(service.referral_figures)
    return "blocks/referrals.html", {"rows": rows[:TABLE_ROWS], "more": len(rows) - TABLE_ROWS}


async def _recent_bookings(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    return "blocks/recent_bookings.html", {
        "rows": await reads(service.recent_bookings, RECENT_ROWS)
    }


async def _recent_events(reads: CachedReads, window: DayWindow, settings: Settings) -> Block:
    return "blocks/recent_events.html", {"rows": await reads(service.recent_events, RECENT_ROWS)}


BLOCKS: dict[str, BlockBuilder] = {
    "freshness": _freshness,
    "stats": _stats,
    "growth": _growth,
    "activity": _activity,
    "funnel": _funnel,
    "conversion": _conversion,
    "courses": _courses,
    "streams": _streams,
    "top-events": _top_events,
    "referrals": _referrals,
    "recent-bookings": _recent_bookings,
    "recent-events": _recent_events,
}


@blocks_router.get("/dashboard/blocks/{block}")
async def dashboard_block(
    request: Request,
    _: PageViewer,
    reads: CachedRead,
    block: BlockName,
    days: Days = None,
    first_day: FirstDay = None,
    last_day: LastDay = None,
) -> HTMLResponse:
    """One block of the dashboard, as HTML for the page script to put in its place."""
    settings = settings_of(request)
    chosen = choose_range(settings, days, first_day, last_day)
    template, context = await BLOCKS[block](reads, chosen.window, settings)
    return render_fragment(request, template, context)
