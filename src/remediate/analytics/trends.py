"""Trends over a window: executions per playbook per week with a direction, blocks and
escalations by the check that decided, forecast accuracy per week, root-cause shares.

Direction compares the window's two halves (a -> b): increasing when b - a is at
least max(2, 20% of a), decreasing when a - b is, steady otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from remediate.analytics.summary import Summary, summarize
from remediate.analytics.window import DAY, WEEK, Window, bucket, iso, unindexed
from remediate.store import Store
from remediate.store import tables as t

FINISHED = ("success", "failure", "timeout", "skipped", "interrupted")
REFUSALS = ("block", "escalate")
# Inline values, not bound parameters: SQLite answers from a partial index (migration 0007)
# only when the query spells out the index's own condition.
REFUSED = t.decisions.c.action.in_(
    sa.bindparam("refusals", REFUSALS, expanding=True, literal_execute=True)
)


@dataclass(frozen=True)
class PlaybookTrend:
    playbook: str
    weekly: tuple[int, ...]
    first_half: int
    second_half: int
    direction: str


@dataclass(frozen=True)
class Refusal:
    action: str
    check: str
    count: int
    example: str


@dataclass(frozen=True)
class WeeklyAccuracy:
    week: int
    starts: str
    forecasts: int
    accuracy: float | None


@dataclass(frozen=True)
class RootCause:
    root_cause: str
    incidents: int
    share: float


@dataclass(frozen=True)
class Trends:
    window: Window
    week_starts: tuple[str, ...]
    playbooks: tuple[PlaybookTrend, ...]
    refusals: tuple[Refusal, ...]
    accuracy: tuple[WeeklyAccuracy, ...]
    accuracy_halves: tuple[float | None, float | None]
    accuracy_direction: str
    root_causes: tuple[RootCause, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "week_starts": list(self.week_starts),
            "playbooks": [asdict(item) for item in self.playbooks],
            "refusals": [asdict(item) for item in self.refusals],
            "accuracy": [asdict(item) for item in self.accuracy],
            "accuracy_halves": list(self.accuracy_halves),
            "accuracy_direction": self.accuracy_direction,
            "root_causes": [asdict(item) for item in self.root_causes],
        }


def direction(first: float, second: float) -> str:
    """increasing / decreasing when the change is at least max(2, 20% of the first half)."""
    needed = max(2.0, 0.2 * first)
    if second - first >= needed:
        return "increasing"
    if first - second >= needed:
        return "decreasing"
    return "steady"


def accuracy_direction(first: float | None, second: float | None) -> str:
    """Accuracy moves when the two halves differ by at least 5 points."""
    if first is None or second is None:
        return "unknown"
    if second - first >= 0.05:
        return "improving"
    if first - second >= 0.05:
        return "worsening"
    return "steady"


def trends(store: Store, window: Window, *, summary: Summary | None = None) -> Trends:
    """summary: the window's runs cut at least at every week, when the caller has read them
    already (`monthly`); read here otherwise."""
    e, d, f = t.executions, t.decisions, t.forecasts
    weeks = max(1, int(-(-window.seconds // WEEK)))  # a partial last week is a week too
    refusals_query = (
        sa.select(d.c.action, d.c.check_name, sa.func.count(), sa.func.min(d.c.reason))
        .where(window.contains(d.c.created_at), REFUSED)
        .group_by(d.c.action, d.c.check_name)
    )
    scored = sa.and_(window.contains(f.c.scored_at), f.c.score.is_not(None))
    forecast_week = bucket(f.c.scored_at, start=window.start, width=WEEK).label("week")
    accuracy_query = (
        sa.select(forecast_week, sa.func.count(), sa.func.avg(f.c.score))
        .where(scored)
        .group_by(forecast_week)
    )
    accuracy_halves_query = sa.select(
        sa.func.avg(sa.case((f.c.scored_at < window.middle, f.c.score))),
        sa.func.avg(sa.case((f.c.scored_at >= window.middle, f.c.score))),
    ).where(scored)
    # First attempts only: a retry is the same incident, not another run. The diagnosed runs
    # have an index of their own (migration 0007): `covers` and `unindexed` keep SQLite off
    # the time and status indexes, which would fetch every run of the window to find them.
    causes_query = (
        sa.select(e.c.root_cause, sa.func.count())
        .where(
            e.c.root_cause.is_not(None),
            window.covers(e.c.admitted_at),
            e.c.attempt == 1,
            unindexed(e.c.status).in_(FINISHED),
        )
        .group_by(e.c.root_cause)
    )
    if summary is not None and (summary.window != window or summary.width not in (DAY, WEEK)):
        raise ValueError("trends need the summary of their window, cut at every week or day")
    with store.reading() as connection:
        summary = summary or summarize(connection, window, width=WEEK)
        refusal_rows = connection.execute(refusals_query).all()
        accuracy_rows = connection.execute(accuracy_query).all()
        first_accuracy, second_accuracy = connection.execute(accuracy_halves_query).one()
        cause_rows = connection.execute(causes_query).all()

    first_runs = summary.totals(
        lambda runs: (runs.playbook, runs.slice.week, runs.slice.half),
        lambda runs: runs.status in FINISHED,
    )
    counts: dict[str, list[int]] = {}
    halves: dict[str, list[int]] = {}
    for (name, index, which), totals in first_runs.items():
        if not totals.first_attempts:
            continue
        counts.setdefault(name, [0] * weeks)[min(index, weeks - 1)] += totals.first_attempts
        halves.setdefault(name, [0, 0])[which] += totals.first_attempts
    playbooks = tuple(
        PlaybookTrend(
            name,
            tuple(counts[name]),
            halves[name][0],
            halves[name][1],
            direction(halves[name][0], halves[name][1]),
        )
        for name in sorted(counts)
    )
    refusals = tuple(
        sorted(
            (
                Refusal(action, check or "", int(count), example)
                for action, check, count, example in refusal_rows
            ),
            key=lambda item: (-item.count, item.action, item.check),
        )
    )
    by_week = {int(index): (int(count), float(mean)) for index, count, mean in accuracy_rows}
    accuracy = tuple(
        WeeklyAccuracy(
            index,
            iso(window.start + index * WEEK),
            by_week.get(index, (0, 0.0))[0],
            by_week[index][1] if index in by_week else None,
        )
        for index in range(weeks)
    )
    halves_accuracy = (
        float(first_accuracy) if first_accuracy is not None else None,
        float(second_accuracy) if second_accuracy is not None else None,
    )
    causes = [(cause, int(count)) for cause, count in cause_rows]
    incidents = sum(count for _, count in causes)
    root_causes = tuple(
        sorted(
            (RootCause(cause, count, count / incidents) for cause, count in causes),
            key=lambda item: (-item.incidents, item.root_cause),
        )
    )
    return Trends(
        window=window,
        week_starts=tuple(iso(window.start + index * WEEK) for index in range(weeks)),
        playbooks=playbooks,
        refusals=refusals,
        accuracy=accuracy,
        accuracy_halves=halves_accuracy,
        accuracy_direction=accuracy_direction(*halves_accuracy),
        root_causes=root_causes,
    )
