"""The OpenAPI document says what the routes really answer.

FastAPI describes each route's success body and its own validation error; what the app
adds around the routes it cannot see: every error is `{"error": "…"}` (web/errors.py),
not FastAPI's list of validation details; a route behind sign-in can answer 401 and 403;
one with a path id, 404; any route, 503 when the database is out of reach; a route with
`format=csv`, a CSV body. Those answers are written in here, once for every route, so
that no route can forget them. What only some routes answer (409, 413, …) each route
declares in its own `responses`, and gets the error body from here too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

# Routes anyone may call: no 401 or 403 from sign-in (the webhook has its own 403).
PUBLIC_PATHS = frozenset({"/api/health", "/api/telegram/webhook"})
ERROR_SCHEMA_NAME = "ErrorAnswer"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}

COMMON_ERRORS = {
    "401": "Not signed in: no session cookie and no valid bearer token",
    "403": "Signed in with too small a role for this route",
}
NOT_FOUND = "No such record"
BAD_INPUT = "A parameter or the body is refused (the message names it); nothing changed"
UNAVAILABLE = "The database is out of reach or too busy; retry after Retry-After seconds"
NOT_VALID = "A parameter or the body is not of the right type or shape"


class ErrorAnswer(BaseModel):
    """What every error answers: one sentence naming what went wrong."""

    error: str


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _offers_csv(operation: dict[str, Any]) -> bool:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "format" and parameter.get("in") == "query":
            schema = parameter.get("schema", {})
            choices = schema.get("enum") or [
                option.get("const") for option in schema.get("anyOf", []) if "const" in option
            ]
            return "csv" in choices
    return False


def describe_operation(path: str, operation: dict[str, Any]) -> None:
    """Write the app-wide answers into one operation of the document."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code, response in list(responses.items()):
        if code.startswith(("4", "5")):
            # FastAPI's validation error, and any error a route declared without a body.
            description = NOT_VALID if code == "422" else response.get("description", "")
            responses[code] = _error(description)
    if _takes_input(operation):
        responses.setdefault("400", _error(BAD_INPUT))
        responses.setdefault("422", _error(NOT_VALID))
    if (path.startswith("/api/") and path not in PUBLIC_PATHS) or path == "/metrics":
        for code, description in COMMON_ERRORS.items():
            responses.setdefault(code, _error(description))
    if "{" in path:
        responses.setdefault("404", _error(NOT_FOUND))
    responses.setdefault("503", _error(UNAVAILABLE))
    if _offers_csv(operation):
        success = next((code for code in ("200", "201") if code in responses), "200")
        content = responses.setdefault(success, {"description": "Success"}).setdefault(
            "content", {}
        )
        content.setdefault(
            "text/csv",
            {"schema": {"type": "string", "description": "With format=csv: the list as CSV"}},
        )


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, made once and kept."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            describe_operation(path, operation)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ErrorAnswer.model_json_schema()
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema


def install_openapi(app: FastAPI) -> None:
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
