"""What every command shares: settings, the database, one-line errors."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from functools import cache
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession

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
