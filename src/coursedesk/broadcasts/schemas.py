"""What the broadcast routes take and answer (docs/reference.md §5), as Pydantic models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from coursedesk.broadcasts.audiences import USER_ID_MAX, Audience
from coursedesk.broadcasts.composition import (
    MAX_SUBMITTED_MEDIA,
    ButtonRows,
    ContentRequest,
    MediaChoice,
    Options,
)
from coursedesk.broadcasts.models import DeliveryStatus, MediaKind, MessageStatus
from coursedesk.web.schemas import Timestamp

# Markup makes the text longer than the 4096 characters a chat shows; this only stops
# absurd bodies before the formatting rules measure what Telegram would count.
MAX_SUBMITTED_TEXT = 65_536

RecipientType = Literal["individual", "group"]
ChatId = Annotated[int, Field(ge=-USER_ID_MAX, le=USER_ID_MAX)]


class SendRequest(BaseModel):
    """A broadcast to queue, or with dry_run only to count."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[
        str,
        Field(
            max_length=MAX_SUBMITTED_TEXT,
            description='The message, or with media its caption ("" for none)',
        ),
    ]
    audience: Audience
    scheduled_at: AwareDatetime | None = Field(
        default=None,
        description="When to send, with its UTC offset; none or now sends at once.",
    )
    parse_mode: str | None = Field(default=None, description="HTML, MarkdownV2 or none")
    dry_run: bool = False
    media: Annotated[list[MediaChoice], Field(max_length=MAX_SUBMITTED_MEDIA)] = Field(
        default=[],
        description=(
            "Files from POST /api/media: one is sent with the text as its caption, 2 to 10 "
            "photos and videos as an album"
        ),
    )

    buttons: ButtonRows = Field(
        default=[],
        description=(
            'Rows of inline buttons: [[{"text": T, "url": U}], [{"text": T, '
            '"callback_data": D}]], at most 8 rows of 4; none under an album'
        ),
    )
    options: Options = Options()
    track_links: bool | None = Field(
        default=None,
        description=(
            "Send every http(s) link of the text and every URL button through "
            "{PUBLIC_BASE_URL}/r/{token}, one token per recipient and link, to count the "
            "clicks; by default when PUBLIC_BASE_URL is set, refused (400) when it is not"
        ),
    )
    holdout_percent: int = Field(
        default=0,
        description=(
            "0 to 50: that share of the audience, drawn at random, is recorded with "
            "delivery_status `holdout` and never sent, the control group of "
            "GET /api/messages/{id}/outcome"
        ),
    )

    def content(self) -> ContentRequest:
        return ContentRequest(
            media=self.media,
            buttons=self.buttons,
            options=self.options,
            track_links=self.track_links,
            holdout_percent=self.holdout_percent,
        )


class SendAnswer(BaseModel):
    message_id: int
    status: MessageStatus
    total_recipients: int
    invalid_user_ids: list[int]


class CountRequest(BaseModel):
    """An audience to count, with no message yet (the composer's live count)."""

    model_config = ConfigDict(extra="forbid")

    audience: Audience


class AudienceCount(BaseModel):
    """How many an audience reaches now, and the listed ids that are no user."""

    total_recipients: int
    invalid_user_ids: list[int]


class MessageItem(BaseModel):
    """One broadcast and its delivery figures (all kept exact by the database)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    message_text: str
    parse_mode: str | None
    status: MessageStatus
    total_recipients: int
    successful_deliveries: int
    failed_deliveries: int
    pending_deliveries: int
    cancelled_deliveries: int
    deleted_deliveries: int
    holdout_percent: int = 0
    holdout_count: int = Field(default=0, description="Recipients in the control group")
    recipient_type: RecipientType
    recipient_group: str | None
    created_by: str | None
    scheduled_at: Timestamp | None
    started_at: Timestamp | None
    sent_at: Timestamp | None
    cancelled_at: Timestamp | None
    delete_requested_at: Timestamp | None
    deleted_at: Timestamp | None
    delete_refused: int
    created_at: Timestamp
    buttons: list[list[dict[str, str]]] | None = None
    disable_link_preview: bool = False
    protect_content: bool = False
    silent: bool = False
    pin: bool = False
    track_links: bool = False
    clicked_count: int = Field(
        default=0, description="Recipients who clicked any of its tracked links"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def deletion(self) -> Literal["deleting", "deleted"] | None:
        """Whether the broadcast is being, or has been, removed from the chats."""
        if self.delete_requested_at is None:
            return None
        return "deleting" if self.deleted_at is None else "deleted"


class SentMediaItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    media_id: int
    kind: MediaKind
    filename: str
    size: int
    uploaded: bool = Field(description="Telegram has the file: later sends go by its file_id")


class LinkItem(BaseModel):
    """A tracked link of a broadcast and its clicks."""

    position: int = Field(description="Its number in the broadcast, from 0, text first")
    url: str
    unique_clicks: int = Field(description="Recipients who clicked it")
    total_clicks: int = Field(description="Clicks on it, a recipient's repeats included")


class MessageDetail(MessageItem):
    audience: dict[str, Any]
    media: list[SentMediaItem] = []
    links: list[LinkItem] = Field(default=[], description="Its tracked links, by position")


class MessagePage(BaseModel):
    items: list[MessageItem]
    total: int


class RecipientItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: int
    username: str | None
    delivery_status: DeliveryStatus
    telegram_message_id: int | None
    error: str | None
    attempts: int
    sent_at: Timestamp | None
    updated_at: Timestamp
    pinned_at: Timestamp | None = None
    pin_error: str | None = None


class RecipientPage(BaseModel):
    items: list[RecipientItem]
    total: int


class DeletionAnswer(BaseModel):
    message_id: int
    deletion: Literal["deleting"]
    queued: int = Field(description="Delivered messages that the workers will delete")


class TestSendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(max_length=MAX_SUBMITTED_TEXT)]
    chat_id: ChatId
    parse_mode: str | None = None


class TestSendAnswer(BaseModel):
    outcome: Literal["delivered", "blocked", "failed"]
    telegram_message_id: int | None = None
    error: str | None = None


class OutcomeFigures(BaseModel):
    """Of one group's recipients, how many did each thing in the window."""

    recipients: int
    clicked: int = Field(description="Clicked any of the broadcast's tracked links")
    booked: int = Field(description="Made a booking (its created_at in the window)")
    confirmed: int = Field(description="Of those, have such a booking confirmed now")
    free_lesson_registered: int
    attended: int = Field(description="Attended a lesson (a lesson_attended event)")
    blocked: int = Field(description="Blocked the bot")


class OutcomeAnswer(BaseModel):
    window_days: int
    sent: OutcomeFigures = Field(description="The delivered recipients, from their own sent_at")
    holdout: OutcomeFigures | None = Field(
        description="The control group, from the broadcast's sent_at; null without one"
    )
