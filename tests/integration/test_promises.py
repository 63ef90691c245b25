"""The consumer's promises, each shown by making the fault happen for real and watching the
outcome, on a real nats-server and a real database (both SQLite and PostgreSQL):

- a message is acknowledged only once its batch has committed: a commit the database
  refuses, after the handler ran, leaves the message to come back, and it is then applied;
- a holder that lost its consumer lease never commits what it had in hand;
- the services dead-letter a message their handler keeps failing on after 5 attempts, with
  where it stood in the stream, and the company's later events then go on.

Each of these fails when the promise is broken on purpose (see tests/mutations)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import consumer_running, query, wait_until_rows
from support import SIRENS, dead_letters, events_of, publish, registration, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_shared.consumer import EventConsumer
from envol_shared.contracts import enrolment as ev
from envol_shared.database import create_engine, migrate
from envol_shared.events import make_event, now
from envol_shared.lease import ConsumerLease
from envol_shared.relay import OutboxRelay
from envol_shared.timers import TimerScheduler
from envol_shared.topology import CONSUMERS, EVENTS_STREAM

ASSESSED = "envol.*.enrolment.company.assessed"


async def assessed(nc) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["data"]["siren"] for e in await events_of(nc, ASSESSED)]


async def settled(nc) -> bool:  # type: ignore[no-untyped-def]
    """Every message delivered to the enrolment consumer is acknowledged, none is waiting."""
    info = await nc.jetstream().consumer_info(EVENTS_STREAM, CONSUMERS["enrolment"].durable)
    return info.num_ack_pending == 0 and info.num_pending == 0 and info.num_redelivered == 0


async def _value(value):  # type: ignore[no-untyped-def]
    return value


# --- acknowledged only after commit ----------------------------------------------------------

async def test_a_batch_whose_commit_the_database_refuses_comes_back_and_is_applied(
        nc, start_service, database_url):
    """The first commit of the batch fails *after* the handler ran (a deferred foreign key,
    checked at COMMIT): had the message been acknowledged before the commit, it would be lost.
    It is applied again, alone in a savepoint this time, and committed."""
    definition = bootstrap()
    register = definition.handlers[ev.CompanyRegistered]
    calls: Counter[str] = Counter()

    async def register_then_spoil_the_commit(event, ctx):  # type: ignore[no-untyped-def]
        calls[event.company_id] += 1
        await register(event, ctx)
        if calls[event.company_id] == 1:
            # A row whose parent does not exist, checked only when the transaction commits.
            await ctx.uow.session.execute(sa.text("insert into commit_check (parent) values ('none')"))

    service = await start_service(definition=dataclasses.replace(
        definition, handlers={**definition.handlers, ev.CompanyRegistered: register_then_spoil_the_commit}))
    assert service.engine is not None
    async with service.engine.begin() as connection:
        await connection.execute(sa.text("create table commit_parent (id varchar(10) primary key)"))
        await connection.execute(sa.text(
            "create table commit_check (parent varchar(10) references commit_parent (id) "
            "deferrable initially deferred)"))

    siren = SIRENS[0]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 1, within=15)
    assert await wait_for(lambda: assessed(nc)) == [siren]
    assert calls[siren] == 2, "applied twice: the refused commit, then the one that held"
    assert await wait_for(lambda: settled(nc))
    assert (await query(database_url, "select count(*) from commit_check"))[0][0] == 0
    assert (await query(database_url, "select outcome from inbox"))[0][0] == "applied"
    assert await dead_letters(nc) == []


async def test_a_serialization_failure_at_commit_redelivers_the_whole_batch(nc, start_service, database_url):
    """PostgreSQL refuses the COMMIT itself with a serialization failure (a constraint trigger
    deferred to commit, as serializable isolation would): a transient failure, so the whole
    batch comes back after a delay and is applied then, each message once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("constraint triggers deferred to COMMIT are PostgreSQL's")
    service = await start_service()
    assert service.engine is not None
    async with service.engine.begin() as connection:
        await connection.execute(sa.text("create sequence commit_refusals"))
        await connection.execute(sa.text(
            "create function refuse_first_commit() returns trigger language plpgsql as $$ begin "
            "if nextval('commit_refusals') = 1 then "
            "raise exception 'could not serialize access' using errcode = '40001'; end if; "
            "return null; end $$"))
        await connection.execute(sa.text(
            "create constraint trigger refuse_first_commit after insert on inbox "
            "deferrable initially deferred for each row execute function refuse_first_commit()"))

    companies = SIRENS[1:4]
    for siren in companies:
        await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", len(companies), within=30)
    assert sorted(await wait_for(lambda: _at_least(assessed(nc), len(companies)))) == sorted(companies)
    assert await wait_for(lambda: settled(nc))
    refusals = (await query(database_url, "select last_value from commit_refusals"))[0][0]
    assert refusals > 1, "the first commit was refused, a later one went through"
    assert sorted(await assessed(nc)) == sorted(companies), "each applied and published once"


async def _at_least(awaitable, count: int):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if len(found) >= count else None


# --- one consumer at a time, fenced by its lease ----------------------------------------------

TTL_S = 1.0


async def acquired(lease: ConsumerLease, within_s: float) -> bool:
    stopping = asyncio.Event()
    asyncio.get_running_loop().call_later(within_s, stopping.set)
    return await lease.acquire(stopping)


async def keep_renewing(lease: ConsumerLease) -> None:
    while True:
        await lease.renew()
        await asyncio.sleep(lease.renew_every_s)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator:  # type: ignore[type-arg]
    engine = create_engine(database_url)
    await migrate(engine, bootstrap().migrations)
    yield engine
    await engine.dispose()


async def test_a_holder_deposed_while_it_held_a_batch_never_commits_it(nats_server, nc, engine, database_url):
    """The holder stalls in a handler (a long pause, a partition) for longer than its lease;
    another instance takes the lease over. When the stalled holder wakes up, the batch it had
    in hand is rolled back, not committed: its lease is renewed in the batch's transaction,
    and that renewal finds the lease gone. The message comes back, and is applied once, by
    whoever holds the lease then."""
    definition = bootstrap()
    register = definition.handlers[ev.CompanyRegistered]
    stalled, wake_up = asyncio.Event(), asyncio.Event()
    calls = 0

    async def stalls_the_first_time(event, ctx):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            stalled.set()
            await wake_up.wait()
        await register(event, ctx)

    holder = ConsumerLease(engine, "enrolment", ttl_s=TTL_S, poll_s=0.05)
    relay = OutboxRelay(js=nc.jetstream(), engine=engine, service="enrolment")
    stopping = asyncio.Event()
    consumer = EventConsumer(
        js=nc.jetstream(), consumer=CONSUMERS["enrolment"],
        uow_factory=lambda: definition.uow_factory(engine),
        handlers={**definition.handlers, ev.CompanyRegistered: stalls_the_first_time},
        on_commit=relay.hand_off, lease=holder, retry_delay_s=0.2, stopping=stopping,
    )
    usurper = ConsumerLease(engine, "enrolment", ttl_s=TTL_S, poll_s=0.05)
    renewing: asyncio.Task[None] | None = None
    siren = SIRENS[4]
    relaying = asyncio.create_task(relay.run(stopping))
    try:
        async with consumer_running(nats_server.url, consumer, stopping):
            try:
                await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
                await asyncio.wait_for(stalled.wait(), timeout=30)
                assert await acquired(usurper, 10 * TTL_S), "the stalled holder stopped renewing: taken over"
                renewing = asyncio.create_task(keep_renewing(usurper))

                wake_up.set()
                await wait_for(lambda: _value(not holder.held), within=10)
                assert (await query(database_url, "select count(*) from inbox"))[0][0] == 0, (
                    "a deposed holder committed the batch it had in hand")
                assert (await query(database_url, "select count(*) from companies"))[0][0] == 0
                assert await assessed(nc) == []

                # The other instance stops gracefully: the first takes the lease back and gets
                # the message again.
                renewing.cancel()
                await usurper.release()
                await wait_until_rows(database_url, "select count(*) from inbox", 1, within=30)
                assert await wait_for(lambda: assessed(nc)) == [siren]
                assert calls == 2
                assert holder.held
            finally:
                if renewing is not None:
                    renewing.cancel()
                wake_up.set()  # (the stop waits for the batch in hand)
    finally:
        stopping.set()
        await relaying
    assert await assessed(nc) == [siren], "applied and published once"


# --- dead-lettered after the services' 5 attempts ---------------------------------------------

async def test_the_services_dead_letter_after_five_attempts_where_the_message_stood(
        nc, start_service, database_url, monkeypatch):
    """The running service's own settings (5 attempts): a handler failing on one event ends in
    the dead-letter stream at the 5th delivery, with the original's stream sequence; the
    company's later event, which waited behind it, is applied then; other companies never
    waited. (Only the delay between attempts is shortened: 2 s doubling would take 30 s.)"""
    monkeypatch.setattr(EventConsumer, "_delay", lambda self, attempt: 0.2)
    definition = bootstrap()
    register = definition.handlers[ev.CompanyRegistered]
    culprit, bystander = SIRENS[5], SIRENS[6]

    async def fails_on_the_first_registration(event, ctx):  # type: ignore[no-untyped-def]
        if event.company_id == culprit and event.accounts_year == 2024:
            raise RuntimeError("a bug this event's data triggers")
        await register(event, ctx)

    await start_service(definition=dataclasses.replace(
        definition, handlers={**definition.handlers, ev.CompanyRegistered: fails_on_the_first_registration}))
    subject, envelope = make_event(ev.CompanyRegistered(**registration(culprit, accounts_year=2024)),
                                   cluster="aerospace-valley", producer="staff", company=culprit)
    ack = await nc.jetstream().publish(subject, envelope.to_bytes())
    await publish(nc, ev.CompanyRegistered(**registration(culprit, accounts_year=2025)), company=culprit)
    await publish(nc, ev.CompanyRegistered(**registration(bystander)), company=bystander)

    [letter] = await wait_for(lambda: dead_letters(nc), within=20)
    assert letter.headers["Envol-Delivery-Attempts"] == "5"
    assert letter.headers["Envol-Reason"] == "handler failed on attempt 5 of 5: RuntimeError"
    assert letter.headers["Envol-Original-Stream-Sequence"] == str(ack.seq)
    assert letter.headers["Envol-Original-Subject"] == subject
    assert letter.data == envelope.to_bytes()
    await wait_until_rows(database_url, "select count(*) from inbox", 3, within=15)
    outcomes = dict(await query(database_url, "select outcome, count(*) from inbox group by outcome"))
    assert outcomes == {"applied": 2, "dead_lettered": 1}
    years = dict(await query(database_url, "select siren, accounts_year from companies"))
    assert years == {culprit: 2025, bystander: 2025}
    assert (await query(database_url, "select count(*) from held_companies"))[0][0] == 0
    rejected = await events_of(nc, "envol.aerospace-valley.staff.event.rejected")
    assert [(r["data"]["rejected_event_id"], r["data"]["dead_lettered"]) for r in rejected] == [
        (envelope.id, True)]


# --- a timer that fails for good ---------------------------------------------------------------

async def test_a_timer_that_fails_for_good_is_marked_with_its_error_and_the_others_fire(engine, database_url):
    """A handler that fails for good (not a transient failure) neither blocks the timers due
    after it nor comes back at every pass: its timer is marked fired, with the error."""
    definition = bootstrap()
    fired: list[str] = []

    async def broken(timer, ctx):  # type: ignore[no-untyped-def]
        raise ValueError("a bug in this timer's handler")

    async def fine(timer, ctx):  # type: ignore[no-untyped-def]
        fired.append(timer.key)

    moment = now()
    async with definition.uow_factory(engine) as uow:
        uow.timers.schedule("a-broken", "broken", moment - timedelta(minutes=2), {})
        uow.timers.schedule("b-fine", "fine", moment - timedelta(minutes=1), {})
        await uow.commit()
    scheduler = TimerScheduler(service="enrolment", uow_factory=lambda: definition.uow_factory(engine),
                               handlers={"broken": broken, "fine": fine})
    assert await scheduler.fire_due() == 2
    assert fired == ["b-fine"]
    rows = dict(await query(database_url, "select key, outcome from timers where fired_at is not null"))
    assert rows["b-fine"] == "fired"
    assert rows["a-broken"].startswith("failed: ValueError(")
    assert await scheduler.fire_due() == 0, "nothing left due: the broken timer does not come back"
    assert fired == ["b-fine"]


# --- what a savepoint undid is not published -----------------------------------------------------

async def test_events_of_a_message_undone_after_they_were_written_are_never_published(
        nc, start_service, database_url, monkeypatch):
    """A handler's events are written to the outbox, and then something it changed is refused
    (here: a timer whose payload cannot be stored): the message is undone alone, in its
    savepoint, events included. None of them is handed to the relay, which would publish
    events of a message that never happened."""
    monkeypatch.setattr(EventConsumer, "_delay", lambda self, attempt: 0.2)
    definition = bootstrap()
    register = definition.handlers[ev.CompanyRegistered]
    culprit, others = SIRENS[7], SIRENS[8:10]

    async def register_then_schedule_the_unstorable(event, ctx):  # type: ignore[no-untyped-def]
        await register(event, ctx)  # its company.assessed is in the outbox at the next flush
        if event.company_id == culprit:
            ctx.uow.timers.schedule("unstorable", "nothing", now(), {"not json": object()})

    handlers = {**definition.handlers, ev.CompanyRegistered: register_then_schedule_the_unstorable}
    await start_service(definition=dataclasses.replace(definition, handlers=handlers))
    for siren in (others[0], culprit, others[1]):
        await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)

    # The rejection sent at the last attempt follows, in the same lane, whatever the attempts
    # before it committed: once it is in the stream, so is anything the culprit left.
    [rejected] = await wait_for(lambda: events_of(nc, "envol.aerospace-valley.staff.event.rejected"),
                                within=30)
    assert rejected["data"]["reason"].startswith("handler failed on attempt 5 of 5: StatementError")
    await wait_until_rows(database_url, "select count(*) from inbox", 3)
    assert sorted(await assessed(nc)) == sorted(others), "no event of the undone message"
    assert (await query(database_url, "select count(*) from companies"))[0][0] == 2
