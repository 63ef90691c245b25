"""Helpers for tests: publish events as a partner would, and read what Envol published."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import nats
import sqlalchemy as sa
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from throwaway_postgres import throwaway

from envol_shared.database import create_engine
from envol_shared.events import EventData, make_event
from envol_shared.topology import CONSUMERS, DEAD_LETTER_STREAM, EVENTS_STREAM

# Real SIRENs with valid check digits (public companies' identifiers).
SIRENS = ["732829320", "552032534", "542051180", "552100554", "383474814", "775670417",
          "542107651", "444608442", "326300159", "552081317", "350422622", "479766842"]


def registration(siren: str, *, cluster: str = "aerospace-valley", staff: float = 42,
                 turnover_eur: int = 6_000_000, balance_eur: int = 5_000_000,
                 **extra: Any) -> dict[str, Any]:
    return {"company_id": siren, "legal_name": f"Company {siren}", "region": "Occitanie",
            "clusters": [cluster], "staff_awu": staff, "turnover_cents": turnover_eur * 100,
            "balance_sheet_cents": balance_eur * 100, "accounts_year": 2025, **extra}


def application(app_id: str, siren: str, programme: str = "AV-INVESTORS-CLUB",
                **extra: Any) -> dict[str, Any]:
    return {"application_id": app_id, "company_id": siren, "programme": programme,
            "applied_on": date(2026, 3, 2).isoformat(), **extra}


async def publish(nc: Client, data: EventData, *, company: str, cluster: str = "aerospace-valley",
                  producer: str = "staff", event_id: str | None = None,
                  time: datetime | None = None) -> str:
    subject, envelope = make_event(data, cluster=cluster, producer=producer, company=company,
                                   event_id=event_id, time=time)
    await nc.jetstream().publish(subject, envelope.to_bytes())
    return envelope.id


async def publish_raw(nc: Client, subject: str, payload: bytes) -> None:
    await nc.jetstream().publish(subject, payload)


async def stream_messages(nc: Client, stream: str, subject: str) -> list[Any]:
    """Every message currently in `stream` on `subject` (ephemeral consumer, from the start)."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(subject, stream=stream,
                                  config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    found: list[Any] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            for msg in batch:
                await msg.ack()
            found += batch
    finally:
        await sub.unsubscribe()
    return found


async def events_of(nc: Client, subject: str = "envol.*.enrolment.>") -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in await stream_messages(nc, EVENTS_STREAM, subject)]


async def dead_letters(nc: Client) -> list[Any]:
    return await stream_messages(nc, DEAD_LETTER_STREAM, "envol-dead-letter.>")


async def wait_for(predicate: Any, within: float = 20, interval: float = 0.2) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {result!r}")
        await asyncio.sleep(interval)


async def http_get(port: int, path: str) -> tuple[int, dict]:
    """GET a path of a service's health server on this machine: (status, JSON body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


async def all_consumed(nc: Client, service: str) -> bool:
    """Whether `service`'s durable consumer has been handed, and has acknowledged, every
    message of the stream it takes (a positive sign that copies were consumed, not a pause)."""
    info = await nc.jetstream().consumer_info(EVENTS_STREAM, CONSUMERS[service].durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(url)
    try:
        yield nc
    finally:
        await nc.close()


def postgres_url() -> str | None:
    """The PostgreSQL server the tests create their databases on: ENVOL_TEST_DATABASE_URL, or
    else a throwaway one started for the session (None when neither can be had: see
    `why_no_postgres`)."""
    return os.environ.get("ENVOL_TEST_DATABASE_URL") or throwaway.url()


def why_no_postgres() -> str:
    """The skip reason of a PostgreSQL test that cannot run (counted at the end of the run)."""
    return f"no PostgreSQL: ENVOL_TEST_DATABASE_URL is not set, and {throwaway.unavailable}"


class TcpProxy:
    """A TCP proxy in front of a real server, which a test can cut and restore (an outage)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.up = True
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.up = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


def enrolment_outcome(status: str, app_id: str, siren: str, *, programme: str = "AV-RD-LOAN",
                      cluster: str = "aerospace-valley", at: datetime | None = None,
                      kind: str = "financing", **extra: Any) -> EventData:
    """An application status event as the enrolment service publishes it (enrolled...)."""
    from envol_shared.contracts import enrolment as ev

    at = at or datetime.now().astimezone()
    previous = {"enrolled": "eligible", "withdrawn": "enrolled", "completed": "active"}[status]
    return ev.TRANSITION_EVENTS[status](
        application_id=app_id, siren=siren, legal_name=f"Company {siren}", cluster=cluster,
        programme=programme, programme_kind=kind, cohort=f"{programme}-{at.year}",
        from_status=previous, to_status=status, at=at, by="av-staff-1", reasons=["test"], **extra)


async def query(database_url: str, sql: str) -> list[sa.Row]:
    """Rows of `sql` on a service's database, read as an operator would."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql))).all())
    finally:
        await engine.dispose()
