"""`coursedesk admin …`: staff users and API tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import (
    PASSWORD_MIN,
    create_token,
    create_user,
    list_tokens,
    list_users,
    revoke_token,
    set_active,
    set_password,
)
from coursedesk.cli.common import (
    cli_actor,
    console,
    fail,
    in_transaction,
    is_interactive,
    print_json,
    read_stdin,
)

app = typer.Typer(help="Staff users and API tokens.", no_args_is_help=True)

RoleOption = Annotated[
    Role, typer.Option("--role", case_sensitive=False, help="viewer, operator or admin")
]
NameArgument = Annotated[str, typer.Argument(help="Username")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input")
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
    password_stdin: PasswordStdinOption = False,
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


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


@app.command("list-users")
def list_users_command(as_json: JsonOption = False) -> None:
    """Every staff user: role, whether they may sign in, since when."""
    users = in_transaction(list_users)
    if as_json:
        print_json(
            [
                {
                    "username": user.username,
                    "role": user.role,
                    "active": user.is_active,
                    "created_at": user.created_at.isoformat(),
                }
                for user in users
            ]
        )
        return
    table = Table("user", "role", "may sign in", "created")
    for user in users:
        table.add_row(
            user.username, user.role, "yes" if user.is_active else "no", _when(user.created_at)
        )
    console.print(table)


@app.command("set-password")
def set_password_command(name: NameArgument, password_stdin: PasswordStdinOption = False) -> None:
    """Give a staff user a new password; every browser they are signed in on is signed out."""
    password = _read_password(password_stdin)
    if len(password) < PASSWORD_MIN:
        fail(f"the password must be at least {PASSWORD_MIN} characters", code=2)
    actor = cli_actor()
    user = in_transaction(lambda session: set_password(session, name, password, changed_by=actor))
    console.print(f"new password set for {user.username}", markup=False, highlight=False)


def _set_active(name: str, active: bool) -> None:
    actor = cli_actor()
    user, changed = in_transaction(
        lambda session: set_active(session, name, active, changed_by=actor)
    )
    state = "may sign in" if active else "may not sign in"
    news = "now" if changed else "already"
    console.print(f"{user.username} {news} {state}", markup=False, highlight=False)


@app.command("disable-user")
def disable_user_command(name: NameArgument) -> None:
    """Stop a staff user signing in; their open sessions end at once."""
    _set_active(name, False)


@app.command("enable-user")
def enable_user_command(name: NameArgument) -> None:
    """Let a disabled staff user sign in again."""
    _set_active(name, True)


@app.command("list-tokens")
def list_tokens_command(as_json: JsonOption = False) -> None:
    """Every API token: id, name, role, who made it, when it was last used, revoked or not."""
    tokens = in_transaction(list_tokens)
    if as_json:
        print_json(
            [
                {
                    "id": token.id,
                    "name": token.name,
                    "role": token.role,
                    "created_by": token.created_by,
                    "created_at": token.created_at.isoformat(),
                    "last_used_at": token.last_used_at and token.last_used_at.isoformat(),
                    "revoked_at": token.revoked_at and token.revoked_at.isoformat(),
                }
                for token in tokens
            ]
        )
        return
    table = Table("id", "name", "role", "created by", "last used", "revoked")
    for token in tokens:
        table.add_row(
            str(token.id),
            token.name,
            token.role,
            token.created_by or "—",
            _when(token.last_used_at),
            _when(token.revoked_at),
        )
    console.print(table)


@app.command("revoke-token")
def revoke_token_command(
    token_id: Annotated[int, typer.Argument(help="The token's id (see list-tokens)", min=1)],
) -> None:
    """Refuse an API token from now on."""
    actor = cli_actor()
    token, changed = in_transaction(
        lambda session: revoke_token(session, token_id, revoked_by=actor)
    )
    news = "revoked" if changed else "was already revoked"
    console.print(f"token {token.id} ({token.name}) {news}", markup=False, highlight=False)
