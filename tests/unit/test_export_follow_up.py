"""When export checkpoints come due and escalate, when units end, and how long a VIE mission
may last: pure date arithmetic on French business days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from envol_export.domain.follow_up import FollowUpCalendar, FollowUpPolicy, unit_ends_at
from envol_export.domain.model import mission_length_problem
from envol_shared.calendar import BusinessCalendar

DATES = FollowUpCalendar(FollowUpPolicy(), BusinessCalendar())
OPENED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def test_baseline_is_due_ten_business_days_after_opening() -> None:
    assert DATES.checkpoint_due_on("baseline", opened_at=OPENED, enrolled_at=OPENED) == date(2026, 3, 16)


@pytest.mark.parametrize(("name", "due"), [
    ("month_6", date(2026, 9, 2)),     # Wednesday 2 September
    ("month_12", date(2027, 3, 2)),    # Tuesday
    ("month_24", date(2028, 3, 2)),    # Thursday
])
def test_later_checkpoints_are_due_months_after_enrolment(name: str, due: date) -> None:
    assert DATES.checkpoint_due_on(name, opened_at=OPENED, enrolled_at=OPENED) == due


def test_a_checkpoint_due_on_a_holiday_or_weekend_moves_to_the_next_working_day() -> None:
    enrolled = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)  # + 6 months = Tuesday 14 July, a holiday
    assert DATES.checkpoint_due_on("month_6", opened_at=enrolled, enrolled_at=enrolled) == date(2026, 7, 15)
    saturday = datetime(2026, 4, 4, 10, 0, tzinfo=UTC)  # + 6 months = Sunday 4 October
    assert DATES.checkpoint_due_on("month_6", opened_at=saturday, enrolled_at=saturday) == date(2026, 10, 5)


def test_checkpoints_count_from_enrolment_the_baseline_from_opening() -> None:
    enrolled = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    opened = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)  # the service was down a week
    assert DATES.checkpoint_due_on("baseline", opened_at=opened, enrolled_at=enrolled) == date(2026, 3, 23)
    assert DATES.checkpoint_due_on("month_6", opened_at=opened, enrolled_at=enrolled) == date(2026, 9, 2)


def test_an_unanswered_reminder_escalates_after_the_grace_period_in_business_days() -> None:
    assert DATES.escalation_day(date(2026, 9, 2)) == date(2026, 9, 9)
    # 11 November (Armistice) does not count.
    assert DATES.escalation_day(date(2026, 11, 9)) == date(2026, 11, 17)
    longer = FollowUpCalendar(FollowUpPolicy(escalate_after_business_days=10), BusinessCalendar())
    assert longer.escalation_day(date(2026, 9, 2)) == date(2026, 9, 16)


def test_a_reminder_goes_out_at_nine_in_paris() -> None:
    assert DATES.at(date(2026, 9, 2)) == datetime(2026, 9, 2, 7, 0, tzinfo=UTC)  # summer time
    assert DATES.at(date(2026, 12, 25)) == datetime(2026, 12, 28, 8, 0, tzinfo=UTC)  # Christmas: Monday


def test_a_unit_ends_at_midnight_after_its_last_day_in_paris() -> None:
    assert unit_ends_at(date(2028, 8, 31)) == datetime(2028, 8, 31, 22, 0, tzinfo=UTC)
    assert unit_ends_at(date(2027, 12, 31)) == datetime(2027, 12, 31, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(("starts_on", "ends_on"), [
    (date(2026, 1, 5), date(2026, 7, 4)),      # exactly 6 months
    (date(2026, 1, 5), date(2028, 1, 4)),      # exactly 24 months
    (date(2026, 9, 1), date(2028, 2, 29)),     # 18 months, to a leap day
])
def test_a_vie_mission_lasts_six_to_twenty_four_months(starts_on: date, ends_on: date) -> None:
    assert mission_length_problem(starts_on, ends_on) is None


@pytest.mark.parametrize(("starts_on", "ends_on"), [
    (date(2026, 1, 5), date(2026, 7, 3)),      # a day short of 6 months
    (date(2026, 1, 5), date(2028, 1, 5)),      # a day over 24 months
    (date(2026, 1, 5), date(2025, 12, 31)),    # ends before it starts
])
def test_a_shorter_or_longer_mission_is_refused(starts_on: date, ends_on: date) -> None:
    problem = mission_length_problem(starts_on, ends_on)
    assert problem == (f"a VIE mission lasts 6 to 24 months: starting on {starts_on}, its last day is "
                       f"between 2026-07-04 and 2028-01-04, not {ends_on}")
