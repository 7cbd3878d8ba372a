"""PVE's calendar events (`pve-calendar-event`, a subset of systemd's), checked and evaluated.

Backup job schedules are written like `21:00`, `mon..fri 02:30`, `sat *-*-1..7 03:00`,
`*:0/15` or a keyword (`daily`, `weekly`, ...). Two users: the lab refuses what PVE refuses
(with PVE's words) and computes `next-run` for the job list; the `jobs` check asks how long a
job may go between two runs (`period`: the longest gap between consecutive events). It
understands weekday lists and ranges, `Y-M-D` dates with `*`, lists, ranges and repetitions,
and `H:M[:S]` times; events are searched over the matching days of the next ~4 years, in local
time (as PVE's scheduler runs them; a DST change moves one gap by an hour).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["CalendarEvent", "CalendarEventError"]

_HORIZON_DAYS = 4 * 366
_MINUTES_PER_DAY = 24 * 60

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_KEYWORDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}


class CalendarEventError(ValueError):
    """The text PVE dies with for a schedule it cannot parse."""


def _values(spec: str, low: int, high: int, what: str) -> frozenset[int]:
    """`*`, `5`, `1,3`, `1..5`, `0/15`, `*/2`: the matching values within [low, high]."""
    out: set[int] = set()
    for part in spec.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CalendarEventError(f"invalid {what} repetition '{part}'")
        if base == "*":
            first, last = low, high
        elif ".." in base:
            a, _, b = base.partition("..")
            if not (a.isdigit() and b.isdigit()):
                raise CalendarEventError(f"invalid {what} range '{part}'")
            first, last = int(a), int(b)
        elif base.isdigit():
            first = int(base)
            last = high if step else first
        else:
            raise CalendarEventError(f"invalid {what} '{part}'")
        if not (low <= first <= high and low <= last <= high):
            raise CalendarEventError(f"{what} '{part}' out of range")
        out.update(range(first, last + 1, step or 1))
    return frozenset(out)


def _weekdays(spec: str) -> frozenset[int]:
    out: set[int] = set()
    for part in spec.split(","):
        a, sep, b = part.partition("..")
        if a not in _DAYS or (sep and b not in _DAYS):
            raise CalendarEventError(f"invalid weekday '{part}'")
        first, last = _DAYS.index(a), _DAYS.index(b if sep else a)
        out.update(
            range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
        )
    return frozenset(out)


@dataclass(frozen=True)
class CalendarEvent:
    weekdays: frozenset[int]
    years: frozenset[int] | None
    months: frozenset[int]
    days: frozenset[int]
    hours: frozenset[int]
    minutes: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> CalendarEvent:
        try:
            return cls._parse(text)
        except CalendarEventError as exc:
            raise CalendarEventError(f"invalid calendar event '{text}' - {exc}") from None

    @classmethod
    def _parse(cls, text: str) -> CalendarEvent:
        words = _KEYWORDS.get(text.strip().lower(), text).split()
        if not words:
            raise CalendarEventError("empty calendar event")
        weekdays = frozenset(range(7))
        if re.match(r"^[a-z]", words[0]):
            weekdays = _weekdays(words.pop(0).lower())
        years, months, days = None, frozenset(range(1, 13)), frozenset(range(1, 32))
        if words and "-" in words[0]:
            parts = words.pop(0).split("-")
            if len(parts) == 2:
                parts = ["*", *parts]
            if len(parts) != 3:
                raise CalendarEventError("invalid date")
            years = None if parts[0] == "*" else _values(parts[0], 1970, 9999, "year")
            months = _values(parts[1], 1, 12, "month")
            days = _values(parts[2], 1, 31, "day")
        hours, minutes = frozenset({0}), frozenset({0})
        if words:
            clock = words.pop(0).split(":")
            if len(clock) not in (2, 3):
                raise CalendarEventError("invalid time")
            hours = _values(clock[0], 0, 23, "hour")
            minutes = _values(clock[1], 0, 59, "minute")
        if words:
            raise CalendarEventError(f"unexpected '{words[0]}'")
        return cls(weekdays, years, months, days, hours, minutes)

    def next_after(self, moment: float) -> int | None:
        """The first event strictly after `moment` (epoch seconds, local time), or None."""
        start = dt.datetime.fromtimestamp(int(moment) // 60 * 60 + 60)
        day = start.date()
        for _ in range(_HORIZON_DAYS):
            if (
                day.weekday() in self.weekdays
                and day.month in self.months
                and day.day in self.days
                and (self.years is None or day.year in self.years)
            ):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        at = dt.datetime.combine(day, dt.time(hour, minute))
                        if at >= start:
                            return int(at.timestamp())
            day += dt.timedelta(days=1)
        return None

    def period(self, start: dt.date) -> dt.timedelta | None:
        """The longest gap between two consecutive events from `start` on (~4 years), or None
        when the schedule fires fewer than twice in that time (a one-off date)."""
        times = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        days = [
            day
            for day in (start + dt.timedelta(days=n) for n in range(_HORIZON_DAYS))
            if day.weekday() in self.weekdays
            and day.month in self.months
            and day.day in self.days
            and (self.years is None or day.year in self.years)
        ]
        if not times or not days or len(times) * len(days) < 2:
            return None
        gaps = [later - earlier for earlier, later in pairwise(times)]
        gaps += [(b - a).days * _MINUTES_PER_DAY + times[0] - times[-1] for a, b in pairwise(days)]
        return dt.timedelta(minutes=max(gaps))
