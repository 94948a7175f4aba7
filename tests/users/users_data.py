"""Writers of source rows for the users tests: plain SQL, as the bot writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from coursedesk.analytics.folding import fold_pending

Insert = Callable[..., list[int]]


def writer(engine: Engine, model: Any) -> Insert:
    """Inserts rows of `model`, each call its own transaction, and folds them into the
    summaries as the folder would; answers their ids."""

    def write(*rows: Any) -> list[int]:
        with engine.begin() as connection:
            result = connection.execute(
                insert(model).returning(model.id, sort_by_parameter_order=True), list(rows)
            )
            ids = list(result.scalars())
        fold_pending(engine)
        return ids

    return write
