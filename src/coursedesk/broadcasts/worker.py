"""Running one worker: the sender, the LISTEN connection that wakes it, and its shutdown.

A worker also offers to fold the analytics change log (analytics/folding.py), so the
figures stay fresh with no `serve` running, and deletes the uploaded files nothing uses
(broadcasts/media_pruning.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

import psycopg
from psycopg import sql

from coursedesk.analytics.folding import folding, process_name
from coursedesk.broadcasts.media_pruning import pruning_media
from coursedesk.broadcasts.sender import Sender, SenderOptions
from coursedesk.broadcasts.signals import CHANNEL, SignalKind, parse_signal
from coursedesk.config import Settings
from coursedesk.db.engine import create_app_engine, libpq_url, resolve_database_url
from coursedesk.telegram.client import TelegramClient, TelegramConfigError

log = logging.getLogger(__name__)

LISTEN_RETRY_SECONDS = 1.0
TELEGRAM_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 64
"""Connections to the Bot API one worker keeps at most.

Requests under way at once are far fewer than messages in flight (those wait for their
batch write too), but with one connection allowed per message in flight every burst
after a stall opened more of them, over a thousand in a 200,000-message send, each
costing memory here and at the Bot API. A request that finds all of them busy waits.
"""


async def listen_for_signals(database_url: str, settings: Settings, sender: Sender) -> None:
    """Relay notifications to the sender, reconnecting whenever the connection drops.

    Polling stays the fallback, so a notification lost while reconnecting only costs
    one poll interval.
    """
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url),
                autocommit=True,
                connect_timeout=settings.db_connect_timeout,
                application_name="coursedesk-worker-listen",
            ) as connection:
                await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                sender.wake()
                async for notification in connection.notifies():
                    signal = parse_signal(notification.payload)
                    if signal is None:
                        continue
                    if signal.kind is SignalKind.paused:
                        sender.pacer.learn_pause(signal.value)
                    elif signal.kind is SignalKind.cancelled:
                        sender.broadcast_cancelled(int(signal.value))
                    else:
                        sender.wake()
        except psycopg.OperationalError as exc:
            log.warning("listening for broadcasts failed, reconnecting: %s", exc)
            await asyncio.sleep(LISTEN_RETRY_SECONDS)


async def run_worker(
    settings: Settings, *, stop_event: asyncio.Event, options: SenderOptions | None = None
) -> None:
    """Send broadcasts until `stop_event` is set, then stop cleanly.

    In-flight messages are finished and recorded and unstarted claims are given back,
    so stopping loses nothing and sends nothing twice. Raises TelegramConfigError when
    there is no token or Telegram refuses it, TelegramUnavailable when the Bot API
    cannot be reached at start.
    """
    if not settings.telegram_bot_token:
        raise TelegramConfigError("TELEGRAM_BOT_TOKEN: not set, so the worker cannot send")
    options = options or SenderOptions(rate=settings.broadcast_rate)
    if options.public_base_url is None:
        options = replace(options, public_base_url=settings.public_base_url)
    database_url = resolve_database_url(settings)
    engine = create_app_engine(database_url, settings, application_name="coursedesk-worker")
    try:
        async with (
            folding(engine, name=process_name("worker"), interval=settings.analytics_fold_seconds),
            pruning_media(engine, retention_days=settings.media_retention_days),
            TelegramClient(
                settings.telegram_bot_token,
                settings.telegram_api_base_url,
                pool_size=min(options.max_in_flight, MAX_CONNECTIONS),
                timeout=TELEGRAM_TIMEOUT_SECONDS,
            ) as client,
        ):
            bot = await client.get_me()
            sender = Sender(engine, client, options)
            log.info(
                "worker %s sends as @%s at up to %g messages/s shared by all workers",
                options.owner,
                bot.username or bot.id,
                options.rate,
            )
            listener = asyncio.create_task(listen_for_signals(database_url, settings, sender))
            relay = asyncio.create_task(_relay(stop_event, sender.stopping))
            try:
                await sender.run()
            finally:
                for task in (listener, relay):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if sender.fatal is not None:
                raise sender.fatal
            log.info("worker %s stopped", options.owner)
    finally:
        await engine.dispose()


async def _relay(stop_event: asyncio.Event, stopping: asyncio.Event) -> None:
    await stop_event.wait()
    stopping.set()
