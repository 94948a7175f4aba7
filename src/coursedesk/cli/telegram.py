"""`coursedesk telegram …`: a local stand-in Bot API, and pointing Telegram at the webhook."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from coursedesk.cli.common import console, fail, settings
from coursedesk.telegram.standin import FaultsError, serve_standin
from coursedesk.telegram.standin.faults import parse_faults

app = typer.Typer(help="The Telegram side: stand-in Bot API and webhook.", no_args_is_help=True)


def _chat_ids(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"not a list of chat ids: {value!r}") from None


@app.command("standin")
def standin(
    token: Annotated[str, typer.Option("--token", help="The only bot token it accepts")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8081,
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", min=1, help="sendMessage per second before 429")
    ] = None,
    flood_rate: Annotated[
        float, typer.Option("--flood-rate", min=0, max=1, help="Share of calls answered 429")
    ] = 0.0,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", min=0, max=1, help="Share of calls answered 5xx")
    ] = 0.0,
    blocked: Annotated[str, typer.Option("--blocked", help="Chat ids that blocked the bot")] = "",
    missing: Annotated[str, typer.Option("--missing", help="Chat ids that do not exist")] = "",
    latency_ms: Annotated[float, typer.Option("--latency-ms", min=0)] = 0.0,
) -> None:
    """Serve a stand-in Bot API at http://HOST:PORT (set TELEGRAM_API_BASE_URL to it)."""
    try:
        faults = parse_faults(
            {
                "rate_limit_per_second": rate_limit,
                "flood_rate": flood_rate,
                "server_error_rate": fail_rate,
                "blocked_chats": _chat_ids(blocked),
                "missing_chats": _chat_ids(missing),
                "latency_ms": latency_ms,
            }
        )
    except FaultsError as exc:
        fail(str(exc), code=2)
    serve_standin(host, port, token, faults)


@app.command("set-webhook")
def set_webhook(
    url: Annotated[str, typer.Argument(help="The public https URL of /api/telegram/webhook")],
) -> None:
    """Tell Telegram to post updates to URL, with TELEGRAM_WEBHOOK_SECRET as the secret."""
    current = settings()
    if current.telegram_bot_token is None:
        fail("TELEGRAM_BOT_TOKEN: not set", code=2)
    if current.telegram_webhook_secret is None:
        fail("TELEGRAM_WEBHOOK_SECRET: not set; the webhook would refuse every update", code=2)
    if not url.startswith(("https://", "http://")):
        fail("URL: must start with https://", code=2)

    async def call() -> None:
        request = HTTPXRequest(connection_pool_size=1)
        bot = Bot(
            current.telegram_bot_token or "",
            base_url=f"{current.telegram_api_base_url}/bot",
            request=request,
        )
        async with bot:
            await bot.set_webhook(url, secret_token=current.telegram_webhook_secret)

    try:
        asyncio.run(call())
    except TelegramError as exc:
        fail(f"Telegram refused the webhook: {exc.message}")
    console.print(f"Telegram now posts updates to {url}", markup=False, highlight=False)
