"""Solar and lunar (农历) dates for reminders: traditional holidays and event occurrences.

Lunar conversion uses `lunardate` (pure Python, tables for 1900-2099): 春节 = 正月初一, 元宵 = 正月十五,
端午 = 五月初五, 中秋 = 八月十五, 重阳 = 九月初九. A lunar day that does not exist in a given year (the 30th of a
short month, or a leap month that year does not have) falls back to the day before / the ordinary month.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from lunardate import LunarDate

HOLIDAYS: dict[str, tuple[str, int, int]] = {
    # code: (name, lunar month, lunar day)
    "spring_festival": ("春节", 1, 1),
    "lantern_festival": ("元宵节", 1, 15),
    "dragon_boat": ("端午节", 5, 5),
    "mid_autumn": ("中秋节", 8, 15),
    "double_ninth": ("重阳节", 9, 9),
}


def lunar_to_solar(year: int, month: int, day: int, leap: bool = False) -> date | None:
    """The solar date of a lunar date in lunar `year`; None outside the library's range (1900-2099)."""
    if leap and LunarDate.leap_month_for_year(year) != month:
        leap = False
    for d in (day, day - 1):  # a month of 29 days has no 30th: use the 29th
        try:
            return LunarDate(year, month, d, leap).to_solar_date()
        except ValueError:
            continue
    return None


def solar_to_lunar(value: date) -> tuple[int, int, int, bool]:
    lunar = LunarDate.from_solar_date(value.year, value.month, value.day)
    return lunar.year, lunar.month, lunar.day, bool(lunar.is_leap_month)


def holiday_dates(start: date, end: date) -> list[tuple[str, str, date]]:
    """(code, name, solar date) of the traditional holidays falling in [start, end]."""
    found = []
    for year in range(start.year - 1, end.year + 1):
        for code, (name, month, day) in HOLIDAYS.items():
            solar = lunar_to_solar(year, month, day)
            if solar is not None and start <= solar <= end:
                found.append((code, name, solar))
    return sorted(found, key=lambda h: h[2])


def _solar_anniversary(month: int, day: int, year: int) -> date:
    """month/day in `year`; 29 February becomes 28 February in common years."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def occurrences(event_date: date, calendar_kind: str, recurrence: str, start: date, end: date) -> list[date]:
    """Solar dates in [start, end] on which an event falls. `event_date` is always solar; a lunar event recurs
    yearly on the lunar month/day (and leap flag) of that date, e.g. a lunar birthday."""
    if end < start:
        return []
    if recurrence == "once":
        return [event_date] if start <= event_date <= end else []
    if calendar_kind == "lunar":  # yearly (the only other recurrence a lunar event may have)
        first, month, day, leap = solar_to_lunar(event_date)
        found = []
        for year in range(max(start.year - 1, first), end.year + 1):
            solar = lunar_to_solar(year, month, day, leap)
            if solar is not None and start <= solar <= end and solar >= event_date:
                found.append(solar)
        return found
    if recurrence == "yearly":
        return [d for year in range(max(start.year, event_date.year), end.year + 1)
                if start <= (d := _solar_anniversary(event_date.month, event_date.day, year)) <= end]
    if recurrence == "weekly":
        first = max(start, event_date)
        first += timedelta(days=(event_date.weekday() - first.weekday()) % 7)
        return [first + timedelta(weeks=k) for k in range(((end - first).days // 7) + 1)] if first <= end else []
    # monthly: the same day of the month (the last day in shorter months)
    found = []
    year, month = start.year, start.month
    while date(year, month, 1) <= end:
        d = _solar_anniversary(month, event_date.day, year)
        if d >= event_date and start <= d <= end:
            found.append(d)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found
