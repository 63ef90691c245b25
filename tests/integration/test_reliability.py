"""The processing guarantees, proven on a real nats-server and a real database."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter

import pytest
import sqlalchemy as sa
from conftest import query, wait_until_rows
from nats.js.errors import NoStreamResponseError
from stdnum import luhn
from support import (
    SIRENS,
    TcpProxy,
    application,
    dead_letters,
    events_of,
    publish,
    publish_raw,
    registration,
    stream_messages,
    wait_for,
)

from envol_enrolment.bootstrap import bootstrap
from envol_shared import relay as relay_module
from envol_shared.contracts import enrolment as ev
from envol_shared.events import make_event
from envol_shared.topology import EVENTS_STREAM


def _types(events: list[dict]) -> Counter[str]:
    return Counter(e["type"] for e in events)


async def test_the_same_event_delivered_twice_has_one_effect(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[0]
    subject, envelope = make_event(ev.CompanyRegistered(**registration(siren)),
                                   cluster="aerospace-valley", producer="staff", company=siren)
    # No Nats-Msg-Id: JetStream stores both copies and only the inbox can tell.
    await publish_raw(nc, subject, envelope.to_bytes())
    await publish_raw(nc, subject, envelope.to_bytes())
    submitted = ev.ApplicationSubmitted(**application("dup-1", siren))
    event_id = await publish(nc, submitted, company=siren)
    await publish(nc, submitted, company=siren, event_id=event_id)

    await wait_until_rows(database_url, "select count(*) from inbox", 2)
    await wait_for(lambda: _has(nc, "envol.application.eligible.v1", 1))
    stored = (await stream_messages(nc, EVENTS_STREAM, "envol.*.staff.>"))
    assert len(stored) == 4, "both copies of each event reached the stream"
    types = _types(await events_of(nc))
    assert types == {"envol.company.assessed.v1": 1, "envol.application.received.v1": 1,
                     "envol.application.eligible.v1": 1}
    assert (await query(database_url, "select count(*) from status_history"))[0][0] == 2


async def _has(nc, type_: str, count: int) -> bool:
    return _types(await events_of(nc))[type_] >= count


async def test_unreadable_messages_are_dead_lettered_with_reason_and_rejected(nc, start_service):
    await start_service()
    siren = SIRENS[1]
    subject = "envol.pegase.staff.company.registered"
    _, good = make_event(ev.CompanyRegistered(**registration(siren, cluster="pegase")),
                         cluster="pegase", producer="staff", company=siren)
    wrong_version = good.model_dump(mode="json") | {"type": "envol.company.registered.v2",
                                                    "id": "wrong-version"}
    bad_siren = good.model_dump(mode="json") | {"id": "bad-siren", "data": {
        **good.data, "company_id": "123456789"}}
    unreadable = {
        b"this is not json": "not JSON",
        b"[1, 2, 3]": "not a CloudEvent",
        json.dumps(wrong_version).encode(): "expected one of: envol.company.registered.v1",
        json.dumps(bad_siren).encode(): "company_id",
    }
    for payload in unreadable:
        await publish_raw(nc, subject, payload)
    await publish_raw(nc, subject, good.to_bytes())  # nothing blocks the messages behind

    letters = await wait_for(lambda: _at_least(dead_letters(nc), 4))
    assert {m.data for m in letters} == set(unreadable), "original bytes are kept"
    for message in letters:
        expected = unreadable[message.data]
        assert expected in message.headers["Envol-Reason"]
        assert message.headers["Envol-Original-Subject"] == subject
        assert message.headers["Envol-Service"] == "enrolment"
    rejections = await wait_for(lambda: _at_least(
        events_of(nc, "envol.pegase.staff.event.rejected"), 4))
    assert all(r["data"]["dead_lettered"] for r in rejections)
    assert {r["data"]["rejected_event_id"] for r in rejections} >= {"wrong-version", "bad-siren"}
    assert await wait_for(lambda: _has(nc, "envol.company.assessed.v1", 1))


async def _at_least(coroutine, count: int):
    found = await coroutine
    return found if len(found) >= count else None


async def test_an_event_outside_the_catalogue_is_refused_to_the_publisher(nc, start_service):
    await start_service()
    with pytest.raises(NoStreamResponseError):
        await nc.jetstream().publish("envol.pegase.staff.company.registred", b"{}")
    # Only the enrolment service publishes enrolment's events: a partner's copy has no stream.
    with pytest.raises(NoStreamResponseError):
        await nc.jetstream().publish("envol.pegase.staff.application.enrolled", b"{}")


async def test_business_refusal_changes_nothing_and_tells_the_producer(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[2]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("refused-1", siren)), company=siren)
    # Eligible but not enrolled: starting the participation is an illegal transition.
    await publish(nc, ev.ParticipationStarted(application_id="refused-1", by="staff-7"), company=siren)
    await publish(nc, ev.ApplicationReviewed(application_id="nope", decision="accept",
                                             reviewer="staff-7", reason="ok"), company=siren)

    rejections = await wait_for(lambda: _at_least(
        events_of(nc, "envol.aerospace-valley.staff.event.rejected"), 2))
    reasons = sorted(r["data"]["reason"] for r in rejections)
    assert "cannot go from eligible to active" in reasons[0]
    assert "unknown application nope" in reasons[1]
    assert not any(r["data"]["dead_lettered"] for r in rejections)
    rows = await query(database_url, "select status from applications where id = 'refused-1'")
    assert rows[0][0] == "eligible"


async def test_a_crash_between_commit_and_publish_is_healed_by_the_relay(
    nc, start_service, database_url, monkeypatch
):
    def crash_before_marking():
        raise RuntimeError("relay crashed after publishing, before marking rows")

    # First life: events are published but never marked, again and again.
    monkeypatch.setattr(relay_module, "now", crash_before_marking)
    service = await start_service()
    siren = SIRENS[3]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("relay-1", siren)), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 2)
    await wait_for(lambda: _has(nc, "envol.application.eligible.v1", 1))
    await service.stop()
    pending = await query(database_url, "select count(*) from outbox where published_at is null")
    assert pending[0][0] == 3

    # Second life: the relay resumes and marks them; JetStream dropped every republished copy.
    monkeypatch.undo()
    await start_service()
    await wait_until_rows(database_url,
                          "select count(*) from outbox where published_at is not null", 3)
    events = await events_of(nc)
    assert len(events) == 3 and len({e["id"] for e in events}) == 3


async def test_a_crash_before_publishing_leaves_rows_that_the_next_start_publishes(
    nc, start_service, database_url, monkeypatch
):
    async def nats_unreachable(self, subject, payload, **kwargs):
        raise ConnectionError("NATS unreachable")

    monkeypatch.setattr(type(nc.jetstream()), "publish_async", nats_unreachable)
    service = await start_service()
    siren = SIRENS[4]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 1)
    await service.stop()
    assert await events_of(nc) == []
    monkeypatch.undo()
    await start_service()
    assert await wait_for(lambda: _has(nc, "envol.company.assessed.v1", 1))


async def test_a_database_outage_leads_to_redelivery_not_loss(nc, start_service, database_url):
    service = await start_service()
    outage = {"on": False, "refused": 0}

    @sa.event.listens_for(service.engine.sync_engine, "before_cursor_execute")
    def database_down(conn, cursor, statement, parameters, context, executemany):
        if outage["on"]:
            outage["refused"] += 1
            raise sa.exc.OperationalError(statement, parameters, ConnectionError("database is down"))

    await publish(nc, ev.CompanyRegistered(**registration(SIRENS[4])), company=SIRENS[4])
    await wait_until_rows(database_url, "select count(*) from inbox", 1)
    outage["on"] = True
    siren = SIRENS[5]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await wait_for(lambda: _async(outage["refused"] >= 2), within=15)
    assert [e["data"]["siren"] for e in await events_of(nc)] == [SIRENS[4]]
    outage["on"] = False
    assert await wait_for(lambda: _has(nc, "envol.company.assessed.v1", 2), within=30)
    assert await dead_letters(nc) == []
    rows = await query(database_url, "select outcome from inbox")
    # Applied only now: the consumer never retries in place, so this was a redelivery.
    assert [r[0] for r in rows] == ["applied", "applied"]


async def _async(value):
    return value


async def test_events_about_one_company_are_applied_in_publication_order(nc, start_service, database_url):
    definition = bootstrap()
    failed_once: set[str] = set()
    start = definition.handlers[ev.ParticipationStarted]

    async def flaky_start(event, ctx):
        # One handler failure mid-journey: the company's later events must wait for it.
        if event.application_id == "order-3" and event.application_id not in failed_once:
            failed_once.add(event.application_id)
            raise RuntimeError("unexpected failure, once")
        await start(event, ctx)

    handlers = {**definition.handlers, ev.ParticipationStarted: flaky_start}
    await start_service(batch_size=7, definition=dataclasses.replace(definition, handlers=handlers))
    companies = SIRENS[:10]
    journeys = []
    for n, siren in enumerate(companies):
        app_id = f"order-{n}"
        journeys.append([
            (ev.CompanyRegistered(**registration(siren)), siren),
            (ev.ApplicationSubmitted(**application(app_id, siren, "AV-FIN-COACHING")), siren),
            (ev.ApplicationReviewed(application_id=app_id, decision="accept", reviewer="staff-1",
                                    reason="strong file"), siren),
            (ev.ParticipationStarted(application_id=app_id, by="staff-1"), siren),
            (ev.ParticipationFinished(application_id=app_id, by="staff-1"), siren),
        ])
    for step in range(5):  # interleave the companies, as real traffic does
        for journey in journeys:
            data, siren = journey[step]
            await publish(nc, data, company=siren)

    await wait_until_rows(database_url, "select count(*) from inbox", 50, within=60)
    assert failed_once == {"order-3"}
    rows = await query(database_url,
                       "select application_id, to_status from status_history order by id")
    paths: dict[str, list[str]] = {}
    for app_id, status in rows:
        paths.setdefault(app_id, []).append(status)
    expected = ["applied", "eligible", "enrolled", "active", "completed"]
    assert paths == {f"order-{n}": expected for n in range(10)}
    assert await events_of(nc, "envol.*.*.event.rejected") == []


async def test_a_real_postgresql_outage_mid_stream_loses_nothing(nc, start_service, database_url):
    """The service's connections to PostgreSQL go through a proxy that the test cuts."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a network outage is a PostgreSQL matter")
    url = sa.make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        await start_service(database_url=proxied)
        companies = [siren_n(n) for n in range(40)]
        for siren in companies[:20]:
            await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
        await wait_until_rows(database_url, "select count(*) from inbox", 20)
        proxy.cut()
        for siren in companies[20:]:
            await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
        await asyncio.sleep(3)  # the service meets the outage and backs off
        assert (await query(database_url, "select count(*) from inbox"))[0][0] == 20
        proxy.restore()
        await wait_until_rows(database_url, "select count(*) from inbox", 40, within=90)
        await wait_for(lambda: _has(nc, "envol.company.assessed.v1", 40), within=30)
        events = await events_of(nc)
        assert len(events) == 40 == len({e["data"]["siren"] for e in events})
        assert await dead_letters(nc) == []
    finally:
        await proxy.close()


def siren_n(n: int) -> str:
    body = f"8{n:07d}"
    return body + luhn.calc_check_digit(body)


async def test_per_company_order_survives_a_restart_while_an_event_waits_for_its_retry(
    nc, start_service, database_url
):
    siren = SIRENS[9]
    definition = bootstrap()
    submit = definition.handlers[ev.ApplicationSubmitted]

    async def failing_submit(event, ctx):
        raise RuntimeError("unexpected failure")

    flaky = dataclasses.replace(definition, handlers={**definition.handlers,
                                                      ev.ApplicationSubmitted: failing_submit})
    first = await start_service(definition=flaky)
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("held-1", siren)), company=siren)
    await wait_until_rows(database_url, "select count(*) from held_companies", 1)
    await first.stop()

    # A new process: the review arrives before the submission's retry, and must wait for it.
    await start_service(definition=dataclasses.replace(
        definition, handlers={**definition.handlers, ev.ApplicationSubmitted: submit}))
    await publish(nc, ev.ApplicationReviewed(application_id="held-1", decision="accept",
                                             reviewer="staff-3", reason="ok"), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 3, within=60)
    assert await events_of(nc, "envol.*.*.event.rejected") == []
    rows = await query(database_url, "select status from applications where id = 'held-1'")
    assert rows[0][0] == "enrolled"
    assert (await query(database_url, "select count(*) from held_companies"))[0][0] == 0
