"""`coursedesk broadcast send` run as a real process: a dry run refuses what the send does."""

from __future__ import annotations

from broadcast_helpers import add_many_users, scalar
from sqlalchemy import Engine

from cli_process import RunCli

REFUSED_SENDS = [
    ("--audience", "all", "--text", "<b>unclosed", "--parse-mode", "HTML"),
    ("--audience", "all", "--text", " "),
    ("--audience", "all", "--text", "hi", "--parse-mode", "bbcode"),
    ("--audience", "all", "--text", "hi", "--at", "2020-01-01T00:00:00+00:00"),
    ("--audience", "users:404", "--text", "hi"),
]


def test_a_dry_run_refuses_what_the_send_refuses(run_cli: RunCli, sync_engine: Engine) -> None:
    add_many_users(sync_engine, 1001, 3)
    for arguments in REFUSED_SENDS:
        sent = run_cli("broadcast", "send", *arguments)
        assert sent.returncode == 2, (arguments, sent.stderr)
        assert sent.stderr.startswith("coursedesk: error: "), arguments
        dry_run = run_cli("broadcast", "send", *arguments, "--dry-run")
        assert (dry_run.returncode, dry_run.stdout, dry_run.stderr) == (
            sent.returncode,
            sent.stdout,
            sent.stderr,
        ), arguments

    counted = run_cli(
        "broadcast",
        "send",
        *("--audience", "users:1001,1002,404", "--text", "<b>hi</b>", "--parse-mode", "HTML"),
        "--dry-run",
    )
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout == "2\n"
    assert counted.stderr == "not users, left out: 404\n"
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0
