"""Imports every model module so that Base.metadata knows every table."""

from __future__ import annotations

from sqlalchemy import MetaData

from coursedesk.accounts import models as _accounts
from coursedesk.analytics import models as _analytics
from coursedesk.audit import models as _audit
from coursedesk.broadcasts import models as _broadcasts
from coursedesk.db.base import Base
from coursedesk.sources import models as _sources
from coursedesk.system import models as _system
from coursedesk.telegram import models as _telegram
from coursedesk.users import models as _users

MODEL_MODULES = (
    _accounts,
    _analytics,
    _audit,
    _broadcasts,
    _sources,
    _system,
    _telegram,
    _users,
)


def metadata() -> MetaData:
    return Base.metadata
