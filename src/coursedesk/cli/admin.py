"""`coursedesk admin …`: staff users and API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import PASSWORD_MIN, create_token, create_user
from coursedesk.cli.common import (
    cli_actor,
    console,
    fail,
    in_transaction,
    is_interactive,
    read_stdin,
)

app = typer.Typer(help="Staff users and API tokens.", no_args_is_help=True)

RoleOption = Annotated[
    Role, typer.Option("--role", case_sensitive=False, help="viewer, operator or admin")
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return read_stdin("--password-stdin").rstrip("\r\n")
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
    user = in_transaction(
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
    _, token = in_transaction(
        lambda session: create_token(session, role, name or f"{role.value}-token", actor)
    )
    typer.echo(token)
