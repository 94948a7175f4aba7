"""Uploads read as they are sent (a FileStream): never held whole, read again on every try."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import pytest

from coursedesk.telegram.client import (
    AlbumDelivered,
    AlbumItem,
    Delivered,
    RetryAfter,
    TelegramClient,
    TransientFailure,
    Upload,
)
from coursedesk.telegram.standin import BotApiStandin

MIB = 2**20


@dataclass
class CountingStream:
    """`size` bytes made up as they are read, a MiB at a time, counting what is out.

    `most_out` is the most bytes handed out and not yet asked past (the chunk the
    reader holds, plus any it read ahead): a reader that gathers the file reaches its size.
    """

    size: int
    seed: int = 0
    fail_at: int | None = None
    """Raise once this many bytes have been handed out."""
    short_by: int = 0
    """End this many bytes before `size`."""
    opened: int = 0
    out: int = 0
    most_out: int = 0
    digests: list[str] = field(default_factory=list)

    def content(self, start: int, length: int) -> bytes:
        block = hashlib.sha256(f"{self.seed}:{start // MIB}".encode()).digest()
        return (block * (length // len(block) + 1))[:length]

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        self.opened += 1
        digest = hashlib.sha256()
        position, self.out = 0, 0
        while position < self.size - self.short_by:
            if self.fail_at is not None and position >= self.fail_at:
                raise OSError("the disk went away")
            chunk = self.content(position, min(MIB, self.size - self.short_by - position))
            position += len(chunk)
            digest.update(chunk)
            self.out += len(chunk)
            self.most_out = max(self.most_out, self.out)
            yield chunk
            # Asked for the next one: the reader is done with this one.
            self.out -= len(chunk)
        self.digests.append(digest.hexdigest())

    def unique_id(self) -> str:
        digest = hashlib.sha256()
        for start in range(0, self.size, MIB):
            digest.update(self.content(start, min(MIB, self.size - start)))
        return "u" + digest.hexdigest()[:15]


async def test_a_streamed_file_arrives_exactly_and_is_never_held_whole(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    """24 MB streamed to the stand-in (in this process): the client's Python memory grows
    by a few MiB at most, and the stream never has more than a chunk out at once."""
    stream = CountingStream(24 * MIB + 5)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = await telegram_client.send_video(1, Upload(stream, "lesson.mp4", "video/mp4"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert isinstance(result, Delivered), result
    [received] = standin.received(1)
    assert received.files[0].size == stream.size
    assert received.files[0].file_unique_id == stream.unique_id()
    assert stream.most_out <= MIB
    assert peak - before < 6 * MIB, f"sending peaked at {(peak - before) / MIB:.1f} MB"


async def test_an_album_of_streamed_files_holds_a_chunk_at_a_time(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    streams = [CountingStream(8 * MIB + n, seed=n) for n in range(3)]
    items = [AlbumItem("video", Upload(s, f"part-{n}.mp4")) for n, s in enumerate(streams)]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = await telegram_client.send_media_group(1, items, "Week")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert isinstance(result, AlbumDelivered), result
    [received] = standin.received(1)
    assert [f.file_unique_id for f in received.files] == [s.unique_id() for s in streams]
    assert all(s.opened == 1 and s.most_out <= MIB for s in streams)
    assert peak - before < 6 * MIB, f"sending peaked at {(peak - before) / MIB:.1f} MB"


@pytest.mark.parametrize(
    ("fault", "failed"),
    [
        ({"server_error_rate": 1.0}, TransientFailure),
        ({"flood_rate": 1.0, "flood_retry_after": 2}, RetryAfter),
    ],
)
async def test_a_send_tried_again_reads_the_file_again_from_its_start(
    telegram_client: TelegramClient,
    standin: BotApiStandin,
    fault: dict[str, object],
    failed: type,
) -> None:
    stream = CountingStream(3 * MIB + 11)
    upload = Upload(stream, "talk.mp4")
    standin.update_faults(fault)

    assert isinstance(await telegram_client.send_video(7, upload), failed)
    standin.update_faults({"server_error_rate": 0.0, "flood_rate": 0.0})
    result = await telegram_client.send_video(7, upload)

    assert isinstance(result, Delivered), result
    assert stream.opened == 2 and len(set(stream.digests)) == 1
    [received] = standin.received(7)
    assert received.files[0].file_unique_id == stream.unique_id()


@pytest.mark.parametrize(
    ("stream", "said"),
    [
        (CountingStream(4 * MIB, fail_at=2 * MIB), "could not be read: the disk went away"),
        (CountingStream(4 * MIB, short_by=100), f"ended at {4 * MIB - 100} of its {4 * MIB}"),
    ],
)
async def test_a_stream_that_fails_midway_fails_the_send_as_transient_and_sends_nothing(
    telegram_client: TelegramClient, standin: BotApiStandin, stream: CountingStream, said: str
) -> None:
    result = await telegram_client.send_document(3, Upload(stream, "plan.pdf"))

    assert isinstance(result, TransientFailure), result
    assert said in result.description
    assert standin.received() == []
    # The connection it broke is not handed to the next send.
    assert isinstance(await telegram_client.send_message(3, "still here"), Delivered)


def test_a_streamed_upload_shows_its_name_and_size() -> None:
    assert repr(Upload(CountingStream(5000), "a.pdf")) == "Upload('a.pdf', 5000 bytes)"
