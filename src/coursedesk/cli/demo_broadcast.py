"""The broadcast a fresh demo sends: a photo, a caption and a URL button, its link tracked,
so that the stand-in's log shows a /r/{token} link per chat that works on the demo server.
"""

from __future__ import annotations

import struct
import zlib

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.audiences import ListedUsers
from coursedesk.broadcasts.composition import Button, ContentRequest, MediaChoice
from coursedesk.broadcasts.media import MediaWriter
from coursedesk.broadcasts.models import MessageHistory
from coursedesk.broadcasts.service import create_broadcast
from coursedesk.users.models import UserSummary

DEMO_RECIPIENTS = 20
"""The students the demo broadcast goes to: the first by user id (a whole school would
take minutes at the default BROADCAST_RATE)."""
CAPTION = (
    "<b>Open day on Saturday</b>\n"
    "Meet the teachers of the autumn streams, try a lesson and see the classrooms. "
    "Details and the programme: {link}"
)


def banner_png(width: int = 480, height: int = 240) -> bytes:
    """A PNG of a soft diagonal gradient: a photo made here, with no file to ship."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # no filter
        for x in range(width):
            shade = (x + y) * 255 // (width + height)
            row += bytes((40 + shade // 3, 90 + shade // 2, 160 + shade * 95 // 255))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


async def _first_students(session: AsyncSession) -> ListedUsers | None:
    ids = (
        await session.scalars(
            select(UserSummary.user_id).order_by(UserSummary.user_id).limit(DEMO_RECIPIENTS)
        )
    ).all()
    if not ids:
        return None
    return ListedUsers(type="users", user_ids=list(ids))


async def send_demo_broadcast(session: AsyncSession, public_base_url: str) -> int | None:
    """Queue the demo broadcast, unless the database has a broadcast already or no
    student; answers its id. Its link and button lead to the demo's own pages, so a
    click works with no network."""
    if await session.scalar(select(func.count()).select_from(MessageHistory)):
        return None
    audience = await _first_students(session)
    if audience is None:
        return None
    writer = MediaWriter(session, filename="open-day.png", declared_type="image/png", actor="demo")
    await writer.write(banner_png())
    photo = (await writer.finish()).media_id
    programme = f"{public_base_url}/broadcasts"
    created = await create_broadcast(
        session,
        text=CAPTION.format(link=programme),
        audience=audience,
        actor="demo",
        parse_mode="HTML",
        content=ContentRequest(
            media=[MediaChoice(media_id=photo)],
            buttons=[[Button(text="Book a seat", url=f"{public_base_url}/")]],
        ),
        public_base_url=public_base_url,
    )
    return created.message_id
