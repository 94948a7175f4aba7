"""One worker's pipeline: claim due work, wait for a shared slot, call Telegram, record.

Four loops share one event loop:
- the feeder starts due broadcasts and claims work (leased rows) into a local queue;
- the dispatcher takes a job, a permit and a pacer slot, and starts the call;
- the writer records outcomes in batches, one transaction per batch;
- the heartbeat renews the leases of every row still held, and drops queued rows that
  are no longer this worker's (a cancelled broadcast, a lease lost in a long stall).

A permit is held from the moment a message goes out until its outcome is committed,
so at most `in_flight` messages are ever sent-but-unrecorded: that is the most a
SIGKILL can make another worker send twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts import contents, deletions, deliveries, scheduler
from coursedesk.broadcasts.claiming import claim_work
from coursedesk.broadcasts.contents import BroadcastContent
from coursedesk.broadcasts.deletions import DeletionOutcome
from coursedesk.broadcasts.deliveries import DeliveryOutcome
from coursedesk.broadcasts.jobs import (
    Backoff,
    Job,
    JobKind,
    default_backoff,
    deletion_outcome,
    delivery_outcome,
)
from coursedesk.broadcasts.link_tokens import LinkKeys
from coursedesk.broadcasts.media import MediaMissing
from coursedesk.broadcasts.outgoing import files_to_send, personalised, send_content
from coursedesk.broadcasts.pacer import Pacer
from coursedesk.broadcasts.personalisation import NotSendable
from coursedesk.broadcasts.tracking import Addresses
from coursedesk.telegram.client import (
    AlbumResult,
    Blocked,
    DeleteResult,
    PermanentFailure,
    Pinned,
    PinResult,
    RetryAfter,
    SendResult,
    TelegramClient,
    TelegramConfigError,
    TransientFailure,
)

log = logging.getLogger(__name__)

RETRY_PAUSE_SECONDS = 1.0
"""How long a loop waits after the database failed it before trying again."""
PIN_TRIES = 3
"""Tries of pinning a delivered message before its pin_error is recorded."""
PIN_LONGEST_WAIT_SECONDS = 10.0
"""A 429 asking a pin to wait longer than this gives the pin up."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True)
class SenderOptions:
    rate: float
    lease_seconds: float = 20.0
    in_flight: int | None = None
    poll_seconds: float = 2.0
    flush_seconds: float = 0.1
    backoff: Backoff = default_backoff
    owner: str = field(default_factory=worker_name)
    public_base_url: str | None = None
    """PUBLIC_BASE_URL: where the tracked links of broadcasts lead."""

    @property
    def max_in_flight(self) -> int:
        """Enough for half a second of sending at the full rate, within [16, 1024].

        A permit is held until the outcome is committed, so this must cover the time a
        batch waits for and spends in its write, not only Telegram's answer: capped at
        512, one worker stalled at about 1,850 messages a second; at 4,096 its memory
        grew with every burst (docs/benchmarks.md).
        """
        if self.in_flight is not None:
            return self.in_flight
        return max(16, min(1024, math.ceil(self.rate * 0.5)))

    @property
    def queue_target(self) -> int:
        """Claim about a second of work ahead, within [8, 1000]."""
        return max(8, min(1000, math.ceil(self.rate)))


async def _retrying(what: str, attempt: Callable[[], Awaitable[None]]) -> None:
    """Run one round of a loop; a database failure is logged and waited out, not fatal."""
    try:
        await attempt()
    except (DBAPIError, OSError) as exc:
        log.warning("%s failed, retrying in %.0f s: %s", what, RETRY_PAUSE_SECONDS, exc)
        await asyncio.sleep(RETRY_PAUSE_SECONDS)


class Sender:
    def __init__(self, engine: AsyncEngine, client: TelegramClient, options: SenderOptions):
        self._engine = engine
        self._client = client
        self.options = options
        self._draining = asyncio.Event()
        self.pacer = Pacer(engine, options.rate)
        self._queue: deque[Job] = deque()
        self._held: dict[tuple[JobKind, int], Job] = {}
        self._contents: dict[int, BroadcastContent] = {}
        self._cancelled: set[int] = set()
        self._deliveries: list[DeliveryOutcome] = []
        self._blocked_users: list[int] = []
        self._deletions: list[DeletionOutcome] = []
        self._permits = asyncio.Semaphore(options.max_in_flight)
        self._calls: set[asyncio.Task[None]] = set()
        self._wake_feeder = asyncio.Event()
        self._queue_filled = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._closing = False
        self.stopping = asyncio.Event()
        self.fatal: TelegramConfigError | None = None
        self._link_keys = LinkKeys()
        self._untracked: set[int] = set()

    # Signals from the listener -------------------------------------------------------

    def wake(self) -> None:
        """New work may be there (a broadcast created or due, a deletion asked for)."""
        self._wake_feeder.set()

    def broadcast_cancelled(self, message_id: int) -> None:
        """Drop the queued sends of a cancelled broadcast (its rows are cancelled already)."""
        self._cancelled.add(message_id)
        dropped = [j for j in self._queue if j.kind is JobKind.send and j.message_id == message_id]
        if dropped:
            self._forget_queued(dropped)
            log.info("broadcast %s cancelled: %d queued sends dropped", message_id, len(dropped))

    def _forget_queued(self, jobs: Iterable[Job]) -> None:
        keys = {job.key for job in jobs}
        self._queue = deque(job for job in self._queue if job.key not in keys)
        for key in keys:
            self._held.pop(key, None)

    # The feeder ----------------------------------------------------------------------

    async def _feed(self) -> None:
        while not self._draining.is_set():
            self._wake_feeder.clear()
            next_due: float | None = None
            try:
                next_due = await self._start_due()
                if len(self._queue) <= self.options.queue_target // 2 and not self.pacer.paused_for:
                    await self._claim(self.options.queue_target - len(self._queue))
            except (DBAPIError, OSError) as exc:
                log.warning("claiming work failed, retrying: %s", exc)
            timeout = self.options.poll_seconds
            if next_due is not None:
                timeout = min(timeout, max(next_due, 0.01))
            if self.pacer.paused_for:
                timeout = min(timeout, self.pacer.paused_for)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_feeder.wait(), timeout)

    async def _start_due(self) -> float | None:
        async with self._engine.begin() as connection:
            for started in await scheduler.start_due_broadcasts(connection):
                log.info("broadcast %s is %s", started.message_id, started.status)
            return await scheduler.seconds_to_next_due(connection)

    def _sends_held(self) -> set[int]:
        """The broadcasts this worker holds sends of (queued, on their way or unrecorded)."""
        return {job.message_id for job in self._held.values() if job.kind is JobKind.send}

    async def _claim(self, wanted: int) -> None:
        if self.options.public_base_url is not None:
            await self._link_keys.signer(self._engine)
        work = await claim_work(
            self._engine,
            owner=self.options.owner,
            lease=self.options.lease_seconds,
            wanted=wanted,
            holding=self._sends_held(),
        )
        held = self._sends_held()
        # A broadcast with sends still held keeps the content they were claimed with: the
        # send that uploads its files must carry them, whatever another worker did since.
        self._contents = {key: sent for key, sent in self._contents.items() if key in held}
        self._enqueue(work.jobs)
        for broadcast in work.broadcasts:
            self._contents.setdefault(broadcast.message_id, broadcast)
        # Kept while any job of the broadcast is held: a cancel can land between a claim
        # and its jobs reaching the queue.
        self._cancelled &= held

    def _enqueue(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._held[job.key] = job
            self._queue.append(job)
        if self._queue:
            self._queue_filled.set()

    # The dispatcher ------------------------------------------------------------------

    async def _next_job(self) -> Job | None:
        """The next queued job; None once the worker is stopping."""
        while not self._queue:
            if self._draining.is_set():
                return None
            self._queue_filled.clear()
            self._wake_feeder.set()
            await self._queue_filled.wait()
        if self._draining.is_set():
            return None
        if len(self._queue) <= self.options.queue_target // 2:
            self._wake_feeder.set()
        return self._queue.popleft()

    async def _dispatch(self) -> None:
        while (job := await self._next_job()) is not None:
            if not await self._take_permit():
                self._queue.appendleft(job)
                break
            try:
                ready = await self._wait_for_slots(job)
            except (DBAPIError, OSError) as exc:
                ready = False
                log.warning("taking a send slot failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            if not ready:
                self._queue.appendleft(job)
                self._permits.release()
                continue
            if job.kind is JobKind.send and job.message_id in self._cancelled:
                self._forget_queued([job])
                self._permits.release()
                continue
            call = asyncio.create_task(self._call(job), name=f"telegram-{job.kind}")
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _wait_for_slots(self, job: Job) -> bool:
        """A slot for the call, and one more for a send that is pinned after it, so that
        the pins count against the shared rate too."""
        calls = 1
        if job.kind is JobKind.send:
            content = self._contents.get(job.message_id)
            calls = 2 if content is not None and content.pin else 1
        for _ in range(calls):
            if not await self.pacer.wait_for_slot(demand=len(self._queue) + 1):
                return False
        return True

    async def _take_permit(self) -> bool:
        """Wait for a permit; False when the worker starts stopping first."""
        if not self._permits.locked():
            # Free permits are taken without suspending, and without the race below.
            await self._permits.acquire()
            return True
        acquiring = asyncio.ensure_future(self._permits.acquire())
        draining = asyncio.ensure_future(self._draining.wait())
        await asyncio.wait({acquiring, draining}, return_when=asyncio.FIRST_COMPLETED)
        draining.cancel()
        if not acquiring.done():
            acquiring.cancel()
            await asyncio.gather(acquiring, return_exceptions=True)
        if acquiring.done() and not acquiring.cancelled():
            if not self._draining.is_set():
                return True
            self._permits.release()
        return False

    async def _call(self, job: Job) -> None:
        try:
            if job.kind is JobKind.send:
                retry = await self._send(job)
            else:
                retry = await self._delete(job)
        except TelegramConfigError as exc:
            self._queue.appendleft(job)
            self._permits.release()
            self.fatal = exc
            self.stopping.set()
            return
        if retry is not None:
            self._queue.appendleft(job)
            self._permits.release()
            try:
                await self.pacer.pause(retry.seconds)
            except (DBAPIError, OSError) as exc:
                log.warning("could not share the pause with other workers: %s", exc)
            return
        if len(self._deliveries) + len(self._deletions) >= self.options.max_in_flight // 2:
            self._flush_now.set()

    async def _send(self, job: Job) -> RetryAfter | None:
        content = self._contents[job.message_id]
        uploads = content.awaits_upload
        try:
            content = personalised(content, job.profile or {}, self._addresses(content, job))
        except NotSendable as exc:
            failed = DeliveryOutcome(
                job.recipient_id,
                job.message_id,
                "failed",
                job.attempts + 1,
                error=f"not sent: {exc}",
                uploaded=uploads,
            )
            self._deliveries.append(failed)
            return None
        result: SendResult | AlbumResult
        try:
            files = await files_to_send(self._engine, content)
            result = await send_content(self._client, job.chat_id, content, files)
        except TelegramConfigError:
            raise
        except MediaMissing as exc:
            result = PermanentFailure(f"not sent: {exc}")
        except Exception as exc:  # a bug must cost one message a retry, not the worker
            log.exception("unexpected error sending to chat %s", job.chat_id)
            result = TransientFailure(f"unexpected error: {exc}")
        if isinstance(result, RetryAfter):
            return result
        outcome = delivery_outcome(job, result, self.options.backoff, uploaded=uploads)
        if content.pin and outcome.telegram_message_id is not None:
            error = await self._pin(job.chat_id, outcome.telegram_message_id, content.silent)
            outcome = replace(outcome, pinned=error is None, pin_error=error)
        self._deliveries.append(outcome)
        if isinstance(result, Blocked):
            self._blocked_users.append(job.chat_id)
        return None

    def _addresses(self, content: BroadcastContent, job: Job) -> Addresses | None:
        """The recipient's tracked addresses of a broadcast whose links are tracked.

        A worker with no PUBLIC_BASE_URL sends such a broadcast's links as they are,
        rather than leave it unsent, and says so once per broadcast.
        """
        if content.tracking is None:
            return None
        base = self.options.public_base_url
        signer = self._link_keys.loaded
        if base is None or signer is None:
            if content.message_id not in self._untracked:
                self._untracked.add(content.message_id)
                log.warning(
                    "broadcast %s tracks its links, but PUBLIC_BASE_URL is not set for this "
                    "worker: its links go out untracked",
                    content.message_id,
                )
            return None
        recipient_id = job.recipient_id
        return lambda position: f"{base}/r/{signer.token(recipient_id, position)}"

    async def _pin(self, chat_id: int, message_id: int, silent: bool) -> str | None:
        """Pin a delivered message: None once pinned, else why not (after PIN_TRIES).

        The delivery stands whatever happens here: nothing raised is let through, or the
        message would be sent again.
        """
        result: PinResult = TransientFailure("not tried")
        for attempt in range(1, PIN_TRIES + 1):
            try:
                result = await self._client.pin_chat_message(
                    chat_id, message_id, disable_notification=silent
                )
            except Exception as exc:  # a refused token or a bug: the send stands
                if not isinstance(exc, TelegramConfigError):
                    log.exception("unexpected error pinning in chat %s", chat_id)
                result = PermanentFailure(str(exc))
            if isinstance(result, Pinned):
                return None
            if isinstance(result, RetryAfter):
                try:
                    await self.pacer.pause(result.seconds)
                except (DBAPIError, OSError) as exc:
                    log.warning("could not share the pause with other workers: %s", exc)
                if result.seconds > PIN_LONGEST_WAIT_SECONDS or attempt == PIN_TRIES:
                    return f"not pinned: Telegram asked to wait {result.seconds:g} s"
                await asyncio.sleep(result.seconds)
                continue
            if isinstance(result, TransientFailure) and attempt < PIN_TRIES:
                await asyncio.sleep(self.options.backoff(attempt))
                continue
            break
        assert not isinstance(result, Pinned | RetryAfter)
        tries = f" (after {PIN_TRIES} tries)" if isinstance(result, TransientFailure) else ""
        return f"not pinned: {result.description}{tries}"

    async def _delete(self, job: Job) -> RetryAfter | None:
        assert job.telegram_message_id is not None, "only delivered messages are deleted"
        result: DeleteResult
        try:
            result = await self._client.delete_message(job.chat_id, job.telegram_message_id)
        except TelegramConfigError:
            raise
        except Exception as exc:  # a bug must cost one message a retry, not the worker
            log.exception("unexpected error deleting in chat %s", job.chat_id)
            result = TransientFailure(f"unexpected error: {exc}")
        if isinstance(result, RetryAfter):
            return result
        self._deletions.append(deletion_outcome(job, result, self.options.backoff))
        return None

    # The writer ----------------------------------------------------------------------

    async def _write(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.options.flush_seconds)
            self._flush_now.clear()
            await _retrying("recording outcomes", self.flush)

    async def flush(self) -> None:
        """Record every outcome gathered so far (kept for the next try if this one fails)."""
        sent, self._deliveries = self._deliveries, []
        blocked, self._blocked_users = self._blocked_users, []
        deleted, self._deletions = self._deletions, []
        try:
            if sent:
                async with self._engine.begin() as connection:
                    finished = await deliveries.record_outcomes(
                        connection, sent, blocked, owner=self.options.owner
                    )
                self._recorded(JobKind.send, (o.recipient_id for o in sent))
                if any(o.uploaded for o in sent):
                    # The file_ids are known now: the rest of the broadcast can be claimed.
                    self.wake()
                sent, blocked = [], []
                for message_id in finished:
                    log.info("broadcast %s is sent: no recipient is pending", message_id)
            if deleted:
                async with self._engine.begin() as connection:
                    finished = await deletions.record_outcomes(
                        connection, deleted, owner=self.options.owner
                    )
                self._recorded(JobKind.delete, (o.recipient_id for o in deleted))
                deleted = []
                for message_id in finished:
                    log.info("broadcast %s is deleted from the chats", message_id)
        finally:
            self._deliveries[:0] = sent
            self._blocked_users[:0] = blocked
            self._deletions[:0] = deleted

    def _recorded(self, kind: JobKind, recipient_ids: Iterable[int]) -> None:
        for recipient_id in recipient_ids:
            self._held.pop((kind, recipient_id), None)
            self._permits.release()

    # The heartbeat -------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.options.lease_seconds / 3)
            await _retrying("renewing leases", self._renew)

    async def _renew(self) -> None:
        asked = set(self._held)
        kept: set[tuple[JobKind, int]] = set()
        for kind, module in ((JobKind.send, deliveries), (JobKind.delete, deletions)):
            ids = [recipient_id for k, recipient_id in asked if k is kind]
            if not ids:
                continue
            async with self._engine.begin() as connection:
                renewed = await module.renew_leases(
                    connection, ids, owner=self.options.owner, lease=self.options.lease_seconds
                )
            kept.update((kind, recipient_id) for recipient_id in renewed)
        uploading = [m for m in self._sends_held() if self._uploads(m)]
        if uploading:
            async with self._engine.begin() as connection:
                await contents.renew_upload_leases(
                    connection,
                    uploading,
                    owner=self.options.owner,
                    lease=self.options.lease_seconds,
                )
        # Jobs claimed while the renewal ran were not asked about, and are surely ours.
        lost = [job for job in self._queue if job.key in asked and job.key not in kept]
        if lost:
            self._forget_queued(lost)
            log.info("%d queued jobs are no longer this worker's and were dropped", len(lost))

    # Start and stop ------------------------------------------------------------------

    async def run(self) -> None:
        """Send until `stopping` is set, then finish in-flight calls and give back the rest."""
        loops = [
            asyncio.create_task(self._feed(), name="feeder"),
            asyncio.create_task(self._dispatch(), name="dispatcher"),
            asyncio.create_task(self._write(), name="writer"),
            asyncio.create_task(self._keep_leases(), name="heartbeat"),
        ]
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping:
                    task.result()
        finally:
            await self._shut_down(loops, stopping)

    async def _shut_down(
        self, loops: list[asyncio.Task[None]], stopping: asyncio.Task[bool]
    ) -> None:
        feeder, dispatcher, writer, heartbeat = loops
        stopping.cancel()
        # Stopped by request, not cancelled: a task cancelled inside a database call can
        # leave its connection waiting on the server.
        self._draining.set()
        self.pacer.interrupt()
        self._wake_feeder.set()
        self._queue_filled.set()
        await asyncio.gather(feeder, dispatcher, stopping, return_exceptions=True)
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
        # The writer finishes the batch it may be writing; cancelling it mid-commit could
        # leave outcomes both written and queued for writing again.
        self._closing = True
        self._flush_now.set()
        await asyncio.gather(writer, return_exceptions=True)
        for _ in range(3):
            try:
                await self.flush()
                break
            except (DBAPIError, OSError) as exc:
                log.warning("recording outcomes at shutdown failed: %s", exc)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
        try:
            await self._release_queued()
        except (DBAPIError, OSError) as exc:
            log.warning("could not release claimed rows; they return when leases end: %s", exc)
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await self.pacer.close()
        log.info(
            "worker %s sent in %d slots and missed %d (reached late or inside a pause)",
            self.options.owner,
            self.pacer.used,
            self.pacer.missed,
        )

    def _uploads(self, message_id: int) -> bool:
        content = self._contents.get(message_id)
        return content is not None and content.awaits_upload

    async def _release_queued(self) -> None:
        queued, self._queue = list(self._queue), deque()
        async with self._engine.begin() as connection:
            await contents.release_upload_leases(connection, None, owner=self.options.owner)
        for kind, module in ((JobKind.send, deliveries), (JobKind.delete, deletions)):
            ids = [job.recipient_id for job in queued if job.kind is kind]
            if ids:
                async with self._engine.begin() as connection:
                    await module.release_leases(connection, ids, owner=self.options.owner)
        for job in queued:
            self._held.pop(job.key, None)
        if queued:
            log.info("gave back %d claimed jobs that were not started", len(queued))
