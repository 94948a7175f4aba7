"""The replica router's decisions that need no server: positions, and a measurement that
grew old (a probe hanging on a replica that does not answer)."""

from __future__ import annotations

import time
from typing import Any, cast

from coursedesk.db.replica import (
    MEASUREMENT_LIFETIME_SECONDS,
    ReplicaRouter,
    ReplicaStatus,
    lsn_value,
)


def test_wal_positions_compare_as_numbers() -> None:
    assert lsn_value("0/0") == 0
    assert lsn_value("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn_value("1/0") > lsn_value("0/FFFFFFFF")


def test_reads_leave_a_replica_whose_last_measurement_is_old() -> None:
    engine = cast(Any, None)
    router = ReplicaRouter(engine, engine, max_lag_seconds=5)
    assert not router.use_replica  # nothing measured yet
    router.status = ReplicaStatus("ok", 0.0, time.time())
    assert router.use_replica
    router.status = ReplicaStatus("ok", 0.0, time.time() - MEASUREMENT_LIFETIME_SECONDS - 1)
    assert not router.use_replica
    router.status = ReplicaStatus("lagging", 7.0, time.time())
    assert not router.use_replica
