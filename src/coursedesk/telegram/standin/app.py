"""The stand-in as an ASGI app: the Bot API at /bot{token}/{method}, its controls at /_control.

Bot API calls skip Starlette's routing and request objects: a worker's benchmark sends
thousands of messages a second through this one process, which the plain ASGI path
serves with about a fifth less CPU per call. The controls are ordinary Starlette routes.
A multipart upload is read as it streams in: its text fields are kept, its files only
measured and hashed, so a 50 MB upload costs no more memory than a small one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coursedesk.telegram.standin.core import BotApiError, BotApiStandin
from coursedesk.telegram.standin.faults import FaultsError
from coursedesk.telegram.standin.files import FilePart
from coursedesk.web.multipart import PartHeaders, PartReader

MAX_FORM_FIELD_BYTES = 1024 * 1024
"""A multipart part without a file name is a text parameter, and may be this long."""


def _error_body(error: BotApiError) -> dict[str, object]:
    body: dict[str, object] = {
        "ok": False,
        "error_code": error.status,
        "description": error.description,
    }
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return body


def _json_parameters(raw: bytes) -> dict[str, object]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BotApiError(400, "Bad Request: can't parse JSON object") from None
    if not isinstance(body, dict):
        raise BotApiError(400, "Bad Request: JSON object expected")
    return body


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_type(scope: Scope) -> tuple[str, dict[bytes, bytes]]:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type, options = parse_options_header(value)
            return media_type.decode("latin-1"), options
    return "", {}


class _FormReader(PartReader):
    """multipart/form-data parameters, read part by part as the body streams in.

    A part with a file name is a file: what the stand-in keeps of it is a FilePart
    (name, type, size, SHA-256). Any other part is a text parameter.
    """

    def __init__(self, boundary: bytes) -> None:
        super().__init__(boundary)
        self.parameters: dict[str, object] = {}
        self._part = PartHeaders(None, None, None)
        self._text = bytearray()
        self._digest = hashlib.sha256()
        self._size = 0

    def part_begins(self, headers: PartHeaders) -> None:
        self._part = headers
        self._text.clear()
        self._digest = hashlib.sha256()
        self._size = 0

    def part_data(self, data: memoryview) -> None:
        self._size += len(data)
        if self._part.filename is not None:
            self._digest.update(data)
        elif self._size > MAX_FORM_FIELD_BYTES:
            raise BotApiError(400, "Bad Request: a text parameter is too long")
        else:
            self._text.extend(data)

    def part_ends(self) -> None:
        name, filename = self._part.name, self._part.filename
        if name is None:
            return
        if filename is None:
            self.parameters[name] = self._text.decode("utf-8", "replace")
            return
        self.parameters[name] = FilePart(
            name, filename or None, self._part.content_type, self._size, self._digest.hexdigest()
        )


async def _read_form(
    boundary: bytes, receive: Receive, standin: BotApiStandin
) -> dict[str, object]:
    reader = _FormReader(boundary)
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        more = message.get("more_body", False)
        body = message.get("body", b"")
        try:
            reader.write(body)
        except MultipartParseError:
            raise BotApiError(400, "Bad Request: can't parse multipart/form-data") from None
        standin.note_multipart_bytes(len(body))
        pace = standin.faults.upload_bytes_per_second
        if pace is not None and body:
            # Not reading meanwhile, the server stops reading the socket, and the
            # client's writes wait: an upload this slow, end to end.
            await asyncio.sleep(len(body) / pace)
    if not reader.ended:
        raise BotApiError(400, "Bad Request: can't parse multipart/form-data")
    return reader.parameters


async def _read_parameters(
    scope: Scope, receive: Receive, standin: BotApiStandin
) -> dict[str, object]:
    """As the real Bot API: query string, JSON body, or urlencoded or multipart form."""
    parameters: dict[str, object] = dict(
        parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    )
    content_type, options = _content_type(scope)
    if content_type == "application/json":
        parameters.update(_json_parameters(await _read_body(receive)))
    elif content_type == "application/x-www-form-urlencoded":
        body = (await _read_body(receive)).decode()
        parameters.update(parse_qsl(body, keep_blank_values=True))
    elif content_type == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BotApiError(400, "Bad Request: can't parse multipart/form-data")
        parameters.update(await _read_form(boundary, receive, standin))
    return parameters


async def _answer(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


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


def _bot_api_call(path: str) -> tuple[str, str] | None:
    """(token, method) of a path /bot{token}/{method}; None for any other path."""
    if not path.startswith("/bot"):
        return None
    token, slash, method = path[4:].partition("/")
    if not token or not slash or not method or "/" in method:
        return None
    return token, method


def create_standin_app(standin: BotApiStandin) -> ASGIApp:
    """An ASGI app serving `standin`; mount it anywhere or run it with uvicorn."""
    controls = _control_app(standin)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        call = _bot_api_call(scope["path"]) if scope["type"] == "http" else None
        if call is None or scope["method"] not in ("GET", "POST"):
            await controls(scope, receive, send)
            return
        try:
            parameters = await _read_parameters(scope, receive, standin)
            result: object = standin.call(*call, parameters)
        except ClientDisconnect:
            return
        except BotApiError as error:
            result = error
        # The call takes effect before the delay, so a client that times out waiting may
        # have sent the message all the same, as happens with the real Bot API.
        delay = standin.draw_latency()
        if delay:
            await asyncio.sleep(delay)
        if isinstance(result, BotApiError):
            await _answer(send, result.status, _error_body(result))
        else:
            await _answer(send, 200, {"ok": True, "result": result})

    return app


_INTEGER = re.compile(r"-?[0-9]{1,19}")


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _control_app(standin: BotApiStandin) -> Starlette:
    async def faults(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                standin.update_faults(await _read_control_body(request))
            except FaultsError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(standin.faults.model_dump(mode="json"))

    async def log(request: Request) -> JSONResponse:
        chat = request.query_params.get("chat_id")
        if chat is not None and not _INTEGER.fullmatch(chat):
            return JSONResponse({"error": "chat_id must be an integer"}, status_code=400)
        return JSONResponse(standin.log_as_json(int(chat) if chat is not None else None))

    async def reset(request: Request) -> JSONResponse:
        standin.reset()
        return JSONResponse({"ok": True})

    async def webhook(request: Request) -> JSONResponse:
        return JSONResponse({"url": standin.webhook_url, "secret_token": standin.webhook_secret})

    async def press(request: Request) -> JSONResponse:
        """A user presses a callback button: answers the Update Telegram would send."""
        try:
            body = await _read_control_body(request)
        except FaultsError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        chat_id, message_id = body.get("chat_id"), body.get("message_id")
        data = body.get("callback_data")
        if not (_is_integer(chat_id) and _is_integer(message_id) and isinstance(data, str)):
            return JSONResponse(
                {"error": "chat_id and message_id (integers) and callback_data are needed"},
                status_code=400,
            )
        assert isinstance(chat_id, int) and isinstance(message_id, int)
        try:
            update = standin.press_button(chat_id, message_id, data)
        except LookupError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse(update)

    return Starlette(
        routes=[
            Route("/_control/faults", faults, methods=["GET", "POST"]),
            Route("/_control/log", log, methods=["GET"]),
            Route("/_control/reset", reset, methods=["POST"]),
            Route("/_control/webhook", webhook, methods=["GET"]),
            Route("/_control/press", press, methods=["POST"]),
        ]
    )
