"""`coursedesk broadcast …`: queue a broadcast and follow its delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.audiences import Audience, parse_audience_argument
from coursedesk.broadcasts.schemas import MessageDetail
from coursedesk.broadcasts.service import check_broadcast, create_broadcast, get_message
from coursedesk.cli.common import (
    cli_actor,
    console,
    err_console,
    in_transaction,
    print_json,
    read_stdin,
)
from coursedesk.errors import InvalidInput

app = typer.Typer(help="Queue broadcasts and follow their delivery.", no_args_is_help=True)


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--at: not an ISO 8601 time: {value!r}") from None
    if when.tzinfo is None:
        raise InvalidInput("--at: give a UTC offset, e.g. 2030-01-31T09:00:00+00:00")
    return when


def _parse_audience(value: str) -> Audience:
    try:
        return parse_audience_argument(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"--audience {value.partition(':')[0]}: {first['msg']}") from None


@app.command("send")
def send(
    text: Annotated[str, typer.Option("--text", help="The message; '-' reads it from stdin")],
    audience: Annotated[
        str, typer.Option("--audience", help="all, non_course, stream:NAME or users:1,2,3")
    ],
    at: Annotated[
        str | None, typer.Option("--at", help="Send at this ISO 8601 time (with its offset)")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check it and count the recipients; queue nothing"),
    ] = False,
    parse_mode: Annotated[
        str | None, typer.Option("--parse-mode", help="HTML or MarkdownV2 (default: plain)")
    ] = None,
) -> None:
    """Queue a broadcast and print its id (with --dry-run: print the recipient count)."""
    message = read_stdin("--text -") if text == "-" else text
    if "\0" in message:
        raise InvalidInput("--text: a message cannot contain NUL characters")
    chosen = _parse_audience(audience)
    when = _parse_at(at)
    if dry_run:
        checked = in_transaction(
            lambda session: check_broadcast(
                session,
                text=message,
                audience=chosen,
                parse_mode=parse_mode,
                scheduled_at=when,
            )
        )
        typer.echo(checked.total_recipients)
        invalid = checked.invalid_user_ids
    else:
        actor = cli_actor()
        created = in_transaction(
            lambda session: create_broadcast(
                session,
                text=message,
                audience=chosen,
                actor=actor,
                parse_mode=parse_mode,
                scheduled_at=when,
            )
        )
        typer.echo(created.message_id)
        invalid = created.invalid_user_ids
    if invalid:
        shown = ", ".join(str(user_id) for user_id in invalid[:20])
        more = f" and {len(invalid) - 20} more" if len(invalid) > 20 else ""
        err_console.print(f"not users, left out: {shown}{more}", markup=False, highlight=False)


@app.command("status")
def status(
    message_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The broadcast's id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The delivery figures of one broadcast."""
    detail = in_transaction(
        lambda session: _detail(session, message_id),
    )
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    table = Table(show_header=False, box=None)
    table.add_row("broadcast", str(detail.id))
    table.add_row("status", detail.status)
    table.add_row("audience", detail.recipient_group or detail.recipient_type)
    for label, value in (
        ("recipients", detail.total_recipients),
        ("delivered", detail.successful_deliveries),
        ("failed", detail.failed_deliveries),
        ("pending", detail.pending_deliveries),
        ("cancelled", detail.cancelled_deliveries),
        ("deleted", detail.deleted_deliveries),
    ):
        table.add_row(label, str(value))
    if detail.deletion is not None:
        table.add_row("deletion", f"{detail.deletion} ({detail.delete_refused} refused)")
    for label, moment in (
        ("scheduled at", detail.scheduled_at),
        ("started at", detail.started_at),
        ("sent at", detail.sent_at),
        ("cancelled at", detail.cancelled_at),
    ):
        if moment is not None:
            table.add_row(label, moment.isoformat())
    console.print(table)


async def _detail(session: AsyncSession, message_id: int) -> MessageDetail:
    return MessageDetail.model_validate(await get_message(session, message_id))
