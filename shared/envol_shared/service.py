"""Each service as a FastStream application: migrate, provision, consume, answer queries, fire
timers and relay; stop gracefully.

Every service's bootstrap builds a `ServiceDefinition`; `RunningService` makes it a FastStream
application (`app`, on a `NatsBroker`) the same way for all of them. What happens when:

    on_startup       health endpoint, migrations, the definition's `on_start`; then NATS (the
                     broker's connection): provisioning, the relay, the timers, the consumer
    (broker start)   the query subscribers and the event subscriber, whose fetch loop first
                     takes the consumer lease (a standby instance waits there, fetching nothing)
    after_startup    a watch that stops the application when a task dies on its own
    on_shutdown      stop consuming (the batch in hand is finished) and firing timers, then
                     flush the outbox while NATS is still connected
    (broker stop)    unsubscribe, drain and close the connection
    after_shutdown   close the database engine and the health endpoint

`faststream run envol_<service>.entrypoints.main:app` runs it, as does `envol-<service>`
(`RunningService.run`); SIGTERM and SIGINT stop it gracefully. Tests and tools call `start()`
and `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
import structlog
from faststream import FastStream
from faststream.exceptions import IncorrectState
from faststream.middlewares import AckPolicy
from faststream.nats import NatsBroker, NatsSecurity, NatsUserPassword
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, ConnectionReconnectingError
from sqlalchemy.ext.asyncio import AsyncEngine

from envol_shared.consumer import EventConsumer, Handler
from envol_shared.database import create_engine, migrate, sqlite_url
from envol_shared.events import EventData, now
from envol_shared.health import HealthServer
from envol_shared.lease import ConsumerLease
from envol_shared.logging import FastStreamLog, LogContext
from envol_shared.metrics import CONTENT_TYPE, ConsumerTelemetry, ServiceMetrics
from envol_shared.queries import Query, QueryResponder
from envol_shared.relay import OutboxRelay
from envol_shared.subscriber import subscribe_batches
from envol_shared.timers import Clock, TimerHandler, TimerScheduler
from envol_shared.topology import CONSUMERS, provision, require_server_version, without_credentials
from envol_shared.tracing import configure_tracing
from envol_shared.unit_of_work import UnitOfWork

# The secrets of .env.example: a stack still holding them refuses to start.
PLACEHOLDER_SECRET = "change-me"


@dataclass(frozen=True)
class Settings:
    """Read from the environment, the same way in a container and on a laptop."""

    service: str
    nats_url: str
    database_url: str
    batch_size: int
    timer_interval_s: float = 5.0
    health_port: int | None = None  # no health endpoint unless asked (containers set 8080)
    # Create or update streams and consumers at start. Off where a one-shot container does it
    # and the service's NATS user may not touch the JetStream configuration.
    provision: bool = True
    # Reply subjects of this service's requests (JetStream acknowledgements...): under NATS
    # permissions each user gets its own prefix, so no one reads another's replies.
    nats_inbox_prefix: str = "_INBOX"
    # An instance that stops renewing its consumer lease this long is presumed dead.
    lease_ttl_s: float = 10.0
    # The certificate authority of a NATS server with TLS switched on (tls:// URLs).
    nats_ca_file: str | None = None

    @classmethod
    def from_env(cls, service: str) -> Settings:
        for name, value in os.environ.items():
            if name.startswith("ENVOL_") and PLACEHOLDER_SECRET in value.lower():
                raise SystemExit(f"{name} still holds a placeholder secret ({PLACEHOLDER_SECRET}) from "
                                 ".env.example: set real secrets in .env before starting Envol")
        data_dir = Path(os.environ.get("ENVOL_DATA_DIR", ".envol"))
        database_url = os.environ.get(f"ENVOL_{service.upper()}_DATABASE_URL") or os.environ.get(
            "ENVOL_DATABASE_URL"
        )
        if not database_url:
            data_dir.mkdir(parents=True, exist_ok=True)
            database_url = sqlite_url(data_dir / f"{service}.sqlite")
        return cls(
            service=service,
            nats_url=os.environ.get("ENVOL_NATS_URL", "nats://127.0.0.1:4222"),
            database_url=database_url,
            batch_size=int(os.environ.get("ENVOL_BATCH_SIZE", "256")),
            timer_interval_s=float(os.environ.get("ENVOL_TIMER_INTERVAL_S", "5")),
            health_port=int(os.environ["ENVOL_HEALTH_PORT"]) if os.environ.get("ENVOL_HEALTH_PORT") else None,
            provision=os.environ.get("ENVOL_PROVISION", "true").lower() not in ("false", "0", "no"),
            nats_inbox_prefix=os.environ.get("ENVOL_NATS_INBOX_PREFIX", "_INBOX"),
            lease_ttl_s=float(os.environ.get("ENVOL_LEASE_TTL_S", "10")),
            nats_ca_file=os.environ.get("ENVOL_NATS_CA_FILE") or None,
        )


@dataclass(frozen=True)
class ServiceDefinition:
    """What makes a service different from the others; wired by its bootstrap."""

    name: str
    migrations: Path
    uow_factory: Callable[[AsyncEngine], UnitOfWork]
    handlers: Mapping[type[EventData], Handler]
    queries: Mapping[str, Query] = field(default_factory=dict)
    timer_handlers: Mapping[str, TimerHandler] = field(default_factory=dict)
    # Run once at start, after the migrations and before consuming, with a way to open units
    # of work: brings rows that mirror the service's configuration up to date (export's units).
    on_start: Callable[[Callable[[], UnitOfWork]], Awaitable[None]] | None = None


class RunningService:
    """A service as a FastStream application; `stop()` finishes the batch in hand, flushes the
    outbox, closes. The parts live as attributes once started: `nc`, `relay`, `consumer`,
    `queries`, `health`, and the tasks `consumer_task` (the fetch loop), `relay_task`,
    `timers_task`."""

    def __init__(self, definition: ServiceDefinition, settings: Settings, *, clock: Clock = now) -> None:
        self.definition = definition
        self.settings = settings
        # What time it is for the timers: tests move it forward to stand for days of downtime.
        self.clock = clock
        self.stopping = asyncio.Event()
        self._relay_stopping = asyncio.Event()
        self.log = structlog.get_logger("envol.service").bind(service=definition.name)
        self.engine: AsyncEngine = create_engine(settings.database_url)  # connects when first used
        # Traces: from OTEL_*, once per process (off by default). Metrics: a registry of this
        # service's own, served with the health endpoint.
        configure_tracing(definition.name)
        self.metrics = ServiceMetrics(definition.name)
        # Alive from the first moment; ready once NATS is connected and the database answers,
        # and while the outbox flows.
        self.health = None if settings.health_port is None else HealthServer(
            port=settings.health_port,
            checks={"nats": self._nats_connected, "database": self._database_answers,
                    "outbox": self._outbox_flows},
            metrics=self._metrics_text)
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer[Any] | None = None
        self.consumer_task: asyncio.Task[None] | None = None
        self.relay_task: asyncio.Task[None] | None = None
        self.timers_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._watch: asyncio.Task[None] | None = None
        self._crash: BaseException | None = None

        self.broker = nats_broker(definition.name, settings)
        # The subscribers are registered now, so that the application describes them (AsyncAPI)
        # before it runs; what they call is built at start, once NATS is connected.
        self.queries = QueryResponder(engine=self.engine, service=definition.name,
                                      queries=definition.queries)
        self.queries.subscribe(self.broker)
        self.events = subscribe_batches(self.broker, CONSUMERS[definition.name],
                                        batch_size=settings.batch_size, handle=self._handle_batch,
                                        ready_to_fetch=self._ready_to_fetch)
        self.app = FastStream(self.broker, logger=FastStreamLog(),
                              on_startup=[self._on_startup], after_startup=[self._after_startup],
                              on_shutdown=[self._on_shutdown], after_shutdown=[self._after_shutdown])

    @property
    def nc(self) -> Client | None:
        """The NATS connection (the broker's), once connected."""
        try:
            return self.broker.connection
        except IncorrectState:
            return None

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        if not self.stopping.is_set():
            await self._closing(self.app.stop())

    async def run(self) -> None:
        """The service's process: until SIGTERM or SIGINT (or a crash), then a graceful stop."""
        await self._closing(self.app.run())

    async def _closing(self, stop: Awaitable[None]) -> None:
        try:
            await stop
        except (ConnectionClosedError, ConnectionReconnectingError) as exc:
            # NATS unreachable at the end: FastStream's broker stops by draining the connection,
            # which nats-py refuses then, and the after-shutdown hook is skipped. Nothing could
            # go through that connection anyway (what the outbox holds stays there): close it.
            self.log.warning("service.nats_close_failed", error=repr(exc))
            if self.nc is not None:
                # Closing flushes what is buffered: the socket may be gone already.
                with contextlib.suppress(ConnectionError, OSError):
                    await self.nc.close()
            await self._after_shutdown()

    async def crashed(self) -> BaseException:
        """Wait until the consumer, the timers or the relay dies on its own; return why."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = done.pop()
        error = task.exception() or RuntimeError(f"{task.get_name()} stopped unexpectedly")
        self.log.error("service.task_crashed", task=task.get_name(), error=repr(error))
        return error

    # ---- FastStream's lifespan hooks ---------------------------------------------------

    async def _on_startup(self) -> None:
        definition, settings = self.definition, self.settings
        if self.health is not None:
            await self.health.start()
        await migrate(self.engine, definition.migrations)
        if definition.on_start is not None:
            await definition.on_start(self._unit_of_work)
        # Connected here rather than by the broker's start (which then keeps this connection):
        # provisioning, the relay and the consumer need NATS before the subscribers start.
        nc = await self.broker.connect()
        require_server_version(nc.connected_server_version, without_credentials(settings.nats_url))
        js = nc.jetstream()
        if settings.provision:
            await provision(js)
        # A JetStream context of its own: the relay adjusts it (see relay._fail_refused_publishes).
        metrics, consumer = self.metrics, CONSUMERS[definition.name]
        self.relay = relay = OutboxRelay(js=nc.jetstream(), engine=self.engine, service=definition.name,
                                         on_published=metrics.rows_published)
        metrics.watch_consumer(js, consumer.durable)
        metrics.watch_database(self.engine, timers_too=bool(definition.timer_handlers), clock=self.clock)
        self.consumer = EventConsumer(
            js=js,
            consumer=CONSUMERS[definition.name],
            uow_factory=self._unit_of_work,
            handlers=definition.handlers,
            on_commit=relay.hand_off,
            # Several instances: one consumes (per-company order), the others stand by.
            lease=ConsumerLease(self.engine, consumer.durable, ttl_s=settings.lease_ttl_s,
                                on_change=metrics.lease_changed),
            max_payload=nc.max_payload,
            stopping=self.stopping,
            telemetry=ConsumerTelemetry(definition.name, frozenset(consumer.event_types), metrics),
        )
        self.relay_task = asyncio.create_task(relay.run(self._relay_stopping), name="relay")
        self._tasks = [self.relay_task]
        if definition.timer_handlers:
            scheduler = TimerScheduler(
                service=definition.name,
                uow_factory=self._unit_of_work,
                handlers=definition.timer_handlers,
                on_commit=relay.hand_off,
                clock=self.clock,
                interval_s=settings.timer_interval_s,
                on_fired=metrics.timer_fired,
            )
            self.timers_task = asyncio.create_task(scheduler.run(self.stopping), name="timers")
            self._tasks.append(self.timers_task)

    async def _after_startup(self) -> None:
        self.consumer_task = self.events.fetch_loop
        self._tasks.append(self.consumer_task)
        self._watch = asyncio.create_task(self._exit_on_crash(), name="crash watch")
        # The server has the query subscriptions once this returns: "started" means answering.
        await self.broker.connection.flush()
        # What exists now (modules, mappers, schemas, catalogue) lives as long as the process:
        # keep it out of full collections, which otherwise stall the loop for tens of ms.
        gc.collect()
        gc.freeze()
        self.log.info("service.started", nats_url=without_credentials(self.settings.nats_url),
                      database=self.engine.url.render_as_string(hide_password=True))

    async def _on_shutdown(self) -> None:
        self.log.info("service.stopping")
        self.stopping.set()
        if self._watch is not None:
            self._watch.cancel()
        # Consumer and timers first (each finishes what it holds), then the relay flushes
        # what they wrote, while NATS is still connected.
        for task in (self.consumer_task, self.timers_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        self._relay_stopping.set()
        if self.relay_task is not None:
            with contextlib.suppress(Exception):
                await self.relay_task
        self._tasks = []

    async def _after_shutdown(self) -> None:
        await self.engine.dispose()
        if self.health is not None:
            await self.health.stop()
        self.log.info("service.stopped")
        if self._crash is not None:
            raise self._crash  # the process ends with what stopped it (and a non-zero status)

    # ---- what the subscribers and the health checks call -------------------------------

    async def _exit_on_crash(self) -> None:
        self._crash = await self.crashed()
        self.app.exit()  # `app.run()` (the process) then stops the service gracefully

    async def _ready_to_fetch(self) -> bool:
        assert self.consumer is not None, "built before the broker starts its subscribers"
        return await self.consumer.ready_to_fetch()

    async def _handle_batch(self, messages: list[Msg]) -> None:
        assert self.consumer is not None
        await self.consumer.handle_batch(messages)

    def _unit_of_work(self) -> UnitOfWork:
        return self.definition.uow_factory(self.engine)

    async def _nats_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _metrics_text(self) -> tuple[bytes, str]:
        return await self.metrics.exposition(), CONTENT_TYPE

    async def _outbox_flows(self) -> bool:
        # Before the relay exists nothing can be stuck in it (NATS is not connected yet either).
        return self.relay is None or await self.relay.flowing()

    async def _database_answers(self) -> bool:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("select 1"))
        return True


def nats_broker(service: str, settings: Settings) -> NatsBroker:
    """The service's FastStream broker: its NATS connection, its own user and reply prefix."""
    # Several servers of a cluster, comma-separated; more are learnt from the cluster, and the
    # credentials must serve for those too: given apart from the URLs.
    servers = settings.nats_url.split(",")
    credentials = urlparse(servers[0])
    tls = ssl.create_default_context(cafile=settings.nats_ca_file) if settings.nats_ca_file else None
    security: NatsSecurity | None = NatsSecurity(ssl_context=tls) if tls else None
    if credentials.username and credentials.password:
        security = NatsUserPassword(unquote(credentials.username), unquote(credentials.password),
                                    ssl_context=tls)
        servers = without_credentials(settings.nats_url).split(",")
    return NatsBroker(
        servers,
        security=security,
        name=f"envol-{service}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        inbox_prefix=settings.nats_inbox_prefix,
        # Envol acknowledges each event itself once its batch committed; queries need none.
        ack_policy=AckPolicy.MANUAL,
        # Handlers take the raw nats-py messages (see subscriber.raw_messages): nothing to
        # inject nor validate, and no per-call cost for it.
        apply_types=False,
        middlewares=[LogContext],
        logger=FastStreamLog(),
        # FastStream logs each message it hands over ("Received", "Processed"): debug lines
        # here, since Envol logs every event and query itself.
        log_level=logging.DEBUG,
    )
