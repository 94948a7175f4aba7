"""Reading the messages of PostgreSQL's built-in `pgoutput` plugin (protocol version 1).

`pg_logical_slot_peek_binary_changes` answers one row per message: its LSN, the
transaction's xid and the message. `Decoder.feed` reads them in order and answers each
transaction once its COMMIT has been read, with every row it inserted, updated or
deleted in the tables asked for, as the column values PostgreSQL printed for them.
Messages of any other kind (origins, types, changes of other tables) are read past.

The layout is the logical replication protocol's ("Logical Replication Message
Formats" in PostgreSQL's documentation): big-endian integers, NUL-terminated strings.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
JSON_TYPES = frozenset({114, 3802})  # json, jsonb: kept as structure, not as text
_TEXT, _NULL, _UNCHANGED = ord("t"), ord("n"), ord("u")
_ROW_CHANGES = frozenset({b"I", b"U", b"D"})

Row = dict[str, Any]


class ProtocolError(ValueError):
    """A message that is not what protocol version 1 says it is."""


@dataclass(frozen=True)
class Relation:
    name: str
    # The name its changes are reported under; None: a table not asked for.
    source: str | None
    # Each column with whether its values are JSON, in order: what the tuple reader walks.
    layout: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Change:
    """One row as the change left it (`sign` +1) or as it was before (-1); a TRUNCATE of
    one of the tables is `sign` 0 with no row."""

    table: str
    sign: int
    row: Row | None


@dataclass
class Transaction:
    xid: int
    final_lsn: int  # where its commit record starts: a slot advanced to it decodes it again
    committed_at: datetime
    changes: list[Change] = field(default_factory=list)


_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")


class _Reader:
    """A message read front to back: the few that are not row changes (those, nearly all
    of them, `_tuple` reads straight off the bytes)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise ProtocolError("message ends early")
        part = self.data[self.at : end]
        self.at = end
        return part

    def byte(self) -> str:
        return chr(self.take(1)[0])

    def int16(self) -> int:
        return int(_INT16.unpack(self.take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self.take(4))[0])

    def uint32(self) -> int:
        return int(_UINT32.unpack(self.take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack(self.take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise ProtocolError("string without its end")
        text = self.data[self.at : end].decode()
        self.at = end + 1
        return text


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (pg_lsn), for instance 0/16B3748."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_value(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class Decoder:
    """Turns a stream of pgoutput messages into committed transactions of `tables`
    (relation name → the name a change is reported under), in the schema `namespace`."""

    def __init__(self, tables: Mapping[str, str], namespace: str) -> None:
        self._tables = dict(tables)
        self._namespace = namespace
        self._relations: dict[int, Relation] = {}
        self._open: Transaction | None = None

    def feed(self, message: bytes) -> Transaction | None:
        """Read one message; answers the transaction it commits, if it is a COMMIT."""
        kind = message[:1]
        if kind in _ROW_CHANGES:  # nearly every message: read without a _Reader
            self._row_change(kind, message)
            return None
        reader = _Reader(message)
        reader.at = 1
        if kind == b"B":
            final_lsn = reader.int64()
            committed_at = POSTGRES_EPOCH + timedelta(microseconds=reader.int64())
            self._open = Transaction(reader.uint32(), final_lsn, committed_at)
            return None
        if kind == b"C":
            done, self._open = self._transaction(), None
            return done
        if kind == b"R":
            self._read_relation(reader)
        elif kind == b"T":
            count = reader.int32()
            reader.byte()  # CASCADE, RESTART IDENTITY: the same to the figures
            for _ in range(count):
                truncated = self._relations.get(reader.int32())
                if truncated is not None and truncated.source is not None:
                    self._transaction().changes.append(Change(truncated.source, 0, None))
        # O (origin), Y (type) and anything later versions add: nothing to count.
        return None

    def _row_change(self, kind: bytes, message: bytes) -> None:
        """An INSERT (I, N and the new row), UPDATE (U, O and the whole old row, N and the
        new one) or DELETE (D, O and the old row) of a table asked for; those of other
        tables are read past."""
        if len(message) < 6:
            raise ProtocolError("message ends early")
        relation = self._relation(_INT32.unpack_from(message, 1)[0])
        if relation.source is None:
            return
        changes = self._transaction().changes
        tag = message[5:6]
        if kind == b"I":
            _expect_new_tuple(tag)
            new, _ = _tuple(message, 6, relation, None)
            changes.append(Change(relation.source, 1, new))
            return
        if tag != b"O":
            raise ProtocolError(
                f"{'an UPDATE' if kind == b'U' else 'a DELETE'} of {relation.name} without "
                "its whole old row: the table needs REPLICA IDENTITY FULL"
            )
        old, at = _tuple(message, 6, relation, None)
        changes.append(Change(relation.source, -1, old))
        if kind == b"U":
            _expect_new_tuple(message[at : at + 1])
            new, _ = _tuple(message, at + 1, relation, old)
            changes.append(Change(relation.source, 1, new))

    def _transaction(self) -> Transaction:
        if self._open is None:
            raise ProtocolError("a change outside a transaction")
        return self._open

    def _read_relation(self, reader: _Reader) -> None:
        oid = reader.int32()
        namespace, name = reader.string(), reader.string()
        reader.byte()  # replica identity
        layout: list[tuple[str, bool]] = []
        for _ in range(reader.int16()):
            reader.byte()  # flags
            column = reader.string()
            layout.append((column, reader.int32() in JSON_TYPES))
            reader.int32()  # type modifier
        source = self._tables.get(name) if namespace == self._namespace else None
        self._relations[oid] = Relation(name, source, tuple(layout))

    def _relation(self, oid: int) -> Relation:
        try:
            return self._relations[oid]
        except KeyError:
            raise ProtocolError(f"a change of relation {oid} before its description") from None


def _expect_new_tuple(tag: bytes) -> None:
    """The tag before a row as the change left it."""
    if tag != b"N":
        raise ProtocolError(f"expected tuple 'N', found {tag.decode(errors='replace')!r}")


def _tuple(data: bytes, at: int, relation: Relation, old: Row | None) -> tuple[Row, int]:
    """The row of TupleData starting at `at` in `data`, and where it ends. A value the
    UPDATE left unchanged (TOASTed) is taken from `old`."""
    end = len(data)
    row: Row = {}
    try:
        count = _INT16.unpack_from(data, at)[0]
        at += 2
        if count != len(relation.layout):
            raise ProtocolError(
                f"{relation.name}: {count} values for {len(relation.layout)} columns"
            )
        for column, is_json in relation.layout:
            kind = data[at]
            at += 1
            if kind == _TEXT:
                length = _INT32.unpack_from(data, at)[0]
                at += 4
                if at + length > end:
                    raise ProtocolError("message ends early")
                value = data[at : at + length].decode()
                at += length
                row[column] = json.loads(value) if is_json else value
            elif kind == _NULL:
                row[column] = None
            elif kind == _UNCHANGED:  # a TOASTed value the UPDATE left as it was
                if old is None:
                    raise ProtocolError(
                        f"{relation.name}.{column}: unchanged value without the old row"
                    )
                row[column] = old[column]
            else:
                raise ProtocolError(f"{relation.name}.{column}: value of kind {chr(kind)!r}")
    except (IndexError, struct.error):
        raise ProtocolError("message ends early") from None
    return row, at


def split_frames(frames: bytes) -> Iterator[bytes]:
    """The messages of a run of them, each prefixed with its length (int4)."""
    at, end = 0, len(frames)
    while at < end:
        if at + 4 > end:
            raise ProtocolError("a message's length cut short")
        size = _INT32.unpack_from(frames, at)[0]
        at += 4
        if size < 0 or at + size > end:
            raise ProtocolError("a message cut short")
        yield frames[at : at + size]
        at += size


def decode(messages: Iterator[bytes], decoder: Decoder) -> Iterator[Transaction]:
    """Every transaction `messages` commit, in commit order."""
    for message in messages:
        if (transaction := decoder.feed(message)) is not None:
            yield transaction
