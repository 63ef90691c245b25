"""The event log every service uses the same way: an inbox that deduplicates what comes in
and an outbox that holds what goes out until the relay has published it.

Both live in the service's own database and are written in the same transaction as the
state they relate to, so "state changed" and "event will be published" can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

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


class Inbox:
    """Which messages this consumer has already taken into account."""

    def __init__(self, session: AsyncSession, consumer: str) -> None:
        self._session = session
        self._consumer = consumer
        self._pending: list[dict[str, object]] = []

    async def seen(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        rows = await self._session.execute(
            sa.select(inbox.c.message_key).where(
                inbox.c.consumer == self._consumer, inbox.c.message_key.in_(keys)
            )
        )
        return set(rows.scalars())

    def record(self, key: str, outcome: str) -> None:
        self._pending.append({"consumer": self._consumer, "message_key": key,
                              "received_at": now(), "outcome": outcome})

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
