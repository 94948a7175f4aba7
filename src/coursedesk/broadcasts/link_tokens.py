"""The tokens of tracked links, `/r/{token}`: a recipient and a link, signed.

A token is the recipient row's id and the link's position, each as a varint, followed
by the first 12 bytes of an HMAC-SHA256 of them under the key of link_token_keys
(migration 0013), all in URL-safe base64 without padding: 22 to 26 characters. Nothing
is stored per token; a token that was never issued fails verification, since making one
needs the key. The key is read once per process and kept (LinkKeys).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MAC_BYTES = 12
"""96 bits: a forged token is one guess in 2**96."""
MAX_RECIPIENT_ID = 2**63 - 1
MAX_POSITION = 2**15 - 1
MAX_TOKEN_LENGTH = 64
_DOMAIN = b"coursedesk tracked link v1\0"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
READ_KEY = text("SELECT secret FROM link_token_keys WHERE id = 1")


class LinkKeyMissing(RuntimeError):
    """link_token_keys has no key: the database is not migrated to 0013."""


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            encoded.append(byte | 0x80)
        else:
            encoded.append(byte)
            return bytes(encoded)


def _read_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    """(value, offset after it) of the varint at `offset`; None if there is none there or
    it is not written in the fewest bytes (each value has one spelling)."""
    value = shift = 0
    for index in range(offset, min(len(data), offset + 10)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and index > offset:
                return None
            return value, index + 1
    return None


class LinkSigner:
    """Issues and checks the tokens of one key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a link token key has at least 16 bytes")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()[:MAC_BYTES]

    def token(self, recipient_id: int, position: int) -> str:
        """The token of the link at `position` for the recipient row `recipient_id`."""
        if not (0 < recipient_id <= MAX_RECIPIENT_ID and 0 <= position <= MAX_POSITION):
            raise ValueError(f"no token for recipient {recipient_id}, position {position}")
        payload = _varint(recipient_id) + _varint(position)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def verify(self, token: str) -> tuple[int, int] | None:
        """(recipient_id, position) of a token this key issued; None for anything else."""
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
            return None
        try:
            data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        # One spelling per token: base64 leaves spare bits in its last character.
        if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != token:
            return None
        recipient = _read_varint(data, 0)
        if recipient is None:
            return None
        recipient_id, offset = recipient
        link = _read_varint(data, offset)
        if link is None:
            return None
        position, offset = link
        if len(data) - offset != MAC_BYTES:
            return None
        if not (0 < recipient_id <= MAX_RECIPIENT_ID and position <= MAX_POSITION):
            return None
        if not hmac.compare_digest(data[offset:], self._mac(data[:offset])):
            return None
        return recipient_id, position


class LinkKeys:
    """The signer of the database's key, read on first use and kept for the process."""

    def __init__(self) -> None:
        self._signer: LinkSigner | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> LinkSigner | None:
        """The signer, once read."""
        return self._signer

    async def signer(self, database: AsyncEngine | AsyncConnection) -> LinkSigner:
        if self._signer is not None:
            return self._signer
        async with self._lock:
            if self._signer is None:
                if isinstance(database, AsyncConnection):
                    key = await database.scalar(READ_KEY)
                else:
                    async with database.connect() as connection:
                        key = await connection.scalar(READ_KEY)
                if key is None:
                    raise LinkKeyMissing("no key in link_token_keys: run `coursedesk db upgrade`")
                self._signer = LinkSigner(bytes(key))
        return self._signer
