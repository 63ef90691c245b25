"""The event log every service uses the same way: an inbox that deduplicates what comes in,
an outbox that holds what goes out until the relay has published it, and durable timers.

All live in the service's own database and are written in the same transaction as the
state they relate to, so "state changed" and "event will be published" can never disagree,
and a timer is scheduled, fired or cancelled together with the state that decided it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from envol_shared.database import UtcDateTime
from envol_shared.events import CloudEvent, now

metadata = sa.MetaData()

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("message_key", sa.String(400), primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    # Why it was refused (rejected, dead-lettered), and where it stood in the stream: a copy
    # at another position is a resend by its producer, who is told the refusal again.
    sa.Column("reason", sa.String(2000), nullable=True),
    sa.Column("stream_sequence", sa.BigInteger(), nullable=True),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(400), nullable=False),
    sa.Column("headers", sa.JSON(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("published_at", UtcDateTime(), nullable=True),
    # The relay reads the pending rows in order; published ones are kept for days.
    sa.Index("ix_outbox_published_at_id", "published_at", "id"),
)


# A company whose oldest unapplied event is waiting for a redelivery: its later events wait
# too. Kept in the database so the order still holds after a restart.
held_companies = sa.Table(
    "held_companies",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("company", sa.String(64), primary_key=True),
    sa.Column("stream_sequence", sa.BigInteger(), nullable=False),
    sa.Column("held_at", UtcDateTime(), nullable=False),
)


# Something to do at a given time (a reminder, an escalation, a checkpoint): see timers.py.
# A fired timer keeps its row (fired_at, outcome) until rescheduled under the same key.
timers = sa.Table(
    "timers",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("scheduled_at", UtcDateTime(), nullable=False),
    sa.Column("fired_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(500), nullable=True),
    sa.Index("ix_timers_fired_at_due_at", "fired_at", "due_at"),
)


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to publish: an event, a rejection or a dead letter."""

    message_id: str
    subject: str
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_event(cls, subject: str, envelope: CloudEvent) -> OutgoingMessage:
        return cls(message_id=envelope.id, subject=subject, payload=envelope.to_bytes())


class Received(NamedTuple):
    """What the inbox remembers of a message taken into account."""

    outcome: str
    reason: str | None
    stream_sequence: int | None


class Inbox:
    """Which messages this consumer has already taken into account."""

    def __init__(self, session: AsyncSession, consumer: str) -> None:
        self._session = session
        self._consumer = consumer
        self._pending: list[dict[str, object]] = []

    async def seen(self, keys: Iterable[str]) -> dict[str, Received]:
        keys = list(keys)
        if not keys:
            return {}
        rows = await self._session.execute(
            sa.select(inbox.c.message_key, inbox.c.outcome, inbox.c.reason, inbox.c.stream_sequence)
            .where(inbox.c.consumer == self._consumer, inbox.c.message_key.in_(keys))
        )
        return {key: Received(outcome, reason, sequence) for key, outcome, reason, sequence in rows}

    def record(self, key: str, received: Received) -> None:
        self._pending.append({"consumer": self._consumer, "message_key": key, "received_at": now(),
                              "outcome": received.outcome, "reason": received.reason,
                              "stream_sequence": received.stream_sequence})

    def forget_pending(self) -> None:
        self._pending = []

    async def flush(self) -> None:
        if self._pending:
            await self._session.execute(sa.insert(inbox), self._pending)
            self._pending = []


class OutboxRow(NamedTuple):
    """A row of the outbox: what the relay needs to publish it and mark it published."""

    id: int
    message_id: str
    subject: str
    headers: Mapping[str, str]
    payload: bytes


class Outbox:
    """Messages to publish once the transaction that produced them has committed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._pending: list[dict[str, object]] = []
        # The rows this transaction wrote, in order: handed to the relay after commit.
        self.written: list[OutboxRow] = []

    def add(self, message: OutgoingMessage) -> None:
        self._pending.append({
            "message_id": message.message_id,
            "subject": message.subject,
            "headers": dict(message.headers),
            "payload": message.payload,
            "created_at": now(),
        })

    async def flush(self) -> None:
        if self._pending:
            ids = await self._session.execute(
                sa.insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True), self._pending
            )
            self.written += [
                OutboxRow(id_, str(row["message_id"]), str(row["subject"]),
                          row["headers"], row["payload"])  # type: ignore[arg-type]
                for id_, row in zip(ids.scalars(), self._pending, strict=True)
            ]
            self._pending = []

    def forget_since(self, written: int) -> None:
        """Drop what was added, and written, after the first `written` rows (a savepoint
        rolled back: those rows no longer exist)."""
        self._pending = []
        del self.written[written:]


class Holds:
    """Which companies' events wait behind an earlier one of theirs (see `held_companies`)."""

    def __init__(self, session: AsyncSession, consumer: str) -> None:
        self._session = session
        self._consumer = consumer

    async def all(self) -> dict[str, int]:
        rows = await self._session.execute(
            sa.select(held_companies.c.company, held_companies.c.stream_sequence)
            .where(held_companies.c.consumer == self._consumer)
        )
        return {company: sequence for company, sequence in rows}

    async def apply(self, changes: Mapping[str, int | None]) -> None:
        """Hold each company at the given stream sequence, or release it (None)."""
        if not changes:
            return
        await self._session.execute(sa.delete(held_companies).where(
            held_companies.c.consumer == self._consumer,
            held_companies.c.company.in_(list(changes)),
        ))
        held = [{"consumer": self._consumer, "company": company, "stream_sequence": sequence,
                 "held_at": now()} for company, sequence in changes.items() if sequence is not None]
        if held:
            await self._session.execute(sa.insert(held_companies), held)


@dataclass(frozen=True)
class Timer:
    """A durable timer: `kind` names its handler, `payload` what it is about."""

    key: str
    kind: str
    due_at: datetime
    payload: Mapping[str, Any]


class Timers:
    """Timers of this service. Scheduling a key again replaces it (and re-arms a fired one);
    changes are written at commit, with the state that decided them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._pending: dict[str, Timer | None] = {}

    def schedule(self, key: str, kind: str, due_at: datetime, payload: Mapping[str, Any]) -> None:
        self._pending[key] = Timer(key, kind, due_at, dict(payload))

    def cancel(self, key: str) -> None:
        self._pending[key] = None

    def forget_pending(self) -> None:
        self._pending = {}

    async def flush(self) -> None:
        if not self._pending:
            return
        await self._session.execute(sa.delete(timers).where(timers.c.key.in_(list(self._pending))))
        rows = [{"key": t.key, "kind": t.kind, "due_at": t.due_at, "payload": dict(t.payload),
                 "scheduled_at": now()} for t in self._pending.values() if t is not None]
        if rows:
            await self._session.execute(sa.insert(timers), rows)
        self._pending = {}

    async def due(self, at: datetime, limit: int) -> list[str]:
        """Keys of the timers not fired yet whose time has come, oldest first."""
        rows = await self._session.execute(
            sa.select(timers.c.key).where(timers.c.fired_at.is_(None), timers.c.due_at <= at)
            .order_by(timers.c.due_at, timers.c.key).limit(limit)
        )
        return list(rows.scalars())

    async def claim(self, key: str, at: datetime) -> Timer | None:
        """The timer if it is still due and unfired, locked for this transaction (another
        instance of the service skips it); None when someone else fired or moved it."""
        query = sa.select(timers.c.key, timers.c.kind, timers.c.due_at, timers.c.payload).where(
            timers.c.key == key, timers.c.fired_at.is_(None), timers.c.due_at <= at)
        if self._session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = (await self._session.execute(query)).first()
        return Timer(*row) if row else None

    async def mark_fired(self, key: str, at: datetime, outcome: str) -> None:
        await self._session.execute(
            sa.update(timers).where(timers.c.key == key).values(fired_at=at, outcome=outcome[:500])
        )

    async def scheduled(self, prefix: str) -> list[Timer]:
        """Unfired timers whose key starts with `prefix` (what is coming for a case)."""
        rows = await self._session.execute(
            sa.select(timers.c.key, timers.c.kind, timers.c.due_at, timers.c.payload)
            .where(timers.c.fired_at.is_(None), timers.c.key.startswith(prefix, autoescape=True))
            .order_by(timers.c.due_at)
        )
        return [Timer(*row) for row in rows]
