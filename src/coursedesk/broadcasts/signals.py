"""The LISTEN/NOTIFY channel that wakes workers: new work, a cancel, a pause."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

CHANNEL = "coursedesk_broadcasts"


class SignalKind(StrEnum):
    work = "work"
    """A broadcast was created, or a deletion requested: look for work now."""
    cancelled = "cancelled"
    """Stop sending the broadcast whose id follows."""
    paused = "paused"
    """Telegram answered 429: nobody sends before the epoch seconds that follow."""


@dataclass(frozen=True)
class Signal:
    kind: SignalKind
    value: float


def parse_signal(payload: str) -> Signal | None:
    """The signal in a notification's payload, or None for one this version does not know."""
    kind, _, value = payload.partition(":")
    try:
        return Signal(SignalKind(kind), float(value))
    except ValueError:
        return None


async def send_signal(
    connection: AsyncSession | AsyncConnection, kind: SignalKind, value: float
) -> None:
    """Notify every listening worker; PostgreSQL delivers it when the transaction commits."""
    await connection.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"{kind.value}:{value:.17g}"},
    )
