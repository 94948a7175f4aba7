"""One broadcast per Idempotency-Key (docs/reference.md §9): a request sent again is answered.

The same key with the same request within KEY_LIFETIME answers the broadcast the first
one made; the same key with another request is refused (KeyReused, a 409). Keys belong
to a staff account: a user, or one API token.

Two requests with one key may arrive together (a double click, a client that retries
before the first answer came). The key is claimed by an INSERT … ON CONFLICT on the
(account, key) primary key before anything is created, in the transaction that creates
the broadcast: the second INSERT waits on the first one's uncommitted row, then finds it
committed and answers it, or gone (the first failed and rolled back) and claims the key
itself. A key past its lifetime is taken over by the same statement, as if new.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.audiences import Audience
from coursedesk.broadcasts.composition import NO_CONTENT, ContentRequest
from coursedesk.broadcasts.models import SendRequestKey
from coursedesk.broadcasts.service import CreatedBroadcast, create_broadcast
from coursedesk.errors import Conflict, InvalidInput

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")
_CLAIM_ATTEMPTS = 3
CREATED = 201
_EXPIRED = SendRequestKey.created_at <= text("now() - interval '24 hours'")


def checked_key(key: str) -> str:
    """The key as sent, if it is 1 to 255 visible ASCII characters; InvalidInput if not."""
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} visible ASCII characters, "
            "e.g. a UUID, without spaces"
        )
    return key


def request_hash(
    text: str,
    audience: Audience,
    parse_mode: str | None,
    scheduled_at: datetime | None,
    content: ContentRequest = NO_CONTENT,
) -> str:
    """The request in canonical JSON, hashed: equal for the same request, however spelt.

    The content's fields count only when given, so a request of text alone hashes as it
    did before they existed, and its key still answers it.
    """
    canonical = {
        "text": text,
        "audience": audience.model_dump(mode="json"),
        "parse_mode": parse_mode,
        "scheduled_at": None if scheduled_at is None else scheduled_at.astimezone(UTC).isoformat(),
    } | content.canonical()
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class KeyedRequest:
    account: str
    key: str
    request_hash: str


@dataclass(frozen=True)
class EarlierAnswer:
    """What the first request with a key was answered."""

    message_id: int
    status_code: int
    answer: dict[str, Any]


class KeyReused(Conflict):
    """The key came with another request within its lifetime; HTTP 409."""

    def __init__(self, key: str, message_id: int) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was used for another request in the last 24 hours "
            f"(broadcast {message_id}); use a new key for a new broadcast"
        )
        self.message_id = message_id


def _is_key(request: KeyedRequest) -> Any:
    return tuple_(SendRequestKey.account, SendRequestKey.idempotency_key) == tuple_(
        request.account, request.key
    )


async def claim(session: AsyncSession, request: KeyedRequest) -> EarlierAnswer | None:
    """None when the key is now this transaction's: make the broadcast and `record` it.

    Otherwise the answer the first request with this key got, when it was this same
    request; KeyReused when it was another. Waits while a request with the key is still
    being made by another transaction. Also forgets this account's keys past their
    lifetime that no one holds.
    """
    await _forget_expired(session, request.account)
    for _ in range(_CLAIM_ATTEMPTS):
        if await _insert_key(session, request):
            return None
        earlier = await earlier_answer(session, request)
        if earlier is not None:
            return earlier
        # The key's row was there when the INSERT looked and is gone now: it expired in
        # between and was forgotten, so the key is free to take again.
    raise Conflict(f"Idempotency-Key {request.key!r} is being used right now; try again")


async def _insert_key(session: AsyncSession, request: KeyedRequest) -> bool:
    """Whether the key is now this transaction's (new, or taken over past its lifetime)."""
    claimed = await session.scalar(
        insert(SendRequestKey)
        .values(
            account=request.account,
            idempotency_key=request.key,
            request_hash=request.request_hash,
        )
        .on_conflict_do_update(
            index_elements=[SendRequestKey.account, SendRequestKey.idempotency_key],
            set_={
                "request_hash": request.request_hash,
                "message_id": None,
                "status_code": None,
                "answer": None,
                "created_at": text("now()"),
            },
            where=_EXPIRED,
        )
        .returning(SendRequestKey.account)
    )
    return claimed is not None


async def earlier_answer(session: AsyncSession, request: KeyedRequest) -> EarlierAnswer | None:
    """The answer given to this key within its lifetime, without claiming it: None when
    there is none; KeyReused when it was given to another request."""
    row = await session.scalar(
        select(SendRequestKey).where(
            _is_key(request), ~_EXPIRED, SendRequestKey.message_id.is_not(None)
        )
    )
    if row is None or row.message_id is None:
        return None
    if row.request_hash != request.request_hash:
        raise KeyReused(request.key, row.message_id)
    return EarlierAnswer(row.message_id, row.status_code or 201, dict(row.answer or {}))


async def record(
    session: AsyncSession,
    request: KeyedRequest,
    *,
    message_id: int,
    status_code: int,
    answer: dict[str, Any],
) -> None:
    """Keep the answer of the broadcast made under a claimed key, for requests to come."""
    await session.execute(
        update(SendRequestKey)
        .where(_is_key(request))
        .values(message_id=message_id, status_code=status_code, answer=answer)
    )


@dataclass(frozen=True)
class SentOnce:
    """The broadcast a keyed request made, or the one it was answered with before."""

    broadcast: CreatedBroadcast
    status_code: int
    replayed: bool


async def create_broadcast_once(
    session: AsyncSession,
    request: KeyedRequest,
    *,
    text: str,
    audience: Audience,
    actor: str,
    parse_mode: str | None = None,
    scheduled_at: datetime | None = None,
    content: ContentRequest = NO_CONTENT,
    public_base_url: str | None = None,
) -> SentOnce:
    """create_broadcast, once per key: a request sent again gets the first one's answer
    and queues nothing (KeyReused if it is another request)."""
    earlier = await claim(session, request)
    if earlier is not None:
        return SentOnce(CreatedBroadcast(**earlier.answer), earlier.status_code, replayed=True)
    created = await create_broadcast(
        session,
        text=text,
        audience=audience,
        actor=actor,
        parse_mode=parse_mode,
        scheduled_at=scheduled_at,
        content=content,
        public_base_url=public_base_url,
    )
    await record(
        session,
        request,
        message_id=created.message_id,
        status_code=CREATED,
        answer=asdict(created),
    )
    return SentOnce(created, CREATED, replayed=False)


async def _forget_expired(session: AsyncSession, account: str) -> None:
    # SKIP LOCKED: a key another request is taking over is left to it, not waited for.
    expired = (
        select(SendRequestKey.account, SendRequestKey.idempotency_key)
        .where(SendRequestKey.account == account, _EXPIRED)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(SendRequestKey).where(
            tuple_(SendRequestKey.account, SendRequestKey.idempotency_key).in_(expired)
        )
    )
