"""When a case's reminders and escalations fall: French business days, 09:00 Paris time, and
nothing on a weekend or a public holiday (14 July...)."""

from datetime import UTC, date, datetime

import pytest

from envol_financing.domain.follow_up import FollowUpCalendar, FollowUpPolicy
from envol_shared.calendar import BusinessCalendar

CAL = BusinessCalendar()
# The shipped defaults: 5 business days before, escalate after 5, stale after 20, baseline within 10.
DATES = FollowUpCalendar(FollowUpPolicy(), CAL)


def label(value: object) -> str:
    return str(value)


def test_default_policy() -> None:
    assert FollowUpPolicy() == FollowUpPolicy(due_soon_business_days=5, escalate_after_business_days=5,
                                              stale_after_business_days=20, baseline_within_business_days=10)


# ---- requirements: due soon, overdue ------------------------------------------------------------------


@pytest.mark.parametrize(("due_on", "expected"), [
    (date(2026, 3, 13), date(2026, 3, 6)),    # Friday -> the Friday before
    (date(2026, 7, 20), date(2026, 7, 10)),   # Monday 20 July: 14 July does not count
    (date(2026, 4, 10), date(2026, 4, 2)),    # Easter Monday does not count
    (date(2026, 7, 11), date(2026, 7, 6)),    # due on a Saturday: 5 business days before it
    (date(2026, 7, 14), date(2026, 7, 7)),    # due on 14 July itself
], ids=label)
def test_due_soon_day_counts_business_days_back(due_on: date, expected: date) -> None:
    assert DATES.due_soon_day(due_on) == expected
    assert CAL.is_business_day(expected)


@pytest.mark.parametrize(("due_on", "expected"), [
    (date(2026, 3, 10), date(2026, 3, 11)),   # Tuesday -> Wednesday
    (date(2026, 3, 13), date(2026, 3, 16)),   # Friday -> Monday
    (date(2026, 7, 13), date(2026, 7, 15)),   # the day after would be 14 July
    (date(2026, 7, 11), date(2026, 7, 13)),   # due on a Saturday: overdue on Monday morning
    (date(2026, 7, 12), date(2026, 7, 13)),   # due on a Sunday
    (date(2026, 8, 14), date(2026, 8, 17)),   # Friday before 15 August (a Saturday in 2026)
    (date(2026, 12, 24), date(2026, 12, 28)),  # Christmas Day, then a weekend
    (date(2026, 4, 3), date(2026, 4, 7)),     # Good Friday: Easter Monday is skipped
], ids=label)
def test_overdue_day_is_the_next_business_day(due_on: date, expected: date) -> None:
    assert DATES.overdue_day(due_on) == expected


def test_requirement_due_on_a_saturday_is_reminded_then_overdue_on_working_days() -> None:
    due_on = date(2026, 7, 11)
    assert DATES.at(DATES.due_soon_day(due_on)) == datetime(2026, 7, 6, 7, 0, tzinfo=UTC)
    assert DATES.at(DATES.overdue_day(due_on)) == datetime(2026, 7, 13, 7, 0, tzinfo=UTC)


def test_due_soon_with_zero_days_is_the_due_day_or_the_next_working_one() -> None:
    dates = FollowUpCalendar(FollowUpPolicy(due_soon_business_days=0), CAL)
    assert dates.due_soon_day(date(2026, 7, 10)) == date(2026, 7, 10)
    assert dates.due_soon_day(date(2026, 7, 14)) == date(2026, 7, 15)


# ---- escalation and stale cases -------------------------------------------------------------------------


@pytest.mark.parametrize(("reminded_on", "expected"), [
    (date(2026, 3, 9), date(2026, 3, 16)),    # Monday + 5 -> next Monday
    (date(2026, 7, 7), date(2026, 7, 15)),    # a weekend and 14 July in between
    (date(2026, 5, 4), date(2026, 5, 12)),    # 8 May (Friday) in between
], ids=label)
def test_escalation_day(reminded_on: date, expected: date) -> None:
    assert DATES.escalation_day(reminded_on) == expected


def test_escalation_follows_the_cluster_s_policy() -> None:
    dates = FollowUpCalendar(FollowUpPolicy(escalate_after_business_days=2), CAL)
    assert dates.escalation_day(date(2026, 7, 10)) == date(2026, 7, 15)


def test_stale_day_counts_business_days_from_the_last_news() -> None:
    # Monday 22 June 2026 + 20 business days, 14 July not counted.
    assert DATES.stale_day(datetime(2026, 6, 22, 9, 0, tzinfo=UTC)) == date(2026, 7, 21)


def test_stale_day_starts_from_the_paris_day_of_the_last_news() -> None:
    # 22:30 UTC on Sunday 21 June is 00:30 on Monday 22 June in Paris.
    assert DATES.stale_day(datetime(2026, 6, 21, 22, 30, tzinfo=UTC)) == date(2026, 7, 21)
    assert DATES.stale_day(datetime(2026, 6, 21, 21, 30, tzinfo=UTC)) == date(2026, 7, 20)


def test_stale_day_with_pegase_s_longer_delay() -> None:
    dates = FollowUpCalendar(FollowUpPolicy(stale_after_business_days=30), CAL)
    assert dates.stale_day(datetime(2026, 6, 22, 9, 0, tzinfo=UTC)) == date(2026, 8, 4)


# ---- outcome checkpoints ----------------------------------------------------------------------------------

ENROLLED = datetime(2026, 8, 31, 10, 0, tzinfo=UTC)
OPENED = datetime(2026, 8, 31, 10, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(("name", "expected"), [
    ("baseline", date(2026, 9, 14)),   # Monday 31 August + 10 business days
    ("month_6", date(2027, 3, 1)),     # 31 Aug + 6 months = Sunday 28 Feb 2027 -> Monday 1 March
    ("month_12", date(2027, 8, 31)),   # a Tuesday
    ("month_24", date(2028, 8, 31)),   # a Thursday
], ids=label)
def test_checkpoints_after_an_enrolment_on_31_august(name: str, expected: date) -> None:
    assert DATES.checkpoint_due_on(name, opened_at=OPENED, enrolled_at=ENROLLED) == expected


def test_checkpoint_falling_on_14_july_moves_to_the_15th() -> None:
    enrolled = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)
    assert DATES.checkpoint_due_on("month_6", opened_at=enrolled, enrolled_at=enrolled) == date(2026, 7, 15)


def test_checkpoint_counts_from_the_paris_day_of_enrolment() -> None:
    # 23:30 UTC on 13 January is 00:30 on 14 January in Paris: month 6 is 14 July -> 15 July.
    enrolled = datetime(2026, 1, 13, 23, 30, tzinfo=UTC)
    assert DATES.checkpoint_due_on("month_6", opened_at=enrolled, enrolled_at=enrolled) == date(2026, 7, 15)
    earlier = datetime(2026, 1, 13, 22, 30, tzinfo=UTC)
    assert DATES.checkpoint_due_on("month_6", opened_at=earlier, enrolled_at=earlier) == date(2026, 7, 13)


def test_baseline_counts_from_opening_not_enrolment() -> None:
    opened = datetime(2026, 7, 3, 10, 0, tzinfo=UTC)  # a Friday; 14 July not counted
    assert DATES.checkpoint_due_on("baseline", opened_at=opened, enrolled_at=ENROLLED) == date(2026, 7, 20)
    late_evening = datetime(2026, 7, 2, 22, 30, tzinfo=UTC)  # already Friday 3 July in Paris
    due_on = DATES.checkpoint_due_on("baseline", opened_at=late_evening, enrolled_at=ENROLLED)
    assert due_on == date(2026, 7, 20)  # counted from Thursday 2 July it would be 17 July


# ---- the moment a reminder goes out ------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 7, 14), datetime(2026, 7, 15, 7, 0, tzinfo=UTC)),   # 14 July -> 15 July, 09:00 CEST
    (date(2026, 7, 11), datetime(2026, 7, 13, 7, 0, tzinfo=UTC)),   # Saturday -> Monday
    (date(2027, 2, 28), datetime(2027, 3, 1, 8, 0, tzinfo=UTC)),    # Sunday -> Monday, 09:00 CET
    (date(2026, 1, 15), datetime(2026, 1, 15, 8, 0, tzinfo=UTC)),
], ids=label)
def test_at_is_nine_paris_time_on_a_working_day(day: date, expected: datetime) -> None:
    assert DATES.at(day) == expected
