"""A service process killed outright (SIGKILL) mid-stream loses nothing and applies nothing twice."""

from __future__ import annotations

from collections import Counter

from conftest import query, wait_until_rows
from stdnum import luhn
from support import application, events_of, publish, registration

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
