"""`coursedesk broadcast …`: queue a broadcast and follow its delivery."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts import earnings
from coursedesk.broadcasts.audiences import Audience, parse_audience_argument
from coursedesk.broadcasts.composition import Button, ContentRequest, MediaChoice, Options
from coursedesk.broadcasts.detail import message_detail
from coursedesk.broadcasts.media import CHUNK_BYTES, MediaWriter
from coursedesk.broadcasts.schemas import MessageDetail, OutcomeAnswer
from coursedesk.broadcasts.service import (
    CheckedBroadcast,
    CreatedBroadcast,
    check_broadcast,
    create_broadcast,
)
from coursedesk.cli.common import (
    cli_actor,
    console,
    err_console,
    in_transaction,
    print_json,
    read_stdin,
    settings,
)
from coursedesk.errors import InvalidInput, TooLarge

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


def _parse_buttons(values: Sequence[str]) -> list[list[Button]]:
    """Each --button is a row: `Text=URL`, buttons of one row separated by `|`."""
    rows = []
    for value in values:
        row = []
        for spec in value.split("|"):
            label, separator, url = spec.partition("=")
            if not separator or not label.strip() or not url.strip():
                raise InvalidInput(
                    f"--button {value!r}: write Text=URL, with | between the buttons of a row"
                )
            row.append(Button(text=label.strip(), url=url.strip()))
        rows.append(row)
    return rows


def _readable(files: Sequence[Path]) -> list[Path]:
    for path in files:
        if not path.is_file():
            raise InvalidInput(f"--media {path}: no such file")
    return list(files)


async def _upload(session: AsyncSession, path: Path, actor: str) -> int:
    """The file stored as media, read a slice at a time; refusals name the file."""
    writer = MediaWriter(
        session,
        filename=path.name,
        declared_type=mimetypes.guess_type(path.name)[0],
        actor=actor,
    )
    try:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                await writer.write(chunk)
        return (await writer.finish()).media_id
    except OSError as exc:
        raise InvalidInput(f"--media {path}: cannot be read: {exc.strerror}") from None
    except (InvalidInput, TooLarge) as exc:
        raise InvalidInput(f"--media {path}: {str(exc).removeprefix('file: ')}") from None


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
    media: Annotated[
        list[Path] | None,
        typer.Option(
            "--media",
            help="A file to send, the text as its caption; repeat for an album (2-10)",
        ),
    ] = None,
    button: Annotated[
        list[str] | None,
        typer.Option("--button", help="A row of link buttons: Text=URL, | between buttons"),
    ] = None,
    pin: Annotated[bool, typer.Option("--pin", help="Pin it in each chat")] = False,
    silent: Annotated[bool, typer.Option("--silent", help="Deliver it without a sound")] = False,
    protect_content: Annotated[
        bool, typer.Option("--protect-content", help="It cannot be forwarded or saved")
    ] = False,
    no_link_preview: Annotated[
        bool, typer.Option("--no-link-preview", help="Show no preview of its first link")
    ] = False,
    no_track_links: Annotated[
        bool,
        typer.Option(
            "--no-track-links",
            help="Send its links as they are, not through PUBLIC_BASE_URL/r/… (the default "
            "when PUBLIC_BASE_URL is set)",
        ),
    ] = False,
    holdout: Annotated[
        int,
        typer.Option(
            "--holdout",
            help="Hold this percentage (0-50) of the audience back as a control group",
        ),
    ] = 0,
) -> None:
    """Queue a broadcast and print its id (with --dry-run: print the recipient count).

    --media files are uploaded in the same transaction as the broadcast: a refused
    broadcast keeps none of them, and a dry run keeps nothing at all.
    """
    message = read_stdin("--text -") if text == "-" else text
    if "\0" in message:
        raise InvalidInput("--text: a message cannot contain NUL characters")
    chosen = _parse_audience(audience)
    when = _parse_at(at)
    files = _readable(media or [])
    rows = _parse_buttons(button or [])
    options = Options(
        pin=pin,
        silent=silent,
        protect_content=protect_content,
        disable_link_preview=no_link_preview,
    )
    actor = cli_actor()
    public_base_url = settings().public_base_url

    async def content(session: AsyncSession) -> ContentRequest:
        ids = [await _upload(session, path, actor) for path in files]
        return ContentRequest(
            media=[MediaChoice(media_id=media_id) for media_id in ids],
            buttons=rows,
            options=options,
            track_links=False if no_track_links else None,
            holdout_percent=holdout,
        )

    async def dry(session: AsyncSession) -> CheckedBroadcast:
        checked = await check_broadcast(
            session,
            text=message,
            audience=chosen,
            parse_mode=parse_mode,
            scheduled_at=when,
            content=await content(session),
            public_base_url=public_base_url,
        )
        await session.rollback()
        return checked

    async def create(session: AsyncSession) -> CreatedBroadcast:
        return await create_broadcast(
            session,
            text=message,
            audience=chosen,
            actor=actor,
            parse_mode=parse_mode,
            scheduled_at=when,
            content=await content(session),
            public_base_url=public_base_url,
        )

    if dry_run:
        checked = in_transaction(dry)
        typer.echo(checked.total_recipients)
        invalid = checked.invalid_user_ids
    else:
        created = in_transaction(create)
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
        ("control group", detail.holdout_count),
    ):
        table.add_row(label, str(value))
    if detail.track_links:
        table.add_row("clicked", str(detail.clicked_count))
        for link in detail.links:
            table.add_row(
                f"link {link.position}",
                f"{link.url} ({link.unique_clicks} unique, {link.total_clicks} total clicks)",
            )
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
    return await message_detail(session, message_id)


@app.command("outcome")
def outcome(
    message_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The broadcast's id")],
    window_days: Annotated[
        int,
        typer.Option("--window-days", help=f"Days after each send, 1-{earnings.MAX_WINDOW_DAYS}"),
    ] = earnings.DEFAULT_WINDOW_DAYS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as the API answers")] = False,
) -> None:
    """What a broadcast earned: its delivered recipients beside its control group."""
    found = in_transaction(lambda session: earnings.outcome_of(session, message_id, window_days))
    answer = OutcomeAnswer.model_validate(asdict(found))
    if as_json:
        print_json(answer.model_dump(mode="json"))
        return
    table = Table(title=f"broadcast {message_id}, within {window_days} days", box=None)
    table.add_column("")
    table.add_column("sent", justify="right")
    if answer.holdout is not None:
        table.add_column("control group", justify="right")
    for name in earnings.GROUP_FIGURES:
        cells = [_share(getattr(answer.sent, name), answer.sent.recipients, name)]
        if answer.holdout is not None:
            held = answer.holdout
            cells.append(_share(getattr(held, name), held.recipients, name))
        table.add_row(name.replace("_", " "), *cells)
    console.print(table)


def _share(count: int, total: int, name: str) -> str:
    if name == "recipients" or total == 0:
        return f"{count:,}"
    return f"{count:,} ({100 * count / total:.1f} %)"
