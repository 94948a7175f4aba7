"""`python -m coursedesk.telegram.standin`: serve a stand-in Bot API on this machine."""

from __future__ import annotations

import argparse

from coursedesk.telegram.standin.faults import FaultsError, parse_faults
from coursedesk.telegram.standin.server import serve_standin


def _chat_ids(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of chat ids: {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m coursedesk.telegram.standin",
        description="Serve a stand-in Telegram Bot API at http://HOST:PORT/bot<TOKEN>/<method>.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", required=True, help="the only bot token accepted")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument("--rate-limit", type=int, help="sends a second before 429")
    parser.add_argument("--flood-rate", type=float, default=0.0, help="fraction answered 429")
    parser.add_argument("--flood-retry-after", type=int, default=3, help="their retry_after")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction answered 5xx")
    parser.add_argument("--blocked", type=_chat_ids, default=[], help="chat ids, comma-separated")
    parser.add_argument("--missing", type=_chat_ids, default=[], help="chat ids, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        faults = parse_faults(
            {
                "seed": arguments.seed,
                "rate_limit_per_second": arguments.rate_limit,
                "flood_rate": arguments.flood_rate,
                "flood_retry_after": arguments.flood_retry_after,
                "server_error_rate": arguments.fail_rate,
                "blocked_chats": arguments.blocked,
                "missing_chats": arguments.missing,
                "latency_ms": arguments.latency_ms,
                "jitter_ms": arguments.jitter_ms,
            }
        )
    except FaultsError as error:
        parser.error(str(error))
    serve_standin(arguments.host, arguments.port, arguments.token, faults)


if __name__ == "__main__":
    main()
