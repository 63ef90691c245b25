"""French business days: weekends and French public holidays are not working days.

Reminders and due dates follow business days (a reminder that would fall on 14 July or a
Sunday goes out on the next working day). The holidays come from the `holidays` package,
metropolitan France by default; a cluster in Alsace-Moselle would pass its subdivision.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

PARIS = ZoneInfo("Europe/Paris")
# Reminders go out at the start of a French working day, not at midnight UTC.
WORKDAY_START = time(9, 0)


class BusinessCalendar:
    def __init__(self, subdivision: str | None = None) -> None:
        self._holidays = holidays.country_holidays("FR", subdiv=subdivision)
        # Day arithmetic walks day by day: each day is looked up once (the benchmark showed
        # the holiday lookups among the service's top costs).
        self._business: dict[date, bool] = {}

    def is_business_day(self, day: date) -> bool:
        known = self._business.get(day)
        if known is None:
            known = self._business[day] = day.weekday() < 5 and day not in self._holidays
        return known

    def holiday_name(self, day: date) -> str | None:
        return self._holidays.get(day)

    def on_or_after(self, day: date) -> date:
        """`day` itself when it is a business day, else the next one."""
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def add_business_days(self, day: date, count: int) -> date:
        """The business day `count` business days after (or, negative, before) `day`."""
        step = 1 if count >= 0 else -1
        remaining = abs(count)
        while remaining:
            day += timedelta(days=step)
            if self.is_business_day(day):
                remaining -= 1
        return day

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in (start, end]: 0 when end is not after start."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_business_day(day)
        return count

    def morning_of(self, day: date) -> datetime:
        """When a reminder for `day` goes out: 09:00 Paris time on `day`, in UTC."""
        return datetime.combine(day, WORKDAY_START, tzinfo=PARIS).astimezone(UTC)


def paris_date(moment: datetime) -> date:
    """The calendar day in France at `moment`."""
    return moment.astimezone(PARIS).date()


def add_months(day: date, months: int) -> date:
    """Same day `months` later, clamped to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    return day + relativedelta(months=months)
