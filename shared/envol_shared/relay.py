"""The outbox relay: publishes committed outbox rows to JetStream, in order, at least once.

Each row is published with ``Nats-Msg-Id`` set to its message id, so when the relay crashes
after publishing but before marking rows as published, the republished copies are dropped
by JetStream's duplicate window (and, beyond it, by the consumers' inboxes).

The consumer hands over the rows of each batch it commits. When the relay's last read found
nothing older pending, it publishes those rows straight from memory (saving a read of the
outbox per batch, which at low load is most of an event's latency); otherwise, and after
any failure, it reads the outbox in order, which is also how it recovers after a crash.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from envol_shared.event_log import OutboxRow, outbox
from envol_shared.events import now


class OutboxRelay:
    def __init__(
        self,
        *,
        js: JetStreamContext,
        engine: AsyncEngine,
        service: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        keep_published_for: timedelta = timedelta(days=7),
    ) -> None:
        self._js = js
        self._engine = engine
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._keep_published_for = keep_published_for
        self._wake = asyncio.Event()
        self._handed: list[OutboxRow] = []
        # True when the last read of the outbox left nothing pending: rows handed over since
        # are then the oldest pending ones, in commit order.
        self._drained = False
        self._read_up_to = 0
        self.log = structlog.get_logger("envol.relay").bind(service=service)

    def hand_off(self, rows: list[OutboxRow]) -> None:
        """Called after each commit with the outbox rows it wrote: publish now."""
        self._handed += rows
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Publish until `stopping` is set, then flush what is left and return."""
        failures = 0
        pruned_at = time.monotonic()
        while True:
            # A pass that starts after `stopping` sees every commit (the consumer has ended).
            last_pass = stopping.is_set()
            # Cleared before reading the outbox: a commit from now on makes the next pass run.
            self._wake.clear()
            try:
                await self.publish_pending()
                failures = 0
            except Exception as exc:  # NATS down, stream full, database blip: rows stay pending
                failures += 1
                self.log.error("outbox.publish_failed", error=repr(exc), failures=failures)
                if last_pass:
                    if failures >= 3:
                        # Not lost: the rows stay in the outbox for the next start.
                        self.log.error("outbox.left_pending_at_shutdown")
                        return
                    await asyncio.sleep(0.2)
                    continue
                await asyncio.sleep(min(0.5 * 2 ** failures, 30))
                continue
            if last_pass:
                return
            if time.monotonic() - pruned_at > 3600:
                pruned_at = time.monotonic()
                await self.prune()
            # The outbox was drained: wait for a commit to wake us, or for the next poll.
            if not self._wake.is_set():
                waiters = {asyncio.ensure_future(self._wake.wait()),
                           asyncio.ensure_future(stopping.wait())}
                _, pending = await asyncio.wait(waiters, timeout=self._poll_interval_s,
                                                return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()

    async def publish_pending(self) -> int:
        """Publish every pending row; return how many were published."""
        # Rows a read of the outbox has already taken care of are not handed over again.
        handed = [row for row in self._handed if row.id > self._read_up_to]
        self._handed = []
        if self._drained and handed:
            self._drained = False  # until these are published and marked
            count, refused = await self._publish(handed)
            if count:
                async with self._engine.begin() as connection:
                    await self._mark(connection, handed[:count])
            if refused:
                raise RuntimeError(f"{refused} outbox rows could not be published yet")
            self._drained = True
            return count
        total = 0
        while True:
            count, refused = await self._publish_batch()
            total += count
            if refused:
                raise RuntimeError(f"{refused} outbox rows could not be published yet")
            if count < self._batch_size:
                self._drained = True
                return total

    async def _publish_batch(self) -> tuple[int, int]:
        """Publish one batch of pending rows; return (published, refused)."""
        async with self._engine.begin() as connection:
            query = (
                sa.select(outbox.c.id, outbox.c.message_id, outbox.c.subject, outbox.c.headers,
                          outbox.c.payload)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self._batch_size)
            )
            if connection.dialect.name == "postgresql":
                # Several instances of a service may relay the same outbox: each row once.
                query = query.with_for_update(skip_locked=True)
            rows = [OutboxRow(*row) for row in await connection.execute(query)]
            if not rows:
                return 0, 0
            self._read_up_to = max(self._read_up_to, rows[-1].id)
            count, refused = await self._publish(rows)
            if count:
                await self._mark(connection, rows[:count])
            return count, refused

    async def _publish(self, rows: list[OutboxRow]) -> tuple[int, int]:
        """Publish rows in order; return (published, refused): the first refusal stops."""
        futures = []
        for row in rows:
            headers = {**row.headers, "Nats-Msg-Id": row.message_id}
            futures.append(await self._js.publish_async(row.subject, row.payload, headers=headers))
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout=30)
        for index, (row, result) in enumerate(zip(rows, results, strict=True)):
            if isinstance(result, BaseException):
                # Keep order: this row and the ones after it are retried together.
                self.log.error("outbox.publish_refused", message_id=row.message_id,
                               nats_subject=row.subject, error=repr(result))
                return index, len(rows) - index
        return len(rows), 0

    async def _mark(self, connection: AsyncConnection, rows: list[OutboxRow]) -> None:
        await connection.execute(
            sa.update(outbox).where(outbox.c.id.in_([row.id for row in rows])).values(published_at=now())
        )

    async def prune(self) -> None:
        """Forget rows published long ago (the events themselves live on in the stream)."""
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(outbox).where(outbox.c.published_at < now() - self._keep_published_for)
            )
