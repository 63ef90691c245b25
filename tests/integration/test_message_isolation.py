"""A message can only fail itself: a refusal, or a failure when its changes are written, undoes
that message alone, and costs the batch one more pass, not one pass per failure."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from conftest import consumer_running, query, wait_until_rows
from stdnum import luhn
from support import dead_letters, events_of, publish, registration, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_shared.consumer import EventConsumer, Handler, Rejected
from envol_shared.contracts import enrolment as ev
from envol_shared.database import create_engine, migrate
from envol_shared.event_log import Received
from envol_shared.relay import OutboxRelay
from envol_shared.topology import CONSUMERS


def siren(n: int) -> str:
    body = f"8{n:07d}"
    return body + luhn.calc_check_digit(body)


@asynccontextmanager
async def consuming(nats_server, nc, database_url: str, register: Callable[[Handler], Handler],
                    batch_size: int = 64, **options: Any) -> AsyncIterator[None]:
    """The enrolment consumer with its `company.registered` handler wrapped by `register`."""
    definition = bootstrap()
    engine = create_engine(database_url)
    await migrate(engine, definition.migrations)
    relay = OutboxRelay(js=nc.jetstream(), engine=engine, service="enrolment")
    stopping = asyncio.Event()
    consumer = EventConsumer(
        js=nc.jetstream(), consumer=CONSUMERS["enrolment"],
        uow_factory=lambda: definition.uow_factory(engine),
        handlers={**definition.handlers,
                  ev.CompanyRegistered: register(definition.handlers[ev.CompanyRegistered])},
        on_commit=relay.hand_off, stopping=stopping, **options,
    )
    relaying = asyncio.create_task(relay.run(stopping))
    try:
        async with consumer_running(nats_server.url, consumer, stopping, batch_size) as fetch_loop:
            yield
            assert not fetch_loop.done() and not relaying.done(), "consumer and relay still running"
    finally:
        stopping.set()
        await relaying
        await engine.dispose()


async def test_a_batch_of_refusals_is_applied_in_two_passes_not_one_per_refusal(nats_server, nc,
                                                                                database_url):
    total = 40
    calls: Counter[str] = Counter()

    def refuse_odd_ones(register: Handler) -> Handler:
        async def handler(event, ctx):  # type: ignore[no-untyped-def]
            calls[event.company_id] += 1
            await register(event, ctx)  # changes made, then refused: they must be undone
            if int(event.company_id[-2]) % 2:
                raise Rejected(f"odd company {event.company_id}")
        return handler

    for n in range(total):
        await publish(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
    async with consuming(nats_server, nc, database_url, refuse_odd_ones, batch_size=total):
        await wait_until_rows(database_url, "select count(*) from inbox", total)

    refused = {siren(n) for n in range(total) if int(siren(n)[-2]) % 2}
    assert 0 < len(refused) < total
    # The first pass stops at the first refusal; the second applies each message once (the
    # batch replayed once per refusal would call the handler hundreds of times).
    assert max(calls.values()) <= 2 and sum(calls.values()) <= total + 2, calls
    outcomes = dict(await query(database_url, "select outcome, count(*) from inbox group by outcome"))
    assert outcomes == {"applied": total - len(refused), "rejected": len(refused)}
    assessed = {e["data"]["siren"] for e in await events_of(nc, "envol.*.enrolment.company.assessed")}
    assert assessed == {siren(n) for n in range(total)} - refused, "a refused event's changes are undone"


async def test_a_write_the_database_refuses_fails_that_message_alone(nats_server, nc, database_url):
    culprit = siren(7)

    def clash_for_the_culprit(register: Handler) -> Handler:
        async def handler(event, ctx):  # type: ignore[no-untyped-def]
            await register(event, ctx)
            if event.company_id == culprit:  # two inbox rows with one key: refused at the write
                for _ in range(2):
                    ctx.uow.inbox.record("clash", Received("applied", None, None))
        return handler

    companies = [siren(n) for n in range(5, 10)]
    for company in companies:
        await publish(nc, ev.CompanyRegistered(**registration(company)), company=company)
    async with consuming(nats_server, nc, database_url, clash_for_the_culprit, max_attempts=2,
                         retry_delay_s=0.2):
        [letter] = await wait_for(lambda: dead_letters(nc), within=30)
        await wait_until_rows(database_url, "select count(*) from inbox", len(companies))

    assert letter.headers["Envol-Reason"].startswith("handler failed on attempt 2 of 2: IntegrityError")
    outcomes = dict(await query(database_url, "select outcome, count(*) from inbox group by outcome"))
    assert outcomes == {"applied": len(companies) - 1, "dead_lettered": 1}
    assessed = {e["data"]["siren"] for e in await events_of(nc, "envol.*.enrolment.company.assessed")}
    assert assessed == set(companies) - {culprit}
