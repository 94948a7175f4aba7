"""Webhook fixtures: the app with a webhook secret set."""

from __future__ import annotations

import pytest
from webhook_updates import SECRET

from coursedesk.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"telegram_webhook_secret": SECRET})
