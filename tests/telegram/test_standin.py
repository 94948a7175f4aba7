"""The stand-in Bot API: its HTTP surface, its controls, and its faults, seeded and timed."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from coursedesk.telegram.standin import BotApiStandin, Faults, FaultsError, ReceivedMessage
from coursedesk.telegram.standin.__main__ import main as standin_main
from coursedesk.telegram.standin.core import BotApiError
from coursedesk.web.threaded import free_port

TOKEN = "42:core-token"


class ManualClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _send(standin: BotApiStandin, chat_id: int, text: str = "hello") -> int:
    result = standin.call(TOKEN, "sendMessage", {"chat_id": chat_id, "text": text})
    assert isinstance(result, dict)
    message_id = result["message_id"]
    assert isinstance(message_id, int)
    return message_id


def _error_of(standin: BotApiStandin, method: str, parameters: dict[str, object]) -> BotApiError:
    with pytest.raises(BotApiError) as raised:
        standin.call(TOKEN, method, parameters)
    return raised.value


_FIELDS = {"chat_id": "31", "text": "a <b>bold</b> move", "parse_mode": "HTML"}


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({"json": {**_FIELDS, "chat_id": 31}}, id="json"),
        pytest.param({"data": _FIELDS}, id="urlencoded"),
        pytest.param({"files": {k: (None, v) for k, v in _FIELDS.items()}}, id="multipart"),
        pytest.param({"params": _FIELDS}, id="query"),
    ],
)
def test_send_message_accepts_every_body_the_bot_api_does(
    http: httpx.Client,
    bot_token: str,
    standin: BotApiStandin,
    request_kwargs: dict[str, Any],
) -> None:
    answer = http.post(f"/bot{bot_token}/sendMessage", **request_kwargs)

    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True
    assert body["result"]["message_id"] == 1
    assert body["result"]["chat"]["id"] == 31
    assert body["result"]["text"] == "a bold move"
    received = standin.received()
    assert received == [
        ReceivedMessage(
            31,
            1,
            "a <b>bold</b> move",
            "HTML",
            received[0].sent_at,
            shown_text="a bold move",
            message_ids=(1,),
        )
    ]
    assert body["result"]["date"] == int(received[0].sent_at)


def test_get_requests_and_method_names_in_any_case_work(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    answer = http.get(f"/bot{bot_token}/GETME")

    assert answer.status_code == 200
    assert answer.json()["result"]["is_bot"] is True


def test_a_wrong_token_is_401_unauthorized(http: httpx.Client, standin: BotApiStandin) -> None:
    answer = http.post("/bot1:nope/sendMessage", json={"chat_id": 1, "text": "x"})

    assert answer.status_code == 401
    assert answer.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert standin.received() == []


def test_an_unknown_method_is_404(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    answer = http.post(f"/bot{bot_token}/sendTelepathy", json={})

    assert answer.status_code == 404
    assert answer.json()["description"] == "Not Found"


def test_a_body_that_is_not_json_is_400(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    answer = http.post(
        f"/bot{bot_token}/sendMessage",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 400
    assert answer.json()["description"] == "Bad Request: can't parse JSON object"


def test_flood_answers_carry_retry_after_in_parameters(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    standin.update_faults({"flood_rate": 1.0, "flood_retry_after": 12})

    answer = http.post(f"/bot{bot_token}/sendMessage", json={"chat_id": 1, "text": "x"})

    assert answer.status_code == 429
    assert answer.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 12",
        "parameters": {"retry_after": 12},
    }


def test_faults_are_read_and_changed_through_the_control_endpoint(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    changed = http.post("/_control/faults", json={"blocked_chats": [77], "latency_ms": 1})

    assert changed.status_code == 200
    assert changed.json()["blocked_chats"] == [77]
    assert http.get("/_control/faults").json()["latency_ms"] == 1
    answer = http.post(f"/bot{bot_token}/sendMessage", json={"chat_id": 77, "text": "x"})
    assert answer.status_code == 403
    assert answer.json()["description"] == "Forbidden: bot was blocked by the user"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"server_error_rate": 2}, "server_error_rate"),
        ({"no_such_fault": 1}, "no_such_fault"),
        ({"rate_limit_per_second": 0}, "rate_limit_per_second"),
    ],
)
def test_wrong_fault_settings_are_400_and_change_nothing(
    http: httpx.Client, standin: BotApiStandin, change: dict[str, object], named: str
) -> None:
    answer = http.post("/_control/faults", json=change)

    assert answer.status_code == 400
    assert named in answer.json()["error"]
    assert standin.faults == Faults()


def test_the_log_shows_what_each_chat_got_and_what_was_deleted(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    for chat_id, text in [(1, "one"), (2, "two"), (1, "three")]:
        http.post(f"/bot{bot_token}/sendMessage", json={"chat_id": chat_id, "text": text})
    http.post(f"/bot{bot_token}/deleteMessage", data={"chat_id": "1", "message_id": "1"})

    log = http.get("/_control/log", params={"chat_id": 1}).json()

    assert [(m["message_id"], m["text"], m["parse_mode"]) for m in log["messages"]] == [
        (1, "one", None),
        (2, "three", None),
    ]
    assert [(d["chat_id"], d["message_id"]) for d in log["deleted"]] == [(1, 1)]
    assert [(c["method"], c["status"]) for c in log["calls"]] == [
        ("sendMessage", 200),
        ("sendMessage", 200),
        ("deleteMessage", 200),
    ]
    for wrong in ("x", "--5", "²", "1" * 30):
        assert http.get("/_control/log", params={"chat_id": wrong}).status_code == 400, wrong


def test_reset_forgets_messages_and_restores_the_starting_faults(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    http.post(f"/bot{bot_token}/sendMessage", json={"chat_id": 1, "text": "x"})
    http.post("/_control/faults", json={"missing_chats": [1]})

    assert http.post("/_control/reset").json() == {"ok": True}

    assert http.get("/_control/log").json() == {
        "messages": [],
        "deleted": [],
        "pinned": [],
        "callback_answers": [],
        "calls": [],
    }
    assert standin.faults == Faults()
    answer = http.post(f"/bot{bot_token}/sendMessage", json={"chat_id": 1, "text": "x"})
    assert answer.json()["result"]["message_id"] == 1


def test_webhooks_are_set_reported_and_deleted(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    set_answer = http.post(
        f"/bot{bot_token}/setWebhook",
        json={"url": "http://127.0.0.1:8000/api/telegram/webhook", "secret_token": "s3cret"},
    )

    assert set_answer.json() == {"ok": True, "result": True}
    info = http.get(f"/bot{bot_token}/getWebhookInfo").json()["result"]
    assert info["url"] == "http://127.0.0.1:8000/api/telegram/webhook"
    assert http.get("/_control/webhook").json()["secret_token"] == "s3cret"
    http.post(f"/bot{bot_token}/deleteWebhook")
    assert http.get(f"/bot{bot_token}/getWebhookInfo").json()["result"]["url"] == ""


def test_missing_parameters_get_telegrams_answers() -> None:
    standin = BotApiStandin(TOKEN)

    assert _error_of(standin, "sendMessage", {"text": "x"}).description == (
        "Bad Request: chat_id is empty"
    )
    assert _error_of(standin, "sendMessage", {"chat_id": 1}).description == (
        "Bad Request: message text is empty"
    )
    assert _error_of(standin, "sendMessage", {"chat_id": "@nobody", "text": "x"}).description == (
        "Bad Request: chat not found"
    )
    assert _error_of(standin, "deleteMessage", {"chat_id": 1}).description == (
        "Bad Request: message identifier is not specified"
    )


def test_markup_is_checked_like_telegram_does() -> None:
    standin = BotApiStandin(TOKEN)

    error = _error_of(
        standin, "sendMessage", {"chat_id": 1, "text": "1.5 *stars*", "parse_mode": "MarkdownV2"}
    )

    assert error.status == 400
    assert error.description == (
        "Bad Request: can't parse entities: "
        "Character '.' is reserved and must be escaped with the preceding '\\'"
    )
    assert _error_of(
        standin, "sendMessage", {"chat_id": 1, "text": "x", "parse_mode": "Fancy"}
    ).description.startswith("Bad Request: unsupported parse_mode")


def test_rate_limit_counts_sends_in_the_last_second() -> None:
    clock = ManualClock()
    standin = BotApiStandin(TOKEN, Faults(rate_limit_per_second=2), clock=clock)

    _send(standin, 1)
    clock.now += 0.5
    _send(standin, 2)
    limited = _error_of(standin, "sendMessage", {"chat_id": 3, "text": "x"})
    clock.now += 0.5
    _send(standin, 3)

    assert (limited.status, limited.retry_after) == (429, 1)
    assert [m.chat_id for m in standin.received()] == [1, 2, 3]


def test_a_seed_makes_random_faults_reproducible() -> None:
    def outcomes(faults: Faults) -> list[int]:
        standin = BotApiStandin(TOKEN, faults)
        statuses = []
        for n in range(40):
            try:
                _send(standin, n)
                statuses.append(200)
            except BotApiError as error:
                statuses.append(error.status)
        return statuses

    faults = Faults(seed=7, server_error_rate=0.3, flood_rate=0.2)
    first = outcomes(faults)

    assert first == outcomes(faults)
    assert set(first) == {200, 429, 500, 502}
    assert first != outcomes(faults.updated({"seed": 8}))


def test_reset_replays_the_same_faults() -> None:
    standin = BotApiStandin(TOKEN, Faults(seed=3, server_error_rate=0.5))
    first = [_succeeds(standin, n) for n in range(20)]

    standin.reset()

    assert [_succeeds(standin, n) for n in range(20)] == first
    assert set(first) == {True, False}


def _succeeds(standin: BotApiStandin, chat_id: int) -> bool:
    try:
        _send(standin, chat_id)
    except BotApiError:
        return False
    return True


def test_latency_is_fixed_plus_seeded_jitter() -> None:
    standin = BotApiStandin(TOKEN, Faults(latency_ms=100, jitter_ms=50, seed=1))

    delays = [standin.draw_latency() for _ in range(20)]

    assert all(0.1 <= delay <= 0.15 for delay in delays)
    standin.reset()
    assert [standin.draw_latency() for _ in range(20)] == delays


def test_message_age_follows_the_clock_offset() -> None:
    standin = BotApiStandin(TOKEN)
    message_id = _send(standin, 1)

    standin.update_faults({"clock_offset_seconds": 47 * 3600})
    assert standin.call(TOKEN, "deleteMessage", {"chat_id": 1, "message_id": message_id})

    second = _send(standin, 1)
    standin.update_faults({"clock_offset_seconds": 96 * 3600})
    error = _error_of(standin, "deleteMessage", {"chat_id": 1, "message_id": second})
    assert error.description == "Bad Request: message can't be deleted for everyone"


def test_fault_updates_are_validated() -> None:
    with pytest.raises(FaultsError, match="flood_rate"):
        Faults().updated({"flood_rate": -1})


def test_the_command_line_refuses_bad_faults_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        standin_main(["--token", "1:t", "--fail-rate", "2"])

    assert exited.value.code == 2
    assert "server_error_rate" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_serves_the_bot_api() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coursedesk.telegram.standin",
            "--port",
            str(port),
            "--token",
            "5:cli",
            "--missing",
            "13",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"{base_url}/bot5:cli/getMe", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert answer.json()["result"]["id"] == 5
        missing = httpx.post(f"{base_url}/bot5:cli/sendMessage", json={"chat_id": 13, "text": "x"})
        assert missing.json()["description"] == "Bad Request: chat not found"
    finally:
        process.terminate()
        process.wait(timeout=30)
