"""What every command shares: settings, the database, one-line errors."""

from __future__ import annotations

import sys
from functools import cache
from typing import NoReturn

import typer
from rich.console import Console
from sqlalchemy import Engine

from coursedesk.config import Settings, load_settings
from coursedesk.db.engine import create_tool_engine, resolve_database_url

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
