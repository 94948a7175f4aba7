"""The shared pacer on its own: grants sized to the work waiting, even spacing, interruption,
bounded pauses."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from broadcast_helpers import scalar
from sqlalchemy import Engine

from coursedesk.broadcasts.pacer import MAX_PAUSE_SECONDS, Pacer
from coursedesk.broadcasts.signals import parse_signal
from coursedesk.db.engine import Database


def slots_granted_ahead(engine: Engine) -> float:
    """Seconds of send slots granted beyond now, across every process."""
    return float(
        scalar(
            engine,
            "SELECT greatest(0, extract(epoch FROM next_slot_at - clock_timestamp())) "
            "FROM broadcast_sender_state",
        )
    )


async def test_a_worker_with_little_work_takes_only_the_slots_it_can_use(
    database: Database, sync_engine: Engine
) -> None:
    pacer = Pacer(database.primary, rate=10, grant_size=20)

    assert await pacer.wait_for_slot(demand=2)
    assert await pacer.wait_for_slot(demand=1)

    # Two slots were granted, not twenty: nothing is held beyond the second one.
    assert slots_granted_ahead(sync_engine) <= pacer.spacing
    assert (pacer.used, pacer.missed) == (2, 0)
    await pacer.close()


async def test_slots_are_spaced_at_the_shared_rate(database: Database) -> None:
    pacer = Pacer(database.primary, rate=50, grant_size=5)
    started = time.monotonic()

    for _ in range(11):
        assert await pacer.wait_for_slot(demand=100)

    assert time.monotonic() - started >= 10 * pacer.spacing - 0.01
    await pacer.close()


async def test_interrupting_ends_a_wait_at_once(database: Database) -> None:
    pacer = Pacer(database.primary, rate=0.5, grant_size=2)
    assert await pacer.wait_for_slot(demand=2)
    waiting = asyncio.create_task(pacer.wait_for_slot(demand=1))
    await asyncio.sleep(0.1)

    pacer.interrupt()

    assert await asyncio.wait_for(waiting, 1) is False
    await pacer.close()


@pytest.mark.parametrize(
    ("payload", "longest"),
    [
        # Any session may notify the channel: `SELECT pg_notify('coursedesk_broadcasts',
        # 'paused:1e12')` from a script must not stop sending for ages.
        ("paused:1e12", MAX_PAUSE_SECONDS),
        ("paused:inf", 0.0),
        ("paused:nan", 0.0),
        ("paused:-inf", 0.0),
        ("paused:-1e12", 0.0),
    ],
)
async def test_an_announced_pause_is_bounded(
    database: Database, payload: str, longest: float
) -> None:
    pacer = Pacer(database.primary, rate=10, grant_size=1)
    assert await pacer.wait_for_slot(demand=1)
    signal = parse_signal(payload)
    assert signal is not None

    pacer.learn_pause(signal.value)

    assert longest - 5 <= pacer.paused_for <= longest
    assert math.isfinite(pacer.paused_for)
    await pacer.close()


async def test_a_pause_asked_for_is_bounded(database: Database) -> None:
    pacer = Pacer(database.primary, rate=10, grant_size=1)

    await pacer.pause(1e12)

    assert MAX_PAUSE_SECONDS - 5 <= pacer.paused_for <= MAX_PAUSE_SECONDS
    await pacer.close()
