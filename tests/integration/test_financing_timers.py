"""Durable follow-up on the real server: reminders and escalations fire when they are due,
after a restart that stood for days of downtime, once — never twice, even with two instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import query, wait_until_rows
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


async def follow_ups(nc) -> list[tuple[str, str, str | None]]:
    found = await events_of(nc, "envol.*.financing.>")
    return [(e["type"].split(".")[2], e["data"]["reason"], e["data"].get("requirement_id")
             or e["data"].get("checkpoint")) for e in found
            if e["type"] in ("envol.case.reminder.due.v1", "envol.case.escalation.raised.v1")]


async def fired(database_url: str) -> int:
    return (await query(database_url, "select count(*) from timers where fired_at is not null"))[0][0]


async def open_case_with_a_report_due(nc, database_url: str, due_on) -> None:  # type: ignore[no-untyped-def]
    siren = SIRENS[10]
    await publish(nc, enrolment_outcome("enrolled", "av-loan-t", siren), company=siren, producer="enrolment")
    await publish(nc, fe.RequirementAdded(case_id="av-loan-t", requirement_id="progress-report",
                                          kind="report", title="R&D progress report", due_on=due_on,
                                          owner="av-staff-2"), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 2)


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

    # Restarted again at the same time: nothing fires twice.
    service = await start_service(definition=bootstrap(), clock=clock)
    fired_before = await fired(database_url)
    await wait_for(lambda: _later(service, 1.0))
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
    await publish(nc, fe.CheckpointRecorded(case_id="av-loan-t", checkpoint="baseline",
                                            recorded_on=baseline_on, raised_to_date_cents=0),
                  company=SIRENS[10])
    await wait_until_rows(database_url, "select count(*) from inbox", 3)
    clock.move_to(DATES.at(DATES.escalation_day(baseline_on)) + timedelta(hours=2))
    await wait_for(lambda: _later(service, 1.5))
    baseline = [f for f in await follow_ups(nc) if f[2] == "baseline"]
    assert baseline == [("reminder", "checkpoint_due", "baseline")]


async def _equal(awaitable, expected):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if found == expected else None


async def _later(service, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    """True after `seconds`: lets the scheduler (0.2 s interval) run several passes."""
    import asyncio

    await asyncio.sleep(seconds)
    return True


async def test_completing_a_requirement_stops_its_reminders(nc, start_service, database_url):
    today = paris_date(datetime.now(UTC))
    due_on = CALENDAR.add_business_days(today, 3)
    clock = MovableClock()
    await start_service(definition=bootstrap(), clock=clock)
    await open_case_with_a_report_due(nc, database_url, due_on)
    await publish(nc, fe.RequirementUpdated(case_id="av-loan-t", requirement_id="progress-report",
                                            status="complete", on=today), company=SIRENS[10])
    await wait_until_rows(database_url, "select count(*) from inbox", 3)
    clock.move_to(DATES.at(DATES.escalation_day(DATES.overdue_day(due_on))) + timedelta(hours=2))
    await wait_for(lambda: _later(None, 1.5))
    assert [f for f in await follow_ups(nc) if f[2] == "progress-report"] == []


async def test_two_instances_fire_each_timer_once(nc, start_service, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("two instances share one database on PostgreSQL (SQLite is one process's file)")
    today = paris_date(datetime.now(UTC))
    due_on = CALENDAR.add_business_days(today, 3)
    clock = MovableClock()
    first = await start_service(definition=bootstrap(), clock=clock)
    await open_case_with_a_report_due(nc, database_url, due_on)
    await first.stop()
    # Both instances start long after the escalation was due: each timer fires once in all.
    clock.move_to(DATES.at(DATES.escalation_day(DATES.overdue_day(due_on))) + timedelta(hours=2))
    await start_service(definition=bootstrap(), clock=clock)
    await start_service(definition=bootstrap(), clock=clock)
    expected = [("reminder", "requirement_overdue", "progress-report"),
                ("escalation", "requirement_overdue", "progress-report")]
    await wait_for(lambda: _equal(_requirement_follow_ups(nc), expected))
    await wait_for(lambda: _later(None, 1.5))
    assert await _requirement_follow_ups(nc) == expected


async def _requirement_follow_ups(nc):  # type: ignore[no-untyped-def]
    return [f for f in await follow_ups(nc) if f[2] == "progress-report"]
