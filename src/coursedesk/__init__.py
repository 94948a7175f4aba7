"""coursedesk: the back office of a course school that runs on a Telegram bot."""

__version__ = "0.1.0"
