"""Every route of the app needs credentials and the right role; new routes are covered too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.web.deps import require_page_role, require_role

# Public on purpose (docs/reference.md §5), or the way in.
PUBLIC_PATHS = frozenset(
    {
        "/api/health",
        "/api/telegram/webhook",
        "/login",
        "/openapi.json",
        "/r/{token}",
    }
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    dependant: Dependant

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


def _dependency_calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)


def required_role(endpoint: Endpoint) -> Role | None:
    calls = set(_dependency_calls(endpoint.dependant))
    needed = [role for role in Role if {require_role(role), require_page_role(role)} & calls]
    return max(needed, key=lambda role: role.rank, default=None)


def guarded_endpoints(app: FastAPI) -> list[Endpoint]:
    """Every method of every non-public route, with a placeholder for each path parameter."""
    endpoints = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path or "")
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            endpoints.append(Endpoint(method, path, route.dependant))
    return endpoints


def test_the_route_walk_sees_the_guarded_routes(app: FastAPI) -> None:
    found = {str(endpoint): required_role(endpoint) for endpoint in guarded_endpoints(app)}
    assert found["GET /api/audit"] is Role.admin
    assert found["POST /api/db-migrate"] is Role.admin
    assert found["GET /api/me"] is Role.viewer
    assert found["GET /"] is Role.viewer


async def test_every_api_route_answers_401_without_credentials(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    wrong = {}
    for endpoint in guarded_endpoints(app):
        response = await client.request(endpoint.method, endpoint.path)
        if endpoint.is_api:
            if response.status_code != 401 or "error" not in response.json():
                wrong[str(endpoint)] = response.status_code
        elif response.status_code not in (303, 401) or (
            response.status_code == 303 and not response.headers["location"].startswith("/login")
        ):
            wrong[str(endpoint)] = response.status_code
    assert wrong == {}


async def test_a_bad_or_revoked_token_is_no_credential(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    for authorization in ("Bearer nonsense", "Bearer ", "Basic YWRtaW46YWRtaW4="):
        response = await client.get("/api/me", headers={"Authorization": authorization})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/me", headers=admin_headers)).status_code == 200
    with sync_engine.begin() as connection:
        connection.execute(text("UPDATE api_tokens SET revoked_at = now()"))
    assert (await client.get("/api/me", headers=admin_headers)).status_code == 401


@pytest.mark.parametrize("caller", [Role.viewer, Role.operator])
async def test_too_small_a_role_gets_403(
    app: FastAPI,
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    operator_headers: dict[str, str],
    caller: Role,
) -> None:
    headers = viewer_headers if caller is Role.viewer else operator_headers
    wrong = {}
    for endpoint in guarded_endpoints(app):
        needed = required_role(endpoint)
        if needed is None or caller.allows(needed):
            continue
        response = await client.request(endpoint.method, endpoint.path, headers=headers)
        if response.status_code != 403:
            wrong[str(endpoint)] = response.status_code
    assert wrong == {}


async def test_admin_routes_refuse_an_operator_session(
    app: FastAPI, client: httpx.AsyncClient, make_staff: Any, signed_in: Any
) -> None:
    await signed_in(client, await make_staff("olga", Role.operator))
    response = await client.get("/api/audit")
    assert response.status_code == 403
    assert response.json() == {"error": "this needs the admin role"}


async def test_token_use_is_noted(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], sync_engine: Engine
) -> None:
    assert (await client.get("/api/me", headers=viewer_headers)).status_code == 200
    with sync_engine.connect() as connection:
        assert connection.scalar(
            text("SELECT last_used_at IS NOT NULL FROM api_tokens WHERE name = 'test-viewer'")
        )
