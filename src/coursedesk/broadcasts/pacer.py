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
MAX_PAUSE_SECONDS = 3600.0
"""The longest pause a worker keeps: Telegram's retry_after asks for seconds to minutes,
and anyone who may notify the channel could announce any end."""

TAKE_SLOTS = text(
    """
-- take_send_slots: the next :count slots after every slot granted so far, never before
-- now + :lead nor inside a pause; answers the first slot and the database's clock.
UPDATE broadcast_sender_state
SET next_slot_at = greatest(
        next_slot_at, clock_timestamp() + make_interval(secs => :lead), paused_until
    ) + make_interval(secs => :count * :spacing)
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

    def __init__(self, engine: AsyncEngine, rate: float, *, grant_size: int | None = None) -> None:
        self._engine = engine
        self.spacing = 1.0 / (rate * SPACING_MARGIN)
        self.grant_size = grant_size or max(
            1, min(MAX_GRANT, math.ceil(rate * GRANT_HORIZON_SECONDS))
        )
        self._slots: deque[float] = deque()
        self._paused_until = 0.0
        self._database_offset: float | None = None
        self._round_trip = 0.0
        """Seconds from asking for a grant to holding it, the last time."""
        self._prefetch: asyncio.Task[None] | None = None
        self._interrupted = False
        self._sleeper: asyncio.Future[None] | None = None
        self.used = 0
        """Slots this process sent in."""
        self.missed = 0
        """Slots this process reached too late, or that fell inside a pause."""

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

        A pause is kept for at most MAX_PAUSE_SECONDS from now, and an end that is no
        number is ignored: the notification may come from any session of the database.

        Before its first grant this process cannot place the database's clock; it need
        not, because every grant starts after the pause recorded in the shared row.
        """
        if self._database_offset is None or not math.isfinite(database_epoch):
            return
        until = min(self._to_local(database_epoch), self._now() + MAX_PAUSE_SECONDS)
        self._paused_until = max(self._paused_until, until)

    async def pause(self, seconds: float) -> None:
        """Pause every worker for `seconds` (at most MAX_PAUSE_SECONDS): recorded in the
        shared row, then announced."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        seconds = min(seconds, MAX_PAUSE_SECONDS)
        self._paused_until = max(self._paused_until, self._now() + seconds)
        async with self._engine.begin() as connection:
            row = (await connection.execute(PAUSE_SENDING, {"seconds": seconds})).one()
            await send_signal(connection, SignalKind.paused, float(row.paused_until))
        log.warning("Telegram asked to slow down: every worker pauses for %.1f s", seconds)

    async def _take_slots(self, count: int) -> None:
        """Take `count` slots, starting late enough that the grant arrives before its first.

        A grant that starts "now" on the database's clock reaches this process a round trip
        later: on a busy machine, later than LATE_TOLERANCE_SECONDS, and its first slot
        would be lost. So a grant starts no earlier than the last round trip allows for.
        """
        lead = max(0.0, self._round_trip - LATE_TOLERANCE_SECONDS)
        async with self._engine.connect() as connection:
            # One statement is its own transaction: one round trip, not three.
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            started = self._now()
            row = (
                await autocommit.execute(
                    TAKE_SLOTS, {"count": count, "spacing": self.spacing, "lead": lead}
                )
            ).one()
            received = self._now()
        self._round_trip = received - started
        # The database read its clock about halfway through the round trip.
        self._database_offset = float(row.now) - (started + received) / 2
        self.learn_pause(float(row.paused_until))
        first = self._to_local(float(row.first_slot))
        self._slots.extend(first + index * self.spacing for index in range(count))

    async def _refill(self, demand: int) -> None:
        if self._prefetch is not None:
            prefetch, self._prefetch = self._prefetch, None
            await prefetch
        if not self._slots:
            await self._take_slots(min(self.grant_size, demand))

    def _prefetch_if_low(self, demand: int) -> None:
        """Take the next grant while this one lasts, if the work waiting needs more slots.

        Slots are taken for no more messages than wait here, so that a worker near the
        end of its work does not hold slots that the other workers could have used.
        """
        if self.grant_size == 1 or self._prefetch is not None:
            return
        wanted = min(self.grant_size, demand - len(self._slots))
        if len(self._slots) <= self.grant_size // 2 and wanted > 0:
            self._prefetch = asyncio.create_task(self._take_slots(wanted), name="pacer-prefetch")

    def interrupt(self) -> None:
        """Stop waiting for slots: wait_for_slot answers False from now on."""
        self._interrupted = True
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)

    async def _sleep_until(self, moment: float) -> None:
        """Sleep until `moment` on the loop's clock, or until interrupted.

        One timer and one future: cheaper than asyncio.wait_for, which starts a task,
        and this runs once for every message sent.
        """
        loop = asyncio.get_running_loop()
        sleeper: asyncio.Future[None] = loop.create_future()
        timer = loop.call_at(moment, _wake, sleeper)
        self._sleeper = sleeper
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleeper = None

    async def wait_for_slot(self, demand: int = 1) -> bool:
        """Wait until this process may send one message; False once interrupted.

        `demand` is how many messages wait to be sent here, this one included.
        """
        while not self._interrupted:
            if not self._slots:
                await self._refill(demand)
                continue
            slot = self._slots.popleft()
            now = self._now()
            if slot < self._paused_until or now - slot > LATE_TOLERANCE_SECONDS:
                self.missed += 1
                continue
            if slot > now:
                await self._sleep_until(slot)
                if self._interrupted or self._now() < self._paused_until:
                    self.missed += 1
                    continue
            self.used += 1
            self._prefetch_if_low(demand - 1)
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


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
