"""Time, injected: the gate, the runner and `remediate simulate` read it from here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to; tests and simulation use it.

    >>> clock = ManualClock.at("2025-12-24T10:00:00Z")
    >>> clock.advance(minutes=5)
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    @classmethod
    def at(cls, iso: str) -> ManualClock:
        return cls(parse_time(iso))

    def now(self) -> float:
        return self._now

    def set(self, when: float | str) -> None:
        self._now = parse_time(when) if isinstance(when, str) else when

    def advance(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0) -> None:
        self._now += seconds + 60 * minutes + 3600 * hours


def parse_time(iso: str) -> float:
    """Parse an ISO-8601 timestamp (a trailing Z means UTC; naive means UTC)."""
    parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_time(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, tz=UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )
