"""French business days: what reminders and due dates count. Weekends and public holidays
(14 July, Easter Monday...) are not working days; reminders go out at 09:00 Paris time."""

from datetime import UTC, date, datetime, timedelta

import pytest

from envol_shared.calendar import BusinessCalendar, add_months, paris_date

CAL = BusinessCalendar()


def label(value: object) -> str:
    return str(value)


# ---- what is a business day ------------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2026, 3, 7), date(2026, 3, 8), date(2026, 7, 11), date(2026, 7, 12)],
                         ids=label)
def test_weekend_is_not_a_business_day(day: date) -> None:
    assert day.weekday() >= 5
    assert not CAL.is_business_day(day)
    assert CAL.holiday_name(day) is None


@pytest.mark.parametrize("day", [date(2026, 3, 9), date(2026, 3, 13), date(2026, 7, 13), date(2026, 7, 15),
                                 date(2026, 4, 3), date(2025, 12, 26)], ids=label)
def test_ordinary_weekday_is_a_business_day(day: date) -> None:
    """Good Friday and 26 December are working days in metropolitan France."""
    assert CAL.is_business_day(day)
    assert CAL.holiday_name(day) is None


@pytest.mark.parametrize("day", [
    date(2026, 1, 1),    # New Year's Day, Thursday
    date(2026, 4, 6),    # Easter Monday 2026
    date(2027, 3, 29),   # Easter Monday 2027
    date(2026, 5, 1),    # Labour Day, Friday
    date(2026, 5, 8),    # Victory in Europe Day, Friday
    date(2026, 5, 14),   # Ascension Thursday
    date(2026, 5, 25),   # Whit Monday
    date(2026, 7, 14),   # Bastille Day, Tuesday
    date(2028, 8, 15),   # Assumption, Tuesday
    date(2027, 11, 1),   # All Saints' Day, Monday
    date(2026, 11, 11),  # Armistice Day, Wednesday
    date(2026, 12, 25),  # Christmas Day, Friday
], ids=label)
def test_french_public_holiday_on_a_weekday_is_not_a_business_day(day: date) -> None:
    assert day.weekday() < 5
    assert not CAL.is_business_day(day)
    assert CAL.holiday_name(day)


def test_holiday_on_a_weekend_is_named_and_not_a_business_day() -> None:
    assert date(2026, 8, 15).weekday() == 5
    assert CAL.holiday_name(date(2026, 8, 15))
    assert not CAL.is_business_day(date(2026, 8, 15))


def test_easter_monday_moves_with_the_year() -> None:
    assert CAL.is_business_day(date(2027, 4, 6))  # Easter Monday 2026's date, an ordinary 2027 Tuesday
    assert not CAL.is_business_day(date(2027, 3, 29))


@pytest.mark.parametrize("day", [date(2026, 4, 3), date(2025, 12, 26)], ids=label)
def test_alsace_moselle_has_good_friday_and_saint_stephen(day: date) -> None:
    moselle = BusinessCalendar(subdivision="57")
    assert not moselle.is_business_day(day)
    assert CAL.is_business_day(day)


# ---- on_or_after --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 7, 13), date(2026, 7, 13)),  # a business day is itself
    (date(2026, 7, 11), date(2026, 7, 13)),  # Saturday -> Monday
    (date(2026, 7, 12), date(2026, 7, 13)),  # Sunday -> Monday
    (date(2026, 7, 14), date(2026, 7, 15)),  # 14 July -> Wednesday
    (date(2026, 5, 1), date(2026, 5, 4)),    # Friday 1 May, then a weekend -> Monday 4 May
    (date(2027, 5, 8), date(2027, 5, 10)),   # Saturday 8 May -> Monday
    (date(2026, 12, 25), date(2026, 12, 28)),
    (date(2027, 2, 28), date(2027, 3, 1)),
], ids=label)
def test_on_or_after(day: date, expected: date) -> None:
    assert CAL.on_or_after(day) == expected


# ---- add_business_days -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "count", "expected"), [
    (date(2026, 3, 6), 1, date(2026, 3, 9)),      # Friday + 1 -> Monday
    (date(2026, 3, 9), -1, date(2026, 3, 6)),     # Monday - 1 -> Friday
    (date(2026, 3, 7), 1, date(2026, 3, 9)),      # from a Saturday
    (date(2026, 3, 7), -1, date(2026, 3, 6)),
    (date(2026, 3, 2), 5, date(2026, 3, 9)),      # a whole week
    (date(2026, 3, 9), -5, date(2026, 3, 2)),
    (date(2026, 7, 13), 1, date(2026, 7, 15)),    # across 14 July
    (date(2026, 7, 15), -1, date(2026, 7, 13)),
    (date(2026, 7, 10), 3, date(2026, 7, 16)),    # across a weekend and 14 July
    (date(2026, 7, 16), -3, date(2026, 7, 10)),
    (date(2026, 12, 24), 5, date(2027, 1, 4)),    # across Christmas and New Year's Day
    (date(2026, 4, 2), 2, date(2026, 4, 7)),      # across the Easter weekend and Monday
    (date(2026, 3, 9), 0, date(2026, 3, 9)),
], ids=label)
def test_add_business_days(start: date, count: int, expected: date) -> None:
    assert CAL.add_business_days(start, count) == expected


def test_adding_zero_business_days_keeps_even_a_weekend_day() -> None:
    """Current behaviour: count 0 returns the day itself, business day or not."""
    assert CAL.add_business_days(date(2026, 7, 11), 0) == date(2026, 7, 11)


def test_adding_business_days_always_lands_on_a_business_day() -> None:
    start = date(2026, 1, 1)
    for offset in range(366):
        day = start + timedelta(days=offset)
        for count in (1, -1, 5, -5, 20):
            assert CAL.is_business_day(CAL.add_business_days(day, count)), (day, count)


# ---- business_days_between -------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end", "expected"), [
    (date(2026, 7, 10), date(2026, 7, 17), 4),    # Mon 13, Wed 15, Thu 16, Fri 17 (not the 14th)
    (date(2026, 3, 6), date(2026, 3, 9), 1),      # the Monday only: start is excluded
    (date(2026, 3, 6), date(2026, 3, 8), 0),      # just the weekend
    (date(2026, 3, 9), date(2026, 3, 9), 0),
    (date(2026, 3, 13), date(2026, 3, 9), 0),     # end before start
    (date(2025, 12, 31), date(2026, 12, 31), 252),  # 261 weekdays in 2026, 9 of them holidays
], ids=label)
def test_business_days_between(start: date, end: date, expected: int) -> None:
    assert CAL.business_days_between(start, end) == expected


def test_business_days_between_undoes_add_business_days() -> None:
    start = date(2026, 1, 1)
    for offset in range(0, 366, 3):
        day = CAL.on_or_after(start + timedelta(days=offset))
        for count in (1, 5, 20):
            assert CAL.business_days_between(day, CAL.add_business_days(day, count)) == count


# ---- the time a reminder goes out -----------------------------------------------------------------------


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 1, 15), datetime(2026, 1, 15, 8, 0, tzinfo=UTC)),    # winter: UTC+1
    (date(2026, 7, 15), datetime(2026, 7, 15, 7, 0, tzinfo=UTC)),    # summer: UTC+2
    (date(2026, 3, 27), datetime(2026, 3, 27, 8, 0, tzinfo=UTC)),    # Friday before the clocks go forward
    (date(2026, 3, 30), datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),    # Monday after (29 March 2026)
    (date(2026, 10, 23), datetime(2026, 10, 23, 7, 0, tzinfo=UTC)),  # Friday before they go back
    (date(2026, 10, 26), datetime(2026, 10, 26, 8, 0, tzinfo=UTC)),  # Monday after (25 October 2026)
], ids=label)
def test_morning_of_is_nine_paris_time_in_utc(day: date, expected: datetime) -> None:
    moment = CAL.morning_of(day)
    assert moment == expected
    assert moment.utcoffset() == timedelta(0)
    assert moment.tzinfo is UTC


# ---- add_months and paris_date -------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 8, 31), 6, date(2027, 2, 28)),    # clamped to February's end
    (date(2027, 8, 31), 6, date(2028, 2, 29)),    # a leap year
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2026, 8, 31), 12, date(2027, 8, 31)),
    (date(2026, 3, 15), 24, date(2028, 3, 15)),
    (date(2026, 10, 31), 6, date(2027, 4, 30)),
], ids=label)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 3, 1, 23, 30, tzinfo=UTC), date(2026, 3, 2)),    # 00:30 in Paris (UTC+1)
    (datetime(2026, 3, 1, 22, 59, tzinfo=UTC), date(2026, 3, 1)),    # 23:59 in Paris
    (datetime(2026, 7, 13, 22, 30, tzinfo=UTC), date(2026, 7, 14)),  # 00:30 in Paris (UTC+2)
    (datetime(2026, 7, 13, 21, 59, tzinfo=UTC), date(2026, 7, 13)),  # 23:59 in Paris
    (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), date(2027, 1, 1)),
], ids=label)
def test_paris_date_near_midnight_utc(moment: datetime, expected: date) -> None:
    assert paris_date(moment) == expected
