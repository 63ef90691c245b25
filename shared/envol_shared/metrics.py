"""Prometheus metrics of a running service, served at `/metrics` on its health port.

Each `RunningService` has a registry of its own (not prometheus-client's global one), so
several services in one process never mix their series; every series has a `service` label.

The hot path only counts: per batch a few counter increments (grouped by type and outcome),
two histogram observations, and one per message for the publish-to-commit latency. What
needs a query (the consumer's pending and redelivered counts from JetStream, the outbox's
backlog and the age of its oldest row, the timers due) is asked when Prometheus scrapes, at
most once every `refresh_every_s`, each with a short timeout: no extra query per message.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from envol_shared.event_log import outbox, timers
from envol_shared.events import now
from envol_shared.topology import EVENTS_STREAM
from envol_shared.tracing import BatchSpans, type_label

# The classic text format: every Prometheus version reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("applied", "rejected", "dead_lettered", "duplicate", "retry", "waiting", "transient")

Probe = Callable[[], Awaitable[None]]
# No `*_created` series beside every counter and histogram: they double what is scraped and
# no dashboard or alert here reads them (prometheus-client's setting is per process).
disable_created_metrics()
log = structlog.get_logger("envol.metrics")


class ServiceMetrics:
    def __init__(self, service: str, *, refresh_every_s: float = 5.0, probe_timeout_s: float = 2.0) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.refresh_every_s = refresh_every_s
        self._probe_timeout_s = probe_timeout_s
        self._refreshed = -refresh_every_s
        self._probes: list[Probe] = []
        self._refreshing = asyncio.Lock()
        r, s = self.registry, ("service",)
        self.events = Counter("envol_events", "Events taken into account, by type and outcome",
                              ["service", "type", "outcome"], registry=r)
        self.batch_size = Histogram("envol_batch_size", "Messages per fetched batch", s, registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.batch_duration = Histogram(
            "envol_batch_duration_seconds", "Time to process one batch, fetch excluded", s, registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.publish_to_commit = Histogram(
            "envol_publish_to_commit_seconds",
            "From the message's storing in JetStream to the commit of its batch", s, registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
        self.consumer_pending = Gauge("envol_consumer_pending_messages",
                                      "Messages of the stream not yet delivered to the service's consumer",
                                      s, registry=r)
        self.consumer_ack_pending = Gauge("envol_consumer_ack_pending_messages",
                                          "Messages delivered, not yet acknowledged", s, registry=r)
        self.consumer_redelivered = Gauge("envol_consumer_redelivered_messages",
                                          "Messages delivered more than once, not yet acknowledged",
                                          s, registry=r)
        self.outbox_pending = Gauge("envol_outbox_pending_rows", "Outbox rows not yet published", s,
                                    registry=r)
        self.outbox_oldest_age = Gauge("envol_outbox_oldest_pending_age_seconds",
                                       "Age of the oldest unpublished outbox row (0 when none)", s,
                                       registry=r)
        self.published = Counter("envol_outbox_published", "Outbox rows JetStream acknowledged, by lane",
                                 ["service", "lane"], registry=r)
        self.dead_letters = Counter("envol_dead_letters_published",
                                    "Dead letters stored in the dead-letter stream", s, registry=r)
        self.timers_due = Gauge("envol_timers_due", "Timers due and not yet fired", s, registry=r)
        self.timers_fired = Counter("envol_timers_fired", "Timers fired, by kind and outcome (fired, failed)",
                                    ["service", "kind", "outcome"], registry=r)
        self.lease_held = Gauge("envol_consumer_lease_held",
                                "1 while this instance holds the consumer's lease (consumes)", s, registry=r)
        self.lease_changes = Counter("envol_consumer_lease_changes",
                                     "This instance's lease changes (acquired, lost, released)",
                                     ["service", "change"], registry=r)
        self._events: dict[tuple[str, str], Any] = {}
        self._batch_size = self.batch_size.labels(service)
        self._batch_duration = self.batch_duration.labels(service)
        self._latency = self.publish_to_commit.labels(service)
        self._dead_letters = self.dead_letters.labels(service)
        self._published = {lane: self.published.labels(service, lane) for lane in ("events", "dead_letters")}
        self.lease_held.labels(service).set(0)
        for change in ("acquired", "lost", "released"):
            self.lease_changes.labels(service, change)

    def consumes(self, event_types: Iterable[str]) -> None:
        """Create the series of every consumed type at zero: "no event applied for 5 min" needs
        a series that exists before the first event."""
        for event_type in event_types:
            for outcome in OUTCOMES:
                self.event_counter(event_type, outcome)

    def event_counter(self, event_type: str, outcome: str) -> Any:
        counter = self._events.get((event_type, outcome))
        if counter is None:
            counter = self.events.labels(self.service, event_type, outcome)
            self._events[event_type, outcome] = counter
        return counter

    # ---- hooks of the relay, the timers and the lease ----------------------------------

    def rows_published(self, dead_letters: bool, count: int) -> None:
        self._published["dead_letters" if dead_letters else "events"].inc(count)
        if dead_letters:
            self._dead_letters.inc(count)

    def timer_fired(self, kind: str, outcome: str) -> None:
        self.timers_fired.labels(self.service, kind, outcome).inc()

    def lease_changed(self, change: str) -> None:
        self.lease_changes.labels(self.service, change).inc()
        self.lease_held.labels(self.service).set(1 if change == "acquired" else 0)

    # ---- scraping -------------------------------------------------------------------------

    def probe(self, probe: Probe) -> None:
        """Add something to ask at scrape time (at most every `refresh_every_s`)."""
        self._probes.append(probe)

    async def exposition(self) -> bytes:
        """The text Prometheus scrapes, with the probed gauges refreshed if they are stale."""
        await self.refresh()
        return generate_latest(self.registry)

    async def refresh(self) -> None:
        async with self._refreshing:  # two scrapes at once: one refresh
            if time.monotonic() - self._refreshed < self.refresh_every_s:
                return
            results = await asyncio.gather(
                *(asyncio.wait_for(probe(), self._probe_timeout_s) for probe in self._probes),
                return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):  # the gauge keeps its last value
                    log.debug("metrics.probe_failed", service=self.service, error=repr(result))
            self._refreshed = time.monotonic()

    def watch_consumer(self, js: JetStreamContext, durable: str) -> None:
        async def consumer_state() -> None:
            info = await js.consumer_info(EVENTS_STREAM, durable)
            self.consumer_pending.labels(self.service).set(info.num_pending or 0)
            self.consumer_ack_pending.labels(self.service).set(info.num_ack_pending or 0)
            self.consumer_redelivered.labels(self.service).set(info.num_redelivered or 0)
        self.probe(consumer_state)

    def watch_database(self, engine: AsyncEngine, *, timers_too: bool,
                       clock: Callable[[], datetime] = now) -> None:
        async def backlog() -> None:
            # Pending rows only (the index on published_at, id): cheap whatever the history.
            async with engine.connect() as connection:
                count, oldest = (await connection.execute(
                    sa.select(sa.func.count(), sa.func.min(outbox.c.created_at))
                    .where(outbox.c.published_at.is_(None)))).one()
            self.outbox_pending.labels(self.service).set(count)
            age = 0.0 if oldest is None else max((now() - oldest).total_seconds(), 0.0)
            self.outbox_oldest_age.labels(self.service).set(age)

        async def due() -> None:
            async with engine.connect() as connection:
                count = (await connection.execute(
                    sa.select(sa.func.count()).select_from(timers)
                    .where(timers.c.fired_at.is_(None), timers.c.due_at <= clock()))).scalar_one()
            self.timers_due.labels(self.service).set(count)

        self.probe(backlog)
        if timers_too:
            self.probe(due)


class ConsumerTelemetry:
    """What the consumer reports of each batch: metrics and, when tracing is on, spans. One
    batch at a time: `begin`, `handling` around each handler call, `rolled_back` (a transient
    failure) or `committed`, and `end` whatever happened."""

    def __init__(self, service: str, accepted: frozenset[str], metrics: ServiceMetrics | None = None) -> None:
        self._metrics = metrics
        self._accepted = accepted
        self.spans = BatchSpans(service, accepted)
        self._deliveries: list[Any] = []
        self._started = 0.0
        self._rolled_back = False
        self._committed = False
        if metrics is not None:
            metrics.consumes(accepted)

    def begin(self, deliveries: list[Any]) -> None:
        self._deliveries, self._started = deliveries, time.perf_counter()
        self._rolled_back = self._committed = False
        self.spans.begin(deliveries)

    def handling(self, delivery: Any) -> Any:
        return self.spans.current(delivery)

    def rolled_back(self) -> None:
        self._rolled_back = True

    def committed(self) -> None:
        self._committed = True

    def end(self) -> None:
        deliveries, self._deliveries = self._deliveries, []
        self.spans.end(self._rolled_back, self._committed)
        metrics = self._metrics
        if metrics is None or not deliveries or not (self._committed or self._rolled_back):
            return
        metrics._batch_size.observe(len(deliveries))
        metrics._batch_duration.observe(time.perf_counter() - self._started)
        tally: Tally[tuple[str, str]] = Tally()
        moment = time.time()
        for delivery in deliveries:
            event_type = type_label(delivery.envelope, self._accepted)
            if self._committed and delivery.outcome is not None:
                outcome = delivery.outcome.value
                if outcome not in ("retry", "waiting"):
                    metrics._latency.observe(max(moment - delivery.msg.metadata.timestamp.timestamp(), 0.0))
            else:
                outcome = "transient"
            tally[event_type, outcome] += 1
        for (event_type, outcome), count in tally.items():
            metrics.event_counter(event_type, outcome).inc(count)
