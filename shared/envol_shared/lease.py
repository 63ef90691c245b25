"""One consuming instance per service at a time, the others standing by.

Events about one company must be applied in the order they were published. Instances that
pulled from the same durable consumer at once would each get a share of a company's events
and could apply them out of order, so instances take a lease: the holder consumes, the
others stand by (still answering queries, relaying their outbox and firing timers, which are
safe to share) and take over when the holder stops renewing it.

The lease is a row of the service's database with an epoch. Every batch the holder commits
renews the row *in the batch's transaction*, conditioned on its epoch: a holder that lost
the lease (paused, cut off, presumed dead) can never commit again. A new holder first waits
one acknowledgement wait, so that what the old holder had fetched but not acknowledged is
redelivered, ahead of anything newer, before it fetches: per-company order holds across a
takeover too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from envol_shared.database import UtcDateTime
from envol_shared.event_log import metadata
from envol_shared.events import now

consumer_leases = sa.Table(
    "consumer_leases",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
    sa.Column("renewed_at", UtcDateTime(), nullable=False),
)


class LeaseLost(Exception):
    """Another instance holds the lease now: stop consuming, roll back what is in hand."""


class ConsumerLease:
    def __init__(self, engine: AsyncEngine, consumer: str, *, ttl_s: float = 10.0,
                 poll_s: float = 2.0, on_change: Callable[[str], None] = lambda change: None) -> None:
        self._engine = engine
        self._consumer = consumer
        self._ttl = timedelta(seconds=ttl_s)
        self._poll_s = poll_s
        # Renewed by every batch, and at least this often when idle.
        self.renew_every_s = ttl_s / 4
        # Unique per process start: a restarted instance is a new holder.
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self.epoch: int | None = None
        # Set when the lease was taken from a holder that stopped renewing it without letting
        # go (a crash): what it had fetched comes back only after the acknowledgement wait.
        self.after_crash = False
        self._on_change = on_change  # "acquired", "lost", "released": the metrics
        self.log = structlog.get_logger("envol.lease").bind(consumer=consumer, holder=self.holder)

    @property
    def held(self) -> bool:
        return self.epoch is not None

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this instance holds the lease (True), or until `stopping` (False)."""
        announced = False
        while not stopping.is_set():
            try:
                async with self._engine.begin() as connection:
                    epoch = await self._try_take(connection)
            except Exception as exc:  # database unreachable: try again
                self.log.warning("lease.unavailable", error=repr(exc))
                epoch = None
            if epoch is not None:
                self.epoch = epoch
                self._on_change("acquired")
                self.log.info("lease.acquired", epoch=epoch, after_crash=self.after_crash)
                return True
            if not announced:
                self.log.info("lease.standing_by")
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._poll_s)
        return False

    async def _try_take(self, connection: AsyncConnection) -> int | None:
        moment = now()
        row = (await connection.execute(
            sa.select(consumer_leases.c.holder, consumer_leases.c.epoch, consumer_leases.c.renewed_at)
            .where(consumer_leases.c.consumer == self._consumer)
        )).first()
        if row is None:
            try:
                async with connection.begin_nested():
                    await connection.execute(sa.insert(consumer_leases).values(
                        consumer=self._consumer, holder=self.holder, epoch=1, renewed_at=moment))
                return 1
            except sa.exc.IntegrityError:  # another instance inserted it first
                return None
        holder, epoch, renewed_at = row
        if holder not in (self.holder, "") and renewed_at > moment - self._ttl:
            return None  # held, and alive
        self.after_crash = holder not in (self.holder, "")
        # Compare-and-set on the epoch, and still unrenewed: of two instances taking over at
        # once one wins, and a holder that renewed meanwhile (it was only slow) keeps it.
        taken = await connection.execute(
            sa.update(consumer_leases)
            .where(consumer_leases.c.consumer == self._consumer, consumer_leases.c.epoch == epoch,
                   sa.or_(consumer_leases.c.holder.in_(["", self.holder]),
                          consumer_leases.c.renewed_at <= moment - self._ttl))
            .values(holder=self.holder, epoch=epoch + 1, renewed_at=moment))
        return epoch + 1 if taken.rowcount == 1 else None

    async def renew(self, session: AsyncSession | None = None) -> None:
        """Renew within `session`'s transaction (a batch: it commits only while held), or on
        its own; raise LeaseLost when another instance took it."""
        if self.epoch is None:
            raise LeaseLost("this instance does not hold the lease")
        statement = (sa.update(consumer_leases)
                     .where(consumer_leases.c.consumer == self._consumer,
                            consumer_leases.c.epoch == self.epoch)
                     .values(renewed_at=now()))
        if session is not None:
            result = await session.execute(statement)
        else:
            async with self._engine.begin() as connection:
                result = await connection.execute(statement)
        if result.rowcount != 1:  # type: ignore[attr-defined]
            self.log.warning("lease.lost", epoch=self.epoch)
            self.epoch = None
            self._on_change("lost")
            raise LeaseLost(f"the lease of {self._consumer} passed to another instance")

    async def release(self) -> None:
        """Let a standby take over at once (a graceful stop)."""
        if self.epoch is None:
            return
        with contextlib.suppress(Exception):
            async with self._engine.begin() as connection:
                await connection.execute(
                    sa.update(consumer_leases)
                    .where(consumer_leases.c.consumer == self._consumer,
                           consumer_leases.c.epoch == self.epoch)
                    .values(holder="", renewed_at=now()))
        self.epoch = None
        self._on_change("released")
