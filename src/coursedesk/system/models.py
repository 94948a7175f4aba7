"""The scripts of POST /api/db-migrate while they run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, Text, false, func
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base


class ScriptRun(Base):
    """A script being run: the backend running it, and the actor its changes are audited
    under. The app writes it before the script begins; the script's role may not."""

    __tablename__ = "script_runs"

    backend_pid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    actor: Mapped[str] = mapped_column(Text)
    # Set by record_script_run(), so that a run's audit entry is written once.
    recorded: Mapped[bool] = mapped_column(Boolean, server_default=false())
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
