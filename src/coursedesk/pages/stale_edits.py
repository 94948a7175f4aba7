"""What a student's page shows when an edit was made on a booking someone changed since:
the values saved now beside the values tried, and the form ready to save again over them
(users/versions.py says how a booking's version is kept)."""

from __future__ import annotations

from coursedesk.pages.students import BOOKING_STATES, Question
from coursedesk.users.versions import StaleBooking

FIELD_NAMES = {
    "confirmed": "Status",
    "course_stream": "Stream",
    "referral_code": "Referral code",
    "discount_percent": "Discount, %",
}
_STATE_NAMES = dict(BOOKING_STATES)


def shown(field: str, value: object) -> str:
    """A booking field's value as a person reads it."""
    if value is None or value == "":
        return "no stream" if field == "course_stream" else "none"
    if field == "confirmed" and isinstance(value, int):
        return _STATE_NAMES.get(value, str(value))
    return str(value)


def stale_question(exc: StaleBooking, title: str, text: str = "") -> Question:
    """The question a stale edit comes back with: save mine over what is saved now, or
    keep that. Saving again a removal of the stream needs no second confirmation."""
    current = exc.current.booking
    return Question(
        title,
        f"{text}Here is what is saved now beside what you tried: save yours over it, or "
        "keep what is saved.",
        send="Save mine",
        keep="Keep what is saved",
        confirm_removal=exc.attempted.get("course_stream", "") is None,
        compared=[
            (FIELD_NAMES[field], shown(field, getattr(current, field)), shown(field, tried))
            for field, tried in exc.attempted.items()
        ],
    )
