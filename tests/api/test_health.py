"""`/api/health` and `/api/db-migrations` tell a database that is down from one at a
revision this code does not know."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine, text


async def test_an_up_to_date_database_is_healthy(client: httpx.AsyncClient) -> None:
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert (health.json()["status"], health.json()["database"]) == ("ok", "ok")
    assert health.json()["migrations"]["current_known"] is True


async def test_a_revision_this_code_does_not_know_is_reachable_but_degraded(
    client: httpx.AsyncClient, sync_engine: Engine, viewer_headers: dict[str, str]
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))

    health = await client.get("/api/health")
    assert health.status_code == 503
    body = health.json()
    assert (body["status"], body["database"]) == ("degraded", "ok")
    assert body["migrations"]["current"] == "0099_future"
    assert body["migrations"]["current_known"] is False
    assert body["migrations"]["up_to_date"] is False

    listed = await client.get("/api/db-migrations", headers=viewer_headers)
    assert listed.status_code == 200
    assert listed.json() == body["migrations"]
