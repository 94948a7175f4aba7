"""How the stand-in Bot API misbehaves; every setting can be changed while it runs."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MESSAGE_DELETE_WINDOW_SECONDS = 48 * 3600


class FaultsError(ValueError):
    """A fault setting that makes no sense; the message names the field."""


class Faults(BaseModel):
    """The faults the stand-in injects.

    The random ones (server errors, forced 429s, jitter) draw from a generator seeded
    with `seed`, so a run with the same settings and requests misbehaves the same way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    rate_limit_per_second: int | None = Field(default=None, ge=1)
    """Sends (sendMessage, sendPhoto, …, sendMediaGroup: one each) beyond this many in any
    one second are answered 429."""
    flood_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """The fraction of sends, deletes, pins and callback answers answered 429 regardless of
    rate."""
    flood_retry_after: int = Field(default=3, ge=1, le=3600)
    """The retry_after a forced 429 carries."""
    server_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """The fraction of sends, deletes, pins and callback answers answered 500 or 502."""
    blocked_chats: frozenset[int] = frozenset()
    """Chats whose user blocked the bot (403 to sends, deletes and pins)."""
    missing_chats: frozenset[int] = frozenset()
    """Chats that do not exist (400 chat not found)."""
    latency_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    """Added before every Bot API answer."""
    jitter_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    """Up to this much more latency, drawn at random for each call."""
    upload_bytes_per_second: int | None = Field(default=None, ge=1024)
    """Multipart request bodies (uploads) are read no faster than this, so that a client
    can be caught, or killed, in the middle of an upload."""
    clock_offset_seconds: float = 0.0
    """Moves the stand-in's clock: +49 h makes every message sent so far too old to delete."""

    def updated(self, changes: Mapping[str, object]) -> Faults:
        """These faults with `changes` applied; unknown or wrong values raise FaultsError."""
        return parse_faults({**self.model_dump(), **changes})


def parse_faults(data: Mapping[str, object]) -> Faults:
    try:
        return Faults.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "faults"
        raise FaultsError(f"{where}: {first['msg']}") from None
