"""Crashes: a service process killed outright (SIGKILL), a NATS server killed and restarted."""

from __future__ import annotations

import asyncio
from collections import Counter

import nats.errors
import nats.js.errors
from conftest import query, wait_until_rows
from stdnum import luhn
from support import application, events_of, publish, registration, wait_for

from envol_shared.contracts import enrolment as ev

COMPANIES = 300


def siren(n: int) -> str:
    body = f"7{n:07d}"
    return body + luhn.calc_check_digit(body)


async def test_a_service_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    nc, service_process, database_url
):
    for n in range(COMPANIES):
        await publish(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
        await publish(nc, ev.ApplicationSubmitted(**application(f"crash-{n}", siren(n))),
                      company=siren(n))
    first = service_process()
    first.start()
    await wait_until_rows(database_url, "select count(*) from inbox", 60)
    first.kill()
    done_before = (await query(database_url, "select count(*) from inbox"))[0][0]
    assert done_before < 2 * COMPANIES, "the kill must land mid-stream for this test to mean anything"

    second = service_process()
    second.start()
    await wait_until_rows(database_url, "select count(*) from inbox", 2 * COMPANIES)
    await wait_until_rows(database_url,
                          "select count(*) from outbox where published_at is not null", 3 * COMPANIES)
    assert second.terminate() == 0

    history = await query(database_url,
                          "select application_id, to_status from status_history order by id")
    per_application = Counter(app_id for app_id, _ in history)
    assert set(per_application.values()) == {2}, "each application: applied then one verdict, once"
    assert len(per_application) == COMPANIES
    events = await events_of(nc)
    assert len(events) == 3 * COMPANIES
    assert len({e["id"] for e in events}) == 3 * COMPANIES, "no event published twice"


async def test_a_nats_server_killed_and_restarted_mid_stream_loses_nothing(
    nats_server, nc, start_service, database_url
):
    await start_service()
    for n in range(100):
        await publish(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
    await wait_until_rows(database_url, "select count(*) from inbox", 20)
    nats_server.kill()
    nats_server.start()  # same port, same store: clients reconnect on their own
    await wait_for(lambda: _connected(nc))
    for n in range(100, 200):
        await _publish_retrying(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
    await wait_until_rows(database_url, "select count(*) from inbox", 200, within=90)
    await wait_until_rows(database_url,
                          "select count(*) from outbox where published_at is not null", 200)
    events = await events_of(nc)
    assert len(events) == 200 == len({e["data"]["siren"] for e in events})


async def _connected(nc) -> bool:
    return nc.is_connected


async def _publish_retrying(nc, data, company: str) -> None:
    """As a partner would: JetStream needs a moment to recover its streams after a restart."""
    for _ in range(50):
        try:
            await publish(nc, data, company=company, event_id=f"retry-{company}")
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError, nats.js.errors.ServiceUnavailableError):
            await asyncio.sleep(0.2)
    raise AssertionError("JetStream did not come back")
