"""`coursedesk admin …`: staff users and API tokens."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import PASSWORD_MIN, create_token, create_user
from coursedesk.cli.common import console, database_url, fail, is_interactive, settings
from coursedesk.db.engine import Database, create_app_engine

app = typer.Typer(help="Staff users and API tokens.", no_args_is_help=True)

T = TypeVar("T")

RoleOption = Annotated[
    Role, typer.Option("--role", case_sensitive=False, help="viewer, operator or admin")
]


def cli_actor() -> str:
    """The audit actor of a command: the operating-system user who ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli:unknown"


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
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


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.read().rstrip("\r\n")
    if not is_interactive():
        fail("no terminal to ask for the password on; pipe it in with --password-stdin", code=2)
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("create-user")
def create_user_command(
    name: Annotated[str, typer.Argument(help="Username (letters, digits, '.', '_', '-')")],
    role: RoleOption,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Add a staff user; the password is asked for twice unless it comes on stdin."""
    password = _read_password(password_stdin)
    if len(password) < PASSWORD_MIN:
        fail(f"the password must be at least {PASSWORD_MIN} characters", code=2)
    actor = cli_actor()
    user = _in_transaction(
        lambda session: create_user(session, name, password, role, created_by=actor)
    )
    console.print(f"created user {user.username} ({user.role})", markup=False, highlight=False)


@app.command("create-token")
def create_token_command(
    role: RoleOption,
    name: Annotated[str | None, typer.Option("--name", help="What the token is for")] = None,
) -> None:
    """Print a new API token, and only the token, on stdout; it is not shown again."""
    actor = cli_actor()
    _, token = _in_transaction(
        lambda session: create_token(session, role, name or f"{role.value}-token", actor)
    )
    typer.echo(token)
