"""Reading pgoutput's messages: the layout of protocol version 1, byte by byte."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from coursedesk.analytics.pgoutput import (
    Change,
    Decoder,
    ProtocolError,
    decode,
    lsn_text,
    lsn_value,
    split_frames,
)

EVENTS_OID = 16_400
OTHER_OID = 16_500
JSONB = 3802
INT8 = 20
TEXT = 25


def _string(value: str) -> bytes:
    return value.encode() + b"\0"


def relation(
    oid: int, name: str, columns: list[tuple[str, int]], namespace: str = "public"
) -> bytes:
    body = struct.pack(">i", oid) + _string(namespace) + _string(name) + b"f"
    body += struct.pack(">h", len(columns))
    for column, type_oid in columns:
        body += b"\0" + _string(column) + struct.pack(">ii", type_oid, -1)
    return b"R" + body


def values(*items: str | bytes | None) -> bytes:
    body = struct.pack(">h", len(items))
    for item in items:
        if item is None:
            body += b"n"
        elif item == b"u":
            body += b"u"
        else:
            assert isinstance(item, str)
            data = item.encode()
            body += b"t" + struct.pack(">i", len(data)) + data
    return body


def begin(xid: int, final_lsn: int = 0x1_0000_0010, at: datetime | None = None) -> bytes:
    at = at or datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    micros = int((at - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    return b"B" + struct.pack(">qqI", final_lsn, micros, xid)


COMMIT = b"C" + struct.pack(">bqqq", 0, 1, 2, 3)
EVENTS = relation(EVENTS_OID, "events", [("id", INT8), ("event_type", TEXT), ("details", JSONB)])


def test_a_transaction_is_answered_at_its_commit_with_typed_values() -> None:
    decoder = Decoder({"events": "event"}, namespace="public")
    at = datetime(2026, 12, 6, 10, 30, 15, 250_000, tzinfo=UTC)
    assert decoder.feed(begin(7, final_lsn=0x2_0000_00A0, at=at)) is None
    assert decoder.feed(EVENTS) is None
    assert (
        decoder.feed(
            b"I" + struct.pack(">i", EVENTS_OID) + b"N" + values("1", "start", '{"a": [1, 2]}')
        )
        is None
    )
    done = decoder.feed(COMMIT)
    assert done is not None
    assert (done.xid, done.final_lsn, done.committed_at) == (7, 0x2_0000_00A0, at)
    assert done.changes == [
        Change("event", 1, {"id": "1", "event_type": "start", "details": {"a": [1, 2]}})
    ]


def test_an_update_gives_the_old_row_and_the_new_one_with_unchanged_values_filled_in() -> None:
    decoder = Decoder({"events": "event"}, namespace="public")
    messages = [
        begin(8),
        EVENTS,
        b"U"
        + struct.pack(">i", EVENTS_OID)
        + b"O"
        + values("1", "start", '{"big": true}')
        + b"N"
        + values("1", "help", b"u"),
        b"D" + struct.pack(">i", EVENTS_OID) + b"O" + values("2", "start", None),
        COMMIT,
    ]
    [done] = decode(iter(messages), decoder)
    assert done.changes == [
        Change("event", -1, {"id": "1", "event_type": "start", "details": {"big": True}}),
        Change("event", 1, {"id": "1", "event_type": "help", "details": {"big": True}}),
        Change("event", -1, {"id": "2", "event_type": "start", "details": None}),
    ]


def test_other_tables_schemas_and_message_kinds_are_read_past() -> None:
    decoder = Decoder({"events": "event"}, namespace="public")
    other = relation(OTHER_OID, "events", [("id", INT8)], namespace="elsewhere")
    messages = [
        begin(9),
        b"O" + struct.pack(">q", 5) + _string("origin"),
        b"Y" + struct.pack(">i", 99) + _string("public") + _string("mood"),
        other,
        b"I" + struct.pack(">i", OTHER_OID) + b"N" + values("1"),
        EVENTS,
        b"T" + struct.pack(">ib", 2, 0) + struct.pack(">ii", OTHER_OID, EVENTS_OID),
        COMMIT,
    ]
    [done] = decode(iter(messages), decoder)
    assert done.changes == [Change("event", 0, None)]


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (
            b"U" + struct.pack(">i", EVENTS_OID) + b"K" + values("1", None, None),
            "REPLICA IDENTITY FULL",
        ),
        (
            b"U" + struct.pack(">i", EVENTS_OID) + b"N" + values("1", "a", None),
            "REPLICA IDENTITY FULL",
        ),
        (
            b"D" + struct.pack(">i", EVENTS_OID) + b"K" + values("1", None, None),
            "REPLICA IDENTITY FULL",
        ),
        (b"I" + struct.pack(">i", OTHER_OID) + b"N" + values("1"), "before its description"),
        (b"I" + struct.pack(">i", EVENTS_OID) + b"N" + values("1"), "1 values for 3 columns"),
        (
            b"I" + struct.pack(">i", EVENTS_OID) + b"N" + struct.pack(">h", 3) + b"t\0\0",
            "ends early",
        ),
        (b"I" + struct.pack(">i", EVENTS_OID) + b"N" + values("1", b"u", None), "unchanged value"),
        (b"I" + struct.pack(">i", EVENTS_OID) + b"X", "expected tuple 'N'"),
    ],
)
def test_a_message_the_protocol_does_not_allow_is_an_error_that_says_what(
    message: bytes, says: str
) -> None:
    decoder = Decoder({"events": "event"}, namespace="public")
    decoder.feed(begin(10))
    decoder.feed(EVENTS)
    with pytest.raises(ProtocolError, match=says):
        decoder.feed(message)


def test_a_change_outside_a_transaction_is_an_error() -> None:
    decoder = Decoder({"events": "event"}, namespace="public")
    decoder.feed(EVENTS)
    with pytest.raises(ProtocolError, match="outside a transaction"):
        decoder.feed(b"I" + struct.pack(">i", EVENTS_OID) + b"N" + values("1", "start", None))


@pytest.mark.parametrize("text", ["0/0", "0/16B3748", "1A/FFFFFFFF", "FFFFFFFF/1"])
def test_lsns_read_and_write_as_postgresql_does(text: str) -> None:
    assert lsn_text(lsn_value(text)) == text


def test_messages_come_framed_by_their_lengths() -> None:
    messages = [begin(11), EVENTS, COMMIT]
    framed = b"".join(struct.pack(">i", len(m)) + m for m in messages)
    assert list(split_frames(framed)) == messages
    with pytest.raises(ProtocolError, match="cut short"):
        list(split_frames(framed[:-1]))
    with pytest.raises(ProtocolError, match="length cut short"):
        list(split_frames(b"\0\0"))
