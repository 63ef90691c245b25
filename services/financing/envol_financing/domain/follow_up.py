"""When a case needs a reminder, and when an unanswered reminder becomes an escalation.

Pure date arithmetic on French business days, so it can be tested without a clock:

- a requirement: a reminder N business days before its due date ("due soon"), another on
  the first business day after it ("overdue"), then an escalation M business days later;
- a case with no news for S business days: a reminder, then an escalation M days later;
- an outcome checkpoint (baseline soon after opening; 6, 12, 24 months after enrolment): a
  reminder on its due day, then an escalation M days later.

Each moment is 09:00 Paris time on a business day: one that would fall on a weekend or a
public holiday (14 July...) moves to the next working day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from envol_financing.domain.model import CHECKPOINT_MONTHS
from envol_shared.calendar import BusinessCalendar, add_months, paris_date


@dataclass(frozen=True)
class FollowUpPolicy:
    due_soon_business_days: int = 5
    escalate_after_business_days: int = 5
    stale_after_business_days: int = 20
    baseline_within_business_days: int = 10


class FollowUpCalendar:
    def __init__(self, policy: FollowUpPolicy, calendar: BusinessCalendar) -> None:
        self.policy = policy
        self.calendar = calendar

    def due_soon_day(self, due_on: date) -> date:
        return self.calendar.add_business_days(self.calendar.on_or_after(due_on),
                                               -self.policy.due_soon_business_days)

    def overdue_day(self, due_on: date) -> date:
        return self.calendar.add_business_days(due_on, 1)

    def escalation_day(self, reminded_on: date) -> date:
        return self.calendar.add_business_days(reminded_on, self.policy.escalate_after_business_days)

    def stale_day(self, last_news_at: datetime) -> date:
        return self.calendar.add_business_days(paris_date(last_news_at),
                                               self.policy.stale_after_business_days)

    def checkpoint_due_on(self, name: str, *, opened_at: datetime, enrolled_at: datetime) -> date:
        if name == "baseline":
            return self.calendar.on_or_after(self.calendar.add_business_days(
                paris_date(opened_at), self.policy.baseline_within_business_days))
        return self.calendar.on_or_after(add_months(paris_date(enrolled_at), CHECKPOINT_MONTHS[name]))

    def at(self, day: date) -> datetime:
        return self.calendar.morning_of(self.calendar.on_or_after(day))
