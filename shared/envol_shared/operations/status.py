"""What the operator looks at first: streams, consumers, dead letters, and each service's
database (outbox backlog, who holds the consumer lease, timers due)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from envol_shared.database import create_engine, normalise_url
from envol_shared.event_log import outbox, timers
from envol_shared.events import now
from envol_shared.lease import consumer_leases
from envol_shared.operations import dead_letters
from envol_shared.topology import CONSUMERS, DEAD_LETTER_STREAM, EVENTS_STREAM


@dataclass(frozen=True)
class StreamRow:
    name: str
    messages: int | None
    bytes: int | None
    max_bytes: int | None
    max_msgs: int | None


@dataclass(frozen=True)
class ConsumerRow:
    service: str
    pending: int | None
    ack_pending: int | None
    redelivered: int | None
    last_delivered_seq: int | None
    last_active: datetime | None
    dead_letters: int


@dataclass(frozen=True)
class DatabaseRow:
    service: str
    outbox_backlog: int | None = None
    oldest_unpublished: datetime | None = None
    lease_holder: str | None = None
    lease_renewed: datetime | None = None
    timers_due: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Status:
    streams: list[StreamRow]
    consumers: list[ConsumerRow]
    databases: list[DatabaseRow]


async def streams(nc: Client) -> list[StreamRow]:
    js, rows = nc.jetstream(), []
    for name in (EVENTS_STREAM, DEAD_LETTER_STREAM):
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            rows.append(StreamRow(name, None, None, None, None))
            continue
        # JetStream says -1 for "no limit".
        max_bytes, max_msgs = info.config.max_bytes, info.config.max_msgs
        rows.append(StreamRow(name, info.state.messages, info.state.bytes,
                              max_bytes if max_bytes and max_bytes > 0 else None,
                              max_msgs if max_msgs and max_msgs > 0 else None))
    return rows


async def consumers(nc: Client) -> list[ConsumerRow]:
    js, rows = nc.jetstream(), []
    try:
        letters = await dead_letters.count(nc)
    except NotFoundError:
        letters = {}
    for service, consumer in CONSUMERS.items():
        try:
            info = await js.consumer_info(EVENTS_STREAM, consumer.durable)
        except NotFoundError:
            rows.append(ConsumerRow(service, None, None, None, None, None, letters.get(service, 0)))
            continue
        delivered = info.delivered
        rows.append(ConsumerRow(service, info.num_pending, info.num_ack_pending, info.num_redelivered,
                                delivered.stream_seq if delivered else None,
                                delivered.last_active if delivered else None, letters.get(service, 0)))
    return rows


def _missing_sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL that does not exist (opening it would create an empty one)."""
    database_file = sa.make_url(normalise_url(url)).database
    if url.startswith("sqlite") and database_file and not Path(database_file).exists():
        return database_file
    return None


async def database(service: str, url: str) -> DatabaseRow:
    """One service's tables (event_log and lease are shared by every service's schema)."""
    missing = _missing_sqlite_file(url)
    if missing:
        return DatabaseRow(service, error=f"no SQLite file {missing}")  # never create one
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            backlog, oldest = (await conn.execute(
                sa.select(sa.func.count(), sa.func.min(outbox.c.created_at))
                .where(outbox.c.published_at.is_(None)))).one()
            lease = (await conn.execute(
                sa.select(consumer_leases.c.holder, consumer_leases.c.renewed_at)
                .where(consumer_leases.c.consumer == CONSUMERS[service].durable))).first()
            due = (await conn.execute(sa.select(sa.func.count()).select_from(timers).where(
                timers.c.fired_at.is_(None), timers.c.due_at <= now()))).scalar_one()
        return DatabaseRow(service, backlog, oldest, lease[0] if lease else None,
                           lease[1] if lease else None, due)
    except Exception as exc:  # a database not migrated yet, unreachable...: say so, go on
        return DatabaseRow(service, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    finally:
        await engine.dispose()


async def collect(nc: Client, database_urls: dict[str, str]) -> Status:
    rows = [await database(service, url) for service, url in sorted(database_urls.items())]
    return Status(await streams(nc), await consumers(nc), rows)
