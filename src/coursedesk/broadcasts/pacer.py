"""The send pacer every worker shares: evenly spaced send slots taken from one database row.

All workers, on any host, take their slots from the single broadcast_sender_state row
(a virtual-scheduling / GCRA limiter): each grant is the next run of slots after every
slot granted so far, `spacing` seconds apart, never earlier than now and never inside
the pause that a 429 from Telegram asked for. Sends are thus spread evenly over each
second and, across all workers together, never closer than `spacing`.

The spacing is a little wider than 1 / BROADCAST_RATE (SPACING_MARGIN), so that the
small timing differences between this process and the Bot API's clock cannot put one
message too many into a second; a slot this process reaches too late is given up
rather than used late, for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts.signals import SignalKind, send_signal

log = logging.getLogger(__name__)

SPACING_MARGIN = 0.975
"""The share of BROADCAST_RATE the pacer plans for."""
LATE_TOLERANCE_SECONDS = 0.010
"""A slot missed by more than this is dropped: sending then could crowd the next one."""
GRANT_HORIZON_SECONDS = 0.1
"""Each grant covers about this much sending time: a round trip per tenth of a second."""
MAX_GRANT = 256

TAKE_SLOTS = text(
    """
-- take_send_slots: the next :count slots after every slot granted so far, never before
-- now nor inside a pause; answers the first slot and the database's clock to measure it by.
UPDATE broadcast_sender_state
SET next_slot_at = greatest(next_slot_at, clock_timestamp(), paused_until)
                   + make_interval(secs => :count * :spacing)
WHERE id = 1
RETURNING extract(epoch FROM next_slot_at) - :count * :spacing AS first_slot,
          extract(epoch FROM clock_timestamp()) AS now,
          extract(epoch FROM paused_until) AS paused_until
"""
)

PAUSE_SENDING = text(
    """
-- pause_sending: nobody sends before now + :seconds (Telegram's retry_after).
UPDATE broadcast_sender_state
SET paused_until = greatest(paused_until, clock_timestamp() + make_interval(secs => :seconds))
WHERE id = 1
RETURNING extract(epoch FROM paused_until) AS paused_until,
          extract(epoch FROM clock_timestamp()) AS now
"""
)


class Pacer:
    """One process's view of the shared pacer: its granted slots and the known pause.

    Times are kept on the event loop's monotonic clock; the database's clock is mapped
    onto it at each round trip, so hosts whose clocks disagree still share one schedule.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        rate: float,
        *,
        grant_size: int | None = None,
        interrupt: asyncio.Event | None = None,
    ) -> None:
        self._engine = engine
        self._interrupt = interrupt or asyncio.Event()
        self.spacing = 1.0 / (rate * SPACING_MARGIN)
        self.grant_size = grant_size or max(
            1, min(MAX_GRANT, math.ceil(rate * GRANT_HORIZON_SECONDS))
        )
        self._slots: deque[float] = deque()
        self._paused_until = 0.0
        self._database_offset: float | None = None
        self._prefetch: asyncio.Task[None] | None = None

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _to_local(self, database_epoch: float) -> float:
        return database_epoch - (self._database_offset or 0.0)

    @property
    def paused_for(self) -> float:
        """Seconds left in the pause known to this process (0 when not paused)."""
        return max(0.0, self._paused_until - self._now())

    def learn_pause(self, database_epoch: float) -> None:
        """Another worker recorded a pause ending at this time of the database's clock.

        Before its first grant this process cannot place the database's clock; it need
        not, because every grant starts after the pause recorded in the shared row.
        """
        if self._database_offset is not None:
            self._paused_until = max(self._paused_until, self._to_local(database_epoch))

    async def pause(self, seconds: float) -> None:
        """Pause every worker for `seconds`: recorded in the shared row, then announced."""
        self._paused_until = max(self._paused_until, self._now() + seconds)
        async with self._engine.begin() as connection:
            row = (await connection.execute(PAUSE_SENDING, {"seconds": seconds})).one()
            await send_signal(connection, SignalKind.paused, float(row.paused_until))
        log.warning("Telegram asked to slow down: every worker pauses for %.1f s", seconds)

    async def _take_slots(self) -> None:
        started = self._now()
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    TAKE_SLOTS, {"count": self.grant_size, "spacing": self.spacing}
                )
            ).one()
        received = self._now()
        # The database read its clock about halfway through the round trip.
        self._database_offset = float(row.now) - (started + received) / 2
        self.learn_pause(float(row.paused_until))
        first = self._to_local(float(row.first_slot))
        self._slots.extend(first + index * self.spacing for index in range(self.grant_size))

    async def _refill(self) -> None:
        if self._prefetch is not None:
            prefetch, self._prefetch = self._prefetch, None
            await prefetch
        if not self._slots:
            await self._take_slots()

    def _prefetch_if_low(self) -> None:
        # A one-slot pacer (a test send) takes exactly what it uses.
        if self.grant_size == 1:
            return
        if self._prefetch is None and len(self._slots) <= self.grant_size // 2:
            self._prefetch = asyncio.create_task(self._take_slots(), name="pacer-prefetch")

    async def wait_for_slot(self) -> bool:
        """Wait until this process may send one message; False if interrupted first."""
        while not self._interrupt.is_set():
            if not self._slots:
                await self._refill()
                continue
            slot = self._slots.popleft()
            now = self._now()
            if slot < self._paused_until or now - slot > LATE_TOLERANCE_SECONDS:
                continue
            if slot > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._interrupt.wait(), slot - now)
                if self._interrupt.is_set() or self._now() < self._paused_until:
                    continue
            self._prefetch_if_low()
            return True
        return False

    async def close(self) -> None:
        """Wait for a grant still under way, so that no task outlives the engine."""
        if self._prefetch is not None:
            prefetch, self._prefetch = self._prefetch, None
            try:
                await prefetch
            except Exception as exc:  # the grant only mattered to sends that will not happen
                log.debug("slot prefetch failed at shutdown: %s", exc)
