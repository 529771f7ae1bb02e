"""Lunar conversions (lunardate) and event recurrences used by the reminder job."""

from __future__ import annotations

from datetime import date

import pytest

from geo_core.reminders.lunar import holiday_dates, lunar_to_solar, occurrences, solar_to_lunar


@pytest.mark.parametrize(("year", "month", "day", "solar"), [
    (2027, 1, 1, date(2027, 2, 6)),  # 2027 春节
    (2026, 8, 15, date(2026, 9, 25)),  # 2026 中秋
    (2026, 1, 1, date(2026, 2, 17)),  # 2026 春节
    (2026, 5, 5, date(2026, 6, 19)),  # 2026 端午
    (2026, 9, 9, date(2026, 10, 18)),  # 2026 重阳
    (2026, 1, 15, date(2026, 3, 3)),  # 2026 元宵
    (2024, 8, 15, date(2024, 9, 17)),  # 2024 中秋
])
def test_known_lunar_dates(year, month, day, solar):
    assert lunar_to_solar(year, month, day) == solar
    assert solar_to_lunar(solar) == (year, month, day, False)


def test_holidays_in_a_window():
    assert holiday_dates(date(2027, 1, 31), date(2027, 2, 21)) == [
        ("spring_festival", "春节", date(2027, 2, 6)), ("lantern_festival", "元宵节", date(2027, 2, 20))]
    assert holiday_dates(date(2026, 11, 1), date(2026, 11, 30)) == []


def test_missing_lunar_days_fall_back():
    # 2025 has a leap 6th month (闰六月); 2026 has none: a leap-month birthday falls in the ordinary 6th month
    assert solar_to_lunar(date(2025, 7, 25))[1:] == (6, 1, True)
    assert lunar_to_solar(2026, 6, 1, leap=True) == lunar_to_solar(2026, 6, 1)
    # a 30th in a 29-day month becomes the 29th
    short = next(m for m in range(1, 13) if lunar_to_solar(2026, m, 30) == lunar_to_solar(2026, m, 29))
    assert lunar_to_solar(2026, short, 30) is not None


def test_lunar_yearly_event_recurs_on_the_lunar_date():
    born = lunar_to_solar(1975, 8, 15)  # a lunar birthday 八月十五
    assert occurrences(born, "lunar", "yearly", date(2026, 9, 20), date(2026, 9, 30)) == [date(2026, 9, 25)]
    assert born == date(1975, 9, 20)  # the solar anniversary is another day
    assert occurrences(born, "solar", "yearly", date(2026, 9, 20), date(2026, 9, 30)) == [date(2026, 9, 20)]


@pytest.mark.parametrize(("event", "recurrence", "start", "end", "expected"), [
    (date(2026, 11, 27), "weekly", date(2026, 11, 25), date(2026, 12, 5), [date(2026, 11, 27), date(2026, 12, 4)]),
    (date(2026, 1, 31), "monthly", date(2026, 2, 1), date(2026, 3, 31), [date(2026, 2, 28), date(2026, 3, 31)]),
    (date(2000, 2, 29), "yearly", date(2027, 2, 25), date(2027, 3, 1), [date(2027, 2, 28)]),
    (date(2027, 6, 7), "once", date(2027, 6, 1), date(2027, 6, 7), [date(2027, 6, 7)]),
    (date(2027, 6, 7), "once", date(2027, 6, 8), date(2027, 6, 9), []),
    (date(2026, 12, 1), "weekly", date(2026, 11, 1), date(2026, 11, 30), []),
])
def test_solar_recurrences(event, recurrence, start, end, expected):
    assert occurrences(event, "solar", recurrence, start, end) == expected
