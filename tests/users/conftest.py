"""Fixtures of the users tests."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from users_data import Insert, writer

from coursedesk.sources.models import Booking, Event, FreeLessonRegistration


@pytest.fixture
def add_bookings(sync_engine: Engine) -> Insert:
    return writer(sync_engine, Booking)


@pytest.fixture
def add_events(sync_engine: Engine) -> Insert:
    return writer(sync_engine, Event)


@pytest.fixture
def add_registrations(sync_engine: Engine) -> Insert:
    return writer(sync_engine, FreeLessonRegistration)
