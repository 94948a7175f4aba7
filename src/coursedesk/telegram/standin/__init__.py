"""A local stand-in for the Telegram Bot API, with faults to inject and a log of what it got."""

from coursedesk.telegram.standin.app import create_standin_app
from coursedesk.telegram.standin.core import (
    ApiCall,
    BotApiStandin,
    CallbackAnswer,
    DeletedMessage,
    PinnedMessage,
    ReceivedFile,
    ReceivedMessage,
)
from coursedesk.telegram.standin.faults import Faults, FaultsError
from coursedesk.telegram.standin.parsing import InlineButton
from coursedesk.telegram.standin.server import StandinThread, serve_standin

__all__ = [
    "ApiCall",
    "BotApiStandin",
    "CallbackAnswer",
    "DeletedMessage",
    "Faults",
    "FaultsError",
    "InlineButton",
    "PinnedMessage",
    "ReceivedFile",
    "ReceivedMessage",
    "StandinThread",
    "create_standin_app",
    "serve_standin",
]
