"""Running the stand-in as a real HTTP server: in the foreground, or in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from coursedesk.telegram.standin.app import create_standin_app
from coursedesk.telegram.standin.core import BotApiStandin
from coursedesk.telegram.standin.faults import Faults

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


class StandinThread:
    """A stand-in served by uvicorn on a thread of its own, for tests and the demo.

    `with StandinThread(standin) as server:` listens on 127.0.0.1 on a free port (or
    `port`) and answers at `server.base_url` until the block ends.
    """

    def __init__(self, standin: BotApiStandin, host: str = "127.0.0.1", port: int = 0) -> None:
        self.standin = standin
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            create_standin_app(standin),
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"telegram-standin-{self.port}",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """The TELEGRAM_API_BASE_URL that reaches this stand-in."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the stand-in Bot API did not start on {self.base_url}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._socket.close()

    def __enter__(self) -> StandinThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
