"""The measured consumers, each run by the harness in a process of its own.

    python workers.py <kind> '<json config>'

kinds: ``raw`` (nats-py pull + ack), ``naive`` (FastStream, one transaction per message),
``service`` (the enrolment service: RunningService + bootstrap()).

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
    from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    from envol_shared.database import UtcDateTime, create_engine
    from envol_shared.events import now, parse_event
    from envol_shared.topology import EVENTS_STREAM

    class Base(DeclarativeBase):
        pass

    class Received(Base):
        """What the naive handler keeps: one row per event, keyed like the real inbox."""

        __tablename__ = "naive_received"
        message_key: Mapped[str] = mapped_column(sa.String(400), primary_key=True)
        company: Mapped[str] = mapped_column(sa.String(9))
        event_type: Mapped[str] = mapped_column(sa.String(128))
        data: Mapped[dict[str, Any]] = mapped_column(sa.JSON())
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
        config["subject"],
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


# ---- (c) the enrolment service -------------------------------------------------------


async def service(config: dict[str, Any]) -> None:
    import sqlalchemy as sa

    from envol_enrolment.bootstrap import bootstrap
    from envol_shared.database import create_engine
    from envol_shared.event_log import inbox, outbox
    from envol_shared.logging import configure_logging
    from envol_shared.service import RunningService, Settings

    configure_logging(json_lines=True, level=config.get("log_level", "WARNING"))
    profiler = None
    if config.get("profile"):
        import cProfile

        profiler = cProfile.Profile()

    running = RunningService(bootstrap(), Settings("enrolment", config["nats_url"],
                                                   config["database_url"], config["batch_size"]))
    await running.start()
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    emit(ready=True)
    result: dict[str, Any] = {}
    if config["mode"] == "throughput":
        # A second engine only to watch progress; 20 ms between looks.
        watcher = create_engine(config["database_url"])
        expected = config["events"]
        committed_at = relayed_at = None
        count_inbox = sa.select(sa.func.count()).select_from(inbox)
        count_published = sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.published_at.is_not(None))
        deadline = started + config.get("timeout_s", 600)
        while relayed_at is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
            async with watcher.connect() as connection:
                if committed_at is None:
                    if (await connection.execute(count_inbox)).scalar_one() >= expected:
                        committed_at = time.perf_counter()
                if committed_at is not None and (
                        await connection.execute(count_published)).scalar_one() >= expected:
                    relayed_at = time.perf_counter()
        await watcher.dispose()
        result.update(
            events=expected,
            elapsed_s=(committed_at - started) if committed_at else None,
            relayed_s=(relayed_at - started) if relayed_at else None,
        )
    else:
        crashed = asyncio.ensure_future(running.wait())
        stop = asyncio.ensure_future(_wait_for_stop_request())
        await asyncio.wait({crashed, stop}, return_when=asyncio.FIRST_COMPLETED)
        if crashed.done():
            crashed.result()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(config["profile"])
    await running.stop()
    result["peak_rss_kib"] = peak_rss_kib()
    emit(result=result)


KINDS = {"raw": raw, "naive": naive, "service": service}


def main() -> None:
    kind, config = sys.argv[1], json.loads(sys.argv[2])
    asyncio.run(KINDS[kind](config))


if __name__ == "__main__":
    main()
