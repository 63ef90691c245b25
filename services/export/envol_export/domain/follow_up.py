"""When a checkpoint needs a reminder, when an unanswered reminder becomes an escalation, and
when a unit's end date comes.

Pure date arithmetic on French business days, so it can be tested without a clock:

- an outcome checkpoint (baseline soon after opening; 6, 12, 24 months after enrolment): a
  reminder on its due day, then an escalation M business days later;
- a relay mission, desk or cohort ends at the end of its last day, Paris time.

Each reminder falls at 09:00 Paris time on a business day: one that would fall on a weekend
or a public holiday (14 July...) moves to the next working day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from envol_export.domain.model import CHECKPOINT_MONTHS
from envol_shared.calendar import PARIS, BusinessCalendar, add_months, paris_date


@dataclass(frozen=True)
class FollowUpPolicy:
    escalate_after_business_days: int = 5
    baseline_within_business_days: int = 10


class FollowUpCalendar:
    def __init__(self, policy: FollowUpPolicy, calendar: BusinessCalendar) -> None:
        self.policy = policy
        self.calendar = calendar

    def escalation_day(self, reminded_on: date) -> date:
        return self.calendar.add_business_days(reminded_on, self.policy.escalate_after_business_days)

    def checkpoint_due_on(self, name: str, *, opened_at: datetime, enrolled_at: datetime) -> date:
        if name == "baseline":
            return self.calendar.add_business_days(paris_date(opened_at),
                                                   self.policy.baseline_within_business_days)
        return self.calendar.on_or_after(add_months(paris_date(enrolled_at), CHECKPOINT_MONTHS[name]))

    def at(self, day: date) -> datetime:
        return self.calendar.morning_of(self.calendar.on_or_after(day))


def unit_ends_at(last_day: date) -> datetime:
    """A unit serves until the end of its last day in France: it ends at midnight after it."""
    return datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=PARIS).astimezone(UTC)
