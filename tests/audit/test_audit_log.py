"""The audit log: app entries, trigger entries for SQL edits, and `GET /api/audit`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from sqlalchemy import Engine, text, update

from coursedesk.audit.service import record
from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.sources.models import Booking
from coursedesk.web.app import create_app
from coursedesk.web.deps import Operator, Session


async def _add_entries(database: Database, *entries: tuple[str, str]) -> None:
    async with database.transaction() as session:
        for actor, action in entries:
            await record(session, actor, action, "thing", 7, details={"n": 1})


def _insert_booking(sync_engine: Engine) -> int:
    with sync_engine.begin() as connection:
        booking_id: int = connection.execute(
            text(
                "INSERT INTO bookings (user_id, username, confirmed, course_stream) "
                "VALUES (42, 'ann', 1, 'spring') RETURNING id"
            )
        ).scalar_one()
    return booking_id


async def test_admins_read_the_log_newest_first(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    await _add_entries(database, ("ann", "thing.first"), ("bob", "thing.second"))
    await _add_entries(database, ("ann", "thing.third"))

    response = await client.get("/api/audit", headers=admin_headers)
    assert response.status_code == 200
    body = response.json()
    actions = [item["action"] for item in body["items"]]
    # The fixture's own token was created through the service, and so audited first.
    assert actions == ["thing.third", "thing.second", "thing.first", "token.create"]
    assert body["total"] == 4
    first = body["items"][0]
    assert first["actor"] == "ann"
    assert (first["target_type"], first["target_id"], first["source"]) == ("thing", "7", "app")
    assert first["details"] == {"n": 1}
    assert datetime.fromisoformat(first["occurred_at"]).tzinfo is not None

    page = await client.get("/api/audit?limit=2&offset=1", headers=admin_headers)
    assert [item["action"] for item in page.json()["items"]] == ["thing.second", "thing.first"]
    assert page.json()["total"] == 4


async def test_filters_by_action_family_and_actor(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    await _add_entries(
        database, ("ann", "auth.login"), ("bob", "auth.login_failed"), ("ann", "authority.x")
    )

    family = await client.get("/api/audit?action=auth", headers=admin_headers)
    assert {item["action"] for item in family.json()["items"]} == {
        "auth.login",
        "auth.login_failed",
    }
    exact = await client.get("/api/audit?action=auth.login", headers=admin_headers)
    assert [item["action"] for item in exact.json()["items"]] == ["auth.login"]
    by_actor = await client.get("/api/audit?actor=ann&action=auth", headers=admin_headers)
    assert by_actor.json()["total"] == 1


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=ten", "offset=-1", "action=a%20b", "actor=x%00y"],
)
async def test_bad_query_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/audit?{query}", headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]


async def test_only_admins_read_the_log(
    client: httpx.AsyncClient, operator_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/audit")).status_code == 401
    assert (await client.get("/api/audit", headers=operator_headers)).status_code == 403
    assert (await client.get("/api/audit", headers=viewer_headers)).status_code == 403


async def test_a_booking_edited_by_plain_sql_is_audited(
    client: httpx.AsyncClient, sync_engine: Engine, admin_headers: dict[str, str]
) -> None:
    booking_id = _insert_booking(sync_engine)
    with sync_engine.begin() as connection:
        connection.execute(
            text("UPDATE bookings SET confirmed = 2 WHERE id = :id"), {"id": booking_id}
        )
        connection.execute(text("UPDATE bookings SET confirmed = 2"))  # changes nothing
        connection.execute(text("DELETE FROM bookings WHERE id = :id"), {"id": booking_id})

    response = await client.get("/api/audit?action=booking", headers=admin_headers)
    deleted, updated = response.json()["items"]
    assert updated["action"] == "booking.update"
    assert updated["source"] == "sql"
    assert updated["actor"].startswith("sql:")
    assert updated["target_id"] == str(booking_id)
    assert (updated["before"]["confirmed"], updated["after"]["confirmed"]) == (1, 2)
    assert deleted["action"] == "booking.delete"
    assert deleted["after"] is None and deleted["before"]["username"] == "ann"


@pytest.fixture
async def client_with_edit_route(
    settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The app plus one booking edit route of the kind other modules add."""
    edits = APIRouter()

    @edits.post("/api/test-only/bookings/{booking_id}/confirm")
    async def confirm(booking_id: int, _: Operator, session: Session) -> dict[str, bool]:
        await session.execute(update(Booking).where(Booking.id == booking_id).values(confirmed=2))
        return {"ok": True}

    application = create_app(settings, database=database)
    application.include_router(edits)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_an_edit_through_the_app_is_in_the_callers_name(
    client_with_edit_route: httpx.AsyncClient,
    sync_engine: Engine,
    operator_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    booking_id = _insert_booking(sync_engine)
    edited = await client_with_edit_route.post(
        f"/api/test-only/bookings/{booking_id}/confirm", headers=operator_headers
    )
    assert edited.status_code == 200

    response = await client_with_edit_route.get("/api/audit?action=booking", headers=admin_headers)
    [entry] = response.json()["items"]
    assert (entry["actor"], entry["source"]) == ("token:test-operator", "app")
    assert (entry["before"]["confirmed"], entry["after"]["confirmed"]) == (1, 2)


async def test_an_entry_lives_and_dies_with_the_callers_transaction(
    database: Database, sync_engine: Engine
) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await record(session, "ann", "thing.rolled_back")
            raise RuntimeError("the change failed")
    async with database.transaction() as session:
        await record(
            session,
            "ann",
            "thing.kept",
            before={"price": Decimal("9.50")},
            after={"at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC)},
        )
    with sync_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT action, before, after FROM audit_log WHERE actor = 'ann'")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("thing.kept", {"price": "9.50"}, {"at": "2026-01-02T03:04:00Z"})
    ]
