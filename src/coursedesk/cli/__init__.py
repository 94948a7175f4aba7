"""The `coursedesk` command line."""

from __future__ import annotations

import logging
import sys

import typer
from sqlalchemy.exc import DBAPIError

# Typer ships its own copy of click; its exceptions live here.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from coursedesk.cli import admin, db
from coursedesk.cli import broadcast as broadcast_cli
from coursedesk.cli import db_data as _db_data  # noqa: F401 (registers its db commands)
from coursedesk.cli import media as media_cli
from coursedesk.cli import telegram as telegram_cli
from coursedesk.cli.common import console, err_console
from coursedesk.cli.demo import demo
from coursedesk.cli.serve import serve
from coursedesk.cli.worker import worker
from coursedesk.errors import ConfigError, CoursedeskError, InvalidInput

app = typer.Typer(
    name="coursedesk",
    help="The back office of a course school that runs on a Telegram bot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.command()(demo)
app.command()(serve)
app.command()(worker)
app.add_typer(broadcast_cli.app, name="broadcast")
app.add_typer(media_cli.app, name="media")
app.add_typer(telegram_cli.app, name="telegram")


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: bad input is one line and exit 2, a failure one line and exit 1;
    KeyboardInterrupt and SystemExit pass through as they are."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = app(args=argv, prog_name="coursedesk", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            console.print(exc.ctx.get_help(), markup=False, highlight=False)
        sys.exit(2)
    except ClickException as exc:
        err_console.print(f"coursedesk: error: {_one_line(exc.format_message())}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("coursedesk: aborted", markup=False)
        sys.exit(130)
    except (ConfigError, InvalidInput) as exc:
        err_console.print(f"coursedesk: error: {_one_line(str(exc))}", markup=False)
        sys.exit(2)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err_console.print(f"coursedesk: error: database: {reason}", markup=False)
        sys.exit(1)
    except CoursedeskError as exc:
        err_console.print(f"coursedesk: error: {_one_line(str(exc))}", markup=False)
        sys.exit(1)
    except Exception as exc:  # the last resort: a bug is still one line, never a traceback
        name = type(exc).__name__
        err_console.print(
            f"coursedesk: error: unexpected {name}: {_one_line(str(exc))}", markup=False
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
