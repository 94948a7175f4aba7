"""Running the stand-in as a real HTTP server: in the foreground, or in a background thread."""

from __future__ import annotations

import uvicorn

from coursedesk.telegram.standin.app import create_standin_app
from coursedesk.telegram.standin.core import BotApiStandin
from coursedesk.telegram.standin.faults import Faults
from coursedesk.web.threaded import ThreadedServer

_STARTUP_TIMEOUT_SECONDS = 10.0


def serve_standin(host: str, port: int, token: str, faults: Faults | None = None) -> None:
    """Serve a stand-in Bot API for `token` until interrupted."""
    standin = BotApiStandin(token, faults)
    uvicorn.run(
        create_standin_app(standin),
        host=host,
        port=port,
        lifespan="off",
        ws="none",
        log_level="info",
    )


class StandinThread(ThreadedServer):
    """A stand-in served by uvicorn on a thread of its own, for tests and the demo.

    `with StandinThread(standin) as server:` answers at `server.base_url` (the
    TELEGRAM_API_BASE_URL that reaches it) until the block ends.
    """

    def __init__(self, standin: BotApiStandin, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            create_standin_app(standin),
            host=host,
            port=port,
            name="telegram-standin",
            startup_timeout=_STARTUP_TIMEOUT_SECONDS,
        )
        self.standin = standin
