"""Running a service: connect, provision, migrate, consume, fire timers and relay; stop gracefully.

Every service's bootstrap builds a `ServiceDefinition`; `run_service` does the rest the same
way for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import nats
import sqlalchemy as sa
import structlog
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from envol_shared.consumer import EventConsumer, Handler
from envol_shared.database import create_engine, migrate, sqlite_url
from envol_shared.events import EventData, now
from envol_shared.health import HealthServer
from envol_shared.lease import ConsumerLease
from envol_shared.queries import Query, QueryResponder
from envol_shared.relay import OutboxRelay
from envol_shared.timers import Clock, TimerHandler, TimerScheduler
from envol_shared.topology import CONSUMERS, provision
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
    """A started service; `stop()` finishes the batch in hand, flushes the outbox, closes."""

    def __init__(self, definition: ServiceDefinition, settings: Settings, *, clock: Clock = now) -> None:
        self.definition = definition
        self.settings = settings
        # What time it is for the timers: tests move it forward to stand for days of downtime.
        self.clock = clock
        self.timers_task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self._relay_stopping = asyncio.Event()
        self.log = structlog.get_logger("envol.service").bind(service=definition.name)
        self._tasks: list[asyncio.Task[Any]] = []
        self.nc: Client | None = None
        self.engine: AsyncEngine | None = None
        self.queries: QueryResponder | None = None
        self.health: HealthServer | None = None
        self.relay: OutboxRelay | None = None

    async def start(self) -> None:
        definition, settings = self.definition, self.settings
        self.engine = create_engine(settings.database_url)
        engine = self.engine
        if settings.health_port is not None:
            # Alive from the first moment; ready once NATS is connected and the database answers,
            # and while the outbox flows.
            self.health = HealthServer(port=settings.health_port, checks={
                "nats": self._nats_connected, "database": self._database_answers,
                "outbox": self._outbox_flows})
            await self.health.start()
        await migrate(engine, definition.migrations)
        if definition.on_start is not None:
            await definition.on_start(lambda: definition.uow_factory(engine))
        servers = settings.nats_url.split(",")
        credentials = urlparse(servers[0])
        self.nc = await nats.connect(
            # Several servers of a cluster, comma-separated; more are learnt from the cluster,
            # and the credentials must serve for those too.
            servers,
            user=unquote(credentials.username) if credentials.username else None,
            password=unquote(credentials.password) if credentials.password else None,
            name=f"envol-{definition.name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            inbox_prefix=settings.nats_inbox_prefix,
            tls=ssl.create_default_context(cafile=settings.nats_ca_file) if settings.nats_ca_file else None,
        )
        js = self.nc.jetstream()
        if settings.provision:
            await provision(js)
        self.relay = relay = OutboxRelay(js=js, engine=self.engine, service=definition.name)
        consumer = EventConsumer(
            js=js,
            consumer=CONSUMERS[definition.name],
            uow_factory=lambda: definition.uow_factory(engine),
            handlers=definition.handlers,
            on_commit=relay.hand_off,
            batch_size=settings.batch_size,
            # Several instances: one consumes (per-company order), the others stand by.
            lease=ConsumerLease(engine, CONSUMERS[definition.name].durable, ttl_s=settings.lease_ttl_s),
            max_payload=self.nc.max_payload,
        )
        self.queries = QueryResponder(nc=self.nc, engine=self.engine, service=definition.name,
                                      queries=definition.queries)
        await self.queries.start()
        self.consumer_task = asyncio.create_task(consumer.run(self.stopping), name="consumer")
        self.relay_task = asyncio.create_task(relay.run(self._relay_stopping), name="relay")
        self._tasks = [self.consumer_task, self.relay_task]
        if definition.timer_handlers:
            scheduler = TimerScheduler(
                service=definition.name,
                uow_factory=lambda: definition.uow_factory(engine),
                handlers=definition.timer_handlers,
                on_commit=relay.hand_off,
                clock=self.clock,
                interval_s=settings.timer_interval_s,
            )
            self.timers_task = asyncio.create_task(scheduler.run(self.stopping), name="timers")
            self._tasks.append(self.timers_task)
        # What exists now (modules, mappers, schemas, catalogue) lives as long as the process:
        # keep it out of full collections, which otherwise stall the loop for tens of ms.
        gc.collect()
        gc.freeze()
        self.log.info("service.started", nats_url=_without_credentials(settings.nats_url),
                      database=self.engine.url.render_as_string(hide_password=True))

    async def crashed(self) -> BaseException:
        """Wait until the consumer, the timers or the relay dies on its own; return why."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = done.pop()
        error = task.exception() or RuntimeError(f"{task.get_name()} stopped unexpectedly")
        self.log.error("service.task_crashed", task=task.get_name(), error=repr(error))
        return error

    async def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.log.info("service.stopping")
        if self.queries is not None:
            await self.queries.stop()
        self.stopping.set()
        # Consumer and timers first (each finishes what it holds), then the relay flushes
        # what they wrote.
        with contextlib.suppress(Exception):
            await self.consumer_task
        if self.timers_task is not None:
            with contextlib.suppress(Exception):
                await self.timers_task
        self._relay_stopping.set()
        with contextlib.suppress(Exception):
            await self.relay_task
        self._tasks = []
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.close()
            except OSError as exc:  # NATS already gone: nothing left to flush to it
                self.log.warning("service.nats_close_failed", error=repr(exc))
        if self.engine is not None:
            await self.engine.dispose()
        if self.health is not None:
            await self.health.stop()
        self.log.info("service.stopped")

    async def _nats_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _outbox_flows(self) -> bool:
        # Before the relay exists nothing can be stuck in it (NATS is not connected yet either).
        return self.relay is None or await self.relay.flowing()

    async def _database_answers(self) -> bool:
        assert self.engine is not None
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("select 1"))
        return True


def _without_credentials(urls: str) -> str:
    """For the log: the servers, never the passwords."""
    shown = []
    for url in urls.split(","):
        scheme, _, rest = url.partition("://")
        shown.append(f"{scheme}://{rest.rsplit('@', 1)[-1]}")
    return ",".join(shown)


async def run_service(definition: ServiceDefinition, settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop gracefully; a crashed task stops it too."""
    service = RunningService(definition, settings)
    await service.start()
    requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, requested.set)
    crash = asyncio.create_task(service.crashed())
    await asyncio.wait({crash, asyncio.create_task(requested.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    if not crash.done():
        crash.cancel()
    await service.stop()
    if crash.done() and not crash.cancelled():
        raise crash.result()
