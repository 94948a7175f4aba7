"""The stand-in as an ASGI app: the Bot API at /bot{token}/{method}, its controls at /_control."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coursedesk.telegram.standin.core import BotApiError, BotApiStandin
from coursedesk.telegram.standin.faults import FaultsError

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _error_answer(error: BotApiError) -> JSONResponse:
    body: dict[str, object] = {
        "ok": False,
        "error_code": error.status,
        "description": error.description,
    }
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return JSONResponse(body, status_code=error.status)


async def _read_parameters(request: Request) -> dict[str, object]:
    """As the real Bot API: query string, JSON body, or urlencoded or multipart form."""
    parameters: dict[str, object] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise BotApiError(400, "Bad Request: can't parse JSON object") from None
            if not isinstance(body, dict):
                raise BotApiError(400, "Bad Request: JSON object expected")
            parameters.update(body)
    elif content_type in _FORM_TYPES:
        async with request.form() as form:
            parameters.update({k: v for k, v in form.items() if isinstance(v, str)})
    return parameters


async def _read_control_body(request: Request) -> dict[str, object]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise FaultsError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise FaultsError("the body must be a JSON object")
    return body


def create_standin_app(standin: BotApiStandin) -> Starlette:
    """An ASGI app serving `standin`; mount it anywhere or run it with uvicorn."""

    async def bot_api(request: Request) -> Response:
        try:
            parameters = await _read_parameters(request)
            result: object = standin.call(
                request.path_params["token"], request.path_params["method"], parameters
            )
        except ClientDisconnect:
            return Response(status_code=400)
        except BotApiError as error:
            result = error
        # The call takes effect before the delay, so a client that times out waiting may
        # have sent the message all the same, as happens with the real Bot API.
        delay = standin.draw_latency()
        if delay:
            await asyncio.sleep(delay)
        if isinstance(result, BotApiError):
            return _error_answer(result)
        return JSONResponse({"ok": True, "result": result})

    async def faults(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                standin.update_faults(await _read_control_body(request))
            except FaultsError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(standin.faults.model_dump(mode="json"))

    async def log(request: Request) -> JSONResponse:
        chat = request.query_params.get("chat_id")
        if chat is not None and not chat.lstrip("-").isdigit():
            return JSONResponse({"error": "chat_id must be an integer"}, status_code=400)
        return JSONResponse(standin.log_as_json(int(chat) if chat is not None else None))

    async def reset(request: Request) -> JSONResponse:
        standin.reset()
        return JSONResponse({"ok": True})

    async def webhook(request: Request) -> JSONResponse:
        return JSONResponse({"url": standin.webhook_url, "secret_token": standin.webhook_secret})

    return Starlette(
        routes=[
            Route("/bot{token}/{method}", bot_api, methods=["GET", "POST"]),
            Route("/_control/faults", faults, methods=["GET", "POST"]),
            Route("/_control/log", log, methods=["GET"]),
            Route("/_control/reset", reset, methods=["POST"]),
            Route("/_control/webhook", webhook, methods=["GET"]),
        ]
    )
