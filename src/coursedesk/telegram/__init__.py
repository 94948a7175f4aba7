"""Talking to Telegram: the Bot API client, the webhook and a local stand-in server."""
