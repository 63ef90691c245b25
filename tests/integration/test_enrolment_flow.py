"""Enrolment end to end on the real server: capacity, waitlist and promotion, and a handler
that keeps failing ending in the dead-letter stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import consumer_running, query, wait_until_rows
from support import SIRENS, application, dead_letters, events_of, publish, registration, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_enrolment.catalogue import Catalogue
from envol_shared.consumer import EventConsumer
from envol_shared.contracts import enrolment as ev
from envol_shared.database import create_engine, migrate
from envol_shared.relay import OutboxRelay
from envol_shared.topology import CONSUMERS

SMALL_CATALOGUE = """
cluster = "pegase"
name = "Pégase"

[[programmes]]
code = "PG-TWO-PLACES"
title = "A programme with two places"
kind = "financing"
capacity = 2
opens_on = 2026-01-01
rules = ["sme", "cluster_member", "open_on_application_date", "one_live_application"]
"""


def accept(app_id: str) -> ev.ApplicationReviewed:
    return ev.ApplicationReviewed(application_id=app_id, decision="accept", reviewer="pg-staff-1",
                                  reason="good file")


async def statuses(database_url: str) -> dict[str, str]:
    return dict(await query(database_url, "select id, status from applications"))


async def test_a_full_programme_waitlists_and_a_freed_place_goes_to_the_oldest_waiting(
    nc, start_service, database_url, tmp_path: Path
):
    (tmp_path / "pegase.toml").write_text(SMALL_CATALOGUE)
    await start_service(definition=bootstrap(Catalogue.load(tmp_path)))
    companies = SIRENS[:5]
    for n, siren in enumerate(companies):
        await publish(nc, ev.CompanyRegistered(**registration(siren, cluster="pegase")),
                      company=siren, cluster="pegase")
        await publish(nc, ev.ApplicationSubmitted(**application(f"pg-{n}", siren, "PG-TWO-PLACES")),
                      company=siren, cluster="pegase")
    for n, siren in enumerate(companies[:4]):
        await publish(nc, accept(f"pg-{n}"), company=siren, cluster="pegase")
    await wait_until_rows(database_url, "select count(*) from inbox", 14)
    assert await statuses(database_url) == {"pg-0": "enrolled", "pg-1": "enrolled",
                                            "pg-2": "waitlisted", "pg-3": "waitlisted",
                                            "pg-4": "eligible"}

    await publish(nc, ev.WithdrawalRequested(application_id="pg-1", by="pg-staff-1",
                                             reason="company withdrew"),
                  company=companies[1], cluster="pegase")
    await publish(nc, ev.ParticipationStarted(application_id="pg-0", by="pg-staff-1"),
                  company=companies[0], cluster="pegase")
    await publish(nc, ev.ParticipationFinished(application_id="pg-0", by="pg-staff-1"),
                  company=companies[0], cluster="pegase")
    await wait_until_rows(database_url, "select count(*) from inbox", 17)
    assert await statuses(database_url) == {"pg-0": "completed", "pg-1": "withdrawn",
                                            "pg-2": "enrolled", "pg-3": "enrolled",
                                            "pg-4": "eligible"}
    promoted = await wait_for(lambda: _enrolled_by_service(nc))
    assert [e["data"]["application_id"] for e in promoted] == ["pg-2", "pg-3"]
    assert "place freed by application pg-1 (withdrawn)" in promoted[0]["data"]["reasons"]
    # The promoted company's own journey, not the withdrawing company's.
    submitted = [e for e in await events_of(nc) if e["type"] == "envol.application.received.v1"
                 and e["data"]["application_id"] == "pg-2"]
    assert promoted[0]["correlationid"] == submitted[0]["correlationid"]


async def _enrolled_by_service(nc):
    found = [e for e in await events_of(nc) if e["type"] == "envol.application.enrolled.v1"
             and e["data"]["by"] == "enrolment"]
    return found if len(found) == 2 else None


async def test_a_handler_that_keeps_failing_ends_in_the_dead_letter_stream(nats_server, nc, database_url):
    """After max_attempts the message is dead-lettered with the kind of error (not its text,
    which may quote the message); other companies go on."""
    definition = bootstrap()
    engine = create_engine(database_url)
    await migrate(engine, definition.migrations)
    register = definition.handlers[ev.CompanyRegistered]

    async def broken_for_one_company(event, ctx):
        if event.company_id == SIRENS[0]:
            raise ValueError("bug triggered by this company's data")
        await register(event, ctx)

    relay = OutboxRelay(js=nc.jetstream(), engine=engine, service="enrolment")
    stopping = asyncio.Event()
    consumer = EventConsumer(
        js=nc.jetstream(), consumer=CONSUMERS["enrolment"],
        uow_factory=lambda: definition.uow_factory(engine),
        handlers={**definition.handlers, ev.CompanyRegistered: broken_for_one_company},
        on_commit=relay.hand_off, max_attempts=3, retry_delay_s=0.2, stopping=stopping,
    )
    relaying = asyncio.create_task(relay.run(stopping))
    try:
        async with consumer_running(nats_server.url, consumer, stopping):
            for siren in SIRENS[:3]:
                await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
            letters = await wait_for(lambda: dead_letters(nc), within=30)
            assert len(letters) == 1
            reason = letters[0].headers["Envol-Reason"]
            assert reason == "handler failed on attempt 3 of 3: ValueError"
            await wait_until_rows(database_url, "select count(*) from companies", 2)
            outcomes = dict(await query(database_url, "select outcome, count(*) from inbox group by outcome"))
            assert outcomes == {"applied": 2, "dead_lettered": 1}
    finally:
        stopping.set()
        await relaying
        await engine.dispose()
