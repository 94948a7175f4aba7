"""`coursedesk media …`: the uploaded files broadcasts send."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.media_pruning import (
    PRUNE_BATCH,
    Pruned,
    prune_media,
    unused_media,
)
from coursedesk.cli.common import in_transaction, settings

app = typer.Typer(help="Uploaded media files.", no_args_is_help=True)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


@app.command("prune")
def prune(
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            max=3650,
            help="Keep files uploaded fewer days ago than this (default: MEDIA_RETENTION_DAYS)",
        ),
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Delete them; without it, only say what would go")
    ] = False,
) -> None:
    """Delete uploaded files that no broadcast or draft uses, once they are old enough.

    Workers do this every hour by themselves.
    """
    retention_days = days or settings().media_retention_days

    async def count(session: AsyncSession) -> Pruned:
        return await unused_media(await session.connection(), retention_days=retention_days)

    async def delete_batch(session: AsyncSession) -> Pruned:
        return await prune_media(await session.connection(), retention_days=retention_days)

    if not execute:
        found = in_transaction(count)
        typer.echo(
            f"would delete {found.files} unused files ({_megabytes(found.bytes)}) "
            f"uploaded over {retention_days} days ago; run again with --execute to delete them"
        )
        return
    files = size = 0
    while True:
        pruned = in_transaction(delete_batch)
        files, size = files + pruned.files, size + pruned.bytes
        if pruned.files < PRUNE_BATCH:
            break
    typer.echo(
        f"deleted {files} unused files ({_megabytes(size)}) uploaded over {retention_days} days ago"
    )
