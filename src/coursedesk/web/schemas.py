"""What every JSON answer writes the same way (docs/reference.md §5.1)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import PlainSerializer

# ISO 8601 with a numeric offset ("+00:00" for UTC), on every route, rather than "Z".
Timestamp = Annotated[
    dt.datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]
