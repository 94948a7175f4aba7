"""Plotly figures of the dashboard, as plain data that the page script hands to Plotly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from coursedesk.analytics.schemas import DailyActivity, FunnelStep, GrowthDay

Figure = dict[str, Any]

ACCENT = "#3559e0"
ACCENT_LIGHT = "#a9b9f3"
SUCCESS = "#1f8a4c"
WARNING = "#e08a1e"
TEAL = "#0b9bb0"
GRID = "#edf0f5"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
FUNNEL_LABELS = {
    "started_bot": "Started the bot",
    "registered_free_lesson": "Registered for a free lesson",
    "attended_free_lesson": "Attended a free lesson",
    "booked": "Booked a course",
    "paid": "Paid",
}


def _layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "margin": {"l": 52, "r": 52, "t": 36, "b": 36},
        "font": {"family": FONT, "size": 12, "color": "#475467"},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
        "hoverlabel": {"font": {"family": FONT}},
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.0,
            "yanchor": "bottom",
            "traceorder": "normal",
        },
        "xaxis": {"type": "date", "gridcolor": GRID, "tickformat": "%-d %b", "fixedrange": True},
        "yaxis": {
            "gridcolor": GRID,
            "rangemode": "tozero",
            "tickformat": ",d",
            "fixedrange": True,
            "zeroline": False,
        },
    }
    return layout | extra


def _right_axis(title: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 11}},
        "overlaying": "y",
        "side": "right",
        "tickmode": "auto",
        "rangemode": "tozero",
        "tickformat": ",d",
        "showgrid": False,
        "fixedrange": True,
        "zeroline": False,
    }


def growth_figure(days: Sequence[GrowthDay]) -> Figure:
    """All users so far, day by day; the hover tells how many were new that day."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "All users",
                "x": [day.date.isoformat() for day in days],
                "y": [day.total_users for day in days],
                "customdata": [day.new_users for day in days],
                "fill": "tozeroy",
                "fillcolor": "rgba(53, 89, 224, 0.08)",
                "line": {"color": ACCENT, "width": 2.5},
                "hovertemplate": "%{y:,d} users, %{customdata:,d} new<extra></extra>",
            },
        ],
        "layout": _layout(showlegend=False, margin={"l": 52, "r": 16, "t": 12, "b": 36}),
    }


@dataclass(frozen=True)
class BroadcastMark:
    """A broadcast on the activity chart: the day it went out, its page, a line of text."""

    day: date
    url: str
    label: str


def activity_figure(
    days: Sequence[DailyActivity], broadcasts: Sequence[BroadcastMark] = ()
) -> Figure:
    """New users, bookings and free lesson sign-ups per day as stacked bars; events as a
    line; and a marker under each day a broadcast went out, which leads to its page."""
    dates = [day.date.isoformat() for day in days]

    def bars(name: str, values: list[int], color: str) -> dict[str, Any]:
        return {
            "type": "bar",
            "name": name,
            "x": dates,
            "y": values,
            "marker": {"color": color},
            "hovertemplate": "%{y:,d}<extra>" + name + "</extra>",
        }

    return {
        "data": [
            bars("New users", [day.new_users for day in days], ACCENT_LIGHT),
            bars("Bookings", [day.bookings for day in days], SUCCESS),
            bars("Free lessons", [day.free_lesson_registrations for day in days], WARNING),
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Events",
                "x": dates,
                "y": [day.events for day in days],
                "yaxis": "y2",
                "line": {"color": TEAL, "width": 2},
                "hovertemplate": "%{y:,d}<extra>Events</extra>",
            },
            *(
                [
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": "Broadcasts",
                        "x": [mark.day.isoformat() for mark in broadcasts],
                        "y": [0] * len(broadcasts),
                        "customdata": [mark.url for mark in broadcasts],
                        "text": [mark.label for mark in broadcasts],
                        "marker": {"symbol": "triangle-up", "size": 12, "color": ACCENT},
                        "cliponaxis": False,
                        "hovertemplate": "%{text}<extra>Broadcast</extra>",
                    }
                ]
                if broadcasts
                else []
            ),
        ],
        "layout": _layout(yaxis2=_right_axis("events"), barmode="stack", bargap=0.3),
    }


def funnel_figure(steps: Sequence[FunnelStep]) -> Figure:
    """The cohort narrowing from the first contact to payment."""
    return {
        "data": [
            {
                "type": "funnel",
                "y": [FUNNEL_LABELS.get(step.step, step.step) for step in steps],
                "x": [step.users for step in steps],
                "textinfo": "value+percent initial",
                "marker": {"color": [ACCENT, "#4a6de6", "#5f80ea", TEAL, SUCCESS]},
                "connector": {"fillcolor": "#eef2ff"},
                "hovertemplate": "%{y}: %{x:,d}<extra></extra>",
            }
        ],
        "layout": {
            "margin": {"l": 190, "r": 16, "t": 8, "b": 8},
            "font": {"family": FONT, "size": 12, "color": "#475467"},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "yaxis": {"fixedrange": True},
            "xaxis": {"fixedrange": True},
        },
    }
