"""/openapi.json says what the routes really answer: the error body they all use, the
codes sign-in, ids and the database add, and CSV where a route offers it."""

from __future__ import annotations

from typing import Any

import httpx

ERROR_REF = "#/components/schemas/ErrorAnswer"
CSV_ROUTES = {
    "/api/stats/daily",
    "/api/user-growth",
    "/api/courses",
    "/api/courses/streams",
    "/api/events/top",
    "/api/events/recent",
    "/api/bookings/recent",
    "/api/referrals",
    "/api/free-lessons",
    "/api/free-lessons/conversion",
    "/api/funnel",
    "/api/retention",
    "/api/users",
    "/api/users/{user_id}/bookings",
    "/api/users/{user_id}/events",
    "/api/users/{user_id}/free-lessons",
    "/api/messages/{message_id}/recipients",
    "/api/messages/{message_id}/outcome.csv",
}


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/api/")
    ]


async def test_every_error_is_declared_with_the_body_it_has(client: httpx.AsyncClient) -> None:
    document = await _document(client)
    assert document["components"]["schemas"]["ErrorAnswer"]["required"] == ["error"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        for code, response in responses.items():
            if code[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, code)
        assert "503" in responses, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert {"400", "422"} <= responses.keys(), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        public = path in ("/api/health", "/api/telegram/webhook")
        assert ("401" in responses) is not public, (method, path)


async def test_csv_bodies_are_declared_where_format_csv_is_offered(
    client: httpx.AsyncClient,
) -> None:
    document = await _document(client)
    offering = {
        path
        for method, path, operation in _operations(document)
        if "text/csv" in operation["responses"].get("200", {}).get("content", {})
    }
    assert offering == CSV_ROUTES


async def test_what_a_route_declares_for_itself_stays(client: httpx.AsyncClient) -> None:
    document = await _document(client)
    webhook = document["paths"]["/api/telegram/webhook"]["post"]["responses"]
    assert webhook["413"]["description"] == "larger than an update can be"
    assert webhook["403"]["description"] == "wrong or missing secret"


async def test_conflicts_are_declared_where_routes_answer_them(client: httpx.AsyncClient) -> None:
    paths = (await _document(client))["paths"]
    for path, method in (
        ("/api/messages/send", "post"),
        ("/api/messages/{message_id}/cancel", "post"),
        ("/api/messages/{message_id}/delete", "post"),
        ("/api/bookings/{booking_id}", "patch"),
        ("/api/users/{user_id}/stream", "put"),
    ):
        assert "409" in paths[path][method]["responses"], (method, path)


async def test_a_word_where_a_broadcast_id_goes_is_no_broadcast(
    client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    """`count` is a route of its own (POST): GET on it is the wrong method, not a bad id."""
    count = await client.get("/api/messages/count", headers=viewer_headers)
    assert count.status_code == 405
    assert count.json() == {"error": "Method Not Allowed"}
    assert (await client.get("/api/messages/abc", headers=viewer_headers)).status_code == 404
    for path in ("/api/messages/abc/recipients", "/api/messages/-1"):
        assert (await client.get(path, headers=viewer_headers)).status_code == 404, path
    assert (await client.get("/api/messages/0", headers=viewer_headers)).status_code == 422
    assert (await client.get("/api/messages/7", headers=viewer_headers)).status_code == 404


async def test_the_media_upload_declares_its_form_and_its_refusals(
    client: httpx.AsyncClient,
) -> None:
    upload = (await _document(client))["paths"]["/api/media"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    responses = upload["responses"]
    assert {"201", "400", "413", "415"} <= responses.keys()
    assert "Telegram's limit" in responses["413"]["description"]
    assert "multipart/form-data" in responses["415"]["description"]
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MediaAnswer"
    }
