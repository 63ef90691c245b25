"""The Prometheus metrics a service serves at /metrics on its health port, scraped as
Prometheus would, after real events went through it on a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from conftest import query, wait_until_rows
from prometheus_client.parser import text_string_to_metric_families
from support import SIRENS, enrolment_outcome, publish, publish_raw, registration, wait_for
from test_financing_timers import MovableClock

from envol_enrolment.bootstrap import bootstrap
from envol_financing.bootstrap import bootstrap as financing
from envol_shared.contracts import enrolment as ev
from envol_shared.metrics import ServiceMetrics
from envol_shared.service import RunningService, Settings

REGISTERED, REVIEWED = ev.CompanyRegistered.type, ev.ApplicationReviewed.type


async def scrape(port: int) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """GET /metrics: its content type, and every sample by (name, labels)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", head
    content_type = next(line.split(b": ", 1)[1].decode() for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-type"))
    samples = {(sample.name, frozenset(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(body.decode())
               for sample in family.samples}
    return content_type, samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset({"service": "enrolment", **labels}.items())))


async def test_events_batches_outbox_and_lease_are_measured(nats_server, nc, database_url):
    settings = Settings("enrolment", nats_server.url, database_url, 64, health_port=0)
    service = RunningService(bootstrap(), settings)
    await service.start()
    try:
        assert service.health is not None
        port = service.health.port
        service.metrics.refresh_every_s = 0  # every scrape asks JetStream and the outbox again
        sirens = SIRENS[:3]
        for siren in sirens:
            await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
        # An application nobody submitted: refused. Not JSON: dead-lettered.
        await publish(nc, ev.ApplicationReviewed(application_id="av-none", decision="accept",
                                                 reviewer="av-staff-1", reason="good file"),
                      company=sirens[0])
        await publish_raw(nc, "envol.aerospace-valley.staff.company.registered", b"{not json")
        await wait_until_rows(database_url, "select count(*) from inbox", 5)

        async def settled():  # type: ignore[no-untyped-def]
            _, samples = await scrape(port)
            done = (value(samples, "envol_dead_letters_published_total") == 1
                    and value(samples, "envol_outbox_pending_rows") == 0
                    and value(samples, "envol_consumer_pending_messages") == 0
                    and value(samples, "envol_consumer_ack_pending_messages") == 0)
            return samples if done else None

        samples = await wait_for(settled, within=30)
        content_type, _ = await scrape(port)
        assert content_type.startswith("text/plain; version=0.0.4")

        events = {(dict(labels)["type"], dict(labels)["outcome"]): count
                  for (name, labels), count in samples.items() if name == "envol_events_total" and count}
        assert events == {(REGISTERED, "applied"): 3, (REVIEWED, "rejected"): 1,
                          ("unknown", "dead_lettered"): 1}
        # Series of every consumed type exist before its first event (the stalled-consumer alert).
        assert value(samples, "envol_events_total", type=REVIEWED, outcome="applied") == 0

        # Each message once in one batch, and its publish-to-commit latency observed once.
        assert value(samples, "envol_batch_size_sum") == 5
        assert 1 <= value(samples, "envol_batch_size_count") <= 5
        batches = value(samples, "envol_batch_size_count")
        assert value(samples, "envol_batch_duration_seconds_count") == batches
        assert value(samples, "envol_publish_to_commit_seconds_count") == 5
        assert value(samples, "envol_publish_to_commit_seconds_bucket", le="+Inf") == 5

        # Two rejections (one said dead_lettered) went out with the events, one dead letter.
        assert value(samples, "envol_outbox_published_total", lane="dead_letters") == 1
        assert value(samples, "envol_outbox_published_total", lane="events") >= 2
        assert value(samples, "envol_outbox_oldest_pending_age_seconds") == 0
        assert value(samples, "envol_consumer_redelivered_messages") == 0

        assert value(samples, "envol_consumer_lease_held") == 1
        assert value(samples, "envol_consumer_lease_changes_total", change="acquired") == 1
        assert value(samples, "envol_consumer_lease_changes_total", change="lost") == 0
        # Every series says whose it is.
        assert all(dict(labels).get("service") == "enrolment" for _, labels in samples)
    finally:
        await service.stop()
    # Released at the stop.
    held = service.metrics.registry.get_sample_value("envol_consumer_lease_held", {"service": "enrolment"})
    assert held == 0


async def test_two_services_in_one_process_keep_their_series_apart(nats_server, tmp_path):
    services = [RunningService(bootstrap(), Settings("enrolment", nats_server.url,
                                                     f"sqlite+aiosqlite:///{tmp_path / name}.sqlite", 64))
                for name in ("a", "b")]
    assert services[0].metrics.registry is not services[1].metrics.registry
    services[0].metrics.event_counter(REGISTERED, "applied").inc()
    labels = {"service": "enrolment", "type": REGISTERED, "outcome": "applied"}
    assert [service.metrics.registry.get_sample_value("envol_events_total", labels)
            for service in services] == [1, None]  # b never counted one
    for service in services:
        await service.engine.dispose()


async def test_timers_due_and_fired_are_measured(nc, start_service, database_url):
    clock = MovableClock()
    service = await start_service(definition=financing(), clock=clock)
    siren = SIRENS[10]
    await publish(nc, enrolment_outcome("enrolled", "av-loan-m", siren), company=siren, producer="enrolment")
    await wait_until_rows(database_url, "select count(*) from timers", 1)  # the case's follow-up
    scheduled = (await query(database_url, "select count(*) from timers where fired_at is null"))[0][0]

    # What the service would find due in ten years: every timer scheduled so far.
    later = datetime.now(UTC) + timedelta(days=3660)
    ahead = ServiceMetrics("financing", refresh_every_s=0)
    ahead.watch_database(service.engine, timers_too=True, clock=lambda: later)
    await ahead.refresh()
    assert ahead.registry.get_sample_value("envol_timers_due", {"service": "financing"}) == scheduled

    service.metrics.refresh_every_s = 0
    clock.move_to(later)

    async def all_counted():  # type: ignore[no-untyped-def]
        fired = (await query(database_url, "select count(*) from timers where fired_at is not null"))[0][0]
        registry = service.metrics.registry
        counted = sum(sample.value for family in registry.collect() if family.name == "envol_timers_fired"
                      for sample in family.samples if sample.name == "envol_timers_fired_total")
        await service.metrics.refresh()
        due = registry.get_sample_value("envol_timers_due", {"service": "financing"})
        # A timer rescheduled under its key (a reminder, then its escalation) fires again: the
        # counter counts firings, the table one row per key.
        return counted if fired == scheduled and counted >= fired and due == 0 else None

    assert await wait_for(all_counted, within=30) >= scheduled
    kinds = {sample.labels["kind"] for family in service.metrics.registry.collect()
             for sample in family.samples if sample.name == "envol_timers_fired_total"}
    assert kinds and "unknown" not in kinds
