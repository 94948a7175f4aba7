"""The real app served by uvicorn on 127.0.0.1 in a thread of its own, for the browser."""

from __future__ import annotations

from coursedesk.config import Settings
from coursedesk.web.app import create_app
from coursedesk.web.threaded import ThreadedServer


class LiveServer(ThreadedServer):
    """`with LiveServer(settings) as server:` serves the app at `server.base_url`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(create_app(settings), lifespan="on", name="coursedesk-live")
