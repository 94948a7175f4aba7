"""Where reads go when there is a replica: to it while it keeps up, else to the primary.

A streaming replica lags behind its primary, by milliseconds when all is well and by
as much as you like when replay is paused, the network is slow or the standby is down.
The figures promise to show the bot's writes within 10 s, so reads use the replica only
while its lag is within REPLICA_MAX_LAG_SECONDS.

One probe per process measures the lag every second, in the background, and every
request reads the last measurement: routing costs a request nothing. The lag is how
far replay trails the primary's clock (now minus the time of the last transaction the
standby replayed), counted only when the standby has not replayed all the WAL the
primary had when the probe began: an idle primary writes no transactions, and a
caught-up standby is not behind however old its last one is. A replica that refuses
connections is `down`; reads go to the primary until a probe reaches it again. A
replica that is no standby at all (a copy kept some other way) is taken as current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

ReplicaState = Literal["unknown", "ok", "lagging", "down"]
PROBE_SECONDS = 1.0
# A probe that takes longer than this is a replica that does not answer.
PROBE_TIMEOUT_SECONDS = 3.0
# A measurement older than this routes nothing to the replica.
MEASUREMENT_LIFETIME_SECONDS = 2 * PROBE_SECONDS + 0.5

# The flushed position: WAL is streamed to standbys only once flushed, so a standby that
# has replayed up to it has everything the primary could have sent.
PRIMARY_POSITION = text("SELECT pg_current_wal_flush_lsn()::text AS lsn, clock_timestamp() AS now")
REPLICA_POSITION = text(
    "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replayed, "
    "pg_last_xact_replay_timestamp() AS replayed_at"
)


def lsn_value(lsn: str) -> int:
    """A WAL position ('16/B374D848') as a number, to compare positions of two servers."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class ReplicaStatus:
    """The last measurement: the replica's state and its lag."""

    state: ReplicaState = "unknown"
    lag_seconds: float | None = None
    measured_at: float | None = None  # time.time() of the probe
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "error": self.error,
        }


@dataclass
class ReplicaRouter:
    """Measures the replica's lag and says whether reads may use it."""

    primary: AsyncEngine
    replica: AsyncEngine
    max_lag_seconds: float
    status: ReplicaStatus = field(default_factory=ReplicaStatus)

    @property
    def use_replica(self) -> bool:
        """Whether reads may go to the replica: its last measurement found it keeping up,
        and is recent (a probe that hangs on an unanswering replica does not keep an old
        "ok" alive)."""
        measured_at = self.status.measured_at
        return (
            self.status.state == "ok"
            and measured_at is not None
            and time.time() - measured_at <= MEASUREMENT_LIFETIME_SECONDS
        )

    async def measure_lag(self) -> float | None:
        """Seconds the replica's replay trails the primary: 0 when it has replayed all the
        primary had flushed, None when it has not and has replayed no transaction since
        it started (behind by an unknown time)."""
        async with self.primary.connect() as primary:
            position = (await primary.execute(PRIMARY_POSITION)).one()
        async with self.replica.connect() as replica:
            replayed = (await replica.execute(REPLICA_POSITION)).one()
        if not replayed.standby or replayed.replayed is None:
            return 0.0
        if lsn_value(replayed.replayed) >= lsn_value(position.lsn):
            return 0.0
        if replayed.replayed_at is None:
            return None
        behind: float = (position.now - replayed.replayed_at).total_seconds()
        return max(0.0, behind)

    async def probe(self) -> ReplicaStatus:
        """Measure once, and route by what was found."""
        try:
            lag = await asyncio.wait_for(self.measure_lag(), PROBE_TIMEOUT_SECONDS)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            self._record(ReplicaStatus("down", None, time.time(), _one_line(exc)))
        else:
            keeps_up = lag is not None and lag <= self.max_lag_seconds
            state: ReplicaState = "ok" if keeps_up else "lagging"
            self._record(ReplicaStatus(state, lag, time.time()))
        return self.status

    def mark_down(self, exc: BaseException) -> None:
        """A request could not reach the replica: read from the primary until a probe can."""
        self._record(ReplicaStatus("down", None, time.time(), _one_line(exc)))

    async def run(self, interval: float = PROBE_SECONDS) -> None:
        """Probe every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.probe()

    @asynccontextmanager
    async def probing(self, interval: float = PROBE_SECONDS) -> AsyncIterator[None]:
        """Measure once now, so the first request is routed by a measurement, then in the
        background for as long as the context lasts."""
        await self.probe()
        task = asyncio.create_task(self.run(interval), name="replica-probe")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def _record(self, status: ReplicaStatus) -> None:
        before = self.status.state
        self.status = status
        if status.state == before:
            return
        if status.state == "down":
            log.warning("replica unreachable (%s): reads go to the primary", status.error)
        elif status.state == "lagging":
            behind = "?" if status.lag_seconds is None else f"{status.lag_seconds:.1f}"
            log.warning(
                "replica %s s behind (bound %g s): reads go to the primary",
                behind,
                self.max_lag_seconds,
            )
        elif before != "unknown":
            log.info("replica caught up: reads go to it again")


def _one_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__
