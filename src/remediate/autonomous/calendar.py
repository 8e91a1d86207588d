"""systemd OnCalendar expressions, for the embedded schedule runner (`schedules.runner: embedded`).

A small parser of the forms the defaults and the docs use, so a container without
systemd runs the same schedules: `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [UTC]`
where each field is `*`, a number, a list `1,15`, a range `1..5` or a repetition
`*/15`, `0/6`; weekdays are `Mon`, `Mon,Thu`, `Mon..Fri`; and the shorthands
minutely, hourly, daily, weekly, monthly, quarterly, semiannually, yearly. What it
does not know (`~` last days, fractional seconds, time zones other than UTC) is
refused with a clear error rather than guessed. tests/integration/test_timers.py
checks its next elapses against `systemd-analyze calendar`.

    Calendar.parse("Sun *-*-* 03:00:00").next_after(time.time())
"""

from __future__ import annotations

import calendar as stdlib_calendar
import datetime as dt
import time
from dataclasses import dataclass

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
}
SEARCH_DAYS = 366 * 5  # a date that matches nothing in five years never will (Feb 30)


class CalendarError(ValueError):
    """An OnCalendar expression this parser does not accept (the message says why)."""


def _field(text: str, low: int, high: int, what: str) -> frozenset[int] | None:
    """`*` -> None (any); else the set of values of a list of numbers, ranges, repetitions."""
    if text == "*":
        return None
    values: set[int] = set()
    for part in text.split(","):
        try:
            if "/" in part:
                start_text, step_text = part.split("/", 1)
                start = low if start_text == "*" else int(start_text)
                step = int(step_text)
                if step <= 0:
                    raise CalendarError(f"{what}: a repetition needs a positive step: {part!r}")
                values.update(range(start, high + 1, step))
            elif ".." in part:
                first, last = (int(item) for item in part.split("..", 1))
                values.update(range(first, last + 1))
            else:
                values.add(int(part))
        except ValueError as error:
            if isinstance(error, CalendarError):
                raise
            raise CalendarError(
                f"{what}: {part!r} is not a number, list, range or */step"
            ) from None
    if not values or min(values) < low or max(values) > high:
        raise CalendarError(f"{what} must be within {low}..{high}: {text!r}")
    return frozenset(values)


def _weekdays(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("..")
        try:
            start = WEEKDAYS.index(first[:3])
            end = WEEKDAYS.index(last[:3]) if last else start
        except ValueError:
            raise CalendarError(f"{part!r} is not a weekday (Mon..Sun)") from None
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    return frozenset(days)


@dataclass(frozen=True)
class Calendar:
    expression: str
    weekdays: frozenset[int] | None
    years: frozenset[int] | None
    months: frozenset[int] | None
    days: frozenset[int] | None
    hours: frozenset[int] | None
    minutes: frozenset[int] | None
    seconds: frozenset[int] | None
    utc: bool = False

    @classmethod
    def parse(cls, expression: str) -> Calendar:
        words = expression.split()
        utc = False
        if words and words[-1].upper() in ("UTC", "GMT"):
            utc = True
            words = words[:-1]
        if len(words) == 1 and words[0].lower() in SHORTHANDS:
            words = SHORTHANDS[words[0].lower()].split()
        if any("~" in word for word in words):
            raise CalendarError(f"{expression!r}: '~' (days from the end) is not supported here")
        weekdays = None
        if words and words[0][:1].isalpha():
            weekdays = _weekdays(words.pop(0))
        date_text, time_text = "*-*-*", "00:00:00"
        for word in words:
            if ":" in word:
                time_text = word
            elif "-" in word:
                date_text = word
            else:
                raise CalendarError(f"{expression!r}: cannot read {word!r}")
        if len(words) > 2:
            raise CalendarError(f"{expression!r}: too many parts")
        date_parts = date_text.split("-")
        if len(date_parts) == 2:
            date_parts.insert(0, "*")
        if len(date_parts) != 3:
            raise CalendarError(f"{expression!r}: the date is YEAR-MONTH-DAY or MONTH-DAY")
        time_parts = time_text.split(":")
        if len(time_parts) == 2:
            time_parts.append("00")
        if len(time_parts) != 3 or any("." in part for part in time_parts):
            raise CalendarError(f"{expression!r}: the time is HOUR:MINUTE[:SECOND]")
        return cls(
            expression=expression,
            weekdays=weekdays,
            years=_field(date_parts[0], 1970, 2199, "year"),
            months=_field(date_parts[1], 1, 12, "month"),
            days=_field(date_parts[2], 1, 31, "day"),
            hours=_field(time_parts[0], 0, 23, "hour"),
            minutes=_field(time_parts[1], 0, 59, "minute"),
            seconds=_field(time_parts[2], 0, 59, "second"),
            utc=utc,
        )

    def _date_matches(self, day: dt.date) -> bool:
        return (
            (self.years is None or day.year in self.years)
            and (self.months is None or day.month in self.months)
            and (self.days is None or day.day in self.days)
            and (self.weekdays is None or day.weekday() in self.weekdays)
        )

    def _first_time(self, after: dt.time | None) -> dt.time | None:
        """The first matching time of day strictly after `after` (or the first of the day)."""
        hours = sorted(self.hours) if self.hours is not None else range(24)
        minutes = sorted(self.minutes) if self.minutes is not None else range(60)
        seconds = sorted(self.seconds) if self.seconds is not None else range(60)
        for hour in hours:
            if after is not None and hour < after.hour:
                continue
            for minute in minutes:
                if after is not None and (hour, minute) < (after.hour, after.minute):
                    continue
                for second in seconds:
                    candidate = dt.time(hour, minute, second)
                    if after is None or candidate > after:
                        return candidate
        return None

    def next_after(self, timestamp: float) -> float:
        """The first elapse strictly after `timestamp` (seconds since the epoch)."""
        if self.utc:
            start = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).replace(tzinfo=None)
        else:
            start = dt.datetime.fromtimestamp(timestamp)
        start = start.replace(microsecond=0)
        day = start.date()
        for offset in range(SEARCH_DAYS):
            current = day + dt.timedelta(days=offset)
            if not self._date_matches(current):
                continue
            moment = self._first_time(start.time() if offset == 0 else None)
            if moment is None:
                continue
            naive = dt.datetime.combine(current, moment)
            if self.utc:
                return float(stdlib_calendar.timegm(naive.timetuple()))
            # mktime reads local time as the C library does, daylight saving included.
            return time.mktime((*naive.timetuple()[:8], -1))
        raise CalendarError(f"{self.expression!r} never elapses")


def validate(expression: str) -> None:
    Calendar.parse(expression)
