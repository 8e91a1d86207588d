"""The time window a report covers, and SQL helpers every report shares.

Buckets (weeks, days) are computed in SQL arithmetic, `floor((t - start) / width)`,
so one query works on SQLite and PostgreSQL without dialect date functions.

    >>> window = Window.month("2025-12")
    >>> window.days
    31.0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from remediate.errors import UsageError

DAY = 86400.0
WEEK = 7 * DAY
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DURATION_UNITS = {"h": 3600.0, "d": DAY, "w": WEEK}


@dataclass(frozen=True)
class Window:
    """Half-open interval [start, end) in seconds since the epoch (UTC)."""

    start: float
    end: float

    @classmethod
    def last(cls, text: str, *, now: float) -> Window:
        """`--last 30d`: the window that ends now (units h, d, w)."""
        number, unit = text[:-1], text[-1:]
        if unit not in _DURATION_UNITS or not number.isdigit() or int(number) == 0:
            raise UsageError(f"not a window: {text!r} (examples: 24h, 30d, 4w)")
        return cls(now - int(number) * _DURATION_UNITS[unit], now)

    @classmethod
    def month(cls, text: str) -> Window:
        """`--month 2025-12`: from the 1st 00:00 UTC to the next month's 1st."""
        match = _MONTH.match(text)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise UsageError(f"not a month: {text!r} (example: 2025-12)")
        year, month = int(match.group(1)), int(match.group(2))
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        return cls(start.timestamp(), end.timestamp())

    @classmethod
    def previous_month(cls, *, now: float) -> Window:
        """The last whole month before `now`: what the schedule on the 1st reports."""
        today = datetime.fromtimestamp(now, tz=UTC)
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        return cls.month(f"{year:04d}-{month:02d}")

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def days(self) -> float:
        return self.seconds / DAY

    @property
    def weeks(self) -> float:
        return self.seconds / WEEK

    @property
    def middle(self) -> float:
        return self.start + self.seconds / 2

    def label(self) -> str:
        """`2025-12` for a calendar month, else `start .. end` in ISO-8601."""
        first = datetime.fromtimestamp(self.start, tz=UTC)
        if self == Window.month(f"{first.year:04d}-{first.month:02d}"):
            return f"{first.year:04d}-{first.month:02d}"
        return f"{iso(self.start)} .. {iso(self.end)}"

    def contains(self, column: Any) -> sa.ColumnElement[bool]:
        return sa.and_(column >= self.start, column < self.end)

    def covers(self, column: Any) -> sa.ColumnElement[bool]:
        """`contains` for a query that reads most of a table: `column + 0` keeps SQLite from
        walking the time index with a random row lookup per entry (three times slower over a
        million rows than reading the table in order); PostgreSQL plans either the same."""
        shifted = column + 0
        return sa.and_(shifted >= self.start, shifted < self.end)

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso(self.start), "end": iso(self.end), "days": round(self.days, 3)}

    def slices(self, width: float | None = None) -> tuple[Slice, ...]:
        """The window cut at every `width` seconds from its start (not at all without one)
        and at its middle, so each slice lies in one day, week or half, whichever it is cut by.

        A slice's day and week are those of its first instant, `floor(offset / width)` as
        `bucket` computes them in SQL: with cuts at every day, every time in a slice falls in
        that slice's day and week (a week is seven whole days from the start).
        """
        cuts = {self.start, self.middle, self.end}
        if width is not None:
            cuts.update(self.start + k * width for k in range(1, math.ceil(self.seconds / width)))
        edges = sorted(cuts)
        return tuple(
            Slice(
                start,
                end,
                day=math.floor((start - self.start) / DAY),
                week=math.floor((start - self.start) / WEEK),
                half=0 if start < self.middle else 1,
            )
            for start, end in pairwise(edges)
        )


@dataclass(frozen=True)
class Slice:
    """Part of a window, [start, end): see `Window.slices`."""

    start: float
    end: float
    day: int
    week: int
    half: int

    def contains(self, column: Any) -> sa.ColumnElement[bool]:
        return sa.and_(column >= self.start, column < self.end)


def unindexed(column: Any) -> sa.ColumnElement[Any]:
    """A string column as an expression no index answers (`column || ''`).

    Grouping a month of a busy store by an indexed column makes SQLite walk that index with
    a random row lookup per entry (ten times slower over a million rows than one pass in
    table order and a sort); PostgreSQL hashes either way.
    """
    # An inline '' (not a bound parameter): PostgreSQL then sees the same expression in the
    # select list and in GROUP BY.
    return column.concat(sa.literal_column("''"))  # type: ignore[no-any-return]


def iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, tz=UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


class _Floor(FunctionElement[int]):
    """floor(value) as an integer, for values that are never negative."""

    type = sa.Integer()
    name = "remediate_floor"
    inherit_cache = True


@compiles(_Floor)
def _floor_by_cast(element: _Floor, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite: CAST truncates toward zero, which is floor for the non-negative offsets we pass;
    # floor() itself exists only when SQLite was built with its math functions.
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(_Floor, "postgresql")
def _floor_postgresql(element: _Floor, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL: CAST of a double rounds to nearest, so floor explicitly first.
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)}) AS INTEGER)"


def bucket(column: Any, *, start: float, width: float) -> sa.ColumnElement[int]:
    """Which bucket of `width` seconds after `start` a time falls in: 0, 1, 2..."""
    offset = (column - sa.literal(start, sa.Float)) / sa.literal(width, sa.Float)
    return _Floor(offset)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"
