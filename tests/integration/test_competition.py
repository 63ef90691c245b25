"""Several instances of a service racing for the same work on one PostgreSQL database, counted
by what reaches the NATS server: each outbox row is published once.

Publishes are counted by a plain NATS subscription on the events' subjects, which gets every
copy a publisher sends, including those JetStream's duplicate window then drops: the stream
alone would hide a second publication of the same row."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import sqlalchemy as sa
from conftest import query
from nats.aio.client import Client
from support import connected, new_id, stream_messages, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_shared.database import create_engine, migrate
from envol_shared.event_log import OutboxRow, outbox
from envol_shared.events import now
from envol_shared.relay import OutboxRelay
from envol_shared.topology import EVENTS_STREAM

EVENT = "envol.aerospace-valley.enrolment.company.assessed"


class PublishCounter:
    """Every message the server routes on `subject`, by its Nats-Msg-Id."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    @asynccontextmanager
    async def listening(self, client: Client, subject: str) -> AsyncIterator[PublishCounter]:
        async def count(msg) -> None:  # type: ignore[no-untyped-def]
            self.seen[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1

        subscription = await client.subscribe(subject, cb=count)
        await client.flush()
        try:
            yield self
        finally:
            await client.flush()  # what the server routed before this is in
            await subscription.unsubscribe()

    def twice_or_more(self) -> dict[str, int]:
        return {key: times for key, times in self.seen.items() if times > 1}


@pytest.fixture
def postgresql(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("instances share one PostgreSQL database (SQLite is one process's file)")
    return database_url


async def test_two_relays_racing_on_one_outbox_publish_each_row_once(nats_server, nc, postgresql):
    """Two instances' relays find the same pending rows (nothing handed over by a consumer:
    both read the outbox, as after a restart or for rows another instance committed): the
    rows a relay reads are locked, the other skips them, and each row is sent once."""
    total = 1200
    engines = [create_engine(postgresql), create_engine(postgresql)]
    await migrate(engines[0], bootstrap().migrations)
    rows = [{"message_id": new_id(), "subject": EVENT, "headers": {}, "created_at": now(),
             "payload": json.dumps({"n": n}).encode()} for n in range(total)]
    async with engines[0].begin() as connection:
        await connection.execute(sa.insert(outbox), rows)

    counter = PublishCounter()
    stopping = asyncio.Event()
    async with connected(nats_server.url) as first, connected(nats_server.url) as second, \
            counter.listening(nc, EVENT):
        relays = [OutboxRelay(js=client.jetstream(), engine=engine, service="enrolment", batch_size=40)
                  for client, engine in zip((first, second), engines, strict=True)]
        tasks = [asyncio.create_task(relay.run(stopping)) for relay in relays]
        try:
            await wait_for(lambda: _all_published(postgresql, total), within=60)
        finally:
            stopping.set()
            await asyncio.gather(*tasks)
            for engine in engines:
                await engine.dispose()
        sent = [client.stats["out_msgs"] for client in (first, second)]

    assert counter.twice_or_more() == {}, "rows published more than once"
    assert set(counter.seen) == {row["message_id"] for row in rows}
    assert min(sent) > total // 10, f"both relays took a share of the rows: {sent}"
    stored = [m.headers["Nats-Msg-Id"] for m in await stream_messages(nc, EVENTS_STREAM, EVENT)]
    assert sorted(stored) == sorted(row["message_id"] for row in rows)


async def test_rows_handed_to_one_relay_while_another_reads_the_outbox_are_published_once(
        nats_server, nc, postgresql):
    """The consuming instance hands the rows it commits to its relay, while the other
    instance's relay polls the outbox and finds the same rows: whichever locks a row first
    publishes it, the other skips it."""
    chunks, size = 40, 20
    engines = [create_engine(postgresql), create_engine(postgresql)]
    await migrate(engines[0], bootstrap().migrations)
    counter = PublishCounter()
    stopping = asyncio.Event()
    written: list[str] = []
    async with connected(nats_server.url) as first, connected(nats_server.url) as second, \
            counter.listening(nc, EVENT):
        consuming, polling = [
            OutboxRelay(js=client.jetstream(), engine=engine, service="enrolment", batch_size=size,
                        poll_interval_s=poll)
            for client, engine, poll in zip((first, second), engines, (5.0, 0.005), strict=True)]
        tasks = [asyncio.create_task(relay.run(stopping)) for relay in (consuming, polling)]
        try:
            await wait_for(lambda: _drained(consuming), within=10, interval=0.01)
            for _ in range(chunks):
                rows = [{"message_id": new_id(), "subject": EVENT, "headers": {}, "created_at": now(),
                         "payload": b"{}"} for _ in range(size)]
                async with engines[0].begin() as connection:
                    ids = (await connection.execute(
                        sa.insert(outbox).returning(outbox.c.id), rows)).scalars().all()
                consuming.hand_off([OutboxRow(id_, row["message_id"], EVENT, {}, row["payload"])
                                    for id_, row in zip(ids, rows, strict=True)])
                written += [row["message_id"] for row in rows]
                await asyncio.sleep(0)  # let both relays at it
            await wait_for(lambda: _all_published(postgresql, chunks * size), within=60)
        finally:
            stopping.set()
            await asyncio.gather(*tasks)
            for engine in engines:
                await engine.dispose()

    assert counter.twice_or_more() == {}, "rows published more than once"
    assert sorted(counter.seen) == sorted(written)


async def _drained(relay: OutboxRelay) -> bool:
    return all(lane.drained for lane in relay._lanes)


async def _all_published(database_url: str, total: int) -> bool:
    published = await query(database_url, "select count(*) from outbox where published_at is not null")
    return published[0][0] == total
