"""`GET /api/db-schema`: who may read it, and the shape of its answer."""

from __future__ import annotations

import httpx

from coursedesk.db.registry import metadata

TABLE_KEYS = {"name", "kind", "columns", "primary_key", "foreign_keys", "indexes", "row_estimate"}


async def test_anonymous_callers_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/db-schema")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


async def test_every_role_may_read_the_schema(
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    operator_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    for headers in (viewer_headers, operator_headers, admin_headers):
        response = await client.get("/api/db-schema", headers=headers)
        assert response.status_code == 200
        assert {table["name"] for table in response.json()["tables"]} >= set(metadata().tables)


async def test_the_answer_has_the_documented_shape(
    client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    body = (await client.get("/api/db-schema", headers=viewer_headers)).json()
    assert list(body) == ["tables"]
    for table in body["tables"]:
        assert set(table) == TABLE_KEYS
        for column in table["columns"]:
            assert set(column) == {"name", "type", "nullable", "default"}
        for index in table["indexes"]:
            assert {"name", "columns", "unique", "definition"} <= set(index)
        assert table["row_estimate"] is None or table["row_estimate"] >= 0

    tables = {table["name"]: table for table in body["tables"]}
    sessions = tables["web_sessions"]
    assert sessions["primary_key"] == ["id_hash"]
    assert sessions["foreign_keys"][0]["referred_table"] == "staff_users"
    assert sessions["foreign_keys"][0]["on_delete"] == "CASCADE"
    user_id = {"name": "user_id", "type": "bigint", "nullable": True, "default": None}
    assert user_id in tables["events"]["columns"]


async def test_the_route_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "get" in paths["/api/db-schema"]
