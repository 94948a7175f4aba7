"""`coursedesk broadcast send` run as a real process: a dry run refuses what the send does."""

from __future__ import annotations

from pathlib import Path

from broadcast_helpers import add_many_users, rows, scalar
from media_samples import JPEG, MP4, PDF, PNG
from sqlalchemy import Engine

from cli_process import RunCli, run_process

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


def _files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "photo.jpg": JPEG,
        "other.png": PNG,
        "lesson.mp4": MP4,
        "plan.pdf": PDF,
        "empty.jpg": b"",
        "huge.jpg": JPEG + bytes(10 * 1024 * 1024),
    }
    for name, content in made.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in made}


def test_media_buttons_and_options_from_the_command_line(
    run_cli: RunCli, sync_engine: Engine, tmp_path: Path
) -> None:
    add_many_users(sync_engine, 2001, 3)
    files = _files(tmp_path)

    dry = run_cli(
        "broadcast", "send", "--audience", "all", "--text", "Caption",
        "--media", str(files["photo.jpg"]), "--dry-run",
    )  # fmt: skip
    assert (dry.returncode, dry.stdout) == (0, "3\n"), dry.stderr
    assert scalar(sync_engine, "SELECT count(*) FROM media_files") == 0

    single = run_cli(
        "broadcast", "send", "--audience", "all", "--text", "Caption",
        "--media", str(files["photo.jpg"]),
        "--button", "Book=https://school.example/book?a=1|Later=https://school.example/later",
        "--button", "Site=https://school.example",
        "--pin", "--silent", "--protect-content", "--no-link-preview",
    )  # fmt: skip
    album = run_cli(
        "broadcast", "send", "--audience", "all", "--text", "",
        "--media", str(files["photo.jpg"]), "--media", str(files["lesson.mp4"]),
        "--media", str(files["other.png"]),
    )  # fmt: skip

    assert single.returncode == 0, single.stderr
    assert album.returncode == 0, album.stderr
    [stored] = rows(
        sync_engine,
        "SELECT buttons, pin, silent, protect_content, disable_link_preview "
        "FROM message_history WHERE id = :m",
        m=int(single.stdout),
    )
    assert stored.buttons == [
        [
            {"text": "Book", "url": "https://school.example/book?a=1"},
            {"text": "Later", "url": "https://school.example/later"},
        ],
        [{"text": "Site", "url": "https://school.example"}],
    ]
    assert (stored.pin, stored.silent, stored.protect_content, stored.disable_link_preview) == (
        True, True, True, True,
    )  # fmt: skip
    kinds = rows(
        sync_engine,
        "SELECT b.kind, f.filename, f.size FROM broadcast_media AS b "
        "JOIN media_files AS f ON f.id = b.media_id WHERE b.message_id = :m ORDER BY position",
        m=int(album.stdout),
    )
    assert [tuple(row) for row in kinds] == [
        ("photo", "photo.jpg", len(JPEG)),
        ("video", "lesson.mp4", len(MP4)),
        ("photo", "other.png", len(PNG)),
    ]


def test_bad_media_and_buttons_are_one_line_and_queue_nothing(
    run_cli: RunCli, sync_engine: Engine, tmp_path: Path
) -> None:
    add_many_users(sync_engine, 3001, 2)
    files = _files(tmp_path)
    send = ("broadcast", "send", "--audience", "all", "--text", "hi")
    cases = [
        (("--media", str(tmp_path / "missing.jpg")), "missing.jpg: no such file"),
        (("--media", str(files["empty.jpg"])), "empty.jpg: is empty"),
        (("--media", str(files["huge.jpg"])), "huge.jpg: a photo may be at most 10 MB"),
        (("--media", str(files["plan.pdf"]), "--media", str(files["photo.jpg"])),
         "media[0]: an album holds photos and videos only"),
        (("--media", str(files["photo.jpg"])) * 11, "at most 10 files"),
        (("--button", "Book"), "--button 'Book': write Text=URL"),
        (("--button", "Book=https://a.example|"), "write Text=URL"),
        (("--button", "Book=ftp://a.example"), "buttons[0][0].url: an http:// or https://"),
        (("--button", "A=https://a.example|B=https://a.example|C=https://a.example|"
          "D=https://a.example|E=https://a.example"), "buttons[0]: a row holds 1 to 4"),
        (("--media", str(files["photo.jpg"]), "--media", str(files["other.png"]),
          "--button", "A=https://a.example"), "no buttons under an album"),
        (("--text", "{{nickname}}"), "unknown variable {{nickname}}"),
    ]  # fmt: skip
    for arguments, fragment in cases:
        for dry_run in ((), ("--dry-run",)):
            sent = run_cli(*send, *arguments, *dry_run)
            assert sent.returncode == 2, (arguments, sent.stderr)
            assert sent.stdout == ""
            assert sent.stderr.startswith("coursedesk: error: "), sent.stderr
            assert fragment in sent.stderr, (arguments, sent.stderr)
            assert sent.stderr.count("\n") == 1, sent.stderr
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM media_files") == 0


def test_links_are_tracked_with_public_base_url_unless_told_not_to(
    database_url: str, sync_engine: Engine, tmp_path: Path, run_cli: RunCli
) -> None:
    add_many_users(sync_engine, 3001, 2)
    environment = {
        "DATABASE_URL": database_url,
        "COURSEDESK_HOME": str(tmp_path / "home"),
        "PUBLIC_BASE_URL": "https://school.example/",
    }
    send = ("broadcast", "send", "--audience", "all", "--text", "See https://school.example/a")
    button = ("--button", "Go=https://school.example/b")
    tracked = run_process(*send, *button, env=environment)
    untracked = run_process(*send, *button, "--no-track-links", env=environment)
    refused = run_cli(*send, "--dry-run")
    assert (tracked.returncode, untracked.returncode) == (0, 0), tracked.stderr + untracked.stderr
    made = {
        row.id: row.track_links
        for row in rows(sync_engine, "SELECT id, track_links FROM message_history")
    }
    assert made == {int(tracked.stdout): True, int(untracked.stdout): False}
    links = rows(sync_engine, "SELECT message_id, position, url FROM broadcast_links ORDER BY 2")
    assert [(link.message_id, link.position, link.url) for link in links] == [
        (int(tracked.stdout), 0, "https://school.example/a"),
        (int(tracked.stdout), 1, "https://school.example/b"),
    ]
    # Without PUBLIC_BASE_URL nothing is tracked, and nothing is refused either.
    assert (refused.returncode, refused.stdout) == (0, "2\n"), refused.stderr
    status = run_process("broadcast", "status", tracked.stdout.strip(), "--json", env=environment)
    assert status.returncode == 0, status.stderr
    assert '"clicked_count": 0' in status.stdout and '"unique_clicks": 0' in status.stdout
