"""The Bot API client driven against the stand-in over real HTTP: each answer, its outcome."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from coursedesk.errors import ConfigError
from coursedesk.telegram.client import (
    BACKOFF_CAP_SECONDS,
    MAX_SEND_ATTEMPTS,
    Blocked,
    BotIdentity,
    Deleted,
    Delivered,
    PermanentFailure,
    RetryAfter,
    TelegramClient,
    TelegramConfigError,
    TelegramUnavailable,
    TransientFailure,
    backoff_delay,
)
from coursedesk.telegram.standin import BotApiStandin


async def test_sent_messages_are_delivered_and_logged_per_chat(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    assert await telegram_client.send_message(101, "<b>Hello</b>", "HTML") == Delivered(1)
    assert await telegram_client.send_message(202, "Hi *there*", "MarkdownV2") == Delivered(1)
    assert await telegram_client.send_message(101, "plain & <simple>") == Delivered(2)

    assert [(m.message_id, m.text, m.parse_mode) for m in standin.received(101)] == [
        (1, "<b>Hello</b>", "HTML"),
        (2, "plain & <simple>", None),
    ]
    assert [(m.chat_id, m.text) for m in standin.received(202)] == [(202, "Hi *there*")]


async def test_concurrent_sends_to_one_chat_get_distinct_increasing_ids(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    results = await asyncio.gather(
        *(telegram_client.send_message(7, f"message {n}") for n in range(20))
    )

    assert sorted(r.message_id for r in results if isinstance(r, Delivered)) == list(range(1, 21))
    assert len(standin.received(7)) == 20


async def test_forced_flood_control_is_retry_after_with_its_seconds(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    standin.update_faults({"flood_rate": 1.0, "flood_retry_after": 7})

    assert await telegram_client.send_message(5, "hello") == RetryAfter(7.0)
    assert standin.received() == []


async def test_rate_limit_answers_retry_after_beyond_the_limit(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    standin.update_faults({"rate_limit_per_second": 2})

    results = [await telegram_client.send_message(5, f"n{n}") for n in range(3)]

    assert results == [Delivered(1), Delivered(2), RetryAfter(1.0)]


async def test_server_error_is_transient_and_not_retried_by_the_library(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    standin.update_faults({"server_error_rate": 1.0})

    results = [await telegram_client.send_message(5, "hello") for _ in range(4)]

    assert {type(r) for r in results} == {TransientFailure}
    assert {r.description for r in results if isinstance(r, TransientFailure)} <= {
        "Bad Gateway",
        "Internal Server Error",
    }
    assert len(standin.calls()) == 4


async def test_blocked_chat_is_blocked(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    standin.update_faults({"blocked_chats": [66]})

    result = await telegram_client.send_message(66, "hello")

    assert result == Blocked("Forbidden: bot was blocked by the user")


async def test_missing_chat_is_a_permanent_failure_with_telegrams_words(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    standin.update_faults({"missing_chats": [404]})

    result = await telegram_client.send_message(404, "hello")

    assert result == PermanentFailure("Bad Request: chat not found")


async def test_markup_telegram_cannot_parse_is_a_permanent_failure(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    result = await telegram_client.send_message(5, "<b>unclosed", "HTML")

    assert result == PermanentFailure(
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    )
    assert standin.received() == []


async def test_an_answer_slower_than_the_timeout_is_transient(
    bot_token: str, api_base_url: str, standin: BotApiStandin
) -> None:
    standin.update_faults({"latency_ms": 3000})

    async with TelegramClient(bot_token, api_base_url, timeout=0.2) as client:
        result = await client.send_message(5, "slow")

    assert isinstance(result, TransientFailure)
    # The stand-in acts before it answers: a timed-out message may still have arrived.
    assert [m.text for m in standin.received(5)] == ["slow"]


async def test_an_unreachable_api_is_transient(bot_token: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    async with TelegramClient(bot_token, f"http://127.0.0.1:{closed_port}", timeout=2) as client:
        result = await client.send_message(5, "hello")
        with pytest.raises(TelegramUnavailable, match="could not be asked"):
            await client.get_me()

    assert isinstance(result, TransientFailure)


async def test_delete_message_deletes_once(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    sent = await telegram_client.send_message(5, "to be deleted")
    assert isinstance(sent, Delivered)

    assert await telegram_client.delete_message(5, sent.message_id) == Deleted()
    assert await telegram_client.delete_message(5, sent.message_id) == PermanentFailure(
        "Bad Request: message to delete not found"
    )
    assert [(d.chat_id, d.message_id) for d in standin.deleted()] == [(5, sent.message_id)]


async def test_delete_message_is_refused_after_48_hours(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    old = await telegram_client.send_message(5, "old news")
    standin.update_faults({"clock_offset_seconds": 49 * 3600})
    fresh = await telegram_client.send_message(5, "fresh news")
    assert isinstance(old, Delivered)
    assert isinstance(fresh, Delivered)

    assert await telegram_client.delete_message(5, old.message_id) == PermanentFailure(
        "Bad Request: message can't be deleted for everyone"
    )
    assert await telegram_client.delete_message(5, fresh.message_id) == Deleted()


async def test_delete_in_a_blocked_chat_is_blocked(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    sent = await telegram_client.send_message(9, "hello")
    assert isinstance(sent, Delivered)
    standin.update_faults({"blocked_chats": [9]})

    assert isinstance(await telegram_client.delete_message(9, sent.message_id), Blocked)


async def test_get_me_names_the_bot(telegram_client: TelegramClient) -> None:
    assert await telegram_client.get_me() == BotIdentity(
        id=123456, username="coursedesk_standin_bot", first_name="Coursedesk Stand-in"
    )


async def test_a_wrong_token_is_one_clear_config_error_that_hides_the_token(
    api_base_url: str, standin: BotApiStandin
) -> None:
    async with TelegramClient("999:wrong-secret", api_base_url) as client:
        with pytest.raises(TelegramConfigError) as sending:
            await client.send_message(5, "hello")
        with pytest.raises(TelegramConfigError) as asking:
            await client.get_me()

    for raised in (sending.value, asking.value):
        message = str(raised)
        assert isinstance(raised, ConfigError)
        assert message.startswith("TELEGRAM_BOT_TOKEN: refused by the Bot API")
        assert "Unauthorized" in message
        assert "wrong-secret" not in message
        assert "\n" not in message
        assert raised.__cause__ is None
    assert standin.received() == []


def test_a_missing_token_is_a_config_error() -> None:
    with pytest.raises(TelegramConfigError, match="TELEGRAM_BOT_TOKEN"):
        TelegramClient("", "http://127.0.0.1:9")


async def test_a_closed_client_can_be_opened_again(bot_token: str, api_base_url: str) -> None:
    client = TelegramClient(bot_token, api_base_url)
    async with client:
        assert isinstance(await client.send_message(5, "first"), Delivered)
    async with client:
        assert isinstance(await client.send_message(5, "second"), Delivered)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        step = min(BACKOFF_CAP_SECONDS, 2.0 ** (attempt - 1))
        delay = backoff_delay(attempt, rng)
        assert step / 2 <= delay <= step
    assert backoff_delay(1000, rng) <= BACKOFF_CAP_SECONDS
    assert MAX_SEND_ATTEMPTS >= 2


def test_backoff_is_reproducible_with_a_seeded_generator() -> None:
    first = [backoff_delay(n, random.Random(9)) for n in range(1, 6)]
    again = [backoff_delay(n, random.Random(9)) for n in range(1, 6)]
    assert first == again


def test_backoff_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0)
