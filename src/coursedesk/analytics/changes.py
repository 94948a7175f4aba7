"""Announces changes of the figures: writes to source tables made through the app, once
committed, and batches folded into the summaries.

This is for what lives outside the database, such as a cache of figures: it subscribes
once; every service that changes bookings, events or registrations calls `record()`,
and the folder calls `announce()` after each batch. A transaction that rolls back
announces nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

ChangeListener = Callable[[], None]
_PENDING = "coursedesk.source_rows_changed"


class SourceChanges:
    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` after each such commit; answers the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def record(self, session: AsyncSession) -> None:
        """Note that this session's transaction changed source rows."""
        sync_session = session.sync_session
        if _PENDING in sync_session.info:
            sync_session.info[_PENDING] = True
            return
        sync_session.info[_PENDING] = True
        event.listen(sync_session, "after_commit", self._after_commit)
        event.listen(sync_session, "after_rollback", self._after_rollback)

    def announce(self) -> None:
        """Tell every listener now, of a change committed outside a session (raw SQL)."""
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # one failing subscriber must not hide the change from others
                log.exception("a source-change listener failed")

    def _after_commit(self, session: Session) -> None:
        if not session.info.get(_PENDING):
            return
        session.info[_PENDING] = False
        self.announce()

    def _after_rollback(self, session: Session) -> None:
        session.info[_PENDING] = False


source_changes = SourceChanges()
