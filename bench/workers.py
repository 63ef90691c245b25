"""The measured consumers, each run by the harness in a process of its own.

    python workers.py <kind> '<json config>'

kinds: ``raw`` (nats-py pull + ack), ``naive`` (FastStream, one transaction per message),
``service`` (an Envol service, ``enrolment``, ``financing`` or ``export``: RunningService + its
bootstrap()).

A worker writes JSON lines on stdout: ``{"ready": ...}`` once it is consuming, then one
``{"result": ...}`` with its figures and its own peak RSS (VmHWM) just before it exits.
The clock of a throughput measurement starts when the consumer is ready to fetch (after
imports, connection, migrations) and stops when the last of the N messages is committed
(raw: acknowledged), so process start-up is not counted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def peak_rss_kib() -> int:
    """This process's peak resident set size (VmHWM), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _wait_for_stop_request() -> None:
    """Return when the harness writes a line (or closes) our stdin."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)


# ---- (a) raw nats-py ------------------------------------------------------------------


async def raw(config: dict[str, Any]) -> None:
    import nats
    from nats.errors import TimeoutError as NatsTimeoutError

    from envol_shared.topology import EVENTS_STREAM

    nc = await nats.connect(config["nats_url"])
    js = nc.jetstream()
    subscription = await js.pull_subscribe_bind(durable=config["durable"], stream=EVENTS_STREAM)
    expected, batch = config["events"], config["batch_size"]
    emit(ready=True)
    started = time.perf_counter()
    received = 0
    while received < expected:
        try:
            messages = await subscription.fetch(batch, timeout=1.0)
        except (TimeoutError, NatsTimeoutError):
            continue
        for msg in messages:
            await msg.ack()
        received += len(messages)
    await nc.flush()
    elapsed = time.perf_counter() - started
    await nc.close()
    emit(result={"events": received, "elapsed_s": elapsed, "peak_rss_kib": peak_rss_kib()})


# ---- (b) naive FastStream ------------------------------------------------------------


async def naive(config: dict[str, Any]) -> None:
    import sqlalchemy as sa
    from faststream.middlewares import AckPolicy
    from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    from envol_shared.database import UtcDateTime, create_engine
    from envol_shared.events import now, parse_event
    from envol_shared.topology import EVENTS_STREAM

    class Base(DeclarativeBase):
        pass

    class Received(Base):
        """What the naive handler keeps: one row per event, keyed like the real inbox."""

        __tablename__ = "naive_received"
        message_key = mapped_column(sa.String(400), primary_key=True)
        company = mapped_column(sa.String(9), nullable=False)
        event_type = mapped_column(sa.String(128), nullable=False)
        data = mapped_column(sa.JSON(), nullable=False)
        received_at = mapped_column(UtcDateTime(), nullable=False)

    engine = create_engine(config["database_url"])  # same pragmas / pool as the service
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    expected = config["events"]
    done = asyncio.Event()
    state = {"committed": 0, "duplicates": 0, "failed": 0}
    lock = asyncio.Lock() if config.get("serial") else None

    broker = NatsBroker(config["nats_url"], logger=None)

    async def transaction(raw_bytes: bytes, subject: str) -> None:
        incoming = parse_event(raw_bytes, subject)
        envelope = incoming.envelope
        key = f"{envelope.source} {envelope.id}"
        async with sessions() as session, session.begin():
            if await session.get(Received, key) is not None:
                state["duplicates"] += 1
                return
            session.add(Received(message_key=key, company=envelope.subject,
                                 event_type=envelope.type, data=envelope.data,
                                 received_at=now()))

    @broker.subscriber(
        config=ConsumerConfig(filter_subjects=config["filters"]),  # the workload's subjects
        stream=JStream(EVENTS_STREAM, declare=False),
        durable=config["durable"],
        pull_sub=PullSub(batch_size=config["batch_size"], timeout=1.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,  # ack after the handler returns, i.e. after commit
    )
    async def handle(message: NatsMessage) -> None:
        raw_message = message.raw_message
        try:
            if lock is None:
                await transaction(raw_message.data, raw_message.subject)
            else:
                async with lock:
                    await transaction(raw_message.data, raw_message.subject)
        except Exception:
            state["failed"] += 1
            raise
        state["committed"] += 1
        if state["committed"] >= expected:
            done.set()

    await broker.start()
    emit(ready=True)
    started = time.perf_counter()
    await done.wait()
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.2)  # let FastStream send the last acknowledgements
    await broker.stop()
    await engine.dispose()
    emit(result={"events": state["committed"], "elapsed_s": elapsed, "failed": state["failed"],
                 "duplicates": state["duplicates"], "peak_rss_kib": peak_rss_kib()})


# ---- (c) an Envol service -----------------------------------------------------------


class Progress:
    """Counts what the service has committed and relayed, from probes on its own objects:
    `expected` events consumed, `published` events they cause (one each, or more)."""

    def __init__(self, expected: int, published: int | None = None) -> None:
        self.expected = expected
        self.published = expected if published is None else published
        self.committed = 0
        self.relayed = 0
        self.batches = 0
        self.all_committed = asyncio.Event()
        self.all_relayed = asyncio.Event()
        self.committed_at: float | None = None
        self.relayed_at: float | None = None
        self.batch_sizes: list[int] = []
        self.process_ms: list[float] = []
        self.relay_ms: list[float] = []

    def on_committed(self, count: int, took_s: float) -> None:
        self.committed += count
        self.batches += 1
        self.batch_sizes.append(count)
        self.process_ms.append(took_s * 1000)
        if self.committed >= self.expected and self.committed_at is None:
            self.committed_at = time.perf_counter()
            self.all_committed.set()

    def on_relayed(self, count: int, took_s: float) -> None:
        self.relayed += count
        if count:
            self.relay_ms.append(took_s * 1000)
        if self.relayed >= self.published and self.relayed_at is None:
            self.relayed_at = time.perf_counter()
            self.all_relayed.set()


    def stats(self) -> dict[str, Any]:
        def summary(values: list[float]) -> dict[str, float] | None:
            if not values:
                return None
            ordered = sorted(values)
            return {"mean": sum(ordered) / len(ordered), "p50": ordered[len(ordered) // 2],
                    "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                    "max": ordered[-1]}

        return {"count": self.batches, "size": summary([float(n) for n in self.batch_sizes]),
                "consumer_ms": summary(self.process_ms), "relay_ms": summary(self.relay_ms)}


class GcPauses:
    """Garbage-collector pauses of this process (they stop the event loop)."""

    def __init__(self) -> None:
        import gc

        self.pauses_ms: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def reset(self) -> None:
        self.pauses_ms = []

    def stats(self) -> dict[str, Any]:
        pauses = self.pauses_ms
        return {"count": len(pauses), "total_ms": sum(pauses), "max_ms": max(pauses, default=0.0),
                "over_5ms": sum(p > 5 for p in pauses)}


class SqlStatements:
    """The SQL statements the service sends while measured, by kind (`SELECT … FROM <table>`,
    `INSERT INTO <table>`, ...), with their count and the time until their cursor returned:
    `--sql` in the harness. Taken with SQLAlchemy's cursor events on every engine."""

    def __init__(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import Engine

        self.counts: dict[tuple[str, bool], int] = {}
        self.seconds: dict[tuple[str, bool], float] = {}
        self.active = False
        sa.event.listen(Engine, "before_cursor_execute", self._before)
        sa.event.listen(Engine, "after_cursor_execute", self._after)

    @staticmethod
    def kind(statement: str) -> str:
        import re

        text = " ".join(statement.split())
        match = re.match(r"(SELECT\b.*?\bFROM (\S+)|INSERT INTO \S+|UPDATE \S+|DELETE FROM \S+|\w+)", text)
        kind = match.group(1) if match else text[:40]
        if match and match.group(2):
            kind = f"SELECT … FROM {match.group(2)}"
        return kind + (" FOR UPDATE" if text.endswith("FOR UPDATE") else "")

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        conn.info["bench_sql_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if not self.active:
            return
        key = (self.kind(statement), executemany)
        self.counts[key] = self.counts.get(key, 0) + 1
        took = time.perf_counter() - conn.info.get("bench_sql_started", time.perf_counter())
        self.seconds[key] = self.seconds.get(key, 0.0) + took

    def start(self) -> None:
        self.counts, self.seconds, self.active = {}, {}, True

    def stats(self) -> list[dict[str, Any]]:
        self.active = False
        return [{"statement": kind, "executemany": many, "count": n, "ms": self.seconds[(kind, many)] * 1000}
                for (kind, many), n in sorted(self.counts.items(), key=lambda item: -item[1])]


def install_probes(progress: Progress) -> None:
    """Make RunningService build consumers and relays that report progress.

    The probes subclass the product's EventConsumer and OutboxRelay and only count: a
    batch counts as committed when `process` returns without asking for a pause (its
    transaction committed and its messages were acknowledged); relayed rows are counted
    from `publish_pending`'s return value. Nothing polls the database meanwhile.
    """
    from envol_shared import service
    from envol_shared.consumer import EventConsumer
    from envol_shared.relay import OutboxRelay

    class ProbedConsumer(EventConsumer):  # type: ignore[type-arg]
        async def process(self, messages: list[Any]) -> float:
            began = time.perf_counter()
            pause = await super().process(messages)
            if not pause:
                progress.on_committed(len(messages), time.perf_counter() - began)
            return pause

    class ProbedRelay(OutboxRelay):
        async def publish_lane(self, lane: Any) -> int:
            began = time.perf_counter()
            published = await super().publish_lane(lane)
            progress.on_relayed(published, time.perf_counter() - began)
            return published

    service.EventConsumer = ProbedConsumer  # type: ignore[misc]
    service.OutboxRelay = ProbedRelay  # type: ignore[misc]


async def service(config: dict[str, Any]) -> None:
    import importlib

    from envol_shared.logging import configure_logging
    from envol_shared.service import RunningService, Settings

    configure_logging(json_lines=True, level=config.get("log_level", "WARNING"))
    profiler = None
    if config.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    progress = Progress(config.get("events", 0), config.get("published"))
    install_probes(progress)
    gc_pauses = GcPauses()
    statements = SqlStatements() if config.get("sql") else None

    name = config["service"]
    bootstrap = importlib.import_module(f"envol_{name}.bootstrap").bootstrap
    running = RunningService(bootstrap(), Settings(name, config["nats_url"], config["database_url"],
                                                   config["batch_size"]))
    await running.start()  # migrations and provisioning done; the consumer task is created
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    cpu_started = time.process_time()
    gc_pauses.reset()
    if statements is not None:
        statements.start()
    emit(ready=True)
    result: dict[str, Any] = {}
    if config["mode"] == "throughput":
        crashed = asyncio.ensure_future(running.crashed())
        relayed = asyncio.ensure_future(progress.all_relayed.wait())
        await asyncio.wait({crashed, relayed}, timeout=config.get("timeout_s", 600),
                           return_when=asyncio.FIRST_COMPLETED)
        if crashed.done():
            raise crashed.result()
        relayed.cancel()
        crashed.cancel()
        result.update(
            events=progress.committed,
            elapsed_s=(progress.committed_at - started) if progress.committed_at else None,
            relayed_s=(progress.relayed_at - started) if progress.relayed_at else None,
        )
    else:
        crashed = asyncio.ensure_future(running.crashed())
        stop = asyncio.ensure_future(_wait_for_stop_request())
        await asyncio.wait({crashed, stop}, return_when=asyncio.FIRST_COMPLETED)
        if crashed.done():
            raise crashed.result()
        crashed.cancel()
    result["cpu_s"] = time.process_time() - cpu_started
    result["wall_s"] = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(config["profile"])
    result["batches"] = progress.stats()
    result["gc"] = gc_pauses.stats()
    if statements is not None:
        result["sql"] = statements.stats()
    await running.stop()
    result.update(await event_log_counts(config["database_url"]))
    result["peak_rss_kib"] = peak_rss_kib()
    emit(result=result)


async def event_log_counts(database_url: str) -> dict[str, Any]:
    """What the service's own database says it did: inbox rows by outcome, outbox rows
    published, timers pending and fired (the harness checks them against the workload)."""
    import sqlalchemy as sa

    from envol_shared.database import create_engine
    from envol_shared.event_log import inbox, outbox, timers

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            async def count(table: sa.Table, *where: Any) -> int:
                query = sa.select(sa.func.count()).select_from(table).where(*where)
                return int((await connection.execute(query)).scalar_one())

            outcomes = {outcome: n for outcome, n in await connection.execute(
                sa.select(inbox.c.outcome, sa.func.count()).group_by(inbox.c.outcome))}
            return {
                "inbox_rows": sum(outcomes.values()),
                "inbox_outcomes": outcomes,
                "outbox_published": await count(outbox, outbox.c.published_at.is_not(None)),
                "timers_pending": await count(timers, timers.c.fired_at.is_(None)),
                "timers_fired": await count(timers, timers.c.fired_at.is_not(None)),
            }
    finally:
        await engine.dispose()


KINDS = {"raw": raw, "naive": naive, "service": service}


def main() -> None:
    kind, config = sys.argv[1], json.loads(sys.argv[2])
    asyncio.run(KINDS[kind](config))


if __name__ == "__main__":
    main()
