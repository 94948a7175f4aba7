"""Updates shaped as Telegram sends them, for the webhook tests."""

from __future__ import annotations

from typing import Any

SECRET = "webhook-secret-for-tests"


def user(
    user_id: int = 501, username: str | None = "anna", first_name: str = "Anna"
) -> dict[str, Any]:
    found: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username is not None:
        found["username"] = username
    return found


def message_update(
    update_id: int, text: str, sender: dict[str, Any] | None = None
) -> dict[str, Any]:
    sender = sender or user()
    return {
        "update_id": update_id,
        "message": {
            "message_id": 10 + update_id,
            "from": sender,
            "chat": {"id": sender["id"], "type": "private"},
            "date": 1_750_000_000,
            "text": text,
        },
    }


def membership_update(
    update_id: int, status: str, sender: dict[str, Any] | None = None
) -> dict[str, Any]:
    sender = sender or user()
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": {"id": sender["id"], "type": "private"},
            "from": sender,
            "date": 1_750_000_000,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True}},
            "new_chat_member": {"status": status, "user": {"id": 1, "is_bot": True}},
        },
    }
