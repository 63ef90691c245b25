"""Durable follow-up on the real server: reminders and escalations fire when they are due,
after a restart that stood for days of downtime, once — never twice, even with two instances
racing for them.

That something did *not* fire is only ever concluded once a later timer has fired: another
case's, due at the same moment or after, and fired after it (due time, then key order). A
quiet second would also pass with a scheduler that never ran."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from conftest import query, wait_until_rows
from stdnum import luhn
from support import SIRENS, enrolment_outcome, events_of, publish, wait_for

from envol_financing.bootstrap import bootstrap
from envol_financing.domain.follow_up import FollowUpCalendar, FollowUpPolicy
from envol_shared.calendar import BusinessCalendar, paris_date
from envol_shared.contracts import financing as fe

CALENDAR = BusinessCalendar()
# Aerospace Valley's shipped policy: 5 days' grace before escalating, baseline within 10.
DATES = FollowUpCalendar(FollowUpPolicy(), CALENDAR)


class MovableClock:
    """What time the service's timers think it is: real time plus a jump."""

    def __init__(self) -> None:
        self.jump = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.jump

    def move_to(self, moment: datetime) -> None:
        self.jump = moment - datetime.now(UTC)


CASE = "av-loan-t"
# Another case, whose timers come due with the case's: its key sorts after, so it fires after.
LATER = "av-loan-z"
FOLLOW_UPS = ("envol.case.reminder.due.v1", "envol.case.escalation.raised.v1")


async def follow_ups(nc, case: str = CASE) -> list[tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
    found = await events_of(nc, "envol.*.financing.>")
    return [(e["type"].split(".")[2], e["data"]["reason"], e["data"].get("requirement_id")
             or e["data"].get("checkpoint")) for e in found
            if e["type"] in FOLLOW_UPS and e["data"]["case_id"] == case]


async def fired(database_url: str) -> int:
    return (await query(database_url, "select count(*) from timers where fired_at is not null"))[0][0]


async def open_case_with_a_report_due(nc, database_url: str, due_on, case: str = CASE,  # type: ignore[no-untyped-def]
                                      siren: str = SIRENS[10], settled: int = 2) -> None:
    await publish(nc, enrolment_outcome("enrolled", case, siren), company=siren, producer="enrolment")
    await publish(nc, fe.RequirementAdded(case_id=case, requirement_id="progress-report",
                                          kind="report", title="R&D progress report", due_on=due_on,
                                          owner="av-staff-2"), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", settled)


async def test_reminders_fire_after_a_restart_once_then_escalate(nc, start_service, database_url):
    today = paris_date(datetime.now(UTC))
    due_on = CALENDAR.add_business_days(today, 3)  # too close for "due soon": next word is "overdue"
    overdue_on = DATES.overdue_day(due_on)
    escalate_on = DATES.escalation_day(overdue_on)
    baseline_on = DATES.checkpoint_due_on("baseline", opened_at=datetime.now(UTC),
                                          enrolled_at=datetime.now(UTC))
    assert overdue_on < escalate_on < baseline_on  # so each step below shows one thing

    clock = MovableClock()
    service = await start_service(definition=bootstrap(), clock=clock)
    await open_case_with_a_report_due(nc, database_url, due_on)
    await service.stop()
    assert await follow_ups(nc) == []

    # Down until the morning after the due date: at start, the overdue reminder fires.
    clock.move_to(DATES.at(overdue_on) + timedelta(hours=2))
    service = await start_service(definition=bootstrap(), clock=clock)
    expected = [("reminder", "requirement_overdue", "progress-report")]
    assert await wait_for(lambda: _equal(follow_ups(nc), expected)) == expected
    await service.stop()

    # Restarted again at the same time: nothing fires twice. Shown once another case, whose
    # report is overdue as well, has had its reminder: the scheduler ran, at that time.
    service = await start_service(definition=bootstrap(), clock=clock)
    fired_before = await fired(database_url)
    await open_case_with_a_report_due(nc, database_url, due_on, case=LATER, siren=SIRENS[11], settled=4)
    later = [("reminder", "requirement_overdue", "progress-report")]
    assert await wait_for(lambda: _equal(follow_ups(nc, LATER), later)) == later
    assert await follow_ups(nc) == expected
    assert await fired(database_url) == fired_before
    await service.stop()

    # Five business days after the reminder was due, still not complete: escalation, once.
    clock.move_to(DATES.at(escalate_on) + timedelta(hours=2))
    service = await start_service(definition=bootstrap(), clock=clock)
    expected += [("escalation", "requirement_overdue", "progress-report")]
    assert await wait_for(lambda: _equal(follow_ups(nc), expected)) == expected
    escalation = next(e["data"] for e in await events_of(nc, "envol.*.financing.>")
                      if e["type"] == "envol.case.escalation.raised.v1")
    assert escalation["reminded_on"] == overdue_on.isoformat()  # when the service, back, reminded
    assert f"is still open, due since {due_on}" in escalation["detail"]

    # The baseline checkpoint then comes due; recording it stops that reminder's escalation.
    clock.move_to(DATES.at(baseline_on) + timedelta(hours=2))
    expected += [("reminder", "checkpoint_due", "baseline")]
    assert await wait_for(lambda: _equal(follow_ups(nc), expected)) == expected
    await publish(nc, fe.CheckpointRecorded(case_id=CASE, checkpoint="baseline",
                                            recorded_on=baseline_on, raised_to_date_cents=0),
                  company=SIRENS[10])
    await wait_until_rows(database_url, "select count(*) from inbox", 5)
    clock.move_to(DATES.at(DATES.escalation_day(baseline_on)) + timedelta(hours=2))
    # The other case's baseline, never recorded, escalates: the day has come for the scheduler.
    baseline_escalation = ("escalation", "checkpoint_due", "baseline")
    assert await wait_for(lambda: _including(follow_ups(nc, LATER), baseline_escalation))
    baseline = [f for f in await follow_ups(nc) if f[2] == "baseline"]
    assert baseline == [("reminder", "checkpoint_due", "baseline")]


async def _equal(awaitable, expected):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if found == expected else None


async def _including(awaitable, item):  # type: ignore[no-untyped-def]
    return item in await awaitable


async def test_completing_a_requirement_stops_its_reminders(nc, start_service, database_url):
    today = paris_date(datetime.now(UTC))
    due_on = CALENDAR.add_business_days(today, 3)
    clock = MovableClock()
    await start_service(definition=bootstrap(), clock=clock)
    await open_case_with_a_report_due(nc, database_url, due_on)
    await open_case_with_a_report_due(nc, database_url, due_on, case=LATER, siren=SIRENS[11], settled=4)
    await publish(nc, fe.RequirementUpdated(case_id=CASE, requirement_id="progress-report",
                                            status="complete", on=today), company=SIRENS[10])
    await wait_until_rows(database_url, "select count(*) from inbox", 5)
    clock.move_to(DATES.at(DATES.escalation_day(DATES.overdue_day(due_on))) + timedelta(hours=2))
    # The other case's report, still open, is reminded of and then escalated...
    expected = [("reminder", "requirement_overdue", "progress-report"),
                ("escalation", "requirement_overdue", "progress-report")]
    assert await wait_for(lambda: _equal(_requirement_follow_ups(nc, LATER), expected)) == expected
    # ...the completed one never was.
    assert await _requirement_follow_ups(nc) == []


RACERS = 40


def racer(n: int) -> tuple[str, str]:
    body = f"3{n:07d}"
    return f"av-race-{n}", body + luhn.calc_check_digit(body)


async def test_two_instances_racing_fire_each_timer_once(nc, start_service, database_url):
    """Two instances are running when the reports of many cases come due at once, so both
    schedulers find the same due timers and race for them: each claims a timer locked, the
    other skips it, and each reminder is fired, and sent, once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("two instances share one database on PostgreSQL (SQLite is one process's file)")
    today = paris_date(datetime.now(UTC))
    due_on = CALENDAR.add_business_days(today, 3)
    clock = MovableClock()
    instances = [await start_service(definition=bootstrap(), clock=clock) for _ in range(2)]
    cases = dict(racer(n) for n in range(RACERS))
    for case, siren in cases.items():
        await publish(nc, enrolment_outcome("enrolled", case, siren), company=siren, producer="enrolment")
        await publish(nc, fe.RequirementAdded(case_id=case, requirement_id="progress-report", kind="report",
                                              title="R&D progress report", due_on=due_on, owner="av-staff-2"),
                      company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 2 * RACERS)
    assert await fired(database_url) == 0

    sent: dict[tuple[str, str], set[str]] = defaultdict(set)

    async def count(msg) -> None:  # type: ignore[no-untyped-def]
        event = json.loads(msg.data)
        if event["type"] in FOLLOW_UPS:
            sent[(event["data"]["case_id"], event["type"])].add(event["id"])

    subscription = await nc.subscribe("envol.*.financing.>", cb=count)
    await nc.flush()
    # Both instances idle, their schedulers passing every 0.2 s: every report comes due for
    # both at the same moment.
    clock.move_to(DATES.at(DATES.overdue_day(due_on)) + timedelta(hours=2))
    # Every report reminded of: its timer now waits to escalate.
    await wait_until_rows(database_url, "select count(*) from timers where key like 'av-race-%' "
                                        "and payload->>'step' = 'escalate'", RACERS)
    # Stopped, each instance has committed what it fired and published what it committed.
    for instance in instances:
        await instance.stop()
    await nc.flush()
    await subscription.unsubscribe()

    reminders = {case: ids for (case, type_), ids in sent.items() if type_ == FOLLOW_UPS[0]}
    assert set(reminders) == set(cases)
    assert {case: len(ids) for case, ids in reminders.items() if len(ids) != 1} == {}, (
        "reminders fired more than once")
    assert {type_ for _, type_ in sent} == {FOLLOW_UPS[0]}, "no escalation is due yet"
    stored = [e for e in await events_of(nc, "envol.*.financing.>") if e["type"] == FOLLOW_UPS[0]]
    assert sorted(e["data"]["case_id"] for e in stored) == sorted(cases)
    pending = await query(database_url, "select count(*) from outbox where published_at is null")
    assert pending[0][0] == 0


async def _requirement_follow_ups(nc, case: str = CASE):  # type: ignore[no-untyped-def]
    return [f for f in await follow_ups(nc, case) if f[2] == "progress-report"]
