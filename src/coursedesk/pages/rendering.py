"""The template environment, its filters, and the HTML response every page goes out as."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import Principal
from coursedesk.config import Settings
from coursedesk.pages.assets import asset_url, plotly_url
from coursedesk.pages.flash import FLASH_COOKIE, take_flash

TEMPLATES_DIR = Path(__file__).parent.parent / "web" / "templates"

# Everything a page uses comes from this app; Plotly sets inline styles on what it draws.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NAVIGATION = (
    ("dashboard", "/", "Dashboard"),
    ("users", "/users", "Students"),
    ("broadcasts", "/broadcasts", "Broadcasts"),
    ("system", "/system", "System"),
)
MISSING = "—"


def _zone(context: Context) -> ZoneInfo:
    zone: ZoneInfo = context["timezone"]
    return zone


@pass_context
def format_moment(context: Context, value: datetime | None, with_seconds: bool = False) -> str:
    """A time in APP_TIMEZONE, e.g. `23 Nov 2025, 14:05`."""
    if value is None:
        return MISSING
    shown = value.astimezone(_zone(context)) if value.tzinfo else value
    return (
        f"{shown.day} {shown:%b %Y, %H:%M:%S}"
        if with_seconds
        else f"{shown.day} {shown:%b %Y, %H:%M}"
    )


@pass_context
def format_recent(context: Context, value: datetime | None) -> str:
    """A time in a recent list: `23 Nov, 14:05` this year, `23 Nov 2024` before."""
    if value is None:
        return MISSING
    shown = value.astimezone(_zone(context)) if value.tzinfo else value
    if shown.year == datetime.now(_zone(context)).year:
        return f"{shown.day} {shown:%b, %H:%M}"
    return f"{shown.day} {shown:%b %Y}"


def format_iso(value: datetime | None) -> str:
    """A machine-readable time for `<time datetime=…>`."""
    return "" if value is None else value.isoformat()


def format_day(value: date | None) -> str:
    return MISSING if value is None else f"{value.day} {value:%b %Y}"


def format_number(value: int | float | Decimal | None, decimals: int = 0) -> str:
    if value is None:
        return MISSING
    return f"{value:,.{decimals}f}"


def format_count(value: int, one: str, many: str) -> str:
    """`1 index`, `2,000 indexes`."""
    return f"{value:,} {one if value == 1 else many}"


def breakable(name: str) -> Markup:
    """An identifier a narrow column may wrap after each underscore
    (`activity_<wbr>buckets`), rather than anywhere or not at all."""
    return Markup("_<wbr>").join(escape(part) for part in str(name).split("_"))


def format_percent(value: float | Decimal | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.2f}".rstrip("0").rstrip(".") + "%"


def format_duration(seconds: float | None) -> str:
    """A wait in words: `40 s`, `3 min`, `2 h 5 min`."""
    if seconds is None:
        return MISSING
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = math.ceil(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def share(part: int, whole: int) -> float:
    """Part of a whole as a percentage for a progress bar, 0 when there is no whole."""
    return 0.0 if whole <= 0 else round(100 * part / whole, 1)


def _environment() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    environment = templates.env
    environment.filters.update(
        moment=format_moment,
        recent=format_recent,
        iso=format_iso,
        day=format_day,
        number=format_number,
        percent=format_percent,
        duration=format_duration,
        count=format_count,
        breakable=breakable,
    )
    environment.globals.update(
        asset_url=asset_url,
        plotly_url=plotly_url,
        navigation=NAVIGATION,
        share=share,
        missing=MISSING,
    )
    environment.trim_blocks = True
    environment.lstrip_blocks = True
    return templates


templates = _environment()


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def viewer_context(principal: Principal) -> dict[str, Any]:
    """What every page knows about its viewer: who they are and what they may do."""
    return {
        "principal": principal,
        "csrf_token": principal.csrf_token or "",
        "can_operate": principal.role.allows(Role.operator),
        "is_admin": principal.role.allows(Role.admin),
    }


def render_page(
    request: Request,
    principal: Principal,
    template: str,
    context: Mapping[str, Any],
    *,
    section: str,
    status_code: int = 200,
) -> HTMLResponse:
    """A full page in the app's layout, with the flash message left for it, if any."""
    flash = take_flash(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            **viewer_context(principal),
            "timezone": settings_of(request).timezone,
            "timezone_name": settings_of(request).app_timezone,
            "section": section,
            "flash": flash,
            **context,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def render_fragment(request: Request, template: str, context: Mapping[str, Any]) -> HTMLResponse:
    """A piece of a page that a page script puts in place (a dashboard block, a preview)."""
    return templates.TemplateResponse(
        request,
        template,
        {"timezone": settings_of(request).timezone, **context},
        headers=PAGE_HEADERS,
    )
