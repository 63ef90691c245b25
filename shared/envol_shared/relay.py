"""The outbox relay: publishes committed outbox rows to JetStream, in order, at least once.

Each row is published with ``Nats-Msg-Id`` set to its message id, so when the relay crashes
after publishing but before marking rows as published, the republished copies are dropped
by JetStream's duplicate window (and, beyond it, by the consumers' inboxes).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from envol_shared.event_log import outbox
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
        self.log = structlog.get_logger("envol.relay").bind(service=service)

    def wake(self) -> None:
        """Called after a commit that wrote to the outbox: publish now, not at the next poll."""
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
        total = 0
        while True:
            count, refused = await self._publish_batch()
            total += count
            if refused:
                raise RuntimeError(f"{refused} outbox rows could not be published yet")
            if count < self._batch_size:
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
            rows = (await connection.execute(query)).all()
            if not rows:
                return 0, 0
            futures = []
            for row in rows:
                headers = {**row.headers, "Nats-Msg-Id": row.message_id}
                futures.append(await self._js.publish_async(row.subject, row.payload, headers=headers))
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout=30
            )
            published = []
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    # Keep order: this row and the ones after it are retried together.
                    self.log.error("outbox.publish_refused", message_id=row.message_id,
                                   nats_subject=row.subject, error=repr(result))
                    break
                published.append(row.id)
            if published:
                await connection.execute(
                    sa.update(outbox).where(outbox.c.id.in_(published)).values(published_at=now())
                )
            return len(published), len(rows) - len(published)

    async def prune(self) -> None:
        """Forget rows published long ago (the events themselves live on in the stream)."""
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(outbox).where(outbox.c.published_at < now() - self._keep_published_for)
            )
