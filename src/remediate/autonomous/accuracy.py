"""Score forecasts whose horizon has come, and the accuracy breaker that follows from them.

A forecast's score is `max(0, 1 - |predicted - actual| / tolerance_percent)`: 1 when
the predicted percentage was exact, 0 when it was `tolerance_percent` points or more
off. The actual value is the stored sample nearest the horizon (within two sampling
intervals, at least an hour). A forecast whose resource was remediated before its
horizon (a successful execution on that mount or service) is closed unscored: the
fix changed the future it predicted. Rolling accuracy is the mean score of the
forecasts scored in the last `accuracy.window_days`; the breaker is open while it is
below `accuracy.threshold` over at least `accuracy.min_scored` forecasts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from remediate.autonomous.samples import Sample, nearest, subject_of, writing
from remediate.config.models import Autonomous
from remediate.store import Store
from remediate.store import tables as t

DAY = 86400.0
# A forecast whose actual value cannot be found this long after its horizon is closed.
GIVE_UP_SECONDS = 2 * DAY

# (resource, when) -> the actual sample, from another source than the store (Prometheus).
ActualSource = Callable[[str, float], Sample | None]


def score(predicted: float, actual: float, tolerance_percent: float) -> float:
    return max(0.0, 1.0 - abs(predicted - actual) / tolerance_percent)


@dataclass(frozen=True)
class Scored:
    forecast_id: int
    resource: str
    predicted: float
    actual: float | None
    score: float | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "forecast_id": self.forecast_id,
            "resource": self.resource,
            "predicted": round(self.predicted, 2),
            "actual": None if self.actual is None else round(self.actual, 2),
            "score": None if self.score is None else round(self.score, 3),
            "note": self.note,
        }


def _remediated(connection: Connection, resource: str, since: float, until: float) -> bool:
    subject = subject_of(resource)
    if not subject:
        return False
    e = t.executions
    count = connection.execute(
        sa.select(sa.func.count())
        .select_from(e)
        .where(
            e.c.target == subject,
            e.c.status == "success",
            e.c.admitted_at >= since,
            e.c.admitted_at <= until,
        )
    ).scalar()
    return bool(count)


def score_matured(
    store: Store, config: Autonomous, *, now: float, actual: ActualSource | None = None
) -> list[Scored]:
    """Score every unscored forecast whose horizon is past; returns what was scored."""
    f = t.forecasts
    within = max(2 * config.sample_interval_seconds, 3600.0)
    done: list[Scored] = []
    with writing(store) as connection:
        rows = connection.execute(
            sa.select(f.c.id, f.c.resource, f.c.created_at, f.c.horizon_at, f.c.predicted)
            .where(f.c.scored_at.is_(None), f.c.horizon_at <= now)
            .order_by(f.c.horizon_at, f.c.id)
        ).all()
        for row in rows:
            if _remediated(connection, row.resource, row.created_at, row.horizon_at):
                outcome = Scored(row.id, row.resource, row.predicted, None, None, "remediated")
            else:
                sample = (
                    actual(row.resource, row.horizon_at)
                    if actual is not None
                    else nearest(connection, row.resource, row.horizon_at, within)
                )
                if sample is None:
                    if now - row.horizon_at < GIVE_UP_SECONDS:
                        continue  # the sample may still arrive (the sampler runs behind)
                    outcome = Scored(row.id, row.resource, row.predicted, None, None, "no sample")
                else:
                    value = score(row.predicted, sample.percent, config.tolerance_percent)
                    outcome = Scored(
                        row.id, row.resource, row.predicted, sample.percent, value, "scored"
                    )
            connection.execute(
                f.update()
                .where(f.c.id == row.id, f.c.scored_at.is_(None))
                .values(scored_at=now, actual=outcome.actual, score=outcome.score)
            )
            done.append(outcome)
    return done


@dataclass(frozen=True)
class Accuracy:
    mean: float | None
    scored: int


def rolling(
    connection: Connection, *, now: float, window_days: float, resource: str | None = None
) -> Accuracy:
    """Mean score of the forecasts scored in the window (one resource, or all of them)."""
    f = t.forecasts
    query = sa.select(sa.func.avg(f.c.score), sa.func.count()).where(
        f.c.score.is_not(None), f.c.scored_at >= now - window_days * DAY, f.c.scored_at <= now
    )
    if resource is not None:
        query = query.where(f.c.resource == resource)
    mean, count = connection.execute(query).one()
    return Accuracy(None if mean is None else float(mean), int(count or 0))


def rolling_by_resource(
    connection: Connection, *, now: float, window_days: float
) -> dict[str, float]:
    """`remediation_predictive_accuracy{resource}`: the rolling mean per resource."""
    f = t.forecasts
    rows = connection.execute(
        sa.select(f.c.resource, sa.func.avg(f.c.score))
        .where(
            f.c.score.is_not(None),
            f.c.scored_at >= now - window_days * DAY,
            f.c.scored_at <= now,
        )
        .group_by(f.c.resource)
        .order_by(f.c.resource)
    )
    return {resource: float(mean) for resource, mean in rows}


@dataclass(frozen=True)
class Breaker:
    open: bool
    accuracy: float | None
    scored: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": "open" if self.open else "closed",
            "accuracy": None if self.accuracy is None else round(self.accuracy, 3),
            "scored": self.scored,
            "reason": self.reason,
        }


def breaker(store: Store, config: Autonomous, *, now: float) -> Breaker:
    """Open while rolling accuracy < threshold over at least `min_scored` scored forecasts."""
    rules = config.accuracy
    with store.reading() as connection:
        accuracy = rolling(connection, now=now, window_days=rules.window_days)
    if accuracy.mean is None or accuracy.scored < rules.min_scored:
        return Breaker(
            False,
            accuracy.mean,
            accuracy.scored,
            f"{accuracy.scored} scored forecast(s) in {rules.window_days:g} days "
            f"(the breaker needs {rules.min_scored})",
        )
    if accuracy.mean < rules.threshold:
        return Breaker(
            True,
            accuracy.mean,
            accuracy.scored,
            f"forecast accuracy {accuracy.mean:.0%} over {accuracy.scored} scored forecasts "
            f"is below {rules.threshold:.0%}: predictive actions are paused",
        )
    return Breaker(
        False,
        accuracy.mean,
        accuracy.scored,
        f"forecast accuracy {accuracy.mean:.0%} over {accuracy.scored} scored forecasts",
    )
