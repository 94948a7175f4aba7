"""What every command shares: settings, the database, one-line errors."""

from __future__ import annotations

import asyncio
import getpass
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import cache
from types import FrameType
from typing import NoReturn, TypeVar

import typer
import uvicorn
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp

from coursedesk.config import Settings, load_settings
from coursedesk.db.engine import (
    Database,
    create_app_engine,
    create_tool_engine,
    resolve_database_url,
)

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and leave with `code` (1: a problem found, 2: bad input)."""
    err_console.print(f"coursedesk: error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


@cache
def settings() -> Settings:
    return load_settings()


@cache
def database_url() -> str:
    return resolve_database_url(settings())


@cache
def tool_engine() -> Engine:
    return create_tool_engine(database_url(), settings())


def print_json(data: object) -> None:
    console.print_json(data=data)


def is_interactive() -> bool:
    return sys.stdin.isatty()


def cli_actor() -> str:
    """Who the audit log names for a command: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli:unknown"


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` as one unit of work: committed if it returns, rolled back if it raises."""

    async def run() -> T:
        database = Database(
            create_app_engine(database_url(), settings(), application_name="coursedesk-cli")
        )
        try:
            async with database.transaction() as session:
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def serve_app(app: ASGIApp, *, host: str, port: int, log_level: str) -> None:
    """Serve `app` until Ctrl-C or SIGTERM, then return through the caller's cleanup.

    uvicorn shuts down gracefully on SIGTERM and then raises the signal again; with the
    default handler that would end the process on the spot, skipping every `finally`
    and exit hook (the demo's worker and the embedded server would be left running).
    """
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
