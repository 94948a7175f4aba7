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

Row = dict[str, Any]


class ProtocolError(ValueError):
    """A message that is not what protocol version 1 says it is."""


@dataclass(frozen=True)
class Relation:
    namespace: str
    name: str
    columns: tuple[str, ...]
    json_columns: frozenset[str]


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
    """A message read front to back; `data` and `at` are open to the tuple reader, which
    reads every value of every row and is the hot path."""

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
        reader = _Reader(message)
        kind = reader.byte()
        if kind == "B":
            final_lsn = reader.int64()
            committed_at = POSTGRES_EPOCH + timedelta(microseconds=reader.int64())
            self._open = Transaction(reader.uint32(), final_lsn, committed_at)
            return None
        if kind == "C":
            done, self._open = self._transaction(), None
            return done
        if kind == "R":
            self._read_relation(reader)
        elif kind == "I":
            relation = self._relation(reader.int32())
            self._expect(reader, "N")
            new = self._tuple(reader, relation, None)
            self._add(relation, 1, new)
        elif kind == "U":
            relation = self._relation(reader.int32())
            tag = reader.byte()
            if tag != "O":
                raise ProtocolError(
                    f"an UPDATE of {relation.name} without its whole old row: the table "
                    "needs REPLICA IDENTITY FULL"
                )
            old = self._tuple(reader, relation, None)
            self._expect(reader, "N")
            self._add(relation, -1, old)
            self._add(relation, 1, self._tuple(reader, relation, old))
        elif kind == "D":
            relation = self._relation(reader.int32())
            if reader.byte() != "O":
                raise ProtocolError(
                    f"a DELETE of {relation.name} without its old row: the table needs "
                    "REPLICA IDENTITY FULL"
                )
            self._add(relation, -1, self._tuple(reader, relation, None))
        elif kind == "T":
            count = reader.int32()
            reader.byte()  # CASCADE, RESTART IDENTITY: the same to the figures
            for _ in range(count):
                truncated = self._relations.get(reader.int32())
                if truncated is not None and self._wanted(truncated):
                    self._add(truncated, 0, None)
        # O (origin), Y (type) and anything later versions add: nothing to count.
        return None

    def _transaction(self) -> Transaction:
        if self._open is None:
            raise ProtocolError("a change outside a transaction")
        return self._open

    def _wanted(self, relation: Relation) -> bool:
        return relation.namespace == self._namespace and relation.name in self._tables

    def _add(self, relation: Relation, sign: int, row: Row | None) -> None:
        if self._wanted(relation):
            self._transaction().changes.append(Change(self._tables[relation.name], sign, row))

    def _read_relation(self, reader: _Reader) -> None:
        oid = reader.int32()
        namespace, name = reader.string(), reader.string()
        reader.byte()  # replica identity
        columns: list[str] = []
        json_columns: set[str] = set()
        for _ in range(reader.int16()):
            reader.byte()  # flags
            column = reader.string()
            if reader.int32() in JSON_TYPES:
                json_columns.add(column)
            reader.int32()  # type modifier
            columns.append(column)
        self._relations[oid] = Relation(namespace, name, tuple(columns), frozenset(json_columns))

    def _relation(self, oid: int) -> Relation:
        try:
            return self._relations[oid]
        except KeyError:
            raise ProtocolError(f"a change of relation {oid} before its description") from None

    @staticmethod
    def _expect(reader: _Reader, tag: str) -> None:
        if (found := reader.byte()) != tag:
            raise ProtocolError(f"expected tuple {tag!r}, found {found!r}")

    @staticmethod
    def _tuple(reader: _Reader, relation: Relation, old: Row | None) -> Row:
        count = reader.int16()
        columns = relation.columns
        if count != len(columns):
            raise ProtocolError(f"{relation.name}: {count} values for {len(columns)} columns")
        data, at, end = reader.data, reader.at, len(reader.data)
        row: Row = {}
        try:
            for column in columns:
                kind = data[at]
                at += 1
                if kind == _TEXT:
                    length = _INT32.unpack_from(data, at)[0]
                    at += 4
                    if at + length > end:
                        raise ProtocolError("message ends early")
                    value = data[at : at + length].decode()
                    at += length
                    row[column] = json.loads(value) if column in relation.json_columns else value
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
        reader.at = at
        return row


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
