"""`coursedesk demo`: everything on one machine with no settings at all.

The embedded PostgreSQL, migrations, demo data, an `admin` with a fresh password, a local
stand-in for the Telegram Bot API, one broadcast worker (a real process, as in production)
and the web app. PUBLIC_BASE_URL is the demo server's own address unless given, and a
database with no broadcast yet gets one, a photo with a tracked link button, whose links
in the stand-in's log work on the demo server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from typing import Annotated

import typer
from sqlalchemy import select

from coursedesk.accounts.models import StaffUser
from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_user, set_password
from coursedesk.cli.common import (
    capture_from_the_wal,
    console,
    database_url,
    require_free_address,
    serve_app,
    settings,
    tool_engine,
)
from coursedesk.cli.demo_broadcast import send_demo_broadcast
from coursedesk.cli.serve import HostOption, PortOption
from coursedesk.config import Settings
from coursedesk.db import migrations
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.engine import Database, create_app_engine
from coursedesk.db.seed import default_anchor, seed_database, source_tables_empty
from coursedesk.telegram.standin import BotApiStandin, StandinThread
from coursedesk.web.app import create_app

DEMO_ADMIN = "admin"
DEMO_BOT_TOKEN = "123456:demo-bot-token"
DEMO_SEED = 1


async def _admin_with_new_password(current: Settings, url: str) -> str:
    """Create `admin`, or give the existing one a new password, and answer the password."""
    password = secrets.token_urlsafe(12)
    database = Database(create_app_engine(url, current, application_name="coursedesk-demo"))
    try:
        async with database.transaction() as session:
            existing = await session.scalar(
                select(StaffUser.id).where(StaffUser.username == DEMO_ADMIN)
            )
            if existing is not None:
                await set_password(session, DEMO_ADMIN, password, changed_by="demo")
            else:
                await create_user(session, DEMO_ADMIN, password, Role.admin, created_by="demo")
    finally:
        await database.dispose()
    return password


async def _queue_demo_broadcast(current: Settings, url: str, public_base_url: str) -> None:
    database = Database(create_app_engine(url, current, application_name="coursedesk-demo"))
    try:
        async with database.transaction() as session:
            message_id = await send_demo_broadcast(session, public_base_url)
    finally:
        await database.dispose()
    if message_id is not None:
        console.print(f"Queued broadcast #{message_id}: a photo and a tracked link button.")


def own_address(host: str, port: int) -> str:
    """The demo server's address as a browser on this machine reaches it."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _start_worker(url: str, demo: Settings) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": demo.telegram_bot_token or "",
        "TELEGRAM_API_BASE_URL": demo.telegram_api_base_url,
        "BROADCAST_RATE": str(demo.broadcast_rate),
        "PUBLIC_BASE_URL": demo.public_base_url or "",
    }
    return subprocess.Popen([sys.executable, "-m", "coursedesk", "worker"], env=env)


def demo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    users: Annotated[
        int, typer.Option("--users", min=0, max=1_000_000, help="Demo students to seed")
    ] = 2_000,
) -> None:
    """Run the whole product locally on demo data; prints the URL and the admin password."""
    current = settings()
    require_free_address(host, port)
    url = database_url()
    engine = tool_engine()
    migrations.upgrade(engine)
    with engine.connect() as connection:
        empty = source_tables_empty(connection)
    if empty:
        capture_from_the_wal(engine)
    if empty and users:
        console.print(f"Seeding {users:,} demo students…")
        plan = GenerationPlan(users=users, seed=DEMO_SEED, anchor=default_anchor())
        seed_database(engine, plan)
    password = asyncio.run(_admin_with_new_password(current, url))
    public_base_url = current.public_base_url or own_address(host, port)
    asyncio.run(_queue_demo_broadcast(current, url, public_base_url))

    token = current.telegram_bot_token or DEMO_BOT_TOKEN
    with StandinThread(BotApiStandin(token)) as standin:
        demo_settings = current.model_copy(
            update={
                "database_url": url,
                "secret_key": current.secret_key or secrets.token_urlsafe(32),
                "telegram_bot_token": token,
                "telegram_api_base_url": standin.base_url,
                "telegram_webhook_secret": current.telegram_webhook_secret
                or secrets.token_urlsafe(16),
                "public_base_url": public_base_url,
            }
        )
        worker = _start_worker(url, demo_settings)
        try:
            console.print(
                f"\n[bold green]coursedesk demo[/] at [bold]http://{host}:{port}/[/]\n"
                f"  sign in as [bold]{DEMO_ADMIN}[/] with password [bold]{password}[/]\n"
                f"  stand-in Telegram Bot API: {standin.base_url} "
                f"(what each chat received: {standin.base_url}/_control/log)\n"
                f"  tracked links lead through {public_base_url}/r/…\n"
                "  Ctrl-C stops everything.\n",
                highlight=False,
            )
            serve_app(
                create_app(demo_settings),
                host=host,
                port=port,
                log_level="warning",
                forwarded_allow_ips=demo_settings.forwarded_allow_ips,
            )
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
