"""How long a job may go between two runs: the longest gap of its schedule (`period`)."""

from __future__ import annotations

import datetime as dt

import pytest

from pbs_compliance.calendar_event import CalendarEvent

MONDAY = dt.date(2026, 11, 30)


@pytest.mark.parametrize(
    ("schedule", "hours"),
    [
        ("21:00", 24),
        ("daily", 24),
        ("02:00", 24),
        ("mon..fri 02:00", 72),  # Friday 02:00 to Monday 02:00
        ("mon..sat 04:00", 48),
        ("sat 03:00", 7 * 24),
        ("weekly", 7 * 24),
        ("02,14:00", 12),
        ("02,08:00", 18),  # 08:00 to the next day's 02:00
        ("*:0/15", 0.25),
        ("hourly", 1),
        ("mon,wed 01:30", 5 * 24),  # Wednesday to next Monday
        ("sun..tue 23:00", 5 * 24),  # Tuesday 23:00 to Sunday 23:00 (a wrapped range)
        ("monthly", 31 * 24),
    ],
)
def test_period_is_the_longest_gap_between_events(schedule: str, hours: float) -> None:
    assert CalendarEvent.parse(schedule).period(MONDAY) == dt.timedelta(hours=hours)


def test_period_of_a_one_off_date_is_none() -> None:
    assert CalendarEvent.parse("2027-03-01 02:00").period(MONDAY) is None
    assert CalendarEvent.parse("2020-03-01 02:00").period(MONDAY) is None  # in the past


def test_period_of_a_date_that_repeats_yearly() -> None:
    period = CalendarEvent.parse("*-03-01 02:00").period(MONDAY)
    assert period == dt.timedelta(days=366)  # a leap year lies within the four years


def test_period_with_two_events_of_a_one_off_day() -> None:
    assert CalendarEvent.parse("2027-03-01 02,03:00").period(MONDAY) == dt.timedelta(hours=1)
