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

from remediate.autonomous.samples import Sample, nearest, subject_of
from remediate.config.models import Autonomous
from remediate.store import Sql, Store

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


def _remediated(db: Sql, resource: str, since: float, until: float) -> bool:
    subject = subject_of(resource)
    if not subject:
        return False
    [(count,)] = db.rows(
        "SELECT count(*) FROM executions WHERE target = :subject AND status = 'success'"
        " AND admitted_at >= :since AND admitted_at <= :until",
        subject=subject,
        since=since,
        until=until,
    )
    return bool(count)


def score_matured(
    store: Store, config: Autonomous, *, now: float, actual: ActualSource | None = None
) -> list[Scored]:
    """Score every unscored forecast whose horizon is past; returns what was scored.

    The outcomes are worked out first, outside the store's write lock (`actual` may ask
    Prometheus over HTTP), then written in one transaction; a forecast another process
    scored meanwhile keeps its score."""
    within = max(2 * config.sample_interval_seconds, 3600.0)
    outcomes: list[Scored] = []
    with store.sql_reading() as db:
        rows = db.rows(
            "SELECT id, resource, created_at, horizon_at, predicted FROM forecasts"
            " WHERE scored_at IS NULL AND horizon_at <= :now ORDER BY horizon_at, id",
            now=now,
        )
        remediated = {row[0] for row in rows if _remediated(db, row[1], row[2], row[3])}
        stored = (
            {row[0]: nearest(db, row[1], row[3], within) for row in rows} if actual is None else {}
        )
    for forecast_id, resource, _created_at, horizon_at, predicted in rows:
        if forecast_id in remediated:
            outcomes.append(Scored(forecast_id, resource, predicted, None, None, "remediated"))
            continue
        sample = actual(resource, horizon_at) if actual is not None else stored[forecast_id]
        if sample is None:
            if now - horizon_at < GIVE_UP_SECONDS:
                continue  # the sample may still arrive (the sampler runs behind)
            outcomes.append(Scored(forecast_id, resource, predicted, None, None, "no sample"))
        else:
            value = score(predicted, sample.percent, config.tolerance_percent)
            outcomes.append(
                Scored(forecast_id, resource, predicted, sample.percent, value, "scored")
            )
    if not outcomes:
        return []
    done: list[Scored] = []
    with store.gate_transaction() as view:
        db = view.driver()
        for outcome in outcomes:
            if db.update(
                "forecasts",
                {"scored_at": now, "actual": outcome.actual, "score": outcome.score},
                "id = :id AND scored_at IS NULL",
                id=outcome.forecast_id,
            ):
                done.append(outcome)
    return done


@dataclass(frozen=True)
class Accuracy:
    mean: float | None
    scored: int


def rolling(db: Sql, *, now: float, window_days: float, resource: str | None = None) -> Accuracy:
    """Mean score of the forecasts scored in the window (one resource, or all of them)."""
    of_resource = " AND resource = :resource" if resource is not None else ""
    [(mean, count)] = db.rows(
        "SELECT avg(score), count(*) FROM forecasts WHERE score IS NOT NULL"  # noqa: S608
        f" AND scored_at >= :since AND scored_at <= :now{of_resource}",
        since=now - window_days * DAY,
        now=now,
        resource=resource,
    )
    return Accuracy(None if mean is None else float(mean), int(count or 0))


def rolling_by_resource(db: Sql, *, now: float, window_days: float) -> dict[str, float]:
    """`remediation_predictive_accuracy{resource}`: the rolling mean per resource."""
    rows = db.rows(
        "SELECT resource, avg(score) FROM forecasts WHERE score IS NOT NULL"
        " AND scored_at >= :since AND scored_at <= :now GROUP BY resource ORDER BY resource",
        since=now - window_days * DAY,
        now=now,
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
    with store.sql_reading() as db:
        accuracy = rolling(db, now=now, window_days=rules.window_days)
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
