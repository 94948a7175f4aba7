"""Bodies of the users routes: the user object, search results and the edits."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from coursedesk.analytics.schemas import Row
from coursedesk.web.schemas import Timestamp

UserStatus = Literal["confirmed", "pending", "cancelled", "no_booking"]
STREAM_MAX = 100
REFERRAL_CODE_MAX = 64


def _blank_is_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _stream_name(value: str | None) -> str | None:
    # A blank once removed the stream without anyone meaning to: removing takes a null.
    if value is None:
        return None
    trimmed = value.strip()
    if not trimmed:
        raise ValueError("a stream name cannot be blank: send null to remove the stream")
    return trimmed


StreamName = Annotated[
    str | None,
    Field(
        max_length=STREAM_MAX,
        description=(
            "A stream of the booking's course, trimmed; null removes the stream. A name "
            "the course has no booking in is refused (400, listing its `streams`) unless "
            "`create_stream` is true; one differing from an existing stream only in case "
            "is always refused, naming it (`existing_stream`)."
        ),
    ),
    AfterValidator(_stream_name),
]
CreateStream = Annotated[
    bool,
    Field(description="Make `course_stream` a new stream of the course if it is not one."),
]
ReferralCode = Annotated[
    str | None, Field(max_length=REFERRAL_CODE_MAX), AfterValidator(_blank_is_none)
]


class UserOut(Row):
    user_id: int
    username: str | None = Field(description="The most recent non-null username.")
    first_name: str | None = Field(description="The most recent non-null first name.")
    first_seen: Timestamp
    last_seen: Timestamp
    course_stream: str | None = Field(
        description="Stream of the latest non-cancelled booking; null if none."
    )
    status: UserStatus
    bookings_count: int
    events_count: int
    free_lessons_count: int
    is_blocked: bool


class UserPage(BaseModel):
    items: list[UserOut]
    total: int


class UserBrief(Row):
    user_id: int
    username: str | None
    first_name: str | None


class StreamMove(BaseModel):
    """Moves the user's latest non-cancelled booking to another stream (null: none)."""

    model_config = ConfigDict(extra="forbid")

    course_stream: StreamName
    create_stream: CreateStream = False


class BookingEdit(BaseModel):
    """Any of the four fields; the others keep their value. Strings are trimmed; a blank
    referral code clears it, a stream is removed only by null."""

    model_config = ConfigDict(extra="forbid")

    confirmed: Literal[-1, 1, 2] | None = Field(
        default=None, description="-1 cancelled, 1 pending, 2 confirmed."
    )
    course_stream: StreamName = None
    create_stream: CreateStream = False
    referral_code: ReferralCode = None
    discount_percent: Decimal | None = Field(
        default=None, ge=0, le=100, decimal_places=2, allow_inf_nan=False
    )

    @field_validator("confirmed", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # true equals 1 in Python, and would pass as "pending".
        if isinstance(value, bool):
            raise ValueError("must be -1, 1 or 2, not true or false")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> BookingEdit:
        if not self.model_fields_set - {"create_stream"}:
            raise ValueError(
                "give at least one of confirmed, course_stream, referral_code, discount_percent"
            )
        if "confirmed" in self.model_fields_set and self.confirmed is None:
            raise ValueError("confirmed cannot be null")
        return self

    def changes(self) -> dict[str, object]:
        """The columns to set, by name."""
        return {name: getattr(self, name) for name in self.model_fields_set - {"create_stream"}}
