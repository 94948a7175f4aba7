"""`coursedesk serve`: the web app and JSON API."""

from __future__ import annotations

from typing import Annotated

import typer

from coursedesk.cli.common import (
    database_url,
    fail,
    require_free_address,
    serve_app,
    settings,
)
from coursedesk.web.app import create_app

HostOption = Annotated[str, typer.Option("--host", help="Address to listen on")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on")]


def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Serve the web app and JSON API."""
    current = settings()
    if current.secret_key is None:
        fail("SECRET_KEY: must be set to serve (at least 16 characters)", code=2)
    require_free_address(host, port)
    # Resolved here, not in the app's start-up, so that a wrong setting is one line.
    resolved = current.model_copy(update={"database_url": database_url()})
    serve_app(
        create_app(resolved),
        host=host,
        port=port,
        log_level="info",
        forwarded_allow_ips=resolved.forwarded_allow_ips,
    )
