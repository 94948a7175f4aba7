"""Schema inspection: every relation with its columns, keys, indexes and row estimates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text

from cli_process import run_coursedesk
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.inspect import ColumnInfo, ForeignKeyInfo, SchemaInfo, read_schema
from coursedesk.db.registry import metadata
from coursedesk.db.seed import seed_database


def _schema(sync_engine: Engine) -> SchemaInfo:
    with sync_engine.connect() as connection:
        return read_schema(connection)


def test_every_table_of_the_schema_is_listed(sync_engine: Engine) -> None:
    relations = _schema(sync_engine).tables
    names = [relation.name for relation in relations]
    assert names == sorted(names)
    tables = {relation.name for relation in relations if relation.kind == "table"}
    assert tables == set(metadata().tables) | {"alembic_version"}
    # The rest are the analytics domain's views of what each summary should hold.
    views = {relation.name for relation in relations if relation.kind == "view"}
    assert set(names) == tables | views
    assert "analytics_expected_users" in views
    assert all(name.startswith("analytics_") for name in views)


def test_columns_keys_and_indexes_read_as_postgresql_has_them(sync_engine: Engine) -> None:
    schema = _schema(sync_engine)
    bookings = schema.table("bookings")
    assert bookings is not None
    assert bookings.kind == "table"
    assert bookings.primary_key == ["id"]
    columns = {column.name: column for column in bookings.columns}
    assert list(columns)[:3] == ["id", "user_id", "username"]
    assert columns["id"] == ColumnInfo(
        name="id", type="integer", nullable=False, default="nextval('bookings_id_seq'::regclass)"
    )
    assert columns["discount_percent"] == ColumnInfo(
        name="discount_percent", type="numeric(5,2)", nullable=True, default=None
    )
    assert columns["created_at"].type == "timestamp with time zone"
    assert columns["created_at"].default == "now()"
    indexes = {index.name: index for index in bookings.indexes}
    assert indexes["pk_bookings"].primary and indexes["pk_bookings"].unique
    referral = indexes["ix_bookings_referral_code"]
    assert referral.columns == ["referral_code"] and not referral.unique and referral.valid
    assert referral.definition.endswith("WHERE (referral_code IS NOT NULL)")

    recipients = schema.table("message_recipients")
    assert recipients is not None
    assert recipients.foreign_keys == [
        ForeignKeyInfo(
            name="fk_message_recipients_message_id_message_history",
            columns=["message_id"],
            referred_table="message_history",
            referred_columns=["id"],
            on_delete="CASCADE",
            on_update="NO ACTION",
            validated=True,
        )
    ]
    unique = {index.name: index for index in recipients.indexes}[
        "uq_message_recipients_message_id_user_id"
    ]
    assert (unique.columns, unique.unique) == (["message_id", "user_id"], True)


def test_row_estimates_follow_the_data(sync_engine: Engine) -> None:
    before = _schema(sync_engine).table("events")
    assert before is not None and before.row_estimate == 0

    result = seed_database(
        sync_engine, GenerationPlan(users=120, seed=2, anchor=datetime(2026, 5, 1, tzinfo=UTC))
    )
    after = {table.name: table.row_estimate for table in _schema(sync_engine).tables}
    assert after["events"] == result.rows["events"]
    assert after["bookings"] == result.rows["bookings"]
    assert after["courses"] == 5


def test_views_are_listed_without_rows_or_keys(sync_engine: Engine) -> None:
    with sync_engine.begin() as connection:
        connection.execute(
            text("CREATE VIEW paid AS SELECT id, user_id FROM bookings WHERE confirmed = 2")
        )
    view = _schema(sync_engine).table("paid")
    assert view is not None
    assert (view.kind, view.row_estimate, view.primary_key, view.indexes) == ("view", None, [], [])
    assert [column.name for column in view.columns] == ["id", "user_id"]


def test_schema_command_prints_the_same_schema_as_json(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    as_json = run_coursedesk(database_url, tmp_path, "db", "schema", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == _schema(sync_engine).model_dump(mode="json")

    as_tables = run_coursedesk(database_url, tmp_path, "db", "schema")
    assert as_tables.returncode == 0, as_tables.stderr
    for name in metadata().tables:
        assert name in as_tables.stdout
    assert "CREATE INDEX ix_bookings_referral_code" in as_tables.stdout
