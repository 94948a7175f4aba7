"""What the commands share: settings, the database, one-line errors, serving the app, and
the capture a new database gets."""

from __future__ import annotations

import asyncio
import getpass
import signal
import socket
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

from coursedesk.analytics.folding import set_capture
from coursedesk.config import Settings, load_settings
from coursedesk.db.engine import (
    Database,
    create_app_engine,
    create_tool_engine,
    resolve_database_url,
)
from coursedesk.db.retry import retrying
from coursedesk.errors import Conflict

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


def read_stdin(option: str) -> str:
    """All of standard input as text; bytes that are not UTF-8 are bad input of `option`.

    Depending on the locale, Python either fails on such bytes or lets them through as
    surrogates that fail later, when encoded; both are caught here.
    """
    try:
        text = sys.stdin.read()
        text.encode()
    except UnicodeError:
        fail(f"{option}: standard input is not UTF-8 text", code=2)
    return text


def cli_actor() -> str:
    """Who the audit log names for a command: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli:unknown"


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` as one unit of work: committed if it returns, rolled back if it raises,
    and run again from the start if it lost a race to another transaction."""

    async def run() -> T:
        database = Database(
            create_app_engine(database_url(), settings(), application_name="coursedesk-cli")
        )

        async def attempt() -> T:
            async with database.transaction() as session:
                return await work(session)

        try:
            return await retrying(attempt)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def require_free_address(host: str, port: int) -> None:
    """Fail in one line, before anything starts, when the app could not listen on host:port.

    Each address the host resolves to is bound the way the server will bind it (address
    reuse on, IPv6 sockets IPv6-only), so a port in use is found here instead of in the
    server's start-up output.
    """
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=2)


def serve_app(
    app: ASGIApp, *, host: str, port: int, log_level: str, forwarded_allow_ips: str
) -> None:
    """Serve `app` until Ctrl-C or SIGTERM, then return through the caller's cleanup.

    uvicorn shuts down gracefully on SIGTERM and then raises the signal again; with the
    default handler that would end the process on the spot, skipping every `finally`
    and exit hook (the demo's worker and the embedded server would be left running).

    Forwarded headers are read only from the proxies in `forwarded_allow_ips`
    (FORWARDED_ALLOW_IPS); with none, not at all, whatever uvicorn's own default.
    """
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "",
    )


def capture_from_the_wal(engine: Engine) -> None:
    """A new database (`demo`, `db setup`) reads the bot's changes from the WAL where the
    server allows it (the embedded server does), so no trigger of coursedesk's runs in
    the bot's writes; elsewhere the capture stays with triggers, saying why."""
    try:
        set_capture(engine, "wal")
    except Conflict as refused:
        console.print(f"The analytics capture stays with triggers: {refused}")
    else:
        console.print("The analytics capture reads the bot's changes from the WAL.")
