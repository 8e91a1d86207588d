"""Effectiveness: a 0-100 score per playbook that one can check by hand (docs/analytics.md).

    score = 100 * sum(weight * part) / sum(weight of the parts that apply)

success rate (40): successes / counted executions (success, failure, timeout).
impact (30): positive figures / figures reported (bytes_reclaimed,
    service_restarted, rows_removed) in the window; applies when it reported any.
execution time (20): 1 - mean duration / manual baseline, never below 0.
prediction accuracy (10): mean score of the forecasts scored in the window;
    applies to predictive-maintenance, the playbook that makes forecasts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from remediate.analytics.summary import Summary, Totals, summarize
from remediate.analytics.window import Window, ratio
from remediate.config.models import Analytics
from remediate.store import Store
from remediate.store import tables as t

WEIGHTS = {"success_rate": 40, "impact": 30, "execution_time": 20, "prediction_accuracy": 10}
COUNTED = ("success", "failure", "timeout")
# Impact kinds that are an achievement; oom_detected is a diagnosis, not a result.
ACHIEVEMENTS = ("bytes_reclaimed", "service_restarted", "rows_removed")
FORECASTING_PLAYBOOK = "predictive-maintenance"


@dataclass(frozen=True)
class Score:
    """One playbook's score, its parts (0-1, None when a part does not apply) and inputs."""

    playbook: str
    executions: int
    successes: int
    mean_duration_seconds: float | None
    manual_minutes: float
    parts: dict[str, float | None]
    score: int | None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Effectiveness:
    window: Window
    minimum_executions: int
    scores: tuple[Score, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "minimum_executions": self.minimum_executions,
            "weights": WEIGHTS,
            "playbooks": [score.as_dict() for score in self.scores],
        }


def manual_minutes(analytics: Analytics, playbook: str) -> float:
    return analytics.manual_minutes.get(playbook, analytics.default_manual_minutes)


def effectiveness(
    store: Store,
    analytics: Analytics,
    window: Window,
    *,
    playbook: str | None = None,
    summary: Summary | None = None,
) -> Effectiveness:
    """Score every playbook that ran in the window (or only `playbook`).

    summary: the window's runs and achievement figures when the caller has read them already
    (`monthly`); read here otherwise.
    """
    f = t.forecasts
    accuracy_query = sa.select(sa.func.avg(f.c.score), sa.func.count(f.c.score)).where(
        window.contains(f.c.scored_at), f.c.score.is_not(None)
    )
    with store.reading() as connection:
        if summary is None:
            summary = summarize(connection, window, kinds=ACHIEVEMENTS, playbook=playbook)
        mean_score, scored = connection.execute(accuracy_query).one()
    runs = summary.totals(lambda runs: runs.playbook, lambda runs: runs.status in COUNTED)
    successes = summary.totals(lambda runs: runs.playbook, lambda runs: runs.status == "success")
    impacts: dict[str, tuple[int, int]] = {}
    for figures in summary.figures:
        if figures.kind in ACHIEVEMENTS:
            positive, count = impacts.get(figures.playbook, (0, 0))
            impacts[figures.playbook] = (positive + figures.positive, count + figures.count)
    names = {name for name, totals in runs.items() if totals.count}
    if playbook is not None:
        names = {playbook}
    scores = []
    for name in sorted(names):
        totals = runs.get(name, Totals())
        achieved = impacts.get(name)
        accuracy = float(mean_score) if name == FORECASTING_PLAYBOOK and scored else None
        scores.append(
            _score(
                name,
                totals.count,
                successes.get(name, Totals()).count,
                totals.mean_duration,
                achieved if achieved and achieved[1] else None,
                accuracy,
                manual_minutes(analytics, name),
                analytics.min_executions,
            )
        )
    return Effectiveness(window, analytics.min_executions, tuple(scores))


def _score(
    playbook: str,
    count: int,
    successes: int,
    mean_duration: float | None,
    figures: tuple[int, int] | None,
    accuracy: float | None,
    manual: float,
    minimum: int,
) -> Score:
    parts: dict[str, float | None] = {
        "success_rate": ratio(successes, count),
        "impact": ratio(*figures) if figures is not None else None,
        "execution_time": (
            max(0.0, 1.0 - mean_duration / (manual * 60)) if mean_duration is not None else None
        ),
        "prediction_accuracy": accuracy,
    }
    if count < minimum:
        return Score(
            playbook,
            count,
            successes,
            mean_duration,
            manual,
            parts,
            None,
            f"too little history: {count} execution(s) in the window, {minimum} needed",
        )
    applying = {name: value for name, value in parts.items() if value is not None}
    total = sum(WEIGHTS[name] for name in applying)
    weighted = sum(WEIGHTS[name] * value for name, value in applying.items())
    # Halves round up, so a hand calculation agrees (Python's round() goes to even).
    return Score(
        playbook, count, successes, mean_duration, manual, parts, int(100 * weighted / total + 0.5)
    )
