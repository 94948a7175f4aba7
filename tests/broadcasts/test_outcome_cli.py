"""`coursedesk broadcast send --holdout` and `coursedesk broadcast outcome`, as processes."""

from __future__ import annotations

import json

import httpx
from broadcast_helpers import add_many_users, scalar
from outcome_data import FINISHED, OutcomeData, insert_broadcast, make_recipients
from sqlalchemy import Engine

from cli_process import RunCli


def test_send_holds_back_a_control_group(run_cli: RunCli, sync_engine: Engine) -> None:
    add_many_users(sync_engine, 8001, 40)
    sent = run_cli("broadcast", "send", "--audience", "all", "--text", "hi", "--holdout", "25")
    assert sent.returncode == 0, sent.stderr
    message_id = int(sent.stdout)
    held = scalar(
        sync_engine,
        "SELECT holdout_count FROM message_history WHERE id = :m AND holdout_percent = 25",
        m=message_id,
    )
    assert held == 10
    status = run_cli("broadcast", "status", str(message_id))
    assert "control group" in status.stdout and " 10" in status.stdout

    refused = run_cli("broadcast", "send", "--audience", "all", "--text", "hi", "--holdout", "60")
    assert refused.returncode == 2
    assert refused.stderr.startswith("coursedesk: error: holdout_percent: "), refused.stderr


async def test_outcome_prints_both_groups(
    run_cli: RunCli,
    sync_engine: Engine,
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
) -> None:
    recipients = make_recipients(11, 50, holdout_from=FINISHED)
    data = OutcomeData(insert_broadcast(sync_engine, recipients), FINISHED, recipients)
    printed = run_cli("broadcast", "outcome", str(data.message_id), "--window-days", "30", "--json")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == data.expected(30)
    api = await client.get(
        f"/api/messages/{data.message_id}/outcome?window_days=30", headers=viewer_headers
    )
    assert json.loads(printed.stdout) == api.json()

    table = run_cli("broadcast", "outcome", str(data.message_id))
    assert table.returncode == 0, table.stderr
    expected = data.expected(7)
    sent, held = expected["sent"], expected["holdout"]
    assert sent is not None and held is not None
    lines = {line.split("  ")[0].strip(): line for line in table.stdout.splitlines()}
    assert "control group" in table.stdout
    assert f"{sent['recipients']:,}" in lines["recipients"]
    assert (
        f"{held['booked']:,} ({100 * held['booked'] / held['recipients']:.1f} %)" in lines["booked"]
    )

    unknown = run_cli("broadcast", "outcome", "424242")
    assert unknown.returncode != 0 and "424242" in unknown.stderr
    bad = run_cli("broadcast", "outcome", str(data.message_id), "--window-days", "0")
    assert bad.returncode == 2 and "window_days" in bad.stderr
